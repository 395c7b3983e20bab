"""PROSE ODE systems (Liu, Sun, Zhang & Schaeffer 2024; felix-lyx/prose ``prose_ode``,
``symbolicregression/envs/generators.py``): 15 chaotic / nonlinear ODE systems, their
expressions in prefix notation, and trajectories on t ∈ [0, 6].

Per equation: every coefficient p is drawn uniformly from [p − γ|p|, p + γ|p|] (γ = ``gamma``,
0.1 in the paper; 0.15/0.2 for the out-of-distribution tests) and rounded to 3 significant
digits (``float(f"{v:.2e}")``, the reference's ``float_precision=2`` float encoding) BEFORE it
enters both the right-hand side and the expression, so the stored expression is exactly the
system that was integrated. ``ics_per_equation`` consecutive samples (20 for train; the
reference's ``ICs_per_equation // 5`` = 4 for val/test, ``eval_ics_per_equation``) share one
equation; each draws its own initial condition u(0) ~ U[−2, 2]^d. Equations go round-robin
over the selected systems: equation e is system ``types[e % len(types)]``.

Solve: :func:`data_gen.ode_solver.solve` (vectorised Dormand–Prince 5(4), rtol 1e-5,
atol 1e-6, scipy's controller), sampled at t = linspace(0, 6, 192). The reference uses
``solve_ivp`` with BDF/LSODA/RK45 per system; at these tolerances none of the systems is
stiff on [0, 6] (see ``tests/test_ode_solver.py`` and the issue report: explicit steps are
limited by accuracy, not stability), and DP5 meets the reference's accuracy.

Rejection (as the reference): a trajectory with max|u| ≥ 1e3 (Rabinovich–Fabrikant: 1e5, as
coded), a solver failure or ``max_steps`` step attempts is rejected and the sample draws a
new initial condition from its OWN stream (same equation), up to ``max_ic_draws`` draws.
``params/ic_draws`` records which draw was kept (1 = the first). Speculative extra draws
are solved in waves of 1, 2, 4, ... candidates per still-failing sample; the kept one is
always the first valid candidate of the sample's fixed sequence, so the bytes do not depend
on the waves, the chunk or the other samples.

Seeds: sample i of split s draws its initial conditions from ``SeedSequence([seed, s, i])``
(the runner's stream); equation e of split s draws its coefficients from
``SeedSequence([seed, s, 2**48 + e])`` (:data:`EQUATION_STREAM`), so the samples of one
equation agree on its coefficients even when they fall in different chunks, workers or
shards.

HDF5 layout (N samples, D = the largest dimension of the selected systems: 3 for ``ode_3d``,
5 for ``ode_all``; components beyond a system's d are zero)::

    inputs/u            float32 [N, 64, D]   u(t) at t_in (t <= 1.98): the observed part
    outputs/u           float32 [N, 128, D]  u(t) at t_out (t in [2.01, 6]): the targets
    coords/t_in         float64 [64]         linspace(0, 6, 192)[:64]
    coords/t_out        float64 [128]        linspace(0, 6, 192)[64:]
    params/system       int64   [N]          index in SYSTEMS (stable: all 15, reference order)
    params/dim          int64   [N]          the system's dimension d
    params/coeffs       float64 [N, 5]       its coefficients in COEFFS[name] order, 0-padded
    params/equation     int64   [N]          equation index within the split
    params/ic_draws     int64   [N]          initial conditions drawn until a valid one
    symbols/system      utf-8   [N]          system name, e.g. "lorenz_3d"
    symbols/expression  utf-8   [N]          the right-hand side in prefix notation

Stored data are clean; the paper's 2 % trajectory noise is added at load time
(:func:`opnet.data.noise.add_trajectory_noise`).

The systems themselves (right-hand sides, expression builders, nominal coefficients) are
in :mod:`data_gen.pdes.ode_system_table`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from data_gen.ode_solver import solve
from data_gen.pdes.base import Chunk, Fields
from data_gen.pdes.ode_system_table import *  # noqa: F403 (the systems, re-exported)
from data_gen.pdes.ode_system_table import MAX_COEFFS, SYSTEM_INDEX, SYSTEMS, TYPES

#: Samples per chunk when ``chunk_size`` is not given: the vectorised solver is fast per
#: trajectory, so small chunks pay their overhead (n_train=20000, 2 workers: 743 trajectories/s
#: in chunks of 16, 6601/s in chunks of 4096; the README's paper set-up uses 19200).
DEFAULT_CHUNK = 4096
EQUATION_STREAM = 2**48  # equation e uses SeedSequence([seed, split_id, EQUATION_STREAM + e])


# ---------------------------------------------------------------------------- configuration


def _fail(key: str, value: object, expected: str) -> None:
    raise ValueError(f"ode_systems: {key}={value!r}, expected {expected}")


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class OdeSystemsConfig:
    types: str = "ode_3d"  # ode_3d (12 3-D systems) | ode_all (15) | "name,name,..."
    gamma: float = 0.1  # coefficients ~ U[p − γ|p|, p + γ|p|]
    ics_per_equation: int = 20  # train: consecutive samples sharing one equation
    eval_ics_per_equation: int = 4  # val/test (the reference: ICs_per_equation // 5)
    ic_range: float = 2.0  # u(0) ~ U[−r, r]^d
    t_end: float = 6.0
    n_times: int = 192  # t = linspace(0, t_end, n_times)
    n_input: int = 64  # the first n_input times are inputs, the rest outputs
    rtol: float = 1e-5
    atol: float = 1e-6
    bound: float = 1e3  # reject max|u| >= bound (Rabinovich–Fabrikant: fabrikant_bound)
    fabrikant_bound: float = 1e5
    max_steps: int = 20_000  # step attempts per trajectory before it counts as failed
    max_ic_draws: int = 100  # initial conditions tried per sample before giving up

    def __post_init__(self) -> None:
        types = self.types
        if isinstance(types, (list, tuple)):
            types = ",".join(str(t) for t in types)
            object.__setattr__(self, "types", types)
        if not isinstance(types, str) or not types:
            _fail("types", types, f"one of {sorted(TYPES)} or a comma-separated list of "
                  f"system names from {list(SYSTEMS)}")
        if types not in TYPES:
            names = [t.strip() for t in types.split(",")]
            unknown = [t for t in names if t not in SYSTEMS]
            if unknown or not names:
                _fail("types", types, f"one of {sorted(TYPES)} or a comma-separated list of "
                      f"system names from {list(SYSTEMS)} (unknown: {unknown})")
        if not (np.isfinite(self.gamma) and 0 <= self.gamma < 1):
            _fail("gamma", self.gamma, "a number in [0, 1)")
        for key in ("ics_per_equation", "eval_ics_per_equation", "max_ic_draws", "max_steps"):
            v = getattr(self, key)
            if not (_is_int(v) and v >= 1):
                _fail(key, v, "an integer >= 1")
        if not (_is_int(self.n_times) and _is_int(self.n_input)
                and 1 <= self.n_input < self.n_times):
            _fail("n_input", self.n_input, f"an integer in [1, n_times={self.n_times})")
        for key in ("ic_range", "t_end", "rtol", "atol", "bound", "fabrikant_bound"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and v > 0):
                _fail(key, v, "a number > 0")

    def systems(self) -> tuple[str, ...]:
        if self.types in TYPES:
            return TYPES[self.types]
        return tuple(t.strip() for t in self.types.split(","))

    def max_dim(self) -> int:
        return max(SYSTEMS[s].dim for s in self.systems())

    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, self.n_times)

    def ics(self, split_id: int) -> int:
        return self.ics_per_equation if split_id == 0 else self.eval_ics_per_equation

    def bound_of(self, name: str) -> float:
        return self.fabrikant_bound if name == "fabrikant" else self.bound


Config = OdeSystemsConfig


def coords(cfg: OdeSystemsConfig) -> dict[str, np.ndarray]:
    """``t_in`` [n_input] and ``t_out`` [n_times − n_input] of linspace(0, t_end, n_times)."""
    t = cfg.times()
    return {"t_in": t[:cfg.n_input], "t_out": t[cfg.n_input:]}


class Equation(NamedTuple):
    index: int
    system: str
    coeffs: dict[str, float]


def equation(cfg: OdeSystemsConfig, seed: int, split_id: int, e: int) -> Equation:
    """Equation ``e`` of a split: its system (round-robin) and rounded coefficients."""
    names = cfg.systems()
    system = SYSTEMS[names[e % len(names)]]
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_id, EQUATION_STREAM + e]))
    return Equation(e, system.name, system.coefficients(rng, cfg.gamma))


def solve_system(cfg: OdeSystemsConfig, name: str, coeffs: dict[str, np.ndarray],
                 u0: np.ndarray):
    """Trajectories of system ``name`` with per-trajectory ``coeffs`` {name: [n]} from
    ``u0`` [n, d] at ``cfg.times()``: the solver's :class:`Solution` (y [n, T, d])."""
    system = SYSTEMS[name]
    return solve(system.rhs, u0, cfg.times(), coeffs, rtol=cfg.rtol, atol=cfg.atol,
                 bound=cfg.bound_of(name), max_steps=cfg.max_steps)


