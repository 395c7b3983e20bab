"""Dormand–Prince 5(4) for thousands of ODE trajectories at once (numpy, one process).

:func:`solve` integrates ``n`` independent initial-value problems ``y' = rhs(t, y; p)``,
``y(t0) = y0`` to the last of the output times ``t_eval`` and returns the solutions at
``t_eval``. It is scipy's ``solve_ivp(method="RK45", t_eval=...)`` vectorised across the
trajectories: the same Butcher tableau, FSAL, error estimator, RMS error norm with scale
``atol + max(|y_old|, |y_new|)·rtol``, initial-step heuristic (Hairer–Nørsett–Wanner II.4,
``select_initial_step``), step-size controller (safety 0.9, factors 0.2 … 10, no growth
in the step right after a rejection) and dense output (the 4th-order continuous extension,
scipy's ``RK45.P``). Every trajectory has its own step size, accept/reject decision, and
output pointer; the output times a step passes are filled from that step's interpolant.

What scipy does not do: a trajectory is stopped and reported as failed as soon as an
accepted step reaches ``|y_j| >= bound`` (also checked on the output values), its state
stops being finite, its step size falls below the spacing of floats at ``t`` (scipy's
``TOO_SMALL_STEP``, e.g. a finite-time blow-up), or it has made ``max_steps`` step
attempts. Finished and failed trajectories leave the working set at once (the arrays are
compacted), so stragglers cost only their own work.

Determinism: all arithmetic is elementwise over the trajectories (no BLAS, no reductions
across trajectories; the sum over the d components is written out), so the bits of one
trajectory do not depend on which other trajectories share the batch or where it sits in
it. (numpy's transcendental ufuncs give the same bits at every array position on x86-64
AVX2; :mod:`tests.test_ode_solver` checks batch independence on the machine it runs on.)

Layout: the right-hand side works component-major, ``rhs(t [m], y [d, m], params) ->
[d, m]`` (each ``y[i]`` a contiguous row, the fastest numpy layout), where ``params`` is the
subset of the per-trajectory parameters for the ``m`` trajectories in the call (a dict of
``[m]`` arrays, an ``[m, p]`` array, or None).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

Params = Mapping[str, np.ndarray] | np.ndarray | None
Rhs = Callable[[np.ndarray, np.ndarray, Params], np.ndarray]

OK, BOUND, NONFINITE, MAX_STEPS, STEP_TOO_SMALL = range(5)
REASONS = ("", "left the bound |u| >= bound", "not finite",
           "reached max_steps step attempts", "step size below the float spacing at t")

# Dormand–Prince 5(4) (scipy.integrate.RK45): nodes C, stages A, weights B (5th order),
# error weights E (5th − 4th order, 7 stages with FSAL), dense-output matrix P (7 x 4).
C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
A = ((),
     (1 / 5,),
     (3 / 40, 9 / 40),
     (44 / 45, -56 / 15, 32 / 9),
     (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
     (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656))
B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
E = (-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40)
P = ((1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432),
     (0.0, 0.0, 0.0, 0.0),
     (0.0, 131558114200 / 32700410799, -68118460800 / 10900136933,
      87487479700 / 32700410799),
     (0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072),
     (0.0, 127303824393 / 49829197408, -318862633887 / 49829197408,
      701980252875 / 199316789632),
     (0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844),
     (0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423))
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0
ERROR_EXPONENT = -1 / 5  # −1 / (error estimator order 4 + 1)


class Solution(NamedTuple):
    """``y`` [n, T, d] at ``t_eval`` (rows a failed trajectory never reached are NaN);
    ``ok`` [n]; ``reason`` [n] int8 code (``REASONS[code]``, 0 = ok); ``steps`` [n]
    accepted and ``rejected`` [n] rejected steps (each attempt costs 6 rhs evaluations)."""

    y: np.ndarray
    ok: np.ndarray
    reason: np.ndarray
    steps: np.ndarray
    rejected: np.ndarray


def _take(params: Params, idx: np.ndarray) -> Params:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {k: v[idx] for k, v in params.items()}
    return params[idx]


def _check_params(params: Params, n: int) -> Params:
    if params is None:
        return None
    if isinstance(params, Mapping):
        out = {k: np.asarray(v) for k, v in params.items()}
        for k, v in out.items():
            if v.shape[:1] != (n,):
                raise ValueError(f"params['{k}'] has shape {v.shape}, expected [{n}] "
                                 "(one value per trajectory)")
        return out
    arr = np.asarray(params)
    if arr.ndim < 1 or arr.shape[0] != n:
        raise ValueError(f"params has shape {arr.shape}, expected [{n}, p]")
    return arr


def _rms(rows: list[np.ndarray]) -> np.ndarray:
    """RMS over the d rows, summed in a fixed order (per-trajectory bits)."""
    acc = rows[0] * rows[0]
    for r in rows[1:]:
        acc = acc + r * r
    return np.sqrt(acc / len(rows))


def _initial_step(rhs: Rhs, t0: np.ndarray, y: np.ndarray, f: np.ndarray, params: Params,
                  span: float, rtol: float, atol: float) -> np.ndarray:
    """scipy's ``select_initial_step`` (error estimator order 4), per trajectory."""
    scale = atol + np.abs(y) * rtol
    d0, d1 = _rms(list(y / scale)), _rms(list(f / scale))
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.where(d1 > 0, d1, 1.0))
    h0 = np.minimum(h0, span)
    f1 = rhs(t0 + h0, y + h0 * f, params)
    d2 = _rms(list((f1 - f) / scale)) / h0
    big = np.maximum(d1, d2)
    h1 = np.where((d1 <= 1e-15) & (d2 <= 1e-15), np.maximum(1e-6, h0 * 1e-3),
                  (0.01 / np.where(big > 0, big, 1.0)) ** 0.2)
    return np.minimum(np.minimum(100 * h0, h1), span)


