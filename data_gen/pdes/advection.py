"""Advection s_t + a s_x = 0, periodic on [0, 1), t ∈ [0, T] (DeepONet, Lu et al. NMI 2021,
advection case I): input u(x) = s(x, 0) = V(sin²(πx)) with V an RBF GRF (l = 0.2, N = 1000
on [0, 1]), a = 1, T = 1, output grid 100 × 100.

This is the variant the reference code runs (lululxvi/deeponet ``src/system.py``
``CVCSystem`` and ``src/CVC_solver.py``: the other cases II–IV sit there commented out), and
the only one with an exact solution: s(x, t) = u(x − a t) = V(sin²(π(x − a t))).
``label_solver="accurate"`` evaluates that exactly (the GRF spline at sin²(π(x − at)));
``reference`` does what ``solve_CVC`` does: cubic interpolation of the m sensor values at
(x − a t) mod 1 (a not-a-knot, non-periodic spline, so its error is largest near x − at ≈ 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from data_gen.function_spaces import FunctionBatch
from data_gen.pdes.base import Fields
from data_gen.pdes.deeponet_problems import (
    GridConfig,
    _fail,
    advection_exact,
    advection_reference,
    grid_coords,
    with_redraws,
)


@dataclass(frozen=True)
class AdvectionConfig(GridConfig):
    NAME: ClassVar[str] = "advection"

    speed: float = 1.0  # a

    def __post_init__(self) -> None:
        super().__post_init__()
        if not np.isfinite(self.speed):
            _fail(self.NAME, "speed", self.speed, "a finite number")


Config = AdvectionConfig


def coords(cfg: AdvectionConfig) -> dict[str, np.ndarray]:
    """``sensors`` [m]; ``query`` [nx·nt, 2] (x, t) x-major; ``x`` [nx]; ``t`` [nt]."""
    return grid_coords(cfg)


def initial_condition(v: FunctionBatch, x: np.ndarray) -> np.ndarray:
    """u(x) = V(sin²(πx)) for the n functions V: [n, len(x)]."""
    return v(np.sin(np.pi * np.asarray(x, np.float64)) ** 2)


def sample(cfg: AdvectionConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/u`` [n, m], ``outputs/s`` [n, nx·nt] (x-major) float32."""

    def solve(v: FunctionBatch):
        sensors = initial_condition(v, cfg.sensors())
        if cfg.label_solver == "accurate":
            s = advection_exact(v, cfg.x(), cfg.t(), cfg.speed)
        else:
            s = advection_reference(sensors, cfg.x(), cfg.t(), cfg.speed)
        s = s.reshape(v.n, -1)
        ok = np.all(np.isfinite(s), axis=1)
        return [sensors, s], ok, np.where(ok, "", "the label is not finite").astype(object)

    (u, s), _ = with_redraws(cfg.NAME, rngs, cfg.draw, solve, False, "")
    return {"inputs": {"u": u.astype(np.float32)}, "outputs": {"s": s.astype(np.float32)}}