def sample(cfg: OdeSystemsConfig, rngs: Sequence[np.random.Generator],
           chunk: Chunk | None = None) -> Fields:
    """One chunk: ``len(rngs)`` samples starting at global index ``chunk.start`` of split
    ``chunk.split_id`` (default: seed 0, train, start 0)."""
    chunk = chunk or Chunk(0, 0, 0)
    n = len(rngs)
    gidx = chunk.start + np.arange(n)
    eq_index = gidx // cfg.ics(chunk.split_id)
    eqs = {int(e): equation(cfg, chunk.seed, chunk.split_id, int(e)) for e in np.unique(eq_index)}
    dmax = cfg.max_dim()
    traj = np.zeros((n, cfg.n_times, dmax), np.float32)
    draws = np.zeros(n, np.int64)
    system_of = np.array([eqs[int(e)].system for e in eq_index])
    for name in dict.fromkeys(system_of):  # systems in order of first appearance
        members = np.flatnonzero(system_of == name)
        y, used = _solve_with_redraws(cfg, name, [eqs[int(eq_index[i])] for i in members],
                                      [rngs[i] for i in members], gidx[members], chunk)
        traj[members, :, :y.shape[2]] = y
        draws[members] = used
    coeffs = np.zeros((n, MAX_COEFFS))
    expressions = {}
    for e, eq in eqs.items():
        expressions[e] = SYSTEMS[eq.system].expression(eq.coeffs)
    for i, e in enumerate(eq_index):
        vals = list(eqs[int(e)].coeffs.values())
        coeffs[i, :len(vals)] = vals
    return {
        "inputs": {"u": traj[:, :cfg.n_input]},
        "outputs": {"u": traj[:, cfg.n_input:]},
        "params": {"system": np.array([SYSTEM_INDEX[s] for s in system_of], np.int64),
                   "dim": np.array([SYSTEMS[s].dim for s in system_of], np.int64),
                   "coeffs": coeffs, "equation": eq_index.astype(np.int64),
                   "ic_draws": draws},
        "symbols": {"system": system_of.astype(str),
                    "expression": np.array([expressions[int(e)] for e in eq_index], dtype=str)},
    }


