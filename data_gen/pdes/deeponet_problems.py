"""Shared machinery of the DeepONet problems (Lu et al., NMI 2021; lululxvi/deeponet ``src/``).

The five generators (``antiderivative``, ``nonlinear_ode``, ``pendulum``,
``diffusion_reaction``, ``advection``) each live in their own module, because the registry
maps one name to one module with one ``Config``; what they share is here: the common
configuration fields, the input-function draw, the ODE label solvers and the point layout
(the PDE label solvers are in :mod:`data_gen.pdes.deeponet_pde_solvers`, re-exported here).

Layout (DESIGN.md point data). Per sample: ``inputs/u`` [m] = u at the m sensors
(equispaced on the input domain), ``outputs/s`` [Q] = G(u) at Q query points. The query points
are one FIXED set per configuration (``coords/query`` [Q, d]), the same for every sample: the
"aligned" (Cartesian-product) layout that DeepXDE's ``TripleCartesianProd`` trains on. ODE
problems: query = linspace(0, T, n_query) (d = 1). PDE problems: the nx × nt grid
x_i = i/(nx − 1), t_j = jT/(nt − 1), flattened x-major (query[i·nt + j] = (x_i, t_j), so
``s.reshape(n, nx, nt)[:, i, j]`` = s(x_i, t_j)), as the reference's ``test_u_*`` do.

The reference's training data are "triples" (u, y, G(u)(y)): for the PDEs, P = 100 grid
indices per function drawn with replacement from the same nx × nt grid; :func:`random_triples`
draws exactly those from a stored dataset. For the ODEs the reference draws one
y ~ U[0, T] per function; from the stored grid one gets y uniform over the n_query points
(use a large n_query, e.g. 1000, if the discreteness matters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from data_gen.function_spaces import SPACES, FunctionBatch, sample_space
from data_gen.pdes.base import Fields
from data_gen.pdes.deeponet_pde_solvers import (  # re-exported: the PDE label solvers
    advection_exact,
    advection_reference,
    solve_adr_reference,
    solve_diffusion_reaction,
)

LABEL_SOLVERS = ("accurate", "reference")
ODE_TOL = 1e-8  # max |RK4(h) − RK4(2h)| / max(1, |s|) accepted (float32 labels: ~6e-8 relative)
PDE_TOL = 1e-7  # max |s_r − s_{r/2}| / 15 / max(1, |s|) accepted for diffusion–reaction
MAX_REDRAWS = 100

# ------------------------------------------------------------------------------- configuration


def _fail(name: str, key: str, value: object, expected: str) -> None:
    raise ValueError(f"{name}: {key}={value!r}, expected {expected}")


@dataclass(frozen=True)
class InputConfig:
    """Fields every DeepONet problem shares: the input-function space and the sensors."""

    NAME: ClassVar[str] = "deeponet"

    space: str = "grf"  # "grf" (RBF Gaussian random field) or "chebyshev" (OOD tests)
    length_scale: float = 0.2  # GRF: RBF length scale l
    grf_points: int | None = None  # GRF: knots N (None: 1000·T for ODEs, 1000 for PDEs)
    cheb_terms: int = 20  # Chebyshev: number of coefficients (degree + 1)
    cheb_bound: float = 1.0  # Chebyshev: a_i ~ U[−M, M]
    n_sensors: int = 100  # m, sensors equispaced on the input domain
    label_solver: str = "accurate"  # "accurate" or "reference" (the reference code's solver)

    def __post_init__(self) -> None:
        n = self.NAME
        if self.space not in SPACES:
            _fail(n, "space", self.space, f"one of {SPACES}")
        if not (np.isfinite(self.length_scale) and self.length_scale > 0):
            _fail(n, "length_scale", self.length_scale, "> 0")
        if self.grf_points is not None and not (_is_int(self.grf_points) and self.grf_points >= 4):
            _fail(n, "grf_points", self.grf_points, "an integer >= 4 or null")
        if not (_is_int(self.cheb_terms) and self.cheb_terms >= 1):
            _fail(n, "cheb_terms", self.cheb_terms, "an integer >= 1")
        if not (np.isfinite(self.cheb_bound) and self.cheb_bound > 0):
            _fail(n, "cheb_bound", self.cheb_bound, "> 0")
        if not (_is_int(self.n_sensors) and self.n_sensors >= 2):
            _fail(n, "n_sensors", self.n_sensors, "an integer >= 2")
        if self.label_solver not in LABEL_SOLVERS:
            _fail(n, "label_solver", self.label_solver, f"one of {LABEL_SOLVERS}")

    def input_domain(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def knots(self) -> int:
        """GRF knots N (reference: 1000 per unit length of the input domain)."""
        if self.grf_points is not None:
            return int(self.grf_points)
        a, b = self.input_domain()
        return max(4, int(round(1000 * (b - a))))

    def draw(self, rngs: Sequence[np.random.Generator]) -> FunctionBatch:
        """One input function per generator."""
        return sample_space(self.space, rngs, domain=self.input_domain(),
                            length_scale=self.length_scale, grf_points=self.knots(),
                            cheb_terms=self.cheb_terms, cheb_bound=self.cheb_bound)


@dataclass(frozen=True)
class ODEConfig(InputConfig):
    """ODE problems on x ∈ [0, T], s(0) = 0: sensors and queries equispaced on [0, T]."""

    T: float = 1.0  # end of the interval
    n_query: int = 100  # Q query points linspace(0, T, Q)
    ode_steps: int | None = None  # RK4 steps (None: the GRF knots; 4000 for Chebyshev)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.T) and self.T > 0):
            _fail(self.NAME, "T", self.T, "> 0")
        if not (_is_int(self.n_query) and self.n_query >= 2):
            _fail(self.NAME, "n_query", self.n_query, "an integer >= 2")
        if self.ode_steps is not None and not (_is_int(self.ode_steps) and self.ode_steps >= 1):
            _fail(self.NAME, "ode_steps", self.ode_steps, "an integer >= 1 or null")

    def input_domain(self) -> tuple[float, float]:
        return (0.0, float(self.T))

    def sensors(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.n_sensors)

    def query(self) -> np.ndarray:
        """[Q] query points (float64)."""
        return np.linspace(0.0, self.T, self.n_query)

    def base_grid(self) -> np.ndarray:
        """RK4 base grid: the GRF knots (so every step sees one cubic piece) or uniform."""
        steps = self.ode_steps
        if steps is None:
            steps = self.knots() - 1 if self.space == "grf" else 4000
        return np.linspace(0.0, self.T, steps + 1)


def ode_coords(cfg: ODEConfig) -> dict[str, np.ndarray]:
    return {"sensors": cfg.sensors(), "query": cfg.query()[:, None]}


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------- ODE integrators

Rhs = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (s [dim, ...], u [...]) -> [dim, ...]


def _rk4_columns(rhs: Rhs, s0: np.ndarray, h: np.ndarray, ua: np.ndarray, ub: np.ndarray,
                 uc: np.ndarray) -> np.ndarray:
    """RK4 steps with a step size per column: state s0 [dim, c]; step i of column j has size
    h[i, j] and input values ua/ub/uc [i, j] at its start, middle and end. Returns the states
    [K + 1, dim, c]. Elementwise only, so a column's bits do not depend on the others."""
    s = s0.copy()
    out = np.empty((h.shape[0] + 1, *s.shape))
    out[0] = s
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(h.shape[0]):
            hi = h[i]
            half = 0.5 * hi
            k1 = rhs(s, ua[i])
            k2 = rhs(s + half * k1, ub[i])
            k3 = rhs(s + half * k2, ub[i])
            k4 = rhs(s + hi * k3, uc[i])
            s = s + (hi / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
            out[i + 1] = s
    return out


def _interleave(points: np.ndarray) -> np.ndarray:
    """The points with their midpoints inserted: [2K − 1]."""
    out = np.empty(2 * points.size - 1)
    out[0::2] = points
    out[1::2] = 0.5 * (points[:-1] + points[1:])
    return out


def rk4(rhs: Rhs, s0: Sequence[float], u: FunctionBatch, grid: np.ndarray) -> np.ndarray:
    """Classical RK4 for s' = rhs(s, u(x)) on the (non-uniform) ``grid`` [K], all n functions
    at once. Returns the states [K, dim, n] (state [0] = s0). u is evaluated once, at every
    step's start, middle and end, in one vectorised call."""
    grid = np.asarray(grid, np.float64)
    uu = u(_interleave(grid)).T  # [2K − 1, n]
    h = np.repeat(np.diff(grid)[:, None], u.n, axis=1)
    s0 = np.repeat(np.asarray(s0, np.float64)[:, None], u.n, axis=1)
    return _rk4_columns(rhs, s0, h, uu[0:-1:2], uu[1::2], uu[2::2])


def ode_grid(base: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The base grid with the query points inserted (base points closer than 1e-9·T to a
    query point dropped): (grid [K], position of each query point in it [Q])."""
    span = float(base[-1] - base[0])
    near = np.zeros(base.size, bool)
    if query.size:
        sq = np.sort(query)
        j = np.clip(np.searchsorted(sq, base), 1, sq.size - 1) if sq.size > 1 else \
            np.zeros(base.size, int)
        dist = np.minimum(np.abs(base - sq[j]), np.abs(base - sq[np.maximum(j - 1, 0)]))
        near = dist <= 1e-9 * span
    grid = np.unique(np.concatenate([base[~near], query]))
    return grid, np.searchsorted(grid, query)


def solve_ode(rhs: Rhs, s0: Sequence[float], u: FunctionBatch, query: np.ndarray,
              base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accurate labels: RK4 on the base grid ∪ query points with every step halved, checked
    against RK4 on the grid itself (step doubling).

    Returns (s [n, dim, Q] from the halved grid, error estimate [n] = max over the grid of
    |s_h − s_2h| / max(1, |s_h|), about 15× the error of s_2h and more than that of s_h,
    finite [n]: every state finite). With the GRF the default base grid is the spline knots,
    so each step integrates one cubic piece: measured error of s_2h ~5e-13 (l = 0.2, N = 1000).
    Both runs advance together (2K iterations over 2n columns; the coarse columns take a
    zero step every other iteration).
    """
    grid, pos = ode_grid(np.asarray(base, np.float64), np.asarray(query, np.float64))
    n, k = u.n, grid.size - 1
    fine = _interleave(grid)  # [2K + 1]
    uu = u(_interleave(fine)).T  # [4K + 1, n]: fine points and fine midpoints
    h = np.zeros((2 * k, 2 * n))
    ua, ub, uc = (np.zeros((2 * k, 2 * n)) for _ in range(3))
    h[:, :n] = np.diff(fine)[:, None]
    ua[:, :n], ub[:, :n], uc[:, :n] = uu[0:-1:2], uu[1::2], uu[2::2]
    h[0::2, n:] = np.diff(grid)[:, None]
    ua[0::2, n:], ub[0::2, n:], uc[0::2, n:] = uu[0:-1:4], uu[2::4], uu[4::4]
    start = np.repeat(np.asarray(s0, np.float64)[:, None], 2 * n, axis=1)
    states = _rk4_columns(rhs, start, h, ua, ub, uc)[0::2]  # [K + 1, dim, 2n] on the grid
    s_fine, s_coarse = states[..., :n], states[..., n:]
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.all(np.isfinite(states), axis=(0, 1))
        finite = finite[:n] & finite[n:]
        diff = np.abs(s_fine - s_coarse) / np.maximum(1.0, np.abs(s_fine))
        est = np.where(finite, np.nan_to_num(diff, nan=np.inf).max(axis=(0, 1)), np.inf)
    labels = np.moveaxis(s_fine[pos], 0, -1)  # [dim, n, Q]
    return np.moveaxis(labels, 1, 0), est, finite


def solve_ode_refined(rhs: Rhs, s0: Sequence[float], u: FunctionBatch, query: np.ndarray,
                      base: np.ndarray, tol: float = ODE_TOL, refinements: int = 2
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`solve_ode`, then the samples whose estimate exceeds ``tol`` (finite ones, e.g.
    a solution growing large near a blow-up just after T) solved again on a 4× finer base
    grid, up to ``refinements`` times. A sample's result depends only on that sample."""
    s, est, finite = solve_ode(rhs, s0, u, query, base)
    for _ in range(refinements):
        redo = np.flatnonzero(finite & (est > tol))
        if redo.size == 0:
            break
        base = _interleave(_interleave(base))
        s[redo], est[redo], finite[redo] = solve_ode(rhs, s0, u.select(redo), query, base)
    return s, est, finite


# Dormand–Prince 5(4) as in scipy.integrate.RK45 (rk.py), with its step-size controller.
_DP_C = np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1])
_DP_A = [np.array([]), np.array([1 / 5]), np.array([3 / 40, 9 / 40]),
         np.array([44 / 45, -56 / 15, 32 / 9]),
         np.array([19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729]),
         np.array([9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656])]
_DP_B = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_DP_E = np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])


