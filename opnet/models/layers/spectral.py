"""Truncated spectral convolution in 1, 2 or 3 dimensions (the Fourier layer of FNO, Li et al.,
ICLR 2021; ``SpectralConv1d/2d/3d`` of the reference ``fourier_{1,2,3}d.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["SpectralConv", "SpectralConv2d"]


class SpectralConv(nn.Module):
    """``[B, C_in, *S] -> [B, C_out, *S]`` over the last ``dim`` axes ``S``: multiply the
    lowest Fourier coefficients (``modes[j]`` per axis; both signs on every axis but the last,
    non-negative frequencies on the last, as ``rfftn`` stores them) by learned complex weights
    and drop the rest.

    Weights are real tensors ``[2**(dim-1), C_in, C_out, *modes, 2]`` (real, imaginary): one
    block per corner of the kept spectrum. Corner ``c`` takes the negative frequencies of axis
    ``j < dim-1`` when bit ``j`` of ``c`` is set (the reference order: ``weights1..4`` of
    ``SpectralConv3d`` are corners 0..3). The spectral maths runs in float32, the output is
    float32 (bf16/fp16 FFTs are unsafe); the caller casts back.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int | Sequence[int],
                 dim: int | None = None) -> None:
        super().__init__()
        modes = [modes] * (dim or 1) if isinstance(modes, int) else [int(m) for m in modes]
        if (dim is not None and len(modes) != dim) or not 1 <= len(modes) <= 3 or min(modes) < 1:
            raise ValueError(f"modes={modes}, dim={dim}: need 1 to 3 spatial dims and one "
                             f"positive number of modes per dim")
        self.dim, self.modes = len(modes), tuple(modes)
        scale = 1.0 / (in_channels * out_channels)
        shape = (2 ** (self.dim - 1), in_channels, out_channels, *self.modes, 2)
        self.weight = nn.Parameter(scale * torch.rand(shape))

    def corners(self, sizes: Sequence[int]) -> list[tuple[slice, ...]]:
        """The index of each weight block in the ``rfftn`` spectrum of a grid ``sizes``."""
        *first, last = self.modes
        return [tuple(slice(n - m, n) if c >> j & 1 else slice(0, m)
                      for j, (m, n) in enumerate(zip(first, sizes[:-1], strict=True)))
                + (slice(0, last),) for c in range(2 ** len(first))]

    def forward(self, x: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
        """``x [B, C_in, *S]`` -> ``[B, C_out, *S]`` (float32); ``sizes``: evaluate the kept
        modes on another grid of the same periodic domain instead, ``[B, C_out, *sizes]``
        (the spectral interpolation of the output; its values at the shared points are the
        ``S``-grid output's)."""
        grid = tuple(x.shape[-self.dim:])
        out_sizes = grid if sizes is None else tuple(int(n) for n in sizes)
        for shape in {grid, out_sizes}:
            self._check_grid(shape)
        axes = tuple(range(-self.dim, 0))
        x_ft = torch.fft.rfftn(x.float(), dim=axes)
        weight = torch.view_as_complex(self.weight.float())
        out = x_ft.new_zeros(x.shape[0], weight.shape[2], *out_sizes[:-1],
                             out_sizes[-1] // 2 + 1)
        for w, source, target in zip(weight, self.corners(grid), self.corners(out_sizes),
                                     strict=True):
            out[(slice(None), slice(None), *target)] = torch.einsum(
                "bi...,io...->bo...", x_ft[(slice(None), slice(None), *source)], w)
        y = torch.fft.irfftn(out, s=out_sizes, dim=axes)
        return y if out_sizes == grid else y * (math.prod(out_sizes) / math.prod(grid))

    def _check_grid(self, sizes: tuple[int, ...]) -> None:
        need = [2 * m for m in self.modes[:-1]] + [2 * (self.modes[-1] - 1)]
        if (any(2 * m > n for m, n in zip(self.modes[:-1], sizes[:-1], strict=True))
                or self.modes[-1] > sizes[-1] // 2 + 1):
            raise ValueError(f"grid {'x'.join(map(str, sizes))} is too small for "
                             f"{'x'.join(map(str, self.modes))} Fourier modes (need a grid of "
                             f"at least {'x'.join(map(str, need))})")


class SpectralConv2d(SpectralConv):
    """The 2-D :class:`SpectralConv`: ``[B, C_in, H, W] -> [B, C_out, H, W]``, weights
    ``[2, C_in, C_out, modes[0], modes[1], 2]`` (the low and the high H half)."""

    def __init__(self, in_channels: int, out_channels: int,
                 modes: int | Sequence[int]) -> None:
        super().__init__(in_channels, out_channels, modes, dim=2)
