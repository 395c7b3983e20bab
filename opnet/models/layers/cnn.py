"""A convolutional encoder of grid inputs (the CNN branch of the CMAME Darcy DeepONet)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from opnet.models.layers.mlp import GroupedMLP, initialize
from opnet.models.layers.mlp import activation as activation_module

__all__ = ["CNNBranch"]


def _per_layer(value: int | Sequence[int], n: int, key: str) -> list[int]:
    """An int for every conv layer, or one per layer."""
    values = [value] * n if isinstance(value, int) else list(value)
    if len(values) != n or any(not isinstance(v, int) or v < 0 for v in values):
        raise ValueError(f"branch['{key}']={value!r}: need a non-negative int or one per conv "
                         f"layer ({n})")
    return values


class CNNBranch(nn.Module):
    """Convolutional branch for grid inputs: ``[B, C, H, W] -> [B, G, p]``.

    ``convs`` (activated) -> flatten -> dense ``mlp`` (last layer linear). ``groups`` G > 1
    (the "independent" strategy) is G separate CNNs run as grouped convolutions and grouped
    dense layers: the input is repeated G times along the channels.
    """

    def __init__(self, in_channels: int, channels: Sequence[int],
                 kernel_size: int | Sequence[int], stride: int | Sequence[int],
                 mlp: Sequence[int], input_size: Sequence[int], padding: int | Sequence[int] = 0,
                 groups: int = 1, activation: str = "relu", last_bias: bool = True,
                 initializer: str = "glorot_normal") -> None:
        super().__init__()
        n = len(channels)
        kernels = _per_layer(kernel_size, n, "kernel_size")
        strides = _per_layer(stride, n, "stride")
        paddings = _per_layer(padding, n, "padding")
        if len(input_size) != 2 or any(int(s) < 1 for s in input_size):
            raise ValueError(f"branch['input_size']={input_size!r}: need [H, W]")
        if in_channels < 1 or any(c < 1 for c in channels) or not mlp or any(w < 1 for w in mlp):
            raise ValueError(f"CNN branch: in_channels={in_channels}, channels={list(channels)} "
                             f"and mlp={list(mlp)} must be positive (mlp non-empty)")
        self.groups, self.in_channels = groups, in_channels
        self.input_size = (int(input_size[0]), int(input_size[1]))
        sizes = [self.input_size]
        self.convs = nn.ModuleList()
        c_in = in_channels
        for c_out, k, s, p in zip(channels, kernels, strides, paddings, strict=True):
            h, w = sizes[-1]
            size = ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            if min(size) < 1 or s < 1:
                raise ValueError(f"CNN branch: a {k}x{k} conv (stride {s}, padding {p}) does not "
                                 f"fit the {h}x{w} grid of layer {len(sizes)} "
                                 f"(input_size={list(self.input_size)})")
            sizes.append(size)
            conv = nn.Conv2d(groups * c_in, groups * c_out, k, stride=s, padding=p,
                             groups=groups)
            initialize(conv.weight, conv.bias, c_in * k * k, c_out * k * k, initializer)
            self.convs.append(conv)
            c_in = c_out
        self.grid_sizes = sizes
        self.flat_features = c_in * sizes[-1][0] * sizes[-1][1]
        self.mlp = GroupedMLP(groups, [self.flat_features, *mlp], activation,
                              activate_last=False, last_bias=last_bias, initializer=initializer)
        self.act = activation_module(activation)
        self.out_features = mlp[-1]

    def forward(self, u: Tensor) -> Tensor:
        """Images ``u [B, C, H, W]`` -> branch features ``[B, G, out]``."""
        x = u.repeat(1, self.groups, 1, 1) if self.groups > 1 else u
        for conv in self.convs:
            x = self.act(conv(x))
        return self.mlp(x.reshape(x.shape[0], self.groups, -1), shared=False)

