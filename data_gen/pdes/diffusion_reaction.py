"""Diffusion–reaction s_t = D s_xx + k s² + u(x), x ∈ [0, 1], t ∈ [0, T], zero initial and
boundary values (DeepONet, Lu et al. NMI 2021), D = k = 0.01, T = 1.

lululxvi/deeponet ``src/system.py`` (``DRSystem``) and ``src/ADR_solver.py``: u (the source,
constant in time) from an RBF GRF (l = 0.2, N = 1000 on [0, 1]), m = 100 sensors on
linspace(0, 1, 100), the solution on the 100 × 100 grid x_i = i/99, t_j = j/99 (the
reference's FD grid is the sensor grid). The reaction sign is +k s² as in the NMI paper and
``DRSystem`` (deepxde's physics-informed example uses −k s²; not followed).

Labels: ``accurate`` = fourth-order compact finite differences on a grid ``refine`` times
finer, ETDRK4 in time (stiff part exact in the DST-I basis; see
:func:`~data_gen.pdes.deeponet_problems.solve_diffusion_reaction`), with a convergence check
against the solution at ``refine/2`` (estimated error ≤ 1e-7·max(1, |s|), else an error);
measured max error 2.7e-9 at refine = 8. ``reference`` = the reference's second-order
Crank–Nicolson-type scheme on the nx × nt output grid itself (u at the nx nodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from data_gen.function_spaces import FunctionBatch
from data_gen.pdes.base import Fields
from data_gen.pdes.deeponet_problems import (
    PDE_TOL,
    GridConfig,
    _fail,
    _is_int,
    check_solve,
    grid_coords,
    inputs_only,
    solve_adr_reference,
    solve_diffusion_reaction,
    with_redraws,
)


@dataclass(frozen=True)
class DiffusionReactionConfig(GridConfig):
    NAME: ClassVar[str] = "diffusion_reaction"

    D: float = 0.01  # diffusion coefficient
    k: float = 0.01  # reaction coefficient (+k s²)
    refine: int = 8  # accurate solver: fine grid (nx − 1)·refine + 1 nodes (even, >= 2)
    substeps: int = 1  # accurate solver: ETDRK4 steps per output interval
    solve: bool = True  # false: inputs only (no labels; unlabelled physics-informed data)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.D) and self.D > 0):
            _fail(self.NAME, "D", self.D, "> 0")
        if not np.isfinite(self.k):
            _fail(self.NAME, "k", self.k, "a finite number")
        if not (_is_int(self.refine) and self.refine >= 2 and self.refine % 2 == 0):
            _fail(self.NAME, "refine", self.refine, "an even integer >= 2")
        if not (_is_int(self.substeps) and self.substeps >= 1):
            _fail(self.NAME, "substeps", self.substeps, "an integer >= 1")
        check_solve(self.NAME, self.solve)


Config = DiffusionReactionConfig


def coords(cfg: DiffusionReactionConfig) -> dict[str, np.ndarray]:
    """``sensors`` [m]; ``query`` [nx·nt, 2] (x, t) x-major; ``x`` [nx]; ``t`` [nt]."""
    return grid_coords(cfg)


def labels(cfg: DiffusionReactionConfig, u: FunctionBatch) -> tuple[np.ndarray, np.ndarray]:
    """s on the nx × nt grid for the n sources ``u``: ([n, nx, nt], reason [n], "" if valid)."""
    if cfg.label_solver == "reference":
        s = solve_adr_reference(u(cfg.x()), cfg.D, cfg.k, cfg.T, cfg.nt)
        finite = np.all(np.isfinite(s), axis=(1, 2))
        return s, np.where(finite, "", "the solution is not finite").astype(object)
    args = (cfg.D, cfg.k, cfg.T, cfg.nx, cfg.nt)
    s = solve_diffusion_reaction(u, *args, refine=cfg.refine, substeps=cfg.substeps)
    half = solve_diffusion_reaction(u, *args, refine=cfg.refine // 2, substeps=cfg.substeps)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.all(np.isfinite(s), axis=(1, 2)) & np.all(np.isfinite(half), axis=(1, 2))
        est = np.abs(s - half).max(axis=(1, 2)) / 15.0 / np.maximum(1.0, np.abs(s).max(axis=(1, 2)))
    why = ["the solution is not finite (blow-up)" if not fi else
           f"convergence check: estimated error {e:.2e} > {PDE_TOL:.0e}; increase refine "
           f"(now {cfg.refine}) or substeps" if e > PDE_TOL else ""
           for e, fi in zip(est, finite, strict=True)]
    return s, np.array(why, dtype=object)


def sample(cfg: DiffusionReactionConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/u`` [n, m], ``outputs/s`` [n, nx·nt] (x-major) float32;
    ``solve=False``: ``inputs/u`` only (the same inputs, :func:`inputs_only`)."""
    if not cfg.solve:
        return inputs_only(cfg, rngs)

    def solve(u: FunctionBatch):
        s, why = labels(cfg, u)
        return [u(cfg.sensors()), s.reshape(u.n, -1)], why == "", why

    (u, s), _ = with_redraws(cfg.NAME, rngs, cfg.draw, solve, False, "")
    return {"inputs": {"u": u.astype(np.float32)}, "outputs": {"s": s.astype(np.float32)}}