def solve(rhs: Rhs, y0: np.ndarray, t_eval: np.ndarray, params: Params = None, *,
          rtol: float = 1e-5, atol: float = 1e-6, bound: float = np.inf,
          max_steps: int = 100_000, t0: float = 0.0) -> Solution:
    """Integrate ``n`` trajectories from ``t0`` to ``t_eval[-1]`` and sample them at
    ``t_eval`` (sorted, ``t_eval[0] >= t0``).

    ``rhs(t [m], y [d, m], params_subset) -> [d, m]``; ``y0`` [n, d]; ``params``: per-
    trajectory parameters, a dict of [n] arrays or an [n, p] array (the rhs receives the
    rows of the trajectories it evaluates), or None. ``bound``: a trajectory with
    ``|y_j| >= bound`` at an accepted step or output time is stopped and failed;
    ``max_steps``: step attempts (accepted + rejected) per trajectory before it is failed.
    """
    y0 = np.asarray(y0, np.float64)
    if y0.ndim != 2:
        raise ValueError(f"y0 has shape {y0.shape}, expected [n, d]")
    t_eval = np.asarray(t_eval, np.float64)
    if t_eval.ndim != 1 or t_eval.size == 0 or np.any(np.diff(t_eval) < 0) or t_eval[0] < t0:
        raise ValueError(f"t_eval must be a non-empty increasing 1-D array >= t0={t0}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol={rtol}, atol={atol}: expected both > 0")
    n, d = y0.shape
    n_out = t_eval.size
    t_end = float(t_eval[-1])
    params = _check_params(params, n)

    out = np.full((n, n_out, d), np.nan)
    reason = np.zeros(n, np.int8)
    steps = np.zeros(n, np.int64)
    rejected = np.zeros(n, np.int64)
    done = np.zeros(n, bool)
    if n == 0:
        return Solution(out, done, reason, steps, rejected)

    with np.errstate(all="ignore"):
        # --- start: f(t0, y0), the initial step, the outputs at t0 ---------------------
        y = np.ascontiguousarray(y0.T)
        t = np.full(n, float(t0))
        f = np.asarray(rhs(t, y, params), np.float64)
        bad = ~(np.isfinite(y).all(axis=0) & np.isfinite(f).all(axis=0))
        far = np.abs(y).max(axis=0) >= bound
        reason[far] = BOUND
        reason[bad] = NONFINITE
        at0 = t_eval <= t0
        out[:, at0, :] = y0[:, None, :]
        if t_end <= t0:
            ok = reason == OK
            return Solution(out, ok, reason, steps, rejected)
        act = np.flatnonzero(reason == OK)
        y, f, t = y[:, act], f[:, act], t[act]
        p = _take(params, act)
        h_abs = _initial_step(rhs, t, y, f, p, t_end - t0, rtol, atol)
        nxt = np.full(act.size, int(at0.sum()))  # next output index per trajectory
        retry = np.zeros(act.size, bool)  # the current step was rejected at least once
        n_acc = np.zeros(act.size, np.int64)
        n_rej = np.zeros(act.size, np.int64)
        K = [None] * 7

        def compact(keep):
            nonlocal act, t, y, f, h_abs, nxt, retry, n_acc, n_rej, p
            gone = np.ones(act.size, bool)
            gone[keep] = False
            steps[act[gone]], rejected[act[gone]] = n_acc[gone], n_rej[gone]
            act, t, y, f, h_abs = act[keep], t[keep], y[:, keep], f[:, keep], h_abs[keep]
            nxt, retry, n_acc, n_rej = nxt[keep], retry[keep], n_acc[keep], n_rej[keep]
            p = _take(p, keep)

        while act.size:
            # --- give up on trajectories whose step underflows or that hit the cap -----
            min_step = 10 * np.abs(np.nextafter(t, np.inf) - t)
            h_abs = np.where(~retry & (h_abs < min_step), min_step, h_abs)
            small = retry & (h_abs < min_step)
            capped = n_acc + n_rej >= max_steps
            if small.any() or capped.any():
                reason[act[capped]] = MAX_STEPS
                reason[act[small]] = STEP_TOO_SMALL
                compact(np.flatnonzero(~(small | capped)))
                if not act.size:
                    break

            # --- one Dormand–Prince step attempt for every active trajectory -----------
            t_new = np.minimum(t + h_abs, t_end)
            h = t_new - t
            K[0] = f
            for s in range(1, 6):
                a = A[s]
                dy = a[0] * K[0]
                for j in range(1, s):
                    dy += a[j] * K[j]
                dy *= h
                dy += y
                K[s] = rhs(t + C[s] * h, dy, p)
            y_new = B[0] * K[0]
            for j in range(2, 6):
                y_new += B[j] * K[j]
            y_new *= h
            y_new += y
            K[6] = f_new = rhs(t_new, y_new, p)
            err = E[0] * K[0]
            for j in range(2, 7):
                err += E[j] * K[j]
            scale = np.maximum(np.abs(y), np.abs(y_new))
            scale *= rtol
            scale += atol
            err *= h
            err /= scale
            norm = _rms(list(err))
            accept = norm < 1  # False for NaN: a non-finite attempt is rejected
            with_pow = SAFETY * norm ** ERROR_EXPONENT
            grow = np.where(norm == 0, MAX_FACTOR, np.minimum(MAX_FACTOR, with_pow))
            grow = np.where(retry, np.minimum(1.0, grow), grow)
            shrink = np.fmax(MIN_FACTOR, with_pow)  # NaN -> 0.2
            h_abs = h * np.where(accept, grow, shrink)
            retry = ~accept
            n_acc += accept
            n_rej += retry
            if not accept.any():
                continue

            # --- accepted steps: the outputs they pass, the bound, the end -------------
            pend = np.flatnonzero(accept & (t_eval[np.minimum(nxt, n_out - 1)] <= t_new)
                                  & (nxt < n_out))
            if pend.size:
                _dense(out, act, pend, K, y, t, h, nxt, t_eval, t_new)
            t = np.where(accept, t_new, t)
            y = np.where(accept, y_new, y)
            f = np.where(accept, f_new, f)
            far = accept & (np.abs(y_new).max(axis=0) >= bound)
            end = accept & (t >= t_end) & ~far
            if far.any() or end.any():
                reason[act[far]] = BOUND
                done[act[end]] = True
                compact(np.flatnonzero(~(far | end)))

        far = np.abs(out).max(axis=(1, 2)) >= bound
        reason[done & far] = BOUND
    ok = done & (reason == OK)
    return Solution(out, ok, reason, steps, rejected)


