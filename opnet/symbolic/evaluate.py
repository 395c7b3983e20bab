"""Safe vectorised evaluation of expressions with numpy.

``evaluate(expr, u)`` computes ``f(u)`` at ``n`` points ``u [n, D]`` and never raises for
numerical trouble: every intermediate result is checked, and a point is ``ok`` only if
no operation on it divided by zero, overflowed or produced an invalid value (underflow
is ignored, as in the reference's ``np.seterr(divide, over, invalid="raise",
under="ignore")``). Structural problems of a (generated) expression -- a variable
beyond ``D``, a placeholder -- make every point not ok. ``is_valid``/``check`` give the
reference's "valid %" criterion for a whole expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from opnet.symbolic.tree import (
    CONST,
    PLACEHOLDER,
    Expr,
    Node,
    SymbolicError,
    fold,
    variable_index,
)


@dataclass(frozen=True, eq=False)
class EvalResult:
    """``values`` float64 [n, n_components] (nan/inf where not ok), ``ok`` bool [n],
    ``error``: the first problem met (None when every point is ok)."""

    values: np.ndarray
    ok: np.ndarray
    error: str | None

    @property
    def all_ok(self) -> bool:
        """Whether every sample evaluated to finite values."""
        return bool(self.ok.all())


_UNARY = {"neg": np.negative, "sin": np.sin, "cos": np.cos, "pow2": np.square}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


class _Run:
    """One evaluation: the points, the running not-ok mask and the first error."""

    def __init__(self, u: np.ndarray) -> None:
        self.u = u
        self.n = u.shape[0]
        self.bad = ~np.isfinite(u).all(axis=1)
        self.error: str | None = None
        if self.bad.any():
            self._report(f"u has non-finite values at {int(self.bad.sum())} of {self.n} points")
        self.component = 0

    def _report(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def _structural(self, message: str) -> np.ndarray:
        self._report(f"component {self.component}: {message}")
        self.bad[:] = True
        return np.full(self.n, np.nan)

    def _check(self, op: str, result: np.ndarray, denominator: np.ndarray | None) -> None:
        nonfinite = ~np.isfinite(result)
        new = nonfinite & ~self.bad
        if new.any():
            if denominator is not None and (denominator[new] == 0).any():
                kind, where = "division by zero", new & (denominator == 0)
            elif np.isinf(result[new]).any():
                kind, where = "overflow", new & np.isinf(result)
            else:
                kind, where = "invalid value", new
            first = int(np.argmax(where))
            self._report(f"component {self.component}: {kind} in '{op}' at "
                         f"{int(new.sum())} of {self.n} points (first: u[{first}] = "
                         f"{self.u[first].tolist()})")
        self.bad |= nonfinite

    def eval(self, node: Node) -> np.ndarray:
        """Values of ``node`` at every point [n] (bottom-up, no recursion)."""
        return fold(node, self._leaf, self._inner)

    def _leaf(self, node: Node) -> np.ndarray:
        op = node.op
        if op == CONST:
            return np.full(self.n, node.value)
        if not node.children:
            if op == PLACEHOLDER:
                return self._structural(f"'{PLACEHOLDER}' has no value (a skeleton cannot be "
                                        f"evaluated)")
            k = variable_index(op)
            assert k is not None
            if k >= self.u.shape[1]:
                return self._structural(f"variable {op} needs u with at least {k + 1} "
                                        f"columns, got {self.u.shape[1]}")
        return self.u[:, k]

    def _inner(self, node: Node, args: Sequence[np.ndarray]) -> np.ndarray:
        op = node.op
        if op in _BINARY:
            a, b = args
            result = _BINARY[op](a, b)
            self._check(op, result, b if op == "div" else None)
        elif op == "inv":
            result = np.divide(1.0, args[0])
            self._check(op, result, args[0])
        else:
            result = _UNARY[op](args[0])
            self._check(op, result, None)
        return result


def _points(u: ArrayLike) -> np.ndarray:
    arr = np.asarray(u, dtype=np.float64)
    if arr.ndim != 2:
        raise SymbolicError(f"u has shape {arr.shape}, expected [n, D] (n points of D "
                            f"variables)")
    return arr


def evaluate(expr: Expr, u: ArrayLike) -> EvalResult:
    """``f(u)`` for ``u`` [n, D] (D >= expr.n_variables): values [n, n_components],
    ok [n], first error. Raises only for a ``u`` that is not 2-D."""
    run = _Run(_points(u))
    values = np.empty((run.n, expr.n_components))
    with np.errstate(all="ignore"):
        for c, comp in enumerate(expr.components):
            run.component = c
            values[:, c] = run.eval(comp)
    return EvalResult(values=values, ok=~run.bad, error=run.error)


def check(expr: Expr, u: ArrayLike, n_components: int | None = None) -> str | None:
    """Why ``expr`` is not valid at the points ``u`` (None when it is): a component count
    other than ``n_components`` (when given), or any point not ok."""
    if n_components is not None and expr.n_components != n_components:
        return f"{expr.n_components} components, expected {n_components}"
    result = evaluate(expr, u)
    if result.all_ok:
        return None
    return result.error or "non-finite values"


def is_valid(expr: Expr, u: ArrayLike, n_components: int | None = None) -> bool:
    """The "valid %" criterion: right component count, finite everywhere, no division by
    zero / overflow / invalid operation at any point of ``u``."""
    return check(expr, u, n_components) is None
