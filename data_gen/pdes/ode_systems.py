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

Expressions are the reference's trees (same operators, operand order and nesting, so the
token counts match) written in human prefix form: tokens separated by spaces, variables
``u_0 .. u_4``, floats as decimal literals (``repr`` of the rounded value, e.g. ``-2.72``),
components joined by `` | ``. Lorenz (33 tokens with 3-token floats, skeleton 25)::

    add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1 |
    add mul u_0 u_1 mul -2.72 u_2

Stored data are clean; the paper's 2 % trajectory noise is added at load time
(:func:`opnet.data.noise.add_trajectory_noise`).

Reproduced as coded in the reference (not the textbook forms):

* Aizawa: z' = c + a z − z³/3 − x² + f z x³ (no (x² + y²)(1 + e z) coupling; e is not used);
* Halvorsen: x' = a x − y − z − 0.25 y² (cyclic), i.e. the textbook b = 4 rescaled;
* Rabinovich–Fabrikant: α is drawn as −2·U[0.98(1 − γ), 0.98(1 + γ)] (nominal −1.96);
* Duffing: autonomous with u_0 = t as a state (u_0' = 1), forcing γ cos(ω u_0);
* double pendulum: ω₂' = sin(θ₁ − θ₂)[4ω₁² + c cos θ₁ + ω₂² cos(θ₁ − θ₂)]/(3 − cos 2(θ₁ − θ₂))
  where the equal-mass textbook form has 2ω₂² cos(θ₁ − θ₂): the coded system does not
  conserve energy. g ~ 9.81(1 ± γ), l ~ 1 ± γ are drawn and a = −3g/l, b = −g/l, c = 4g/l
  are each rounded to 3 significant digits (the coefficients stored and written).

Float literals differ from the reference's strings only where it prints an integer-times-
power-of-ten product with a representation error (e.g. ``0.015200000000000001``): ours is the
double nearest to the 3-digit decimal and prints as that decimal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from data_gen.ode_solver import solve
from data_gen.pdes.base import Chunk, Fields

#: Samples per chunk when ``chunk_size`` is not given: the vectorised solver is fast per
#: trajectory, so small chunks pay their overhead (n_train=20000, 2 workers: 743 trajectories/s
#: in chunks of 16, 6601/s in chunks of 4096; the README's paper set-up uses 19200).
DEFAULT_CHUNK = 4096
EQUATION_STREAM = 2**48  # equation e uses SeedSequence([seed, split_id, EQUATION_STREAM + e])
MAX_COEFFS = 5


def round3(v: float | np.ndarray) -> float | np.ndarray:
    """Round to 3 significant digits (the double nearest to the 3-digit decimal)."""
    if np.ndim(v):
        return np.array([float(f"{x:.2e}") for x in np.ravel(v)]).reshape(np.shape(v))
    return float(f"{float(v):.2e}")


def num(v: float) -> str:
    """A coefficient as a decimal literal: the shortest repr of the double."""
    return repr(float(v)) if v != 0 else "0.0"


# ------------------------------------------------------------------- prefix tree builders


def mul(*factors: str) -> str:
    """The reference's ``mul_terms``: right-nested products, mul a mul b c."""
    out = factors[-1]
    for f in reversed(factors[:-1]):
        out = f"mul {f} {out}"
    return out


def fold(ops: Sequence[str], terms: Sequence[str]) -> str:
    """The reference's ``tree_from_list`` for one component: ((t0 op0 t1) op1 t2) ..."""
    out = terms[0]
    for op, term in zip(ops, terms[1:], strict=True):
        out = f"{op} {out} {term}"
    return out


def add_right(*terms: str) -> str:
    """The reference's ``add_terms``: right-nested sums, add t0 add t1 t2."""
    out = terms[-1]
    for t in reversed(terms[:-1]):
        out = f"add {t} {out}"
    return out


# ------------------------------------------------------------------------------ the systems

Coeffs = dict[str, np.ndarray]  # coefficient name -> [m] (one value per trajectory)


def _rows(*rows: np.ndarray) -> np.ndarray:
    return np.stack(rows)


def thomas_rhs(t, y, c: Coeffs):
    x, v, z = y
    b = c["b"]
    return _rows(np.sin(v) - b * x, np.sin(z) - b * v, np.sin(x) - b * z)


def thomas_expr(c):
    mb = num(-c["b"])
    return [fold(["add"], [f"sin u_{(i + 1) % 3}", mul(mb, f"u_{i}")]) for i in range(3)]


def lorenz_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(c["sigma"] * (v - x), x * (c["rho"] - z) - v, x * v - c["beta"] * z)


def lorenz_expr(c):
    s, r, b = c["sigma"], c["rho"], c["beta"]
    return [fold(["add"], [mul(num(s), "u_1"), mul(num(-s), "u_0")]),
            fold(["sub", "sub"], [mul(num(r), "u_0"), mul("u_0", "u_2"), "u_1"]),
            fold(["add"], [mul("u_0", "u_1"), mul(num(-b), "u_2")])]


def aizawa_rhs(t, y, c: Coeffs):
    x, v, z = y
    zb = z - c["b"]
    d = c["d"]
    return _rows(zb * x - d * v, d * x + zb * v,
                 c["c"] + c["a"] * z - z * z * z / 3 - x * x + c["f"] * z * x * x * x)


def aizawa_expr(c):
    a, b, cc, d, f = (c[k] for k in "abcdf")
    return [fold(["add", "add"], [mul("u_0", "u_2"), mul(num(-b), "u_0"), mul(num(-d), "u_1")]),
            fold(["add", "add"], [mul(num(d), "u_0"), mul("u_1", "u_2"), mul(num(-b), "u_1")]),
            fold(["add", "sub", "sub", "add"],
                 [num(cc), mul(num(a), "u_2"), f"div {mul('u_2', 'u_2', 'u_2')} 3.0",
                  mul("u_0", "u_0"), mul(num(f), "u_0", "u_0", "u_0", "u_2")])]


def chen_lee_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(c["a"] * x - v * z, -10.0 * v + x * z, c["d"] * z + x * v / 3)


def chen_lee_expr(c):
    return [fold(["sub"], [mul(num(c["a"]), "u_0"), mul("u_1", "u_2")]),
            fold(["add"], [mul("-10.0", "u_1"), mul("u_0", "u_2")]),
            fold(["add"], [mul(num(c["d"]), "u_2"), f"div {mul('u_0', 'u_1')} 3.0"])]


def dadras_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(0.5 * v - c["a"] * x + c["b"] * v * z, c["c"] * v - 0.5 * x * z + 0.5 * z,
                 c["d"] * x * v - c["e"] * z)


def dadras_expr(c):
    a, b, cc, d, e = (c[k] for k in "abcde")
    return [fold(["add", "add"], [mul("0.5", "u_1"), mul(num(-a), "u_0"),
                                  mul(num(b), "u_1", "u_2")]),
            fold(["add", "add"], [mul(num(cc), "u_1"), mul("-0.5", "u_0", "u_2"),
                                  mul("0.5", "u_2")]),
            fold(["add"], [mul(num(d), "u_0", "u_1"), mul(num(-e), "u_2")])]


def rossler_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(-v - z, x + c["a"] * v, c["b"] + z * (x - c["c"]))


def rossler_expr(c):
    return ["sub neg u_1 u_2",
            fold(["add"], ["u_0", mul(num(c["a"]), "u_1")]),
            fold(["add", "add"], [num(c["b"]), mul("u_0", "u_2"), mul(num(-c["c"]), "u_2")])]


def halvorsen_rhs(t, y, c: Coeffs):
    x, v, z = y
    a = c["a"]
    return _rows(a * x - v - z - 0.25 * v * v, a * v - z - x - 0.25 * z * z,
                 a * z - x - v - 0.25 * x * x)


def halvorsen_expr(c):
    a = num(c["a"])
    return [fold(["sub"] * 3, [mul(a, f"u_{i}"), f"u_{(i + 1) % 3}", f"u_{(i + 2) % 3}",
                               mul("0.25", f"u_{(i + 1) % 3}", f"u_{(i + 1) % 3}")])
            for i in range(3)]


def fabrikant_rhs(t, y, c: Coeffs):
    x, v, z = y
    g = c["gamma"]
    return _rows(v * (z - 1 + x * x) + g * x, x * (3 * z + 1 - x * x) + g * v,
                 c["alpha"] * z - 2 * x * v * z)


def fabrikant_expr(c):
    g = num(c["gamma"])
    return [fold(["sub", "add", "add"], [mul("u_1", "u_2"), "u_1", mul("u_0", "u_0", "u_1"),
                                         mul(g, "u_0")]),
            fold(["add", "sub", "add"], [mul("3.0", "u_0", "u_2"), "u_0",
                                         mul("u_0", "u_0", "u_0"), mul(g, "u_1")]),
            fold(["add"], [mul(num(c["alpha"]), "u_2"), mul("-2.0", "u_0", "u_1", "u_2")])]


def sprott_b_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(c["a"] * v * z, x - c["b"] * v, c["c"] - x * v)


def sprott_b_expr(c):
    return [mul(num(c["a"]), "u_1", "u_2"),
            fold(["add"], ["u_0", mul(num(-c["b"]), "u_1")]),
            fold(["sub"], [num(c["c"]), mul("u_0", "u_1")])]


def sprott_linz_f_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(v + z, -x + c["a"] * v, x * x - z)


def sprott_linz_f_expr(c):
    return ["add u_1 u_2", fold(["sub"], [mul(num(c["a"]), "u_1"), "u_0"]),
            fold(["sub"], [mul("u_0", "u_0"), "u_2"])]


def four_wing_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(c["a"] * x + v * z, c["b"] * x + c["c"] * v - x * z, -z - x * v)


def four_wing_expr(c):
    return [fold(["add"], [mul(num(c["a"]), "u_0"), mul("u_1", "u_2")]),
            fold(["add", "sub"], [mul(num(c["b"]), "u_0"), mul(num(c["c"]), "u_1"),
                                  mul("u_0", "u_2")]),
            fold(["sub"], ["neg u_2", mul("u_0", "u_1")])]


def lorenz96_rhs(t, y, c: Coeffs):
    n = y.shape[0]
    F = c["F"]
    return _rows(*((y[(i + 1) % n] - y[(i - 2) % n]) * y[(i - 1) % n] - y[i] + F
                   for i in range(n)))


def lorenz96_expr(n: int) -> Callable[[dict], list[str]]:
    def expr(c):
        F = num(c["F"])
        out = []
        for i in range(n):
            nb = [(i + 1) % n, (i - 1) % n, (i - 2) % n]  # factors in ascending index order
            plus = mul(*(f"u_{k}" for k in sorted(nb[:2])))
            minus = mul(*(f"u_{k}" for k in sorted(nb[1:])))
            out.append(fold(["sub", "sub", "add"], [plus, minus, f"u_{i}", F]))
        return out

    return expr


def duffing_rhs(t, y, c: Coeffs):
    x, v, z = y
    return _rows(np.ones_like(x), z, c["delta"] * z + c["alpha"] * v + c["beta"] * v * v * v
                 + c["gamma"] * np.cos(c["omega"] * x))


def duffing_expr(c):
    forcing = f"mul {num(c['gamma'])} cos {mul(num(c['omega']), 'u_0')}"
    return ["1.0", "u_2",
            fold(["add"] * 3, [mul(num(c["delta"]), "u_2"), mul(num(c["alpha"]), "u_1"),
                               mul(num(c["beta"]), "u_1", "u_1", "u_1"), forcing])]


def double_pendulum_rhs(t, y, c: Coeffs):
    th1, th2, w1, w2 = y
    d = th1 - th2
    sd, cd = np.sin(d), np.cos(d)
    den = 3 - np.cos(2 * d)
    return _rows(w1, w2,
                 (c["a"] * np.sin(th1) + c["b"] * np.sin(th1 - 2 * th2)
                  - 2 * sd * (w2 * w2 + w1 * w1 * cd)) / den,
                 sd * (4 * w1 * w1 + c["c"] * np.cos(th1) + w2 * w2 * cd) / den)


def double_pendulum_expr(c):
    den = "sub 3.0 cos mul 2.0 sub u_0 u_1"
    num0 = add_right(f"mul {num(c['a'])} sin u_0",
                     f"mul {num(c['b'])} sin add u_0 mul -2.0 u_1",
                     "mul -2.0 mul sin sub u_0 u_1 add mul u_3 u_3 mul mul u_2 u_2 cos sub u_0 u_1")
    num1 = add_right(mul("4.0", "u_2", "u_2"), f"mul {num(c['c'])} cos u_0",
                     "mul mul u_3 u_3 cos sub u_0 u_1")
    return ["u_2", "u_3", f"div {num0} {den}", f"div mul sin sub u_0 u_1 {num1} {den}"]


def _pendulum_coeffs(rng: np.random.Generator, gamma: float) -> dict[str, float]:
    g = rng.uniform(9.81 * (1 - gamma), 9.81 * (1 + gamma))
    ln = rng.uniform(1 - gamma, 1 + gamma)
    return {"a": round3(-3 * g / ln), "b": round3(-g / ln), "c": round3(4 * g / ln)}


@dataclass(frozen=True)
class System:
    """One ODE system: its coefficients' nominal values, the numpy right-hand side
    ``rhs(t [m], u [d, m], coeffs {name: [m]}) -> [d, m]`` and the expression builder
    ``expr({name: float}) -> [component prefix strings]``."""

    name: str
    dim: int
    nominal: dict[str, float]
    rhs: Callable
    expr: Callable[[dict], list[str]]
    bound: float = 1e3
    draw: Callable | None = field(default=None, repr=False)  # custom coefficient draw

    def coefficients(self, rng: np.random.Generator, gamma: float) -> dict[str, float]:
        """One equation: each coefficient ~ U[p − γ|p|, p + γ|p|], rounded to 3 digits."""
        if self.draw is not None:
            return self.draw(rng, gamma)
        return {k: round3(rng.uniform(p - gamma * abs(p), p + gamma * abs(p)))
                for k, p in self.nominal.items()}

    def expression(self, coeffs: dict[str, float]) -> str:
        return " | ".join(self.expr(coeffs))


_SYSTEMS = [
    System("thomas", 3, {"b": 0.17}, thomas_rhs, thomas_expr),
    System("lorenz_3d", 3, {"sigma": 10.0, "rho": 28.0, "beta": 8 / 3}, lorenz_rhs,
           lorenz_expr),
    System("aizawa", 3, {"a": 0.95, "b": 0.7, "c": 0.6, "d": 3.5, "f": 0.1}, aizawa_rhs,
           aizawa_expr),
    System("chen_lee", 3, {"a": 5.0, "d": -0.38}, chen_lee_rhs, chen_lee_expr),
    System("dadras", 3, {"a": 1.25, "b": 1.15, "c": 0.75, "d": 0.8, "e": 4.0}, dadras_rhs,
           dadras_expr),
    System("rossler", 3, {"a": 0.1, "b": 0.1, "c": 14.0}, rossler_rhs, rossler_expr),
    System("halvorsen", 3, {"a": -0.35}, halvorsen_rhs, halvorsen_expr),
    System("fabrikant", 3, {"alpha": -1.96, "gamma": 0.1}, fabrikant_rhs, fabrikant_expr,
           bound=1e5),
    System("sprott_B", 3, {"a": 0.4, "b": 1.2, "c": 1.0}, sprott_b_rhs, sprott_b_expr),
    System("sprott_linz_F", 3, {"a": 0.5}, sprott_linz_f_rhs, sprott_linz_f_expr),
    System("four_wing", 3, {"a": 0.2, "b": 0.01, "c": -0.4}, four_wing_rhs, four_wing_expr),
    System("lorenz_96_4d", 4, {"F": 8.0}, lorenz96_rhs, lorenz96_expr(4)),
    System("lorenz_96_5d", 5, {"F": 8.0}, lorenz96_rhs, lorenz96_expr(5)),
    System("duffing", 3, {"alpha": -1.0, "beta": -5.0, "gamma": 8.0, "delta": -0.02,
                          "omega": 0.5}, duffing_rhs, duffing_expr),
    System("double_pendulum", 4, {"a": -3 * 9.81, "b": -9.81, "c": 4 * 9.81},
           double_pendulum_rhs, double_pendulum_expr, draw=_pendulum_coeffs),
]
SYSTEMS: dict[str, System] = {s.name: s for s in _SYSTEMS}
SYSTEM_INDEX: dict[str, int] = {s.name: i for i, s in enumerate(_SYSTEMS)}
TYPES: dict[str, tuple[str, ...]] = {
    "ode_3d": ("thomas", "lorenz_3d", "aizawa", "chen_lee", "dadras", "rossler", "halvorsen",
               "fabrikant", "sprott_B", "sprott_linz_F", "four_wing", "duffing"),
    "ode_all": tuple(SYSTEMS),
}
COEFFS: dict[str, tuple[str, ...]] = {s.name: tuple(s.nominal) for s in _SYSTEMS}


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