def _dense(out: np.ndarray, act: np.ndarray, pend: np.ndarray, K: list, y: np.ndarray,
           t: np.ndarray, h: np.ndarray, nxt: np.ndarray, t_eval: np.ndarray,
           t_new: np.ndarray) -> None:
    """Fill the output times each trajectory ``pend`` passed in its step from t to t_new:
    y(t + x·h) = y + h·x·(Q0 + x·(Q1 + x·(Q2 + x·Q3))), Q_r = Σ_i K_i P_ir (scipy's
    ``RkDenseOutput``; Q0 = K0): first the first output time of every trajectory of
    ``pend`` (without gathering when that is every active trajectory, the common case),
    then all further ones as (trajectory, output time) pairs."""
    n_out = t_eval.size
    flat = out.reshape(-1, out.shape[2])  # [n·T, d]: row g·T + j is out[g, j]
    first = nxt[pend]
    last = np.searchsorted(t_eval, t_new[pend], side="right")  # one past the last passed
    nxt[pend] = last
    count = last - first
    if pend.size == t.size:
        Ks, yp, tp, hp = K, y, t, h
    else:
        Ks = [np.take(k, pend, axis=1) for k in K]
        yp, tp, hp = np.take(y, pend, axis=1), t[pend], h[pend]
    Q = [Ks[0]]
    for r in range(1, 4):
        q = P[0][r] * Ks[0]
        for i in range(2, 7):
            q += P[i][r] * Ks[i]
        Q.append(q)
    base = act[pend] * n_out
    _horner(flat, Q, yp, tp, hp, base, first, t_eval)  # the first output time passed
    more = np.flatnonzero(count > 1)
    if more.size:  # the others, as (trajectory, output time) pairs
        c = count[more] - 1
        row = np.repeat(more, c)
        j = np.repeat(first[more] + 1, c) + np.arange(row.size) - np.repeat(np.cumsum(c) - c, c)
        _horner(flat, [np.take(q, row, axis=1) for q in Q], np.take(yp, row, axis=1), tp[row],
                hp[row], base[row], j, t_eval)


def _horner(flat, Q, y, t, h, base, j, t_eval) -> None:
    x = (t_eval[j] - t) / h
    val = Q[3] * x
    val += Q[2]
    val *= x
    val += Q[1]
    val *= x
    val += Q[0]
    val *= h * x
    val += y
    flat[base + j] = val.T
