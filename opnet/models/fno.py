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
(73/64 at 65 nodes, 265/256 at 257), which changes the learned operator with the grid
(measured, Darcy 65² -> 257²: 4.4 % -> 35 % with 8 points, 3.2 % -> 4.5 % with 1/8).

Across grids (``resolution_aware=True``, issue 19; off by default): the Fourier layers'
forward transforms sample their input on ``core_grid`` (the training grid; node to node, so
injection on nested grids) and the inverse transforms evaluate the kept modes on the input's
own grid, while lifting, 1x1 convs, activations and projection act on the input's grid. What
remains without it is the aliasing of the training grid: an FNO learns the low Fourier
coefficients of the discontinuous coefficient and of its GELU outputs as 65² samples alias
them, and finer samples of the same fields have different ones (trained 65²: 1.7 % there,
2.9 % at 129², 3.9 % at 257²; resolution-aware: 1.6 % at all three). On the training grid
the option changes nothing; on nested finer grids the coarse nodes get exactly the training
grid's prediction and the rest the band-limited Fourier part plus the pointwise parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opnet.models.layers.mlp import activation as make_activation
from opnet.models.layers.resample import nested, on_grid, resample_nodes
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
    of ``n`` nodes). ``resolution_aware`` / ``core_grid``: the Fourier transforms on
    ``core_grid`` (node grids, boundary included; needs a fractional ``domain_padding``, see
    the module docstring); ``train.py`` fills ``core_grid`` with the training grid.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 modes: int | Sequence[int] = 12, width: int = 32, layers: int = 4,
                 domain_padding: int | float = 9, positional: bool = True,
                 projection: int = 128, activation: str = "gelu",
                 dim: int | None = None, resolution_aware: bool = False,
                 core_grid: int | Sequence[int] | None = None) -> None:
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
        if resolution_aware and (core_grid is None or points and domain_padding):
            raise ValueError("resolution_aware=True needs core_grid (the training grid; "
                             "train.py fills it) and a fractional domain_padding, e.g. 0.125 "
                             f"(got core_grid={core_grid!r}, domain_padding={domain_padding!r})")
        self.core_grid: tuple[int, ...] | None = None
        if resolution_aware:
            assert core_grid is not None
            core = [core_grid] * dim if isinstance(core_grid, int) else list(core_grid)
            if len(core) != dim or min(int(n) for n in core) < 2:
                raise ValueError(f"core_grid={core_grid!r}: expected {dim} ints >= 2")
            self.core_grid = tuple(int(n) for n in core)
        if not isinstance(positional, bool):
            raise ValueError(f"positional={positional!r}: expected true or false (the FNO "
                             "appends the (x, y, ...) coordinates or not)")
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
        fraction ``p`` those that make the padded length ``round((n − 1)(1 + p))``, rounded up
        to a fast FFT size (factors 2, 3, 5, 7): a period of ``(1 + p)`` domain units, exact
        on nested grids 2^k + 1 (p = 1/8: 7 points at 65 nodes, 15 at 129, 31 at 257; 8 at
        64, as many as the reference, within 1.4 % of 9/8 at 128)."""
        if isinstance(self.domain_padding, int):
            return self.domain_padding
        n = int(n)  # a traced size (torch.jit.trace, ONNX export) is a tensor: the grid is fixed
        return max(_fast_size(round((n - 1) * (1 + self.domain_padding))) - n, 0)

    def _fourier(self, spectral: SpectralConv, u: Tensor, nodes: Sequence[int]) -> Tensor:
        """``spectral(u)`` for the padded ``u [B, C, *N]`` of a grid of ``nodes``; when
        resolution-aware on another grid: transform ``u`` sampled on the padded core grid (the
        padded domain is periodic: linear between its points, wrapping around) and evaluate
        the kept modes on ``N``."""
        if self.core_grid is None or tuple(nodes) == self.core_grid:
            return spectral(u)
        core = [n + self.padding(n) for n in self.core_grid]
        wrapped = F.pad(u, (0, 1) * self.dim, mode="circular")  # x = period: the first point
        sampled = resample_nodes(wrapped, [n + 1 for n in core])[(..., *(slice(0, n)
                                                                           for n in core))]
        return spectral(sampled, sizes=u.shape[2:])

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
        if self.core_grid is not None and not nested(x.shape[2:], self.core_grid):
            # no common nodes with the core grid (64² from 65²: 7.4 % error instead of 2.0 %):
            # the whole network on the core grid (opnet.models.layers.resample.nested)
            return on_grid(self._forward, x, self.core_grid)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
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
            u = self._fourier(spectral, u, x.shape[2:]).to(u.dtype) + pointwise(u)
            if i < last:
                u = self.act(u)
        return self.project(u[crop])


def _fast_size(n: int) -> int:
    """The smallest integer >= n whose prime factors are all 2, 3, 5 or 7 (fast FFTs)."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


class FNO1d(FNO):
    """1-D FNO ``[B, in_channels, N] -> [B, out_channels, N]``; defaults: the reference
    Burgers set-up (``fourier_1d.py``: 16 modes, width 64, periodic so no padding)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: int = 16,
                 width: int = 64, layers: int = 4, domain_padding: int | float = 0,
                 positional: bool = True, projection: int = 128,
                 activation: str = "gelu", resolution_aware: bool = False,
                 core_grid: int | Sequence[int] | None = None) -> None:
        super().__init__(in_channels, out_channels, modes, width, layers, domain_padding,
                         positional, projection, activation, 1, resolution_aware, core_grid)


class FNO2d(FNO):
    """2-D FNO ``[B, in_channels, H, W] -> [B, out_channels, H, W]`` (the reference
    ``fourier_2d.py``); the class name saved checkpoints and ``conf/model/fno.yaml`` use."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 modes: int | Sequence[int] = 12, width: int = 32, layers: int = 4,
                 domain_padding: int | float = 9, positional: bool = True,
                 projection: int = 128, activation: str = "gelu",
                 resolution_aware: bool = False,
                 core_grid: int | Sequence[int] | None = None) -> None:
        super().__init__(in_channels, out_channels, modes, width, layers, domain_padding,
                         positional, projection, activation, 2, resolution_aware, core_grid)


class FNO3d(FNO):
    """3-D FNO ``[B, in_channels, X, Y, T] -> [B, out_channels, X, Y, T]``; defaults: the
    reference ``fourier_3d.py`` (8 modes, width 20, 6 points of padding)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 modes: int | Sequence[int] = 8, width: int = 20, layers: int = 4,
                 domain_padding: int | float = 6, positional: bool = True, projection: int = 128,
                 activation: str = "gelu", resolution_aware: bool = False,
                 core_grid: int | Sequence[int] | None = None) -> None:
        super().__init__(in_channels, out_channels, modes, width, layers, domain_padding,
                         positional, projection, activation, 3, resolution_aware, core_grid)
