"""The 1-D heat equation u_t = nu u_xx on the periodic interval [0, 1): a generator plugin.

The initial state is a random Fourier series and every mode decays on its own, so the
solution is exact::

    u0(x)   = sum_k a_k cos(2 pi k x) + b_k sin(2 pi k x),    k = 1..n_modes
    u(x, t) = sum_k exp(-nu (2 pi k)^2 t) (a_k cos(2 pi k x) + b_k sin(2 pi k x))

with a_k, b_k ~ N(0, 1) / k**smoothness. The dataset maps ``inputs/u0`` [N, 1, s] to
``outputs/u`` [N, 1, s] = u(., T) on the nodes x_j = j / s. What data_gen needs of this module
(``pde._target_: mypkg.heat``): ``Config``, ``sample(cfg, rngs)`` and ``coords(cfg)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK = 256  # cheap samples: many per chunk


@dataclass(frozen=True)
class Config:
    resolution: int = 64      # nodes s on [0, 1), x_j = j / s
    n_modes: int = 8          # Fourier modes k = 1..n_modes (below s / 2: no aliasing)
    smoothness: float = 1.0   # a_k, b_k ~ N(0, 1) / k**smoothness
    nu: float = 0.01          # diffusivity
    T: float = 0.1            # final time: mode k decays by exp(-nu (2 pi k)^2 T)


def coords(cfg: Config) -> dict[str, np.ndarray]:
    """``x`` [s]: the periodic grid j / s (float64)."""
    return {"x": np.arange(cfg.resolution) / cfg.resolution}


def coefficients(cfg: Config, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """(a_k, b_k) of each sample, [n, 2, n_modes], drawn from the sample's own stream."""
    k = np.arange(1, cfg.n_modes + 1)
    return np.stack([rng.standard_normal((2, cfg.n_modes)) for rng in rngs]) / k**cfg.smoothness


def solution(cfg: Config, ab: np.ndarray, t: float, x: np.ndarray | None = None) -> np.ndarray:
    """u(x, t) [n, len(x)] (float64) of the coefficients ``ab`` [n, 2, n_modes]; ``x``
    defaults to the grid of :func:`coords` (any points in [0, 1) work: the series is exact)."""
    x = coords(cfg)["x"] if x is None else np.asarray(x, dtype=np.float64)
    k = np.arange(1, cfg.n_modes + 1)
    phase = 2 * np.pi * k[:, None] * x[None]                          # [K, len(x)]
    decay = np.exp(-cfg.nu * (2 * np.pi * k) ** 2 * t)                  # [K]
    return (ab[:, 0] * decay) @ np.cos(phase) + (ab[:, 1] * decay) @ np.sin(phase)


def sample(cfg: Config, rngs: Sequence[np.random.Generator]) -> dict[str, dict[str, np.ndarray]]:
    """One chunk of len(rngs) samples: ``inputs/u0`` and ``outputs/u``, float32 [n, 1, s]."""
    ab = coefficients(cfg, rngs)
    return {"inputs": {"u0": solution(cfg, ab, 0.0)[:, None].astype(np.float32)},
            "outputs": {"u": solution(cfg, ab, cfg.T)[:, None].astype(np.float32)}}
