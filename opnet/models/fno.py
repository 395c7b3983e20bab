"""Fourier neural operator in 1, 2 or 3 dimensions (Li et al., ICLR 2021): the baseline MgNO
is compared with.

The architecture of the reference ``FNO1d/2d/3d`` (``fourier_{1,2,3}d.py``, also MgNO's
``baselines/fno2d.py``): the input field and the grid coordinates are lifted pointwise to
``width`` channels; ``layers`` Fourier layers ``u <- act(K u + W u)`` with ``K`` a truncated
spectral convolution (:class:`~opnet.models.layers.SpectralConv`, ``modes`` lowest
frequencies per axis) and ``W`` a 1x1 conv (no activation after the last); a pointwise MLP
``width -> projection -> out``. Non-periodic data is zero-padded on the right of every axis
before the Fourier layers and cropped after them: ``domain_padding`` an int is that many grid
points (the reference), a float in (0, 1) a fraction of the domain (neuraloperator's
convention). Only the fraction keeps the operator the same on every grid: the FFT sees a
periodic domain of length ``(1 + fraction)`` whatever the resolution, so its modes are the
same physical frequencies; a fixed number of points makes that length ``(n + pad)/(n − 1)``
(73/64 at 65 nodes, 265/256 at 257), which changes the learned operator with the grid.

Parameter counts (as the references): :class:`FNO2d` with modes 12, width 32, 4 layers and
one input channel 2,368,001; :class:`FNO1d` with modes 16, width 64 (Burgers) 549,569.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opnet.models.layers.mlp import activation as make_activation
from opnet.models.layers.spectral import SpectralConv, SpectralConv2d

__all__ = ["FNO", "FNO1d", "FNO2d", "FNO3d", "SpectralConv", "SpectralConv2d"]

_CONVS: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class FNO(nn.Module):
    """Maps ``x`` [B, in_channels, *S] to ``y`` [B, out_channels, *S], ``S`` a grid of
    ``dim`` axes with at least 2·modes points on each axis but the last and 2·(modes − 1) on
    the last (after padding).

    ``modes``: one int for every axis, or one per axis (then ``dim`` defaults to its length);
    ``dim`` defaults to 2 for an int. ``positional`` appends the coordinates on [0, 1]^dim
    (nodes, boundary included) as ``dim`` extra input channels. ``domain_padding``: grid points
    (int >= 0) or a fraction of the domain (float in (0, 1); :meth:`padding` points on an axis
    of ``n`` nodes).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 modes: int | Sequence[int] = 12, width: int = 32, layers: int = 4,
                 domain_padding: int | float = 9, positional: bool = True,
                 projection: int = 128, activation: str = "gelu",
                 dim: int | None = None) -> None:
        super().__init__()
        if dim is None:
            dim = 2 if isinstance(modes, int) else len(modes)
        if dim not in _CONVS:
            raise ValueError(f"dim={dim}: expected 1, 2 or 3 spatial dims")
        modes = [modes] * dim if isinstance(modes, int) else [int(m) for m in modes]
        if len(modes) != dim:
            raise ValueError(f"modes={modes}: expected one int or {dim} of them (dim={dim})")
        points = isinstance(domain_padding, int) and not isinstance(domain_padding, bool)
        if not (points and domain_padding >= 0) and not (
                isinstance(domain_padding, float) and 0 < domain_padding < 1):
            raise ValueError(f"domain_padding={domain_padding!r}: expected an int >= 0 (grid "
                             "points) or a float in (0, 1) (a fraction of the domain)")
        self.act = make_activation(activation)
        self.dim, self.domain_padding, self.positional = dim, domain_padding, positional
        conv = _CONVS[dim]
        self.lift = conv(in_channels + (dim if positional else 0), width, 1)
        self.spectral = nn.ModuleList(SpectralConv(width, width, modes, dim=dim)
                                      for _ in range(layers))
        self.pointwise = nn.ModuleList(conv(width, width, 1) for _ in range(layers))
        self.project = nn.Sequential(conv(width, projection, 1), make_activation(activation),
                                     conv(projection, out_channels, 1))

    def padding(self, n: int) -> int:
        """Zero points appended to an axis of ``n`` nodes: ``domain_padding`` points, or for a
        fraction ``p`` the ``round((n − 1)(1 + p)) − n`` that make the padded FFT period
        ``(1 + p)`` in domain units (exactly, when ``(n − 1) p`` is an integer: 7 at 65 nodes,
        15 at 129, 31 at 257 for p = 1/8)."""
        if isinstance(self.domain_padding, int):
            return self.domain_padding
        return max(round((n - 1) * (1 + self.domain_padding)) - n, 0)

    def grid(self, x: Tensor) -> Tensor:
        """Coordinates ``[B, dim, *S]`` on [0, 1]^dim (nodes, boundary included)."""
        sizes = x.shape[2:]
        axes = [torch.linspace(0, 1, n, device=x.device, dtype=x.dtype) for n in sizes]
        return torch.stack(torch.meshgrid(*axes, indexing="ij")).expand(x.shape[0], -1, *sizes)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, in_channels, *S]`` -> ``y [B, out_channels, *S]`` (with ``positional``, the
        coordinates are appended as ``dim`` extra input channels)."""
        if x.dim() != self.dim + 2:
            raise ValueError(f"{type(self).__name__}: x has shape {tuple(x.shape)}, expected "
                             f"[B, C, {', '.join('S' + str(j) for j in range(self.dim))}] "
                             f"({self.dim} spatial dims)")
        crop = (..., *(slice(0, n) for n in x.shape[2:]))
        if self.positional:
            x = torch.cat([x, self.grid(x)], dim=1)
        u = self.lift(x)
        pads = [self.padding(n) for n in reversed(x.shape[2:])]  # F.pad: last axis first
        if any(pads):
            u = F.pad(u, [p for pad in pads for p in (0, pad)])
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise,
                                                      strict=True)):
            u = spectral(u).to(u.dtype) + pointwise(u)
            if i < last:
                u = self.act(u)
        return self.project(u[crop])


class FNO1d(FNO):
    """1-D FNO ``[B, in_channels, N] -> [B, out_channels, N]``; defaults: the reference
    Burgers set-up (``fourier_1d.py``: 16 modes, width 64, periodic so no padding)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: int = 16,
                 width: int = 64, layers: int = 4, domain_padding: int | float = 0,
                 positional: bool = True, projection: int = 128,
                 activation: str = "gelu") -> None:
        super().__init__(in_channels, out_channels, modes, width, layers, domain_padding,
                         positional, projection, activation, dim=1)


class FNO2d(FNO):
    """2-D FNO ``[B, in_channels, H, W] -> [B, out_channels, H, W]`` (the reference
    ``fourier_2d.py``); the class name saved checkpoints and ``conf/model/fno.yaml`` use."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 modes: int | Sequence[int] = 12, width: int = 32, layers: int = 4,
                 domain_padding: int | float = 9, positional: bool = True,
                 projection: int = 128, activation: str = "gelu") -> None:
        super().__init__(in_channels, out_channels, modes, width, layers, domain_padding,
                         positional, projection, activation, dim=2)


class FNO3d(FNO):
    """3-D FNO ``[B, in_channels, X, Y, T] -> [B, out_channels, X, Y, T]``; defaults: the
    reference ``fourier_3d.py`` (8 modes, width 20, 6 points of padding)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 modes: int | Sequence[int] = 8, width: int = 20, layers: int = 4,
                 domain_padding: int | float = 6, positional: bool = True, projection: int = 128,
                 activation: str = "gelu") -> None:
        super().__init__(in_channels, out_channels, modes, width, layers, domain_padding,
                         positional, projection, activation, dim=3)
