"""The 15 PROSE ODE systems (felix-lyx/prose ``prose_ode``,
``symbolicregression/envs/generators.py``): numpy right-hand sides vectorised over
trajectories, expression builders in prefix notation, nominal coefficients and the
``types`` groups. The generator that draws and solves them is
:mod:`data_gen.pdes.ode_systems`.

Expressions are the reference's trees (same operators, operand order and nesting, so the
token counts match) written in human prefix form: tokens separated by spaces, variables
``u_0 .. u_4``, floats as decimal literals (``repr`` of the rounded value, e.g. ``-2.72``),
components joined by `` | ``. Lorenz (33 tokens with 3-token floats, skeleton 25)::

    add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1 |
    add mul u_0 u_1 mul -2.72 u_2

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

import numpy as np

__all__ = ["COEFFS", "Coeffs", "MAX_COEFFS", "SYSTEMS", "SYSTEM_INDEX", "System", "TYPES",
           "add_right", "aizawa_expr", "aizawa_rhs", "chen_lee_expr", "chen_lee_rhs",
           "dadras_expr", "dadras_rhs", "double_pendulum_expr", "double_pendulum_rhs",
           "duffing_expr", "duffing_rhs", "fabrikant_expr", "fabrikant_rhs", "fold",
           "four_wing_expr", "four_wing_rhs", "halvorsen_expr", "halvorsen_rhs",
           "lorenz96_expr", "lorenz96_rhs", "lorenz_expr", "lorenz_rhs", "mul", "num",
           "rossler_expr", "rossler_rhs", "round3", "sprott_b_expr", "sprott_b_rhs",
           "sprott_linz_f_expr", "sprott_linz_f_rhs", "thomas_expr", "thomas_rhs"]


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
MAX_COEFFS = 5  # the most coefficients of a system (params/coeffs is 0-padded to it)
