"""MgNO: multigrid neural operator (He, Liu & Xu, ICLR 2024, arXiv 2310.19809).

A layer is ``u <- act(W_Mg u + Conv1x1(u))`` where ``W_Mg`` (:class:`MgConv`) is a *linear*
multigrid cycle of 3x3 convolutions, faithful to ``MgConv_DC`` of the official code
(xlliu2017/MgNO, ``models.py``):

* smoothing step ``u <- u + S(f - A u)``, own ``A`` (C_u -> C_f) and ``S`` (C_f -> C_u) per step;
* the first step on the finest level starts from ``u = 0``, i.e. ``u = S_init(f)`` (no ``A``);
* restriction ``f <- R f`` and ``u <- Pi u`` (3x3, stride 2, pad 1, no bias): the code restricts
  ``f``, not the residual (``restrict_residual=True`` gives ``f <- R(f - A u)`` instead);
* up-sweep ``u_j <- u_j + ConvT_j(u_{j+1})`` (stride 2, pad 1, no bias), then ``post``
  smoothing steps on level ``j``.

Keyword options of :class:`MgNO` also give the official Navier-Stokes (``MgNO_NS``: no 1x1
branch, per-level LayerNorm, circular padding, residual output; ``NS2_OFFICIAL``) and Helmholtz
(``MgNO_helm``: channels growing per level, unpadded restriction, LayerNorm after each layer,
a multigrid last layer; ``HELMHOLTZ_OFFICIAL``, resolution-free ``HELMHOLTZ``) models, with
the official parameter counts (572,661 / 678,093 Darcy, 2,885,194 NS2, 5,351,806 Helmholtz).

Deliberate differences, none touching a parameter count or the published Darcy configs (zero
padding, no post-smoothing on the coarsest level): the coarsest level's ``post`` steps run
right after its ``pre`` steps (the official code builds them but never calls them), and with
``padding="circular"`` the transposed convs wrap around too (the official NS model pads them
with zeros, which breaks periodicity at the edges; ``wrap_prolongation=False`` restores that).

Across grids (``resolution_aware=True``, issue 19; off by default, the paper's model is
unchanged): the multigrid cycles run on ``core_grid`` (the training grid): each layer's
``W_Mg`` sees its input resampled node to node to ``core_grid`` and its output resampled back
(:func:`~opnet.models.layers.resample_nodes`), while the 1x1 branch, the activation and the
head act on the input's own grid. On the training grid nothing is resampled (the same
numbers as the paper's model); on a nested finer grid the coarse nodes get exactly the
training-grid prediction and the nodes between them see the fine input through the
pointwise parts. The paper's 3x3 stencils live in grid units, so without this option a model
trained at 64² is a different operator at 128² (55 % error measured).

Any grid ``H, W >= 2**(levels-1)`` works, odd and non-square included: restriction gives
``ceil(n/2)`` and every prolongation is cropped / output-padded to the finer level's size
(``restrict_padding=0``: ``(n-1)//2``, ``H, W >= 2**levels - 1``). Per-pixel LayerNorms
(``level_norm``, ``norm="layer"``) fix the grid to ``norm_resolution``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opnet.models.layers.resample import nested, on_grid

__all__ = ["DARCY_SMOOTHING", "HELMHOLTZ", "HELMHOLTZ_OFFICIAL", "NS2_OFFICIAL", "MgConv", "MgNO",
           "parse_smoothing"]

#: ``--num_iteration 10 10 10 10 10 20`` of the Darcy configs: 6 levels, [pre, post] per level.
DARCY_SMOOTHING: tuple[tuple[int, int], ...] = ((1, 0),) * 5 + ((2, 0),)
#: Prolongation kernels (fine -> coarse) of ``MgConv_DC_smooth`` for 211 -> ... -> 7.
DARCY_SMOOTH_PROLONGATION: tuple[int, ...] = (3, 4, 3, 3, 4)

#: Official ``MgNO_NS`` for NS2 (``navier.py``: 5 layers, width 32, ``10 10 10 20 20``, C_f = 1,
#: ``--bias``): 2,885,194 parameters, 1,740,800 of them per-pixel LayerNorm affine at 64x64.
#: ``wrap_prolongation=False`` keeps the official zero-padded transposed convs (not periodic);
#: the default True makes the whole model periodic at the same parameter count.
NS2_OFFICIAL: dict[str, Any] = {
    "in_channels": 1, "out_channels": 1, "width": 32, "layers": 5,
    "smoothing": [[1, 0], [1, 0], [1, 0], [2, 0], [2, 0]], "padding": "circular",
    "mg_bias": True, "branch": False, "level_norm": True, "norm_resolution": [64, 64],
    "residual": True, "wrap_prolongation": False}
#: Official ``MgNO_helm`` (``helm.py``: 4 layers, width 20, ``1 1 1 1 2``): 5,351,806 parameters
#: (1,632,160 per-pixel LayerNorm at 101x101, 11,241 in the never-used first A of each cycle).
HELMHOLTZ_OFFICIAL: dict[str, Any] = {
    "in_channels": 1, "out_channels": 1, "width": 20, "layers": 4,
    "smoothing": [1, 1, 1, 1, 2], "padding": "reflect", "mg_bias": True, "branch": False,
    "norm": "layer", "norm_resolution": [101, 101], "head": "multigrid",
    "channel_multipliers": [1, 2, 3, 4, 5], "restrict_padding": 0,
    "prolongation_kernels": [3, 4, 4, 3], "unused_init_A": True}
#: The Helmholtz model for new work: GroupNorm(1, C) (any grid), no dead parameters.
HELMHOLTZ: dict[str, Any] = {**HELMHOLTZ_OFFICIAL, "norm": "group", "norm_resolution": None,
                             "unused_init_A": False}

PADDINGS = ("zeros", "circular", "reflect")
LEVEL_NORMS = (False, True, "layer", "group")  # MgConv level_norm (True = "layer")
POSITIONAL = {"none": 0, "nodes": 2, "periodic": 4}  # MgNO positional -> extra input channels
NORMS = ("none", "group", "layer")
HEADS = ("conv", "multigrid")
_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


def parse_smoothing(spec: Sequence[Sequence[int] | str | int]) -> list[list[int]]:
    """Per-level ``[pre, post]`` smoothing counts.

    Accepts pairs (``[[1, 0], ..., [2, 0]]``), the reference's strings (``["10", ..., "20"]``,
    one digit each for pre and post) or plain ints (pre-smoothing only, as in ``helm.py``).
    """
    if isinstance(spec, str):
        spec = spec.split()
    levels: list[list[int]] = []
    for item in spec:
        if isinstance(item, str):
            digits = item.strip()
            if len(digits) != 2 or not digits.isdigit():
                raise ValueError(f"smoothing: level spec {item!r} must be two digits 'PRE POST'")
            pair = [int(digits[0]), int(digits[1])]
        elif isinstance(item, int):
            pair = [item, 0]
        else:
            pair = [int(v) for v in item]
            if len(pair) != 2:
                raise ValueError(f"smoothing: level spec {item!r} must be [pre, post]")
        if min(pair) < 0:
            raise ValueError(f"smoothing: negative step count in {item!r}")
        levels.append(pair)
    if not levels:
        raise ValueError("smoothing: needs at least one level")
    if levels[0][0] < 1:
        raise ValueError("smoothing: the finest level needs pre >= 1 (the first step is u = S(f))")
    return levels


def _conv3x3(c_in: int, c_out: int, stride: int, bias: bool, padding: str,
             pad: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=pad, bias=bias,
                     padding_mode=padding if pad else "zeros")


def _resolution(value: int | Sequence[int]) -> tuple[int, int]:
    """``norm_resolution`` (an int or ``[H, W]``) -> ``(H, W)``."""
    if isinstance(value, int):
        return value, value
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"norm_resolution={value!r}: need an int or [H, W] of positive ints")
    return pair  # type: ignore[return-value]


def _check_grid(owner: str, shape: torch.Size, resolution: tuple[int, int] | None) -> None:
    if resolution is not None and tuple(shape[-2:]) != resolution:
        raise ValueError(
            f"{owner}: input grid {shape[-2]}x{shape[-1]} differs from norm_resolution="
            f"{resolution[0]}x{resolution[1]}; the per-pixel LayerNorm weights only fit that "
            f"grid (use level_norm=False / norm='group' for a resolution-free model)")


class _Smoother(nn.Module):
    """One smoothing step ``u <- u + S(f - A u)``; u: [B, C_u, h, w], f: [B, C_f, h, w]."""

    def __init__(self, c_u: int, c_f: int, bias: bool, padding: str) -> None:
        super().__init__()
        self.A = _conv3x3(c_u, c_f, 1, bias, padding)
        self.S = _conv3x3(c_f, c_u, 1, bias, padding)

    def forward(self, u: Tensor, f: Tensor) -> Tensor:
        return u + self.S(f - self.A(u))


class MgConv(nn.Module):
    """Linear multigrid operator ``W_Mg``: one V-cycle (a backslash cycle when ``post = 0``).

    Maps f [B, in_channels, H, W] to u [B, channels, H, W]; ``smoothing[l] = [pre, post]``
    for level ``l`` (0 = finest). ``prolongation_kernels[l]`` (3 or 4) is the transposed-conv
    kernel from level ``l + 1`` to ``l``. ``padding`` applies to every A/S conv and to R/Pi
    when ``restrict_padding=1``; the transposed convs wrap around when ``padding="circular"``
    (so the cycle is exactly translation-equivariant on a periodic grid; the official NS code
    pads them with zeros, ``wrap_prolongation=False``) and pad with zeros otherwise.

    Options of the NS and Helmholtz variants (defaults = the Darcy ``MgConv_DC``):

    * ``level_norm``: ``True``/``"layer"``: ``LayerNorm([C_u, h_j, w_j])`` (elementwise affine)
      after each prolongation, before post-smoothing, on every level but the coarsest
      (``MgConv`` of the official NS model); its per-pixel weights tie the cycle to
      ``norm_resolution`` [H, W]. ``"group"``: ``GroupNorm(1, C_u)`` there instead (the same
      statistics over [C, h, w], a per-channel affine): any grid.
    * ``channel_multipliers[l]``: level ``l`` has ``channels * m_l`` u- and
      ``in_channels * m_l`` f-channels (``MgConv_helm``: ``[1, 2, 3, 4, 5]``); ``m_0 = 1``.
    * ``restrict_padding``: 1 (R/Pi padded, ``n -> ceil(n/2)``, transposed convs padding 1) or
      0 (unpadded, ``n -> (n-1)//2``, transposed convs padding 0: 101 -> 50 -> 24 -> 11 -> 5).
    * ``unused_init_A``: also build the finest level's first A, which ``MgConv_helm`` builds
      but never uses (its first step is ``u = S(f)``); frozen, only there to reproduce the
      official parameter count.
    """

    def __init__(self, in_channels: int, channels: int,
                 smoothing: Sequence[Sequence[int] | str | int] = DARCY_SMOOTHING,
                 padding: str = "zeros", bias: bool = False,
                 prolongation_kernels: Sequence[int] | None = None,
                 restrict_residual: bool = False, level_norm: bool | str = False,
                 norm_resolution: int | Sequence[int] | None = None,
                 channel_multipliers: Sequence[int] | None = None,
                 restrict_padding: int = 1, unused_init_A: bool = False,
                 wrap_prolongation: bool = True) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding={padding!r} is not supported; allowed values: {PADDINGS}")
        if restrict_padding not in (0, 1):
            raise ValueError(f"restrict_padding={restrict_padding!r}: must be 0 or 1")
        levels = parse_smoothing(smoothing)
        n = len(levels)
        kernels = [4] * (n - 1) if prolongation_kernels is None else list(prolongation_kernels)
        if len(kernels) != n - 1 or any(k not in (3, 4) for k in kernels):
            raise ValueError(f"prolongation_kernels={prolongation_kernels!r}: need {n - 1} "
                             f"values (one per coarse level), each 3 or 4")
        mult = [1] * n if channel_multipliers is None else [int(m) for m in channel_multipliers]
        if len(mult) != n or mult[0] != 1 or min(mult) < 1:
            raise ValueError(f"channel_multipliers={channel_multipliers!r}: need {n} positive "
                             f"ints (one per level), the first one 1")
        self.smoothing = levels
        self.levels = n
        self.padding = padding
        self.prolongation_kernels = kernels
        self.restrict_residual = restrict_residual
        self.restrict_padding = restrict_padding
        self.wrap = padding == "circular" and wrap_prolongation
        self.norm_resolution = None if norm_resolution is None else _resolution(norm_resolution)
        if level_norm not in LEVEL_NORMS:
            raise ValueError(f"level_norm={level_norm!r}: expected one of {LEVEL_NORMS}")
        level_norm = {True: "layer", False: None}.get(level_norm, level_norm)
        self.grid_bound = level_norm == "layer"
        if self.grid_bound and self.norm_resolution is None:
            raise ValueError("level_norm=True needs norm_resolution=[H, W]: the per-level "
                             "LayerNorm has per-pixel weights for one grid")
        c_u = [channels * m for m in mult]
        c_f = [in_channels * m for m in mult]
        p = restrict_padding

        self.init = _conv3x3(c_f[0], c_u[0], 1, bias, padding)  # u = S_init(f), finest level
        self.pre = nn.ModuleList(
            nn.ModuleList(_Smoother(c_u[lvl], c_f[lvl], bias, padding)
                          for _ in range(pre - (lvl == 0)))
            for lvl, (pre, _) in enumerate(levels))
        self.post = nn.ModuleList(
            nn.ModuleList(_Smoother(c_u[lvl], c_f[lvl], bias, padding) for _ in range(post))
            for lvl, (_, post) in enumerate(levels))
        self.restrict_f = nn.ModuleList(_conv3x3(c_f[lvl], c_f[lvl + 1], 2, False, padding, p)
                                        for lvl in range(n - 1))
        self.restrict_u = nn.ModuleList(_conv3x3(c_u[lvl], c_u[lvl + 1], 2, False, padding, p)
                                        for lvl in range(n - 1))
        # the official use_res variant: one extra A per restriction, f <- R(f - A u)
        self.restrict_A = nn.ModuleList(
            _conv3x3(c_u[lvl], c_f[lvl], 1, bias, padding)
            for lvl in range(n - 1)) if restrict_residual else None
        self.prolong = nn.ModuleList(
            nn.ConvTranspose2d(c_u[j + 1], c_u[j], k, stride=2, padding=p, bias=False)
            for j, k in enumerate(kernels))
        self.level_norms: nn.ModuleList | None = None
        if level_norm == "layer":
            assert self.norm_resolution is not None
            sizes = self.level_sizes(*self.norm_resolution)
            self.level_norms = nn.ModuleList(
                nn.LayerNorm([c_u[j], *sizes[j]]) for j in range(n - 1))
        elif level_norm == "group":
            self.level_norms = nn.ModuleList(nn.GroupNorm(1, c_u[j]) for j in range(n - 1))
        if unused_init_A:
            self.init_A = _conv3x3(c_u[0], c_f[0], 1, bias, padding).requires_grad_(False)

    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Grid size of every level, finest first; ValueError if the grid is too small."""
        p = self.restrict_padding
        need = 2 ** (self.levels - 1) if p == 1 else 2 ** self.levels - 1
        if height < need or width < need:
            rule = "2**(levels-1)" if p == 1 else "2**levels - 1 (unpadded restriction)"
            raise ValueError(f"grid {height}x{width} is too small for {self.levels} multigrid "
                             f"levels: need H, W >= {rule} = {need}")
        sizes = [(height, width)]
        for _ in range(self.levels - 1):
            h, w = sizes[-1]
            sizes.append(((h + 2 * p - 3) // 2 + 1, (w + 2 * p - 3) // 2 + 1))
        if self.padding == "reflect" and min(sizes[-1]) < 2:
            raise ValueError(f"grid {height}x{width} with padding='reflect' gives a coarsest "
                             f"level of {sizes[-1][0]}x{sizes[-1][1]}; reflect padding needs "
                             f">= 2 points per side on every level")
        return sizes

    def _prolong(self, j: int, u: Tensor, size: tuple[int, int]) -> Tensor:
        """ConvT_j: [B, C_u(j+1), h', w'] (level j + 1) -> [B, C_u(j), h, w] (level j).

        The natural output ``2(h'-1) + k - 2p`` is grown by ``output_padding`` (kernel 3 on
        an even level) or cropped at the end (kernel 4 on an odd level) to ``size``. With
        periodic padding the coarse grid is wrapped by one cell first and the extra output
        cropped (padding p + 2), so contributions that leave one edge re-enter at the other;
        otherwise they are dropped (zero padding, as in the official code).
        """
        weight = self.prolong[j].weight
        k, crop = weight.shape[-1], self.restrict_padding
        extra = [n - (2 * (m - 1) + k - 2 * crop) for n, m in zip(size, u.shape[-2:],
                                                                   strict=True)]
        if self.wrap:
            u = F.pad(u, (1, 1, 1, 1), mode="circular")
            crop += 2
        out = F.conv_transpose2d(u, weight, stride=2, padding=crop,
                                 output_padding=(max(extra[0], 0), max(extra[1], 0)))
        if out.shape[-2:] != size:  # a no-op slice would still cost a backward copy
            out = out[..., : size[0], : size[1]]
        return out

    def forward(self, f: Tensor) -> Tensor:
        """f: [B, in_channels, H, W] -> u: [B, channels, H, W]."""
        sizes = self.level_sizes(f.shape[-2], f.shape[-1])
        if self.grid_bound:
            _check_grid("MgConv(level_norm=True)", f.shape, self.norm_resolution)
        u = self.init(f)
        fs: list[Tensor] = []
        us: list[Tensor] = []
        for lvl in range(self.levels):
            if lvl > 0:
                if self.restrict_A is not None:
                    f = self.restrict_f[lvl - 1](f - self.restrict_A[lvl - 1](u))
                else:
                    f = self.restrict_f[lvl - 1](f)
                u = self.restrict_u[lvl - 1](u)
            for step in self.pre[lvl]:
                u = step(u, f)
            fs.append(f)
            us.append(u)
        for step in self.post[-1]:  # coarsest level: post-smoothing follows pre directly
            u = step(u, fs[-1])
        for j in range(self.levels - 2, -1, -1):
            u = us[j] + self._prolong(j, u, sizes[j])
            if self.level_norms is not None:
                u = self.level_norms[j](u)
            for step in self.post[j]:
                u = step(u, fs[j])
        return u


class MgNO(nn.Module):
    """Multigrid neural operator: ``MgNO_DC`` / ``MgNO_DC_smooth``, ``MgNO_NS``, ``MgNO_helm``.

    Maps a field ``x`` [B, in_channels, H, W] to ``y`` [B, out_channels, H, W] with
    ``u <- act(norm(MgConv_i(u) + Conv1x1_i(u)))`` for ``layers`` layers (no lifting: layer 1
    takes ``x`` as its right-hand side f) and a head. Defaults are the Darcy model (branch on,
    no norm, bias-free 1x1 head); ``padding`` ("zeros" = Dirichlet, "circular" = periodic,
    "reflect") sets the boundary condition of every A/S(/R/Pi) conv.

    Variant options (see ``NS2_OFFICIAL``, ``HELMHOLTZ_OFFICIAL``, ``HELMHOLTZ``):

    * ``branch``: the 1x1 conv branch ``Conv1x1_i`` (Darcy; NS and Helmholtz have none).
    * ``norm``: per-layer norm of the MgConv output before ``act``: ``"none"``, ``"group"``
      (``GroupNorm(1, width)``: LayerNorm statistics over [C, H, W], per-channel affine, any
      grid) or ``"layer"`` (``LayerNorm([width, H, W])``, per-pixel affine at
      ``norm_resolution``, as in ``MgNO_helm``).
    * ``level_norm`` / ``norm_resolution``: see :class:`MgConv` (``MgNO_NS``). Models with
      per-pixel weights raise ValueError on any grid other than ``norm_resolution``.
    * ``residual``: ``y = N(x) + x[:, -out_channels:]`` (``MgNO_NS``: u_{t+1} = u_t + N(u_t));
      the skip uses the last ``out_channels`` input channels (the latest frames of a history),
      which is exactly ``N(x) + x`` when ``in_channels == out_channels`` as in NS2.
    * ``head``: ``"conv"`` (bias-free 1x1) or ``"multigrid"`` (an MgConv width -> out_channels
      with the same options, the last layer of ``MgNO_helm``).
    * ``channel_multipliers``, ``restrict_padding``, ``unused_init_A``, ``wrap_prolongation``:
      see :class:`MgConv`.
    * ``resolution_aware`` / ``core_grid`` ``[H, W]``: the multigrid cycles on ``core_grid``
      whatever the input's grid (see the module docstring); ``train.py`` fills ``core_grid``
      with the training data's grid.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 24,
                 layers: int = 4,
                 smoothing: Sequence[Sequence[int] | str | int] = DARCY_SMOOTHING,
                 padding: str = "zeros", activation: str = "gelu", mg_bias: bool = False,
                 prolongation_kernels: Sequence[int] | None = None,
                 restrict_residual: bool = False, branch: bool = True, norm: str = "none",
                 level_norm: bool | str = False,
                 norm_resolution: int | Sequence[int] | None = None,
                 residual: bool = False, head: str = "conv",
                 channel_multipliers: Sequence[int] | None = None, restrict_padding: int = 1,
                 unused_init_A: bool = False, wrap_prolongation: bool = True,
                 resolution_aware: bool = False,
                 core_grid: int | Sequence[int] | None = None,
                 positional: str = "none") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding={padding!r} is not supported; allowed values: {PADDINGS}")
        if positional not in POSITIONAL:
            raise ValueError(f"positional={positional!r}: expected one of {tuple(POSITIONAL)}")
        self.positional = positional
        if resolution_aware and core_grid is None:
            raise ValueError("resolution_aware=True needs core_grid=[H, W], the grid the "
                             "multigrid cycles run on (train.py takes the training data's)")
        self.core_grid = _resolution(core_grid) if resolution_aware else None
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported; allowed values: "
                             f"{tuple(_ACTIVATIONS)}")
        if layers < 1 or width < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"layers={layers}, width={width}, in_channels={in_channels} and "
                             f"out_channels={out_channels} must all be >= 1")
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r} is not supported; allowed values: {NORMS}")
        if head not in HEADS:
            raise ValueError(f"head={head!r} is not supported; allowed values: {HEADS}")
        if residual and in_channels < out_channels:
            raise ValueError(f"residual=True adds the last out_channels={out_channels} input "
                             f"channels to the output, but in_channels={in_channels}")
        self.norm_resolution = None if norm_resolution is None else _resolution(norm_resolution)
        if norm == "layer" and self.norm_resolution is None:
            raise ValueError("norm='layer' needs norm_resolution=[H, W]: LayerNorm([C, H, W]) "
                             "has per-pixel weights for one grid (norm='group' needs none)")
        self.smoothing = parse_smoothing(smoothing)
        self.levels = len(self.smoothing)
        self.residual = residual
        self._fixed_grid = norm == "layer" or level_norm in (True, "layer")
        mg_kwargs = {"smoothing": self.smoothing, "padding": padding, "bias": mg_bias,
                     "prolongation_kernels": prolongation_kernels,
                     "restrict_residual": restrict_residual, "level_norm": level_norm,
                     "norm_resolution": norm_resolution,
                     "channel_multipliers": channel_multipliers,
                     "restrict_padding": restrict_padding, "unused_init_A": unused_init_A,
                     "wrap_prolongation": wrap_prolongation}
        widths = [in_channels + POSITIONAL[positional]] + [width] * layers
        self.mg = nn.ModuleList(MgConv(c_f, width, **mg_kwargs) for c_f in widths[:-1])
        self.local = nn.ModuleList(
            nn.Conv2d(c_f, width, 1) for c_f in widths[:-1]) if branch else None
        self.norms: nn.ModuleList | None = None
        if norm == "group":
            self.norms = nn.ModuleList(nn.GroupNorm(1, width) for _ in range(layers))
        elif norm == "layer":
            assert self.norm_resolution is not None
            self.norms = nn.ModuleList(
                nn.LayerNorm([width, *self.norm_resolution]) for _ in range(layers))
        self.head: nn.Module
        if head == "conv":
            self.head = nn.Conv2d(width, out_channels, 1, bias=False)
        else:
            self.head = MgConv(width, out_channels, **mg_kwargs)
        self.act = _ACTIVATIONS[activation]()
        # Channels-last (NHWC) conv weights make every conv output NHWC, which oneDNN runs
        # faster on CPU for these narrow 3x3 convs; values are unchanged. `.to` (unlike
        # `.contiguous`) also restrides the ambiguous 1-channel weights, so nothing mixes
        # layouts. The layout survives .to(device), load_state_dict and optimiser states.
        self.to(memory_format=torch.channels_last)

    def coordinates(self, x: Tensor) -> Tensor:
        """The ``positional`` input channels for ``x`` [B, C, H, W]: ``"nodes"``: (x, y) at
        ``i/(n-1)`` (a grid that includes both ends); ``"periodic"``: (sin 2πx, cos 2πx,
        sin 2πy, cos 2πy) at ``i/n`` (the torus [0, 1)², continuous across the wrap).
        [B, 2 or 4, H, W], x's dtype and device."""
        h, w = x.shape[-2:]
        if self.positional == "nodes":
            axes = [torch.linspace(0, 1, n, dtype=x.dtype, device=x.device) for n in (h, w)]
            feats = [axes[0][:, None].expand(h, w), axes[1][None, :].expand(h, w)]
        else:
            ys, xs = (2 * math.pi * torch.arange(n, dtype=x.dtype, device=x.device) / n
                      for n in (h, w))
            feats = [f(ys)[:, None].expand(h, w) for f in (torch.sin, torch.cos)]
            feats += [f(xs)[None, :].expand(h, w) for f in (torch.sin, torch.cos)]
        return torch.stack(feats).expand(x.shape[0], -1, h, w)

    def _on_core(self, cycle: nn.Module, u: Tensor) -> Tensor:
        """``cycle(u)``, on ``core_grid`` when the model is resolution-aware: [B, C, H, W] ->
        [B, C', H, W]."""
        if self.core_grid is None:
            return cycle(u)
        return on_grid(cycle, u, self.core_grid)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in_channels, H, W] -> [B, out_channels, H, W]."""
        if x.dim() != 4:
            raise ValueError(f"MgNO expects x of shape [B, C, H, W], got {tuple(x.shape)}")
        self.mg[0].level_sizes(*(self.core_grid or x.shape[-2:]))
        if self._fixed_grid:
            _check_grid("MgNO", x.shape, self.norm_resolution)
        if self.core_grid is not None and not nested(x.shape[-2:], self.core_grid):
            # the core's nodes are not nodes of x's grid: pointwise parts on x's grid would mix
            # features shifted by a fraction of a cell (64² from a 65² core: 17.6 % error
            # instead of 1.5 %), so the whole network runs on the core grid
            return on_grid(self._forward, x, self.core_grid).contiguous()
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        u = x if self.positional == "none" else torch.cat([x, self.coordinates(x)], dim=1)
        u = u.contiguous(memory_format=torch.channels_last)
        for i, mg in enumerate(self.mg):
            v = self._on_core(mg, u)
            if self.local is not None:
                v = v + self.local[i](u)
            if self.norms is not None:
                v = self.norms[i](v)
            u = self.act(v)
        out = self._on_core(self.head, u) if isinstance(self.head, MgConv) else self.head(u)
        if self.residual:
            out = out + x[:, x.shape[1] - out.shape[1]:]
        return out.contiguous()
