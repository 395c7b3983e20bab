"""A small 1-D convolutional operator: a model plugin (``model._target_: mypkg.TinyNet``)."""

from __future__ import annotations

from torch import Tensor, nn


class TinyNet(nn.Module):
    """Maps ``x`` [B, in_channels, n] to ``y`` [B, out_channels, n] on a periodic grid.

    A 1x1 lift to ``width`` channels, ``layers`` residual blocks (circular convolution of
    ``kernel_size`` nodes + GELU), a 1x1 projection. Translation-equivariant and any n works,
    as the heat equation's solution operator (a circular convolution) needs. opnet fills
    ``in_channels``/``out_channels`` from the data.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16,
                 kernel_size: int = 9, layers: int = 2) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size={kernel_size}: expected an odd number of nodes")
        self.lift = nn.Conv1d(in_channels, width, 1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2,
                      padding_mode="circular") for _ in range(layers))
        self.act = nn.GELU()
        self.project = nn.Conv1d(width, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.lift(x)
        for conv in self.blocks:
            h = h + self.act(conv(h))
        return self.project(h)
