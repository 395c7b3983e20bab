"""Antiderivative operator G(u)(x) = s(x), ds/dx = u(x), s(0) = 0, x ∈ [0, T] (DeepONet).

Lu et al., NMI 2021, and lululxvi/deeponet ``src/deeponet_pde.py`` (``ode_system``, case
"Antiderivative"): u from an RBF GRF (l = 0.2, N = 1000 on [0, 1]), m = 100 sensors on
linspace(0, 1, 100). Labels:

* ``label_solver="accurate"``: the exact integral of the input function (the cubic spline
  through the GRF values, or the Chebyshev sum), i.e. exact up to rounding (~1e-16);
* ``label_solver="reference"``: ``solve_ivp(RK45)`` from 0 to each query point at scipy's
  default tolerances (rtol 1e-3, atol 1e-6), as the reference does; label MSE ≈ 4e-7.

Layout: ``inputs/u`` [n, m], ``outputs/s`` [n, Q], coords ``sensors`` [m], ``query`` [Q, 1]
(see :mod:`data_gen.pdes.deeponet_problems`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from data_gen.function_spaces import FunctionBatch
from data_gen.pdes.base import Fields
from data_gen.pdes.deeponet_problems import (
    ODEConfig,
    check_solve,
    inputs_only,
    ode_coords,
    rk45_reference,
    with_redraws,
)

#: Samples per chunk when ``chunk_size`` is not given: 512 samples took 1.22 s in chunks of 16,
#: 0.15 s in chunks of 256 (per-chunk overhead dominates; runner default 16).
DEFAULT_CHUNK = 256


@dataclass(frozen=True)
class AntiderivativeConfig(ODEConfig):
    NAME: ClassVar[str] = "antiderivative"

    solve: bool = True  # false: inputs only (no labels; unlabelled physics-informed data)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_solve(self.NAME, self.solve)


Config = AntiderivativeConfig


def coords(cfg: AntiderivativeConfig) -> dict[str, np.ndarray]:
    """``sensors`` [m] = linspace(0, T, m); ``query`` [Q, 1] = linspace(0, T, Q)."""
    return ode_coords(cfg)


def labels(u: FunctionBatch, query: np.ndarray, solver: str = "accurate") -> np.ndarray:
    """s(y) = ∫_0^y u for the n functions ``u`` at ``query`` [Q]: [n, Q] float64."""
    if solver == "accurate":
        return u.antiderivative(query)
    s, _ = rk45_reference(lambda s, uu: uu[None], [0.0], u, query)
    return s[:, 0]


def sample(cfg: AntiderivativeConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/u`` [n, m], ``outputs/s`` [n, Q] (float32); ``solve=False``:
    ``inputs/u`` only (the same inputs, :func:`inputs_only`)."""
    if not cfg.solve:
        return inputs_only(cfg, rngs)
    query = cfg.query()

    def solve(u: FunctionBatch):
        s = labels(u, query, cfg.label_solver)
        ok = np.all(np.isfinite(s), axis=1)
        return [u(cfg.sensors()), s], ok, np.where(ok, "", "the label is not finite")

    (u, s), _ = with_redraws(cfg.NAME, rngs, cfg.draw, solve, False, "")
    return {"inputs": {"u": u.astype(np.float32)}, "outputs": {"s": s.astype(np.float32)}}
