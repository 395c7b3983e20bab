"""Gravity pendulum with an external force (DeepONet, Lu et al. NMI 2021):
ds₁/dt = s₂, ds₂/dt = −k sin s₁ + u(t), s(0) = 0, t ∈ [0, T], k = 1, T = 1.

lululxvi/deeponet ``src/deeponet_pde.py`` (``ode_system``, case "Gravity pendulum"): u from
an RBF GRF (l = 0.2, N = 1000·T on [0, T]), m = 100 sensors; only s₁ is learned (the authors
train a second network for s₂: deeponet#1). ``outputs/s`` = s₁; ``with_velocity`` adds
``outputs/velocity`` = s₂. Labels: ``accurate`` = RK4 on the GRF knots with step halving and
an error check (measured error ~2e-13), ``reference`` = RK45 at scipy's default tolerances
from 0 to each query point, as the reference does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from data_gen.function_spaces import FunctionBatch
from data_gen.pdes.base import Fields
from data_gen.pdes.deeponet_problems import (
    ODE_TOL,
    ODEConfig,
    _fail,
    ode_coords,
    ode_reasons,
    rk45_reference,
    solve_ode_refined,
    with_redraws,
)

#: Samples per chunk when ``chunk_size`` is not given: 512 samples took 1.71 s in chunks of 16,
#: 0.43 s in chunks of 256 (runner default 16).
DEFAULT_CHUNK = 256


@dataclass(frozen=True)
class PendulumConfig(ODEConfig):
    NAME: ClassVar[str] = "pendulum"

    k: float = 1.0  # g/ℓ
    with_velocity: bool = False  # also store s₂ = ds₁/dt as outputs/velocity

    def __post_init__(self) -> None:
        super().__post_init__()
        if not np.isfinite(self.k):
            _fail(self.NAME, "k", self.k, "a finite number")
        if not isinstance(self.with_velocity, bool):
            _fail(self.NAME, "with_velocity", self.with_velocity, "true or false")


Config = PendulumConfig


def coords(cfg: PendulumConfig) -> dict[str, np.ndarray]:
    """``sensors`` [m] = linspace(0, T, m); ``query`` [Q, 1] = linspace(0, T, Q)."""
    return ode_coords(cfg)


def make_rhs(k: float):
    """(s₁, s₂)' = (s₂, −k sin s₁ + u) for states s [2, ...]."""

    def rhs(s: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = np.empty_like(s)
        out[0] = s[1]
        np.sin(s[0], out=out[1])
        out[1] *= -k
        out[1] += u
        return out

    return rhs


def labels(u: FunctionBatch, query: np.ndarray, k: float = 1.0, solver: str = "accurate",
           base: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(s₁, s₂) at ``query`` [Q]: ([n, 2, Q], reason [n]: "" where valid)."""
    if solver == "accurate":
        grid = np.linspace(0.0, float(query[-1]), 1001) if base is None else base
        s, est, finite = solve_ode_refined(make_rhs(k), [0.0, 0.0], u, query, grid)
        return s, ode_reasons(est, finite, ODE_TOL)
    s, failed = rk45_reference(make_rhs(k), [0.0, 0.0], u, query)
    bad = failed | ~np.all(np.isfinite(s), axis=(1, 2))
    return s, np.where(bad, "RK45 failed", "").astype(object)


def sample(cfg: PendulumConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/u`` [n, m], ``outputs/s`` [n, Q] (and ``outputs/velocity``)."""
    query, base = cfg.query(), cfg.base_grid()

    def solve(u: FunctionBatch):
        s, why = labels(u, query, cfg.k, cfg.label_solver, base)
        return [u(cfg.sensors()), s], why == "", why

    (u, s), _ = with_redraws(cfg.NAME, rngs, cfg.draw, solve, False, "")
    outputs = {"s": s[:, 0].astype(np.float32)}
    if cfg.with_velocity:
        outputs["velocity"] = s[:, 1].astype(np.float32)
    return {"inputs": {"u": u.astype(np.float32)}, "outputs": outputs}
