"""PROSE evaluation metrics (PROSE §5), exactly as the reference computes them except where
noted.

1. **Relative prediction error** per trajectory, √(Σ(û − u)² / (Σu² + 1e-6)) over the query
   times of a window × the system's own components, against the *noisy* targets, averaged
   over trajectories: :func:`relative_errors` on the windows :data:`WINDOWS` ([2, 4],
   [4, 6], [2, 6]; closed intervals of the query times).
2. **Valid %**: a generated expression is valid when every ``|`` component parses, it has
   the system's component count, and evaluating it at the expression-error points raises
   nothing (no division by zero, overflow, invalid value) and gives finite values
   (:func:`opnet.symbolic.is_valid`).
3. **Relative expression error** on valid outputs: √(Σ(f̂ − f)² / (Σf² + 1e-6)) over 50 points
   uniform in [−5, 5]^d × the d components, averaged over valid outputs. The points are
   seeded (:func:`expression_points`: the same 50 points for every expression of dimension
   d); the reference redraws them per batch, unseeded.
4. **Solving the generated equation** (optional, the reference's ``--text_ode_solve``):
   integrate it from the noisy u(0) and score the trajectory on [2, 6] as in 1
   (:func:`solve_expressions`, our vectorised Dormand–Prince 5(4) with rtol 1e-4,
   atol 1e-6, where the reference uses BDF; a solve that fails, leaves |u| < 1e6 or takes
   more than 20,000 steps counts as not solved and is left out of the mean).

Functions take torch tensors or numpy arrays; errors come back as float64 tensors [B].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from opnet.symbolic import Expr, evaluate, is_valid
from opnet.symbolic.scoring import BOX as BOX  # re-exported: shared with the surrogate
from opnet.symbolic.scoring import N_POINTS, expression_points
from opnet.symbolic.scoring import decode_ids as decode_ids

WINDOWS: dict[str, tuple[float, float]] = {"2_4": (2.0, 4.0), "4_6": (4.0, 6.0),
                                           "2_6": (2.0, 6.0)}
"""Error windows of the query times (name -> closed interval)."""

EPS = 1e-6


def _t(x: Tensor | np.ndarray) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))


def dim_mask_of(dims: Tensor | np.ndarray, d: int) -> Tensor:
    """[B] dimensions -> bool [B, d] (True for each system's own components)."""
    dims = _t(dims)
    return torch.arange(d, device=dims.device)[None, :] < dims[:, None]


def relative_errors(pred: Tensor | np.ndarray, target: Tensor | np.ndarray,
                    dim_mask: Tensor | np.ndarray, t_out: Tensor | np.ndarray,
                    windows: Mapping[str, tuple[float, float]] = WINDOWS
                    ) -> dict[str, Tensor]:
    """Per-trajectory relative L2 errors on each window: ``{name: float64 [B]}``.

    pred, target [B, T, D]; dim_mask [B, D] (True = a component of the system; padded
    components count nowhere); t_out [T] or [B, T] (the windows select by the first row).
    """
    pred, target = _t(pred).double(), _t(target).double()
    mask = _t(dim_mask).to(pred.device)[:, None, :].double()
    t = _t(t_out).double().to(pred.device)
    t = t[0] if t.dim() == 2 else t
    sq_err = (pred - target).square() * mask
    sq_ref = target.square() * mask
    out = {}
    for name, (lo, hi) in windows.items():
        sel = (t >= lo - 1e-9) & (t <= hi + 1e-9)
        num = sq_err[:, sel].sum(dim=(1, 2))
        den = sq_ref[:, sel].sum(dim=(1, 2))
        out[name] = torch.sqrt(num / (den + EPS))
    return out


# ------------------------------------------------------------------------ expressions
def expression_errors(pred: Sequence[Expr | None], true: Sequence[Expr],
                      dims: Sequence[int] | np.ndarray | Tensor, n_points: int = N_POINTS,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(valid bool [B], relative expression error float64 [B], NaN where not valid)."""
    dims = np.asarray(_t(dims).cpu()) if isinstance(dims, Tensor) else np.asarray(dims)
    valid = np.zeros(len(true), bool)
    error = np.full(len(true), np.nan)
    points: dict[int, np.ndarray] = {}
    for i, (p, q) in enumerate(zip(pred, true, strict=True)):
        d = int(dims[i])
        if d not in points:
            points[d] = expression_points(d, n_points, seed)
        u = points[d]
        if p is None or not is_valid(p, u, n_components=d):
            continue
        f_hat = evaluate(p, u).values
        f = evaluate(q, u).values
        valid[i] = True
        error[i] = np.sqrt(np.sum((f_hat - f) ** 2) / (np.sum(f**2) + EPS))
    return valid, error


# ------------------------------------------------------------- solving the expressions
def solve_expressions(exprs: Sequence[Expr | None], u0: np.ndarray, dims: np.ndarray,
                      t0: float, t_eval: np.ndarray, rtol: float = 1e-4, atol: float = 1e-6,
                      bound: float = 1e6, max_steps: int = 20_000
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Integrate each generated system ``u' = f(u)`` from ``u0`` [B, D] (its first d
    components) at ``t0`` and sample it at ``t_eval`` [T]: (trajectories float64 [B, T, D],
    zero beyond d and NaN where not solved; solved bool [B]). None expressions, and
    expressions whose component count is not d, are not solved."""
    from data_gen.ode_solver import solve  # optional: data_gen depends on opnet, not back

    u0 = np.asarray(u0, np.float64)
    dims = np.asarray(dims, np.int64)
    b, d_max = u0.shape
    out = np.full((b, len(t_eval), d_max), np.nan)
    solved = np.zeros(b, bool)
    for d in np.unique(dims):
        members = [i for i in np.flatnonzero(dims == d)
                   if exprs[i] is not None and exprs[i].n_components == d
                   and exprs[i].n_variables <= d]
        if not members:
            continue
        table = [exprs[i] for i in members]

        def rhs(t, y, params, table=table):
            k = np.asarray(params["k"], np.int64)
            f = np.empty_like(y)
            for j in np.unique(k):
                sel = k == j
                f[:, sel] = evaluate(table[j], y[:, sel].T).values.T
            return f

        sol = solve(rhs, u0[members, :d], np.asarray(t_eval, np.float64),
                    {"k": np.arange(len(members))}, rtol=rtol, atol=atol, bound=bound,
                    max_steps=max_steps, t0=float(t0))
        out[members, :, :d] = sol.y
        out[members, :, d:] = 0.0
        solved[members] = sol.ok
    return out, solved