def _combine(coef: np.ndarray, stages: list[np.ndarray]) -> np.ndarray:
    """Σ_i coef[i]·stages[i], elementwise (no BLAS: a trajectory's bits do not depend on
    how many others share the batch)."""
    out = coef[0] * stages[0]
    for c, st in zip(coef[1:], stages[1:], strict=True):
        out = out + c * st
    return out


def rk45_reference(rhs: Rhs, s0: Sequence[float], u: FunctionBatch, query: np.ndarray,
                   rtol: float = 1e-3, atol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The reference's labels: for every (function, query point y) one
    ``solve_ivp(f, [0, y], s0, method="RK45")`` at scipy's default tolerances, returning the
    state at y, as ``ODESystem.eval_s`` does; all n·Q integrations advance together, each
    with its own step size, initial step (``select_initial_step``) and accept/reject logic
    (safety 0.9, factors 0.2..10, no growth right after a rejection).

    Returns (s [n, dim, Q], failed [n]: some integration stopped with scipy's "required step
    size is less than spacing between numbers", e.g. a blow-up; its state is kept as is).
    """
    query = np.asarray(query, np.float64)
    n, q = u.n, query.size
    dim = len(s0)
    idx = np.repeat(np.arange(n), q)
    tf = np.tile(query, n)
    p = idx.size
    t = np.zeros(p)
    y = np.repeat(np.asarray(s0, np.float64)[:, None], p, axis=1)

    def fun(sel: np.ndarray, tt: np.ndarray, yy: np.ndarray) -> np.ndarray:
        return rhs(yy, u.at(idx[sel], tt))

    def rms(v: np.ndarray) -> np.ndarray:
        return np.sqrt(np.sum(v * v, axis=0) / dim)

    everyone = np.arange(p)
    failed = np.zeros(p, bool)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f = fun(everyone, t, y)
        active = tf > 0
        # select_initial_step (order of the error estimator: 4)
        scale = atol + np.abs(y) * rtol
        d0, d1 = rms(y / scale), rms(f / scale)
        h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
        h0 = np.minimum(h0, tf)
        f1 = fun(everyone, t + h0, y + h0 * f)
        d2 = rms((f1 - f) / scale) / h0
        h1 = np.where((d1 <= 1e-15) & (d2 <= 1e-15), np.maximum(1e-6, h0 * 1e-3),
                      (0.01 / np.maximum(d1, d2)) ** 0.2)
        h_abs = np.minimum(np.minimum(100 * h0, h1), tf)
        rejected = np.zeros(p, bool)
        fresh = np.ones(p, bool)
        while active.any():
            a = np.flatnonzero(active)
            ta, ya, fa = t[a], y[:, a], f[:, a]
            min_step = 10 * np.abs(np.nextafter(ta, np.inf) - ta)
            ha = np.where(fresh[a] & (h_abs[a] < min_step), min_step, h_abs[a])
            small = ha < min_step
            if small.any():
                failed[a[small]] = True
                active[a[small]] = False
                keep = ~small
                a, ta, ya, fa, ha, min_step = a[keep], ta[keep], ya[:, keep], fa[:, keep], \
                    ha[keep], min_step[keep]
                if a.size == 0:
                    continue
            t_new = np.minimum(ta + ha, tf[a])
            h = t_new - ta
            ha = np.abs(h)
            stages = [fa]
            for c, coef in zip(_DP_C[1:], _DP_A[1:], strict=True):
                dy = _combine(coef, stages) * h
                stages.append(fun(a, ta + c * h, ya + dy))
            y_new = ya + h * _combine(_DP_B, stages)
            f_new = fun(a, ta + h, y_new)
            stages.append(f_new)
            scale = atol + np.maximum(np.abs(ya), np.abs(y_new)) * rtol
            err = rms(_combine(_DP_E, stages) * h / scale)
            accept = err < 1
            grow = np.where(err == 0, 10.0, np.minimum(10.0, 0.9 * err ** -0.2))
            grow = np.where(rejected[a], np.minimum(1.0, grow), grow)
            shrink = np.fmax(0.2, 0.9 * err ** -0.2)
            h_abs[a] = ha * np.where(accept, grow, shrink)
            acc = a[accept]
            t[acc] = t_new[accept]
            y[:, acc] = y_new[:, accept]
            f[:, acc] = f_new[:, accept]
            rejected[a] = ~accept
            fresh[a] = accept
            active[acc[t[acc] >= tf[acc]]] = False
    s = y.reshape(dim, n, q).transpose(1, 0, 2)
    return s, failed.reshape(n, q).any(axis=1)


# ------------------------------------------------------------------- chunk assembly, failures


def with_redraws(name: str, rngs: Sequence[np.random.Generator], draw: Callable,
                 solve: Callable, redraw_failures: bool, what: str
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """``solve(draw(rngs)) -> ([arrays [k, ...]], ok [k], reasons [k] str)`` over the chunk.

    A sample that is not ok raises FloatingPointError naming its position in the chunk and
    the reason, unless ``redraw_failures``: then it draws a new input function from its own
    generator (so its bytes still depend on nothing else) until ok, at most MAX_REDRAWS times.
    Returns (arrays, redraws [n] int64).
    """
    arrays, ok, why = solve(draw(list(rngs)))
    redraws = np.zeros(len(rngs), np.int64)
    todo = np.flatnonzero(~ok)
    while todo.size:
        if not redraw_failures:
            i = int(todo[0])
            raise FloatingPointError(f"{name}: sample {i} of the chunk ({len(rngs)} samples): "
                                     f"{why[i]}{what}")
        if redraws[todo].max() >= MAX_REDRAWS:
            raise FloatingPointError(f"{name}: sample {int(todo[0])} of the chunk: no valid "
                                     f"input function after {MAX_REDRAWS} draws")
        redraws[todo] += 1
        new, ok_new, why_new = solve(draw([rngs[i] for i in todo]))
        for arr, part in zip(arrays, new, strict=True):
            arr[todo] = part
        why = np.asarray(why, dtype=object)
        why[todo] = why_new
        todo = todo[~ok_new]
    return arrays, redraws


def check_solve(name: str, solve: object) -> None:
    """``solve`` (the config key that skips the label solve) must be a bool."""
    if not isinstance(solve, bool | np.bool_):
        _fail(name, "solve", solve, "true or false")


def inputs_only(cfg: InputConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """``{"inputs": {"u": [n, m] float32}}``: the input functions at the sensors, unsolved
    (``solve=False``). The label solves draw no random numbers and never redraw (a failure
    raises), so these are the inputs of the solved data from the same generators."""
    return {"inputs": {"u": cfg.draw(list(rngs))(cfg.sensors()).astype(np.float32)}}


def ode_reasons(est: np.ndarray, finite: np.ndarray, tol: float = ODE_TOL) -> np.ndarray:
    return np.array(["the solution is not finite (blow-up)" if not fi else
                     f"RK4 step-doubling error estimate {e:.2e} > {tol:.0e}; increase ode_steps"
                     if e > tol else "" for e, fi in zip(est, finite, strict=True)], dtype=object)


# -------------------------------------------------------------------------------- PDE config


@dataclass(frozen=True)
class GridConfig(InputConfig):
    """PDE problems on x ∈ [0, 1], t ∈ [0, T]: output grid nx × nt, sensors on [0, 1]."""

    T: float = 1.0  # final time
    nx: int = 100  # output nodes in x (boundary included)
    nt: int = 100  # output times in [0, T] (t = 0 included)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.T) and self.T > 0):
            _fail(self.NAME, "T", self.T, "> 0")
        if not (_is_int(self.nx) and self.nx >= 3):
            _fail(self.NAME, "nx", self.nx, "an integer >= 3")
        if not (_is_int(self.nt) and self.nt >= 2):
            _fail(self.NAME, "nt", self.nt, "an integer >= 2")

    def sensors(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.n_sensors)

    def x(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.nx)

    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.nt)

    def query(self) -> np.ndarray:
        """[nx·nt, 2] (x, t), x-major."""
        xx, tt = np.meshgrid(self.x(), self.t(), indexing="ij")
        return np.stack([xx.ravel(), tt.ravel()], axis=1)


def grid_coords(cfg: GridConfig) -> dict[str, np.ndarray]:
    return {"sensors": cfg.sensors(), "query": cfg.query(), "x": cfg.x(), "t": cfg.t()}


# --------------------------------------------------------------------------------- triples


def random_triples(u: np.ndarray, s: np.ndarray, query: np.ndarray, points: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's unaligned training triples from an aligned dataset.

    ``u`` [n, m], ``s`` [n, Q], ``query`` [Q, d]: for each function, ``points`` query indices
    drawn uniformly with replacement (``eval_s_sampling``). Returns (u [n·points, m],
    y [n·points, d], s [n·points, 1]), grouped by function.
    """
    n, q = s.shape
    j = rng.integers(0, q, size=(n, points))
    return (np.repeat(u, points, axis=0), np.asarray(query)[j.ravel()],
            np.take_along_axis(s, j, axis=1).reshape(-1, 1))


__all__ = ["LABEL_SOLVERS", "MAX_REDRAWS", "ODE_TOL", "PDE_TOL", "GridConfig", "InputConfig",
           "ODEConfig", "advection_exact", "advection_reference", "grid_coords", "ode_coords",
           "ode_grid", "ode_reasons", "random_triples", "rk4", "rk45_reference",
           "solve_adr_reference", "solve_diffusion_reaction", "solve_ode", "solve_ode_refined",
           "with_redraws"]
