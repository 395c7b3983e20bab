"""Observation noise added at load time (datasets are stored clean).

PROSE (Liu et al. 2024, ``prose_ode``) perturbs every trajectory, training and evaluation
alike, by Gaussian noise scaled to the trajectory's own norm::

    u <- u + σ z,   z ~ N(0, I),   σ = level · ||u||_2 / (||z||_2 + 1e-6)

over the whole trajectory (all T times × d components; ``level`` = 0.02), so that
||û − u||_2 = level · ||u||_2 (to a relative 1e-6/||z||; the reference's trainer adds the
same eps). The same noisy trajectory is the model's input (its
first times) and its target (the rest). A perfect predictor of the clean trajectory then has
a mean relative L2 error (:func:`relative_l2`) of ≈2.1 % on t ∈ [2, 6] and ≈2.25 % on
[2, 4] over the 12 3-D systems (paper: 2.06 % and 2.24 %; measured on our data 2.09–2.10 %
and 2.23–2.29 %, 1.7–2.8 % across systems).

Deterministic: sample ``i`` draws z from its own stream, ``SeedSequence([seed, i])`` by
default (:func:`noise_rngs`), or from generators the caller passes (e.g. a fresh seed per
epoch for on-the-fly noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def noise_rngs(seed: int, indices: Sequence[int] | np.ndarray) -> list[np.random.Generator]:
    """One generator per sample index: ``default_rng(SeedSequence([seed, i]))``."""
    return [np.random.default_rng(np.random.SeedSequence([int(seed), int(i)]))
            for i in np.asarray(indices).ravel()]


def add_trajectory_noise(u: np.ndarray, level: float = 0.02,
                         rngs: Sequence[np.random.Generator] | None = None, *,
                         seed: int | None = None, indices: Sequence[int] | None = None,
                         dims: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Noisy copy of trajectories ``u`` [n, T, D] (float32 or float64; same dtype back).

    ``rngs``: one generator per trajectory, or ``seed`` and ``indices`` (the samples'
    indices in their split) for :func:`noise_rngs`. ``dims`` [n]: components actually used
    by each trajectory (zero padding beyond stays exactly zero and counts in no norm);
    default all D. ``level`` = 0 returns a copy.
    """
    u = np.asarray(u)
    if u.ndim != 3:
        raise ValueError(f"u has shape {u.shape}, expected [n, T, D] trajectories")
    n, T, D = u.shape
    if not (np.isfinite(level) and level >= 0):
        raise ValueError(f"level={level}: expected a number >= 0")
    if rngs is None:
        if seed is None or indices is None:
            raise ValueError("give rngs, or seed and indices")
        rngs = noise_rngs(seed, indices)
    if len(rngs) != n:
        raise ValueError(f"{len(rngs)} generators for {n} trajectories")
    dims = np.full(n, D) if dims is None else np.asarray(dims, np.int64)
    if dims.shape != (n,) or np.any((dims < 1) | (dims > D)):
        raise ValueError(f"dims must be [n={n}] integers in [1, {D}], got {dims}")
    out = u.astype(np.float64)
    if level == 0:
        return out.astype(u.dtype)
    for i, rng in enumerate(rngs):
        d = int(dims[i])
        z = rng.standard_normal((T, d))
        clean = out[i, :, :d]
        sigma = level * np.sqrt(np.sum(clean * clean)) / (np.sqrt(np.sum(z * z)) + 1e-6)
        out[i, :, :d] = clean + sigma * z
    return out.astype(u.dtype)


def relative_l2(pred: np.ndarray, target: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-trajectory relative L2 error sqrt(Σ (pred − target)² / (Σ target² + eps)) over
    all but the first axis: [n]."""
    pred = np.asarray(pred, np.float64)
    target = np.asarray(target, np.float64)
    axes = tuple(range(1, pred.ndim))
    return np.sqrt(np.sum((pred - target) ** 2, axis=axes) / (np.sum(target**2, axis=axes)
                                                               + eps))
