"""Error metrics of predictions against truth on de-normalised (physical) outputs.

Everything is computed in float64 numpy (numpy arrays or torch tensors are accepted),
vectorised over samples and grid points. ``e = pred − true`` throughout.

**Grid fields** ``[B, C, *spatial]`` (:func:`grid_metrics`): C is the channel and/or time axis,
1–3 spatial axes with n_a points and side lengths L_a (default 1); ⟨·⟩ₓ is the mean and Σₓ
the sum over the N = ∏ n_a spatial points.

* ``rel_l2``: mean_b ‖e_b‖₂ / ‖true_b‖₂ over all non-batch dims (FNO ``LpLoss.rel``, no ε).
* ``mse``: mean of e² over everything.
* ``h1``: mean_b of √Σ_k w²|Ê_k|² / √Σ_k w²|Û_k|² with Ê, Û the FFTs of e and true over the
  spatial axes (periodic), w² = 1 + Σ_a k̃_a², integer wave numbers k_a (``fftfreq·n``, no 2π,
  lengths ignored) and k̃_a = |k_a|·1[|k_a| < h1_cutoff]: the weighting of
  :func:`opnet.training.losses.h1` (MgNO ``HsLoss``, cutoff 20), extended to 1-D and 3-D, so the
  training and evaluation H1 agree.
* PDEBench ``metric_func``. PDEBench computes per (channel, time) and averages; here C plays
  that combined role: each quantity is computed per (sample, c) or per c and averaged over c.

  - ``rmse``: mean_b √⟨e²⟩ₓ.
  - ``nrmse``: mean_b √⟨e²⟩ₓ / √⟨true²⟩ₓ (no ε).
  - ``crmse``: √(mean_b (Σₓ e)²) / N.
  - ``max_error``: max |e| over everything. (PDEBench takes the max over space and batch per
    (c, t) and then averages those maxima; the global max is what we report.)
  - ``brmse``: mean_b √(S/M), S the sum of e² over the two end faces of every spatial axis
    (full faces, so points on several faces count once per face) and M the matching number of
    face points, Σ_a 2∏_{j≠a} n_j: 1-D (e₀² + e₋₁²)/2; 2-D the four edges over 2nₓ + 2n_y;
    3-D the six faces over 2nₓn_y + 2n_yn_z + 2n_zn_x — PDEBench's counting in each case.
  - ``frmse_low|mid|high``: 1-D: Ê_k, k = 0 … n//2 (the ``rfft`` range), spectrum
    √(mean_b |Ê_k|²)/n·L. 2-D/3-D: |Ê|² on the non-negative index quadrant/octant
    i_a < n_a//2 only (as PDEBench; negative frequencies are left out) summed in radial shells
    s = ⌊√Σ i_a²⌋ for s < min_a n_a//2, spectrum √(mean_b shell sum)/N·∏L_a. Each band is the
    mean of the spectrum over its wave numbers / shells, [0, lo), [lo, hi), [hi, end]
    (``bands=(lo, hi)``, PDEBench's iLow = 4, iHigh = 12); a band holding no wave number (a
    coarse grid) is NaN, as PDEBench's empty mean.

**Point data** ``[B, Q, C]`` (:func:`point_metrics`, DeepONet query points): ``rel_l2``,
``mse``, ``rmse``, ``nrmse``, ``crmse``, ``max_error`` as above with the Q points in place of
the grid (Σ over Q, N = Q), and ``mse_wo_outliers``: the mean of e² after dropping the largest
⌊n/1000⌋ of the n = B·Q·C squared errors (the DeepONet reference's test metric).

**Rollouts** ``[B, R·C, *grid]`` (R frames of C channels, :func:`rollout_errors`,
:func:`rollout_correlation`, :func:`correlation_time`): per sample and step, the relative L2
of the frame (``rel_l2`` above on the frame's C·N values) and the Pearson correlation of the
frame's C·N values with the truth's (PDEArena ``pearson_correlation``: population standard
deviations, the denominator clamped at float32's smallest normal, so a constant field
correlates 0); the correlation time is the number of leading steps whose mean correlation
stays >= a threshold (0.9 in PDEArena and the turbulence-surrogate literature).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # bfloat16 has no numpy dtype
    if np.iscomplexobj(x):
        raise ValueError("metrics expect real-valued fields, got a complex array")
    return np.asarray(x, dtype=np.float64)


def _pair(pred: ArrayLike, true: ArrayLike, fn: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_float64(pred), _as_float64(true)
    if p.shape != t.shape:
        raise ValueError(f"{fn}: pred has shape {p.shape} but true has shape {t.shape}; "
                         f"both must be {layout} with the same shape")
    if p.ndim >= 1 and p.shape[0] == 0:
        raise ValueError(f"{fn}: got shape {p.shape}, an empty batch")
    return p, t


def _rel_l2(e: np.ndarray, t: np.ndarray) -> np.ndarray:
    b = len(t)
    return np.linalg.norm(e.reshape(b, -1), axis=1) / np.linalg.norm(t.reshape(b, -1), axis=1)


def per_sample_rel_l2(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """‖pred_b − true_b‖₂ / ‖true_b‖₂ over all non-batch dims, ``[B]`` (float64)."""
    p, t = _pair(pred, true, "per_sample_rel_l2", "[B, ...]")
    if p.ndim < 2:
        raise ValueError(f"per_sample_rel_l2 expects [B, ...] with at least one non-batch "
                         f"dim, got shape {p.shape}")
    return _rel_l2(p - t, t)


def _field_metrics(e: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """rel_l2, mse and the PDEBench rmse/nrmse/crmse/max of e, true laid out [B, C, N]."""
    rmse_bc = np.sqrt(np.mean(e**2, axis=-1))
    return {"rel_l2": float(_rel_l2(e, t).mean()),
            "mse": float(np.mean(e**2)),
            "rmse": float(rmse_bc.mean()),
            "nrmse": float((rmse_bc / np.sqrt(np.mean(t**2, axis=-1))).mean()),
            "crmse": float((np.sqrt(np.mean(e.sum(axis=-1) ** 2, axis=0)) / e.shape[-1]).mean()),
            "max_error": float(np.abs(e).max())}


def _brmse(e: np.ndarray) -> float:
    b, c, *spatial = e.shape
    total = np.zeros((b, c))
    count = 0
    for a in range(len(spatial)):  # the 1-3 spatial axes
        faces = np.take(e, [0, -1], axis=2 + a)
        total += (faces**2).reshape(b, c, -1).sum(axis=-1)
        count += 2 * math.prod(n for j, n in enumerate(spatial) if j != a)
    return float(np.sqrt(total / count).mean())


def _shell_index(half: Sequence[int]) -> np.ndarray:
    """⌊√Σ i_a²⌋ on the index box i_a < half[a], flattened in C order."""
    grids = np.meshgrid(*(np.arange(h) for h in half), indexing="ij")
    return np.floor(np.sqrt(sum(g.astype(np.float64) ** 2 for g in grids))).astype(int).ravel()


def _spectrum(err_hat: np.ndarray, lengths: Sequence[float]) -> np.ndarray:
    """PDEBench's fRMSE spectrum ``[C, K]`` from the unnormalised FFT of e ``[B, C, *n]``."""
    b, c, *spatial = err_hat.shape
    if len(spatial) == 1:
        power = np.abs(err_hat[..., : spatial[0] // 2 + 1]) ** 2
    else:
        half = [n // 2 for n in spatial]
        nshell = min(half)
        quad = err_hat[(..., *(slice(0, h) for h in half))]
        shell = _shell_index(half)
        keep = np.flatnonzero(shell < nshell)
        keep = keep[np.argsort(shell[keep], kind="stable")]
        starts = np.searchsorted(shell[keep], np.arange(nshell))  # every shell s < nshell is hit
        flat = (np.abs(quad) ** 2).reshape(b, c, -1)[..., keep]
        power = (np.add.reduceat(flat, starts, axis=-1) if nshell
                 else np.zeros((b, c, 0)))
    return np.sqrt(power.mean(axis=0)) * (math.prod(lengths) / math.prod(spatial))


def _band_means(spectrum: np.ndarray, bands: tuple[int, int]) -> dict[str, float]:
    lo, hi = bands
    out = {}
    for name, part in (("frmse_low", spectrum[:, :lo]), ("frmse_mid", spectrum[:, lo:hi]),
                       ("frmse_high", spectrum[:, hi:])):
        out[name] = float(part.mean()) if part.size else float("nan")
    return out


def _h1_rel(err_hat: np.ndarray, true_hat: np.ndarray, cutoff: float | None) -> float:
    spatial = err_hat.shape[2:]
    w2 = np.ones(spatial)
    for a, n in enumerate(spatial):
        k = np.abs(np.fft.fftfreq(n, d=1.0 / n))
        if cutoff is not None:
            k = k * (k < cutoff)
        w2 = w2 + (k**2).reshape([n if j == a else 1 for j in range(len(spatial))])
    b = len(err_hat)
    num = np.sqrt((w2 * np.abs(err_hat) ** 2).reshape(b, -1).sum(axis=1))
    den = np.sqrt((w2 * np.abs(true_hat) ** 2).reshape(b, -1).sum(axis=1))
    return float((num / den).mean())


def grid_metrics(pred: ArrayLike, true: ArrayLike, *, lengths: Sequence[float] | None = None,
                 bands: tuple[int, int] = (4, 12),
                 h1_cutoff: float | None = 20.0) -> dict[str, float]:
    """Errors of grid fields ``[B, C, *spatial]`` (1–3 spatial axes) in physical units.

    ``lengths``: domain side length per spatial axis (default 1.0 each; scales fRMSE only).
    ``bands``: (lo, hi) of the fRMSE bands [0, lo), [lo, hi), [hi, end].
    ``h1_cutoff``: the H1 weight's wave-number cutoff (that of the training loss; None: none).
    Returns ``rel_l2, mse, rmse, nrmse, crmse, max_error, h1, brmse, frmse_low, frmse_mid,
    frmse_high`` (definitions in the module docstring).
    """
    p, t = _pair(pred, true, "grid_metrics", "[B, C, *spatial]")
    if not 3 <= p.ndim <= 5:
        raise ValueError(f"grid_metrics expects [B, C, *spatial] with 1, 2 or 3 spatial axes, "
                         f"got shape {p.shape}")
    spatial = p.shape[2:]
    lengths = (1.0,) * len(spatial) if lengths is None else tuple(float(x) for x in lengths)
    if len(lengths) != len(spatial):
        raise ValueError(f"grid_metrics: lengths={lengths} has {len(lengths)} entries, but the "
                         f"fields of shape {p.shape} have {len(spatial)} spatial axes")
    lo, hi = bands
    if not 0 <= lo <= hi:
        raise ValueError(f"grid_metrics: bands={bands}, expected (lo, hi) with 0 <= lo <= hi")
    b, c = p.shape[:2]
    e = p - t
    axes = tuple(range(2, p.ndim))
    err_hat = np.fft.fftn(e, axes=axes)
    out = _field_metrics(e.reshape(b, c, -1), t.reshape(b, c, -1))
    out["h1"] = _h1_rel(err_hat, np.fft.fftn(t, axes=axes), h1_cutoff)
    out["brmse"] = _brmse(e)
    out.update(_band_means(_spectrum(err_hat, lengths), (lo, hi)))
    return out


def _mse_wo_outliers(e: np.ndarray) -> float:
    sq = (e**2).ravel()
    keep = sq.size - sq.size // 1000
    return float(np.partition(sq, keep - 1)[:keep].mean())


def point_metrics(pred: ArrayLike, true: ArrayLike) -> dict[str, float]:
    """Errors of point data ``[B, Q, C]`` (Q query points, C outputs) in physical units.

    Returns ``rel_l2, mse, rmse, nrmse, crmse, max_error, mse_wo_outliers`` (definitions in
    the module docstring; per-sample sums and means run over the Q points).
    """
    p, t = _pair(pred, true, "point_metrics", "[B, Q, C]")
    if p.ndim != 3:
        raise ValueError(f"point_metrics expects [B, Q, C] point data, got shape {p.shape}")
    e = p - t
    out = _field_metrics(np.moveaxis(e, 2, 1), np.moveaxis(t, 2, 1))
    out["mse_wo_outliers"] = _mse_wo_outliers(e)
    return out


# ------------------------------------------------------------------------------ rollouts
def _frames(pred: ArrayLike, truth: ArrayLike, channels: int,
            fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """pred, truth ``[B, R·C, *grid]`` -> ``[B, R, C·N]`` tensors (float64; float32 on MPS,
    which has no float64), on pred's device."""
    p, t = torch.as_tensor(pred), torch.as_tensor(truth)
    if p.shape != t.shape:
        raise ValueError(f"{fn}: pred has shape {tuple(p.shape)} but truth has shape "
                         f"{tuple(t.shape)}; both must be [B, R*C, *grid] with the same shape")
    c = int(channels)
    if p.ndim < 3 or c < 1 or p.shape[1] % c or not p.shape[0] or not p.shape[1]:
        raise ValueError(f"{fn}: expected [B, R*C, *grid] with R*C a multiple of "
                         f"channels={channels}, got shape {tuple(p.shape)}")
    dtype = torch.float32 if p.device.type == "mps" else torch.float64
    b, r = p.shape[0], p.shape[1] // c
    p = p.detach().to(dtype).reshape(b, r, -1)
    return p, t.detach().to(p.device, dtype).reshape(b, r, -1)


def rollout_errors(pred: ArrayLike, truth: ArrayLike, channels: int) -> torch.Tensor:
    """Relative L2 per sample and step ``[B, R]`` of rollouts ``[B, R·C, *grid]``
    (C = ``channels`` per frame): ‖pred_{b,r} − truth_{b,r}‖₂ / ‖truth_{b,r}‖₂ over the
    frame's C·N values."""
    p, t = _frames(pred, truth, channels, "rollout_errors")
    return (p - t).norm(dim=-1) / t.norm(dim=-1)


def rollout_correlation(pred: ArrayLike, truth: ArrayLike, channels: int) -> torch.Tensor:
    """Pearson correlation per sample and step ``[B, R]`` of rollouts ``[B, R·C, *grid]``
    over each frame's C·N values (PDEArena's; a constant frame correlates 0)."""
    p, t = _frames(pred, truth, channels, "rollout_correlation")
    p, t = p - p.mean(dim=-1, keepdim=True), t - t.mean(dim=-1, keepdim=True)
    std = (p.square().mean(dim=-1) * t.square().mean(dim=-1)).sqrt()
    return (p * t).mean(dim=-1) / std.clamp(min=torch.finfo(torch.float32).tiny)


def correlation_time(corr: ArrayLike, threshold: float = 0.9) -> float:
    """Leading steps whose correlation (``[R]``, or ``[B, R]`` averaged over the samples)
    stays >= ``threshold``: R if it never drops below, 0 if the first step is below (a NaN
    step counts as below)."""
    c = (corr.detach().double() if isinstance(corr, torch.Tensor)
         else torch.as_tensor(np.asarray(corr, dtype=np.float64)))  # lists: no float32 0.9
    if c.ndim == 2:
        c = c.mean(dim=0)
    if c.ndim != 1 or not len(c):
        raise ValueError(f"correlation_time expects correlations [R] or [B, R] with R >= 1, "
                         f"got shape {tuple(c.shape)}")
    below = torch.nonzero(~(c >= threshold))
    return float(below[0, 0]) if len(below) else float(len(c))


def rollout_summary(pred: ArrayLike, truth: ArrayLike, channels: int,
                    threshold: float = 0.9) -> dict[str, list[float] | float]:
    """Per-step means over the samples of rollouts ``[B, R·C, *grid]``: ``rel_l2_per_step``
    and ``correlation_per_step`` (lists of R floats) and ``correlation_time`` (leading steps
    with mean correlation >= ``threshold``, :mod:`opnet.metrics`)."""
    corr = rollout_correlation(pred, truth, channels).mean(dim=0)
    return {"rel_l2_per_step": rollout_errors(pred, truth, channels).mean(dim=0).tolist(),
            "correlation_per_step": corr.tolist(),
            "correlation_time": correlation_time(corr, threshold)}
