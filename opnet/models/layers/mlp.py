"""Pointwise building blocks: activations (one table for every family), Keras/DeepXDE weight
initialisers, and G independent linear maps / MLPs evaluated as one batched op."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "INITIALIZERS", "GroupedLinear", "GroupedMLP", "Sin", "activation",
           "check_initializer", "initialize"]

INITIALIZERS = ("glorot_normal", "glorot_uniform", "he_normal", "default")


class Sin(nn.Module):
    """``sin(x)`` as an activation module."""

    def forward(self, x: Tensor) -> Tensor:
        """Elementwise ``sin(x)``, same shape."""
        return torch.sin(x)


#: Activation name -> module class; the one table DeepONet, FNO, ... accept.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "sin": Sin}


def activation(name: str, owner: str = "activation") -> nn.Module:
    """A new activation module by name; ``owner`` is the config key an error names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"{owner}={name!r} is not supported; allowed values: "
                         f"{tuple(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


_activation_module = activation  # the constructors' ``activation`` argument shadows the name


def check_initializer(initializer: str) -> None:
    """Refuse an initialiser name that :func:`initialize` does not know."""
    if initializer not in INITIALIZERS:
        raise ValueError(f"initializer={initializer!r} is not supported; allowed values: "
                         f"{INITIALIZERS}")


@torch.no_grad()
def initialize(weight: Tensor, bias: Tensor | None, fan_in: int, fan_out: int,
               initializer: str) -> None:
    """Initialise one (possibly grouped) layer with the fans of a *single* group's map.

    ``glorot_*`` and ``he_normal`` zero the bias (Keras/DeepXDE); ``default`` is PyTorch's
    ``nn.Linear`` / ``nn.Conv2d`` rule (weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    """
    check_initializer(initializer)
    if initializer == "glorot_normal":
        weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
    elif initializer == "glorot_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        weight.uniform_(-a, a)
    elif initializer == "he_normal":
        weight.normal_(0.0, math.sqrt(2.0 / fan_in))
    else:  # "default"
        a = 1.0 / math.sqrt(fan_in)
        weight.uniform_(-a, a)
        if bias is not None:
            bias.uniform_(-a, a)
        return
    if bias is not None:
        bias.zero_()


class GroupedLinear(nn.Module):
    """G independent affine maps: ``[..., in]`` (shared) or ``[..., G, in]`` -> ``[..., G, out]``.

    ``weight`` [G, in, out], ``bias`` [G, out]; one einsum for all groups (plain ``F.linear``
    when G = 1).
    """

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True,
                 initializer: str = "glorot_normal") -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None
        initialize(self.weight, self.bias, in_features, out_features, initializer)

    def forward(self, x: Tensor, shared: bool) -> Tensor:
        """``[..., in]`` (``shared``: the same input for every group) or ``[..., G, in]`` ->
        ``[..., G, out]``."""
        if self.groups == 1:
            x = x if shared else x.squeeze(-2)
            out = self.forward_stacked(x.reshape(1, -1, self.in_features))
            return out.view(*x.shape[:-1], 1, self.out_features)
        pattern = "...i,gio->...go" if shared else "...gi,gio->...go"
        out = torch.einsum(pattern, x, self.weight)
        return out if self.bias is None else out + self.bias.to(out.dtype)

    def forward_stacked(self, x: Tensor) -> Tensor:
        """``[G, M, in] -> [G, M, out]``: one batched (add)matmul with the stored weights
        (no per-call reshaping of the parameters: the fewest autograd nodes)."""
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)

    def extra_repr(self) -> str:
        return (f"groups={self.groups}, in_features={self.in_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class GroupedMLP(nn.Module):
    """G independent MLPs ``sizes[0] -> ... -> sizes[-1]``: ``[..., (G,) n0] -> [..., G, nL]``.

    Activated after every hidden layer; after the last only with ``activate_last``.
    ``last_bias=False`` drops the bias of the last layer.
    """

    def __init__(self, groups: int, sizes: Sequence[int], activation: str = "relu",
                 activate_last: bool = False, last_bias: bool = True,
                 initializer: str = "glorot_normal") -> None:
        super().__init__()
        n = len(sizes) - 1
        self.layers = nn.ModuleList(
            GroupedLinear(groups, sizes[i], sizes[i + 1], bias=last_bias or i < n - 1,
                          initializer=initializer) for i in range(n))
        self.act = _activation_module(activation)
        self.activate_last = activate_last

    def forward(self, x: Tensor, shared: bool = True) -> Tensor:
        """``[..., n0]`` (``shared``) or ``[..., G, n0]`` -> ``[..., G, nL]``."""
        if self.layers[0].groups == 1:  # one plain MLP on [1, M, n] (M = all leading axes)
            x = x if shared else x.squeeze(-2)
            lead = x.shape[:-1]
            h = x.reshape(1, -1, x.shape[-1])
            for i, layer in enumerate(self.layers):
                h = layer.forward_stacked(h)
                if i < len(self.layers) - 1 or self.activate_last:
                    h = self.act(h)
            return h.view(*lead, 1, h.shape[-1])
        for i, layer in enumerate(self.layers):
            x = layer(x, shared=shared and i == 0)
            if i < len(self.layers) - 1 or self.activate_last:
                x = self.act(x)
        return x

