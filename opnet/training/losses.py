"""Losses and metrics on grid fields ``[B, C, *grid]``; each returns per-sample values
``[B]`` (reduce with :func:`reduce`).

* ``rel_l2``: ‖pred − y‖₂ / ‖y‖₂ over all non-batch dims (FNO ``LpLoss.rel``).
* ``h1``: the FFT-weighted relative H¹ of the MgNO/FNO reference (``HsLoss(k=1, a=[1])``):
  orthonormal 2-D FFTs, weight √(1 + k̃x² + k̃y²) with integer wavenumbers where
  k̃ = |k|·1[|k| < cutoff] (MgNO: cutoff 20; frequencies above it keep weight 1 along
  that axis), error ‖w(X − Y)‖ / ‖w·Y‖. Assumes periodicity, as the reference does.
* ``h1_abs``: the MgNO Helmholtz training loss (``helm.py`` ``HSloss_d``), absolute:
  e = pred − y, central differences ``torch.gradient`` with spacing 1/s (s = grid size;
  1/101 at the reference's 101²), value √Σ(10·e² + e_x² + e_y²) per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def rel_l2(pred: Tensor, y: Tensor) -> Tensor:
    """Per-sample relative L2 error ``[B]``."""
    diff = (pred - y).flatten(1).float()
    return diff.norm(dim=1) / y.flatten(1).float().norm(dim=1)


def _h1_weight(shape: tuple[int, int], cutoff: float | None, device) -> Tensor:
    kx, ky = (torch.fft.fftfreq(n, d=1.0 / n, device=device).abs() for n in shape)
    if cutoff is not None:
        kx, ky = kx * (kx < cutoff), ky * (ky < cutoff)
    return torch.sqrt(1 + kx[:, None] ** 2 + ky[None, :] ** 2)


def h1(pred: Tensor, y: Tensor, cutoff: float | None = 20.0) -> Tensor:
    """Per-sample FFT-weighted relative H¹ error ``[B]`` for 2-D fields ``[B, C, H, W]``."""
    if pred.ndim != 4:
        raise ValueError(f"h1 expects [B, C, H, W] fields, got shape {tuple(pred.shape)}")
    w = _h1_weight(tuple(pred.shape[-2:]), cutoff, pred.device)
    px = torch.fft.fft2(pred.float(), norm="ortho") * w
    py = torch.fft.fft2(y.float(), norm="ortho") * w
    return (px - py).flatten(1).norm(dim=1) / py.flatten(1).norm(dim=1)


def h1_abs(pred: Tensor, y: Tensor, l2_weight: float = 10.0) -> Tensor:
    """Per-sample absolute finite-difference H¹-type error ``[B]`` of [B, C, H, W] fields
    (MgNO ``HSloss_d``): √Σ(l2_weight·e² + e_x² + e_y²), gradient spacing 1/H, 1/W."""
    if pred.ndim != 4:
        raise ValueError(f"h1_abs expects [B, C, H, W] fields, got shape {tuple(pred.shape)}")
    e = (pred - y).float()
    ex, ey = torch.gradient(e, spacing=(1.0 / e.shape[-2], 1.0 / e.shape[-1]), dim=(-2, -1))
    return torch.sqrt((l2_weight * e**2 + ex**2 + ey**2).flatten(1).sum(dim=1))


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"rel_l2": rel_l2, "h1": h1,
                                                         "h1_abs": h1_abs}


def get_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The per-sample loss ``(pred, target) -> [B]`` named ``h1``, ``h1_abs`` or ``rel_l2``."""
    if name not in LOSSES:
        raise ValueError(f"loss '{name}': expected one of {sorted(LOSSES)}")
    return LOSSES[name]


def reduce(values: Tensor, reduction: str) -> Tensor:
    """``"sum"`` over the batch (the MgNO/FNO reference) or ``"mean"``."""
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    raise ValueError(f"loss reduction '{reduction}': expected 'sum' or 'mean'")
