"""Gaussian normalizers as modules: statistics live in registered buffers so they travel
with every checkpoint (and into :func:`opnet.load_operator`).

kinds: ``"none"``; ``"scalar"`` (one mean/std per channel, resolution-free);
``"pointwise"`` (mean/std per channel and grid point, as the FNO/MgNO Darcy-smooth input;
ties the model to the training grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

KINDS = ("none", "scalar", "pointwise")


def stats_shape(kind: str, channels: int, grid: Sequence[int]) -> tuple[int, ...]:
    """Buffer shape ``[1, C, 1...]`` (scalar/none) or ``[1, C, *grid]`` (pointwise)."""
    if kind not in KINDS:
        raise ValueError(f"normalizer kind '{kind}': expected one of {KINDS}")
    return (1, channels, *(grid if kind == "pointwise" else [1] * len(grid)))


class GaussianNormalizer(nn.Module):
    """``encode(x) = (x - mean) / (std + eps)``, ``decode`` its inverse. x: [B, C, *grid]."""

    def __init__(self, kind: str = "scalar", channels: int = 1, grid: Sequence[int] = (1, 1),
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.kind, self.eps = kind, eps
        shape = stats_shape(kind, channels, grid)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, data: np.ndarray | Tensor) -> GaussianNormalizer:
        """Statistics over samples (and grid points unless pointwise), in float64."""
        if self.kind == "none":
            return self
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        dims = [0] if self.kind == "pointwise" else [0, *range(2, x.ndim)]
        self.mean.copy_(x.mean(dim=dims, keepdim=True).to(self.mean.dtype))
        self.std.copy_(x.std(dim=dims, keepdim=True).to(self.std.dtype))
        return self

    def encode(self, x: Tensor) -> Tensor:
        if self.kind == "none":
            return x
        return (x - self.mean) / (self.std + self.eps)

    def decode(self, x: Tensor) -> Tensor:
        if self.kind == "none":
            return x
        return x * (self.std + self.eps) + self.mean

    def extra_repr(self) -> str:
        return f"kind={self.kind}, shape={tuple(self.mean.shape)}"