def _solve_with_redraws(cfg: OdeSystemsConfig, name: str, eqs: list[Equation],
                        rngs: list[np.random.Generator], gidx: np.ndarray, chunk: Chunk
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories [k, T, d] of ``name`` for k samples, each from the first valid initial
    condition of its own sequence of draws; and how many draws that took [k]."""
    system = SYSTEMS[name]
    d, k = system.dim, len(rngs)
    coeffs = {c: np.array([eq.coeffs[c] for eq in eqs]) for c in eqs[0].coeffs}
    out = np.zeros((k, cfg.n_times, d))
    used = np.zeros(k, np.int64)  # draws consumed so far
    kept = np.zeros(k, np.int64)  # the draw that was kept (0: none yet)
    todo = np.arange(k)
    wave = 1
    while todo.size:
        m = np.minimum(wave, cfg.max_ic_draws - used[todo])
        exhausted = todo[m <= 0]
        if exhausted.size:
            i = int(exhausted[0])
            raise FloatingPointError(
                f"ode_systems: sample {int(gidx[i])} ({name}, equation {eqs[i].index}, "
                f"coefficients {eqs[i].coeffs}): no valid trajectory in {cfg.max_ic_draws} "
                f"initial conditions (bound {cfg.bound_of(name):g}); raise max_ic_draws or "
                "lower gamma")
        owner = np.repeat(todo, m)
        u0 = np.concatenate([rngs[i].uniform(-cfg.ic_range, cfg.ic_range, size=(mi, d))
                             for i, mi in zip(todo, m, strict=True)])
        sol = solve_system(cfg, name, {c: v[owner] for c, v in coeffs.items()}, u0)
        start = 0
        for i, mi in zip(todo, m, strict=True):
            good = np.flatnonzero(sol.ok[start:start + mi])
            if good.size:
                j = start + int(good[0])
                out[i] = sol.y[j]
                kept[i] = used[i] + int(good[0]) + 1
            start += mi
        used[todo] += m
        todo = todo[kept[todo] == 0]
        wave *= 2
    return out, kept
