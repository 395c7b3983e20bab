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

Two deliberate differences, neither touching the published Darcy configs (zero padding, no
post-smoothing on the coarsest level): the coarsest level's ``post`` steps run right after its
``pre`` steps (the official code builds them but never calls them), and with
``padding="circular"`` the transposed convs wrap around too (the official NS model pads them
with zeros, which breaks periodicity at the edges).

Any grid ``H, W >= 2**(levels-1)`` works, odd and non-square included: restriction gives
``ceil(n/2)`` and every prolongation is cropped / output-padded to the finer level's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DARCY_SMOOTHING", "MgConv", "MgNO", "parse_smoothing"]

#: ``--num_iteration 10 10 10 10 10 20`` of the Darcy configs: 6 levels, [pre, post] per level.
DARCY_SMOOTHING: tuple[tuple[int, int], ...] = ((1, 0),) * 5 + ((2, 0),)
#: Prolongation kernels (fine -> coarse) of ``MgConv_DC_smooth`` for 211 -> ... -> 7.
DARCY_SMOOTH_PROLONGATION: tuple[int, ...] = (3, 4, 3, 3, 4)

PADDINGS = ("zeros", "circular", "reflect")
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


def _conv3x3(c_in: int, c_out: int, stride: int, bias: bool, padding: str) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias, padding_mode=padding)


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
    kernel from level ``l + 1`` to ``l``. ``padding`` applies to every A/S/R/Pi conv; the
    transposed convs wrap around when ``padding="circular"`` (so the cycle is exactly
    translation-equivariant on a periodic grid) and pad with zeros otherwise.
    """

    def __init__(self, in_channels: int, channels: int,
                 smoothing: Sequence[Sequence[int] | str | int] = DARCY_SMOOTHING,
                 padding: str = "zeros", bias: bool = False,
                 prolongation_kernels: Sequence[int] | None = None,
                 restrict_residual: bool = False) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding={padding!r} is not supported; allowed values: {PADDINGS}")
        levels = parse_smoothing(smoothing)
        n = len(levels)
        kernels = [4] * (n - 1) if prolongation_kernels is None else list(prolongation_kernels)
        if len(kernels) != n - 1 or any(k not in (3, 4) for k in kernels):
            raise ValueError(f"prolongation_kernels={prolongation_kernels!r}: need {n - 1} "
                             f"values (one per coarse level), each 3 or 4")
        self.smoothing = levels
        self.levels = n
        self.padding = padding
        self.prolongation_kernels = kernels
        self.restrict_residual = restrict_residual
        c_u, c_f = channels, in_channels

        self.init = _conv3x3(c_f, c_u, 1, bias, padding)  # u = S_init(f) on the finest level
        self.pre = nn.ModuleList(
            nn.ModuleList(_Smoother(c_u, c_f, bias, padding) for _ in range(pre - (lvl == 0)))
            for lvl, (pre, _) in enumerate(levels))
        self.post = nn.ModuleList(
            nn.ModuleList(_Smoother(c_u, c_f, bias, padding) for _ in range(post))
            for _, post in levels)
        self.restrict_f = nn.ModuleList(_conv3x3(c_f, c_f, 2, False, padding)
                                        for _ in range(n - 1))
        self.restrict_u = nn.ModuleList(_conv3x3(c_u, c_u, 2, False, padding)
                                        for _ in range(n - 1))
        # the official use_res variant: one extra A per restriction, f <- R(f - A u)
        self.restrict_A = nn.ModuleList(_conv3x3(c_u, c_f, 1, bias, padding)
                                        for _ in range(n - 1)) if restrict_residual else None
        self.prolong = nn.ModuleList(
            nn.ConvTranspose2d(c_u, c_u, k, stride=2, padding=1, bias=False) for k in kernels)

    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Grid size of every level, finest first; ValueError if the grid is too small."""
        need = 2 ** (self.levels - 1)
        if height < need or width < need:
            raise ValueError(f"grid {height}x{width} is too small for {self.levels} multigrid "
                             f"levels: need H, W >= 2**(levels-1) = {need}")
        sizes = [(height, width)]
        for _ in range(self.levels - 1):
            h, w = sizes[-1]
            sizes.append(((h + 1) // 2, (w + 1) // 2))
        if self.padding == "reflect" and min(sizes[-1]) < 2:
            raise ValueError(f"grid {height}x{width} with padding='reflect' gives a coarsest "
                             f"level of {sizes[-1][0]}x{sizes[-1][1]}; reflect padding needs "
                             f">= 2 points per side (use H, W > {need})")
        return sizes

    def _prolong(self, j: int, u: Tensor, size: tuple[int, int]) -> Tensor:
        """ConvT_j: [B, C_u, ceil(h/2), ceil(w/2)] -> [B, C_u, h, w].

        With periodic padding the coarse grid is wrapped by one cell first and the extra
        output cropped (padding 1 + 2), so contributions that leave one edge re-enter at the
        other; otherwise they are dropped (zero padding, as in the official code).
        """
        weight = self.prolong[j].weight
        crop = 1
        if self.padding == "circular":
            u = F.pad(u, (1, 1, 1, 1), mode="circular")
            crop = 3
        if weight.shape[-1] == 4:  # natural size 2n: crop the last row/column if odd
            out = F.conv_transpose2d(u, weight, stride=2, padding=crop)
            if out.shape[-2:] != size:  # a no-op slice would still cost a backward copy
                out = out[..., : size[0], : size[1]]
            return out
        # kernel 3: natural size 2n - 1, one more row/column (output_padding) if even
        extra = (1 - size[0] % 2, 1 - size[1] % 2)
        return F.conv_transpose2d(u, weight, stride=2, padding=crop, output_padding=extra)

    def forward(self, f: Tensor) -> Tensor:
        """f: [B, in_channels, H, W] -> u: [B, channels, H, W]."""
        sizes = self.level_sizes(f.shape[-2], f.shape[-1])
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
            for step in self.post[j]:
                u = step(u, fs[j])
        return u


class MgNO(nn.Module):
    """Multigrid neural operator, ``MgNO_DC`` / ``MgNO_DC_smooth`` of the official code.

    Maps a field ``x`` [B, in_channels, H, W] to ``y`` [B, out_channels, H, W] with
    ``u <- act(MgConv_i(u) + Conv1x1_i(u))`` for ``layers`` layers (no lifting: layer 1 takes
    ``x`` as its right-hand side f) and a bias-free 1x1 head. Any ``H, W >= 2**(levels-1)``
    works; ``padding`` ("zeros" = Dirichlet, "circular" = periodic, "reflect") sets the
    boundary condition of every A/S/R/Pi conv.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 24,
                 layers: int = 4,
                 smoothing: Sequence[Sequence[int] | str | int] = DARCY_SMOOTHING,
                 padding: str = "zeros", activation: str = "gelu", mg_bias: bool = False,
                 prolongation_kernels: Sequence[int] | None = None,
                 restrict_residual: bool = False) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding={padding!r} is not supported; allowed values: {PADDINGS}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported; allowed values: "
                             f"{tuple(_ACTIVATIONS)}")
        if layers < 1 or width < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"layers={layers}, width={width}, in_channels={in_channels} and "
                             f"out_channels={out_channels} must all be >= 1")
        self.smoothing = parse_smoothing(smoothing)
        self.levels = len(self.smoothing)
        widths = [in_channels] + [width] * layers
        self.mg = nn.ModuleList(
            MgConv(c_f, width, self.smoothing, padding, mg_bias, prolongation_kernels,
                   restrict_residual) for c_f in widths[:-1])
        self.local = nn.ModuleList(nn.Conv2d(c_f, width, 1) for c_f in widths[:-1])
        self.head = nn.Conv2d(width, out_channels, 1, bias=False)
        self.act = _ACTIVATIONS[activation]()
        # Channels-last (NHWC) conv weights make every conv output NHWC, which oneDNN runs
        # faster on CPU for these narrow 3x3 convs; values are unchanged. `.to` (unlike
        # `.contiguous`) also restrides the ambiguous 1-channel weights, so nothing mixes
        # layouts. The layout survives .to(device), load_state_dict and optimiser states.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in_channels, H, W] -> [B, out_channels, H, W]."""
        if x.dim() != 4:
            raise ValueError(f"MgNO expects x of shape [B, C, H, W], got {tuple(x.shape)}")
        self.mg[0].level_sizes(x.shape[-2], x.shape[-1])
        u = x.contiguous(memory_format=torch.channels_last)
        for mg, local in zip(self.mg, self.local, strict=True):
            u = self.act(mg(u) + local(u))
        return self.head(u).contiguous()
