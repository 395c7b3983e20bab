"""1-D viscous Burgers u_t + u u_x = ν u_xx on [0, 1) periodic, u₀ ↦ u(·, T) (FNO set-up).

u₀ is a periodic GRF N(m, σ²(−Δ+τ²)^(−γ)) (FNO ``burgers/GRF1.m``, ``data_gen.grf``); the paper
uses ν = 0.1, T = 1, σ = 25, τ = 5, γ = 2, m = 0, solves at 8192 points and subsamples.
Here u₀ is drawn and the PDE solved on ``solver_resolution`` points x_i = i/S; both fields
are stored every S/``resolution``-th point (plain subsampling, as the paper's data).

Solver: Fourier pseudo-spectral in space (``rfft``, batched over the chunk), the nonlinear
term −(u²/2)_x exactly dealiased by the 2/3 rule (û truncated to |k| <= S/3 before squaring,
the product truncated again), time stepping by ETDRK4 (Cox & Matthews 2002) with the
φ-functions evaluated by contour integrals (Kassam & Trefethen 2005, M = 32 points on a
half circle), which is exact for the stiff linear part −νk². The viscous Burgers equation
obeys a maximum principle (min u₀ <= u <= max u₀); a sample whose max|u| exceeds max|u₀| by
more than ``GROWTH_TOL`` (relative), or turns non-finite, raises ``FloatingPointError``.

The GRF's high modes decay in an initial layer that reduces ETDRK4 to order ~2.7 with uniform
steps; the first 4·dt are therefore stepped on a geometrically graded mesh (dt/256 .. dt/2).
Accuracy (paper set-up, S = 8192, 8 samples): with the default dt = 1e-3, u(1) is within
3.1e-10 (relative L2, worst sample; mean 1.0e-10) of a dt/4 run, ~70x below the float32
rounding of the stored labels (2.3e-8); dt = 2e-3: 1.4e-9, dt = 4e-3: 1.2e-8. u(1) does not
depend on S beyond rounding (S = 1024 vs 8192: 2.5e-13), so small solver grids give the paper's
labels at the stored points; only u₀'s fine-scale content differs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft

from data_gen.grf import periodic_grf_1d
from data_gen.pdes.base import Fields

GROWTH_TOL = 1e-3  # allowed relative excess of max|u(t)| over max|u0| (maximum principle)
CONTOUR_POINTS = 32  # Kassam–Trefethen M
_STEP_RTOL = 1e-9  # "T/dt is an integer" up to this relative rounding
STARTUP_LEVELS = 8  # graded start: steps dt/2^8 .. dt/2 (see startup_schedule)
STARTUP_REPEATS = 4  # ... each repeated 4 times: the first 4·dt of time


def _steps(name: str, time: float, dt: float) -> int:
    """``time/dt`` as an integer, or ValueError when it is not one (up to rounding)."""
    q = time / dt
    n = round(q)
    if abs(q - n) > _STEP_RTOL * max(1.0, q):
        raise ValueError(f"burgers: {name}={time!r} is not an integer multiple of dt={dt!r} "
                         f"({name}/dt = {q!r}); choose dt dividing it")
    return int(n)


@dataclass(frozen=True)
class BurgersConfig:
    resolution: int = 1024  # stored points (x_i = i/resolution); divides solver_resolution
    solver_resolution: int = 8192  # points of the GRF draw and the solve (paper: 8192)
    viscosity: float = 0.1  # ν
    T: float = 1.0  # final time (the output when record_times is empty)
    dt: float = 1e-3  # ETDRK4 step; T and every record time must be multiples of it
    record_times: tuple[float, ...] = ()  # if set: outputs/u = u at these times, [n, len, s]
    sigma: float = 25.0  # GRF amplitude σ
    tau: float = 5.0  # GRF inverse length scale τ
    gamma: float = 2.0  # GRF smoothness γ (covariance σ²(−Δ+τ²)^(−γ))
    mean: float = 0.0  # mean m of u₀ (conserved by the flow)

    def __post_init__(self) -> None:
        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"burgers: {key}={getattr(self, key)!r}, expected {expected}")

        for key in ("resolution", "solver_resolution"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2 or v % 2:
                raise bad(key, "an even integer >= 2")
        if self.solver_resolution % self.resolution:
            raise bad("solver_resolution", f"a multiple of resolution={self.resolution}")
        for key in ("viscosity", "T", "dt"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise bad(key, "a finite number > 0")
        for key in ("sigma", "tau", "mean"):
            if not math.isfinite(getattr(self, key)):
                raise bad(key, "a finite number")
        if not self.sigma >= 0:
            raise bad("sigma", ">= 0")
        if not (math.isfinite(self.gamma) and self.gamma > 0.5):
            raise bad("gamma", "> 0.5 (a field with finite variance)")
        times = self.record_times
        if isinstance(times, (str, bytes)) or not isinstance(times, Sequence | np.ndarray):
            raise bad("record_times", "a list of times")
        object.__setattr__(self, "record_times", tuple(float(t) for t in times))
        _steps("T", self.T, self.dt)
        _record_steps(self.record_times, self.T, self.dt)


Config = BurgersConfig


def _record_steps(times: Sequence[float], T: float, dt: float) -> list[int]:
    """Step numbers of ``times`` (strictly increasing, in [0, T], multiples of dt)."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t > T * (1 + 1e-12)):
        raise ValueError(f"burgers: record_times={tuple(times)!r}, expected times in [0, T={T}]")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"burgers: record_times={tuple(times)!r}, expected strictly increasing")
    return [_steps("record_times entry", float(v), dt) for v in t]


def coords(cfg: BurgersConfig) -> dict[str, np.ndarray]:
    """``x`` = linspace(0, 1, resolution+1)[:-1]; ``t`` = record_times, or [T] when empty."""
    x = np.linspace(0.0, 1.0, cfg.resolution + 1)[:-1]
    t = np.asarray(cfg.record_times if cfg.record_times else (cfg.T,), dtype=np.float64)
    return {"x": x, "t": t}


def sample(cfg: BurgersConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/u0`` [n, 1, s] and ``outputs/u`` [n, len(t), s], float32.

    ``len(t)`` is 1 (u at t = T) unless ``record_times`` is set (u at those times).
    """
    u0 = periodic_grf_1d(rngs, cfg.solver_resolution, cfg.sigma, cfg.tau, cfg.gamma, cfg.mean)
    u = solve(u0, cfg.viscosity, cfg.T, cfg.dt,
              record_times=cfg.record_times if cfg.record_times else None)
    if u.ndim == 2:
        u = u[:, None]
    r = cfg.solver_resolution // cfg.resolution
    return {
        "inputs": {"u0": u0[:, None, ::r].astype(np.float32)},
        "outputs": {"u": u[..., ::r].astype(np.float32)},
    }


# ------------------------------------------------------------------------------ the solver


@functools.lru_cache(maxsize=64)
def etdrk4_coefficients(size: int, viscosity: float, dt: float,
                        points: int = CONTOUR_POINTS) -> tuple[np.ndarray, ...]:
    """ETDRK4 coefficients for û_t = L û + N(û), L = −ν(2πk)², k = 0..size//2: each [size//2+1].

    Returns (E, E2, Q, f1, f2, f3) with z = dt·L: E = e^z, E2 = e^(z/2),
    Q = dt(e^(z/2)−1)/z, f1 = dt(−4−z+e^z(4−3z+z²))/z³, f2 = dt(2+z+e^z(z−2))/z³,
    f3 = dt(−4−3z−z²+e^z(4−z))/z³, each evaluated as the mean over ``points`` points
    z + e^(iπ(j−½)/M), j = 1..M, of the upper unit half circle (real part; the functions are
    real on the real axis), which avoids the cancellation near z = 0 (Kassam & Trefethen).
    """
    k = 2.0 * np.pi * np.arange(size // 2 + 1, dtype=np.float64)
    z = -viscosity * dt * k**2
    r = np.exp(1j * np.pi * (np.arange(1, points + 1) - 0.5) / points)
    lr = z[:, None] + r[None, :]
    e = np.exp(lr)
    q = dt * np.mean((np.exp(lr / 2) - 1.0) / lr, axis=1).real
    f1 = dt * np.mean((-4.0 - lr + e * (4.0 - 3.0 * lr + lr**2)) / lr**3, axis=1).real
    f2 = dt * np.mean((2.0 + lr + e * (lr - 2.0)) / lr**3, axis=1).real
    f3 = dt * np.mean((-4.0 - 3.0 * lr - lr**2 + e * (4.0 - lr)) / lr**3, axis=1).real
    out = (np.exp(z), np.exp(z / 2), q, f1, f2, f3)
    for a in out:
        a.flags.writeable = False
    return out


def _dealias_mask(size: int) -> np.ndarray:
    """True for the rfft modes k <= size/3 kept by the 2/3 rule: [size//2+1]."""
    return np.arange(size // 2 + 1) <= size / 3.0


def startup_schedule(last: int, levels: int = STARTUP_LEVELS,
                     repeats: int = STARTUP_REPEATS) -> list[float]:
    """Step sizes, in units of dt, that sum to ``last``: a graded start, then steps of 1.

    The first ``min(repeats, last)`` units of time are covered by ``repeats`` steps of
    2^−levels, then ``repeats`` steps of each 2^−j for j = levels..1 (the step grows with t,
    h ≈ t/repeats), then unit steps. Every integer time <= ``last`` is a partial sum (all sizes
    are dyadic, so the sums are exact in floating point). ``repeats=0``: uniform steps.
    """
    graded = ([2.0**-levels] * repeats
              + [2.0**-j for j in range(levels, 0, -1) for _ in range(repeats)])
    out, done = [], 0.0
    for h in graded:
        if done >= last:
            break
        out.append(h)
        done += h
    return out + [1.0] * (last - int(done))


def solve(u0: np.ndarray, viscosity: float, T: float, dt: float,
          record_times: Sequence[float] | None = None, *, startup_levels: int = STARTUP_LEVELS,
          startup_repeats: int = STARTUP_REPEATS) -> np.ndarray:
    """Solve u_t + u u_x = ν u_xx on [0, 1) (periodic) from ``u0`` [n, S] (or [S]).

    ``u0[..., i]`` = u₀(i/S), S even. ETDRK4 with steps dt (T and each record time must be
    integer multiples of dt, up to relative rounding 1e-9), pseudo-spectral in space with
    2/3 dealiasing. Returns u(·, T) [n, S] float64, or with ``record_times`` (strictly
    increasing, in [0, T]) the trajectory [n, len(record_times), S] (the run stops at the last
    record time). Leading dimensions of a single [S] input are dropped again.

    Rough data (the GRF's high modes decaying in an initial layer) reduce Cox–Matthews ETDRK4
    to order ~2.7; the first ``startup_repeats``·dt are therefore stepped on a geometrically
    graded mesh (``startup_schedule``), which gains ~100x in accuracy at dt = 1e-3 for ~4 %
    more steps (``startup_repeats=0``: uniform steps).

    Raises FloatingPointError naming the sample position when a sample turns non-finite or
    max|u| exceeds max|u₀|·(1 + GROWTH_TOL) (the exact flow obeys the maximum principle).
    """
    u = np.asarray(u0, dtype=np.float64)
    single = u.ndim == 1
    if single:
        u = u[None]
    if u.ndim != 2 or u.shape[-1] < 2 or u.shape[-1] % 2:
        raise ValueError(f"burgers.solve: u0 has shape {np.shape(u0)}, expected [n, S], S even")
    if not (viscosity > 0 and dt > 0 and T > 0):
        raise ValueError(f"burgers.solve: viscosity={viscosity}, T={T}, dt={dt}; expected > 0")
    if not np.all(np.isfinite(u)):
        bad = np.flatnonzero(~np.all(np.isfinite(u), axis=-1))
        raise ValueError(f"burgers.solve: u0 of sample(s) {bad.tolist()} is not finite")
    n, s = u.shape
    total = _steps("T", T, dt)
    records = None if record_times is None else _record_steps(record_times, T, dt)
    last = total if records is None else (records[-1] if records else 0)
    schedule = startup_schedule(last, startup_levels, startup_repeats)

    coefficients: dict[float, tuple[np.ndarray, ...]] = {}
    for h in set(schedule):
        e, e2, q, f1, f2, f3 = etdrk4_coefficients(s, float(viscosity), float(h * dt))
        f2 = 2.0 * f2
        # Complex copies avoid a real->complex cast in every product of the time loop.
        coefficients[h] = tuple(c.astype(np.complex128) for c in (e, e2, q, f1, f2, f3))
    mask = _dealias_mask(s)
    kept = int(np.count_nonzero(mask))  # modes 0..kept−1 survive the 2/3 rule
    g = -0.5j * 2.0 * np.pi * np.arange(s // 2 + 1) * mask  # −(ik/2), 0 beyond the 2/3 cut

    def nonlinear(v: np.ndarray) -> np.ndarray:
        """−(ik/2)·FFT(w²) with w the 2/3-truncated field of v, truncated again."""
        w = scipy.fft.irfft(v[:, :kept], n=s, axis=-1)  # zero-padded
        np.multiply(w, w, out=w)
        out = scipy.fft.rfft(w, axis=-1)
        out *= g
        return out

    def step(v: np.ndarray, h: float) -> np.ndarray:
        """One ETDRK4 step (Cox & Matthews) of size h·dt."""
        e, e2, q, f1, f2, f3 = coefficients[h]
        nv = nonlinear(v)
        ev = e2 * v
        a = ev + q * nv
        na = nonlinear(a)
        b = ev + q * na
        nb = nonlinear(b)
        c = e2 * a + q * (2.0 * nb - nv)
        nc = nonlinear(c)
        na += nb
        v = e * v
        v += f1 * nv
        v += f2 * na
        v += f3 * nc
        return v

    bound = np.abs(u).max(axis=-1) * (1.0 + GROWTH_TOL) + np.finfo(np.float64).tiny

    def check(v: np.ndarray, t: float) -> np.ndarray:
        w = scipy.fft.irfft(v, n=s, axis=-1)
        peak = np.abs(w).max(axis=-1)
        bad = ~(peak <= bound)  # NaN compares False
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise FloatingPointError(
                f"burgers.solve: sample {i} blew up at t={t:.6g}: max|u|={peak[i]:.6g} "
                f"> max|u0|·(1+{GROWTH_TOL})={bound[i]:.6g} (maximum principle); "
                f"reduce dt={dt} or raise the resolution S={s}")
        return w

    out = None if records is None else np.empty((n, len(records), s))
    v = scipy.fft.rfft(u, axis=-1)
    every = max(1, last // 100)
    j = 0
    if records:
        while j < len(records) and records[j] == 0:  # at most one (strictly increasing)
            out[:, j] = check(v, 0.0)
            j += 1
    w = u
    done = 0.0  # elapsed time in units of dt (exact: dyadic step sizes)
    for h in schedule:
        with np.errstate(over="ignore", invalid="ignore"):  # blow-up is reported by check()
            v = step(v, h)
        done += h
        k = int(done)
        if k != done:
            continue
        recording = records is not None and j < len(records) and records[j] == k
        if recording or k == last or k % every == 0:
            w = check(v, k * dt)
            if recording:
                out[:, j] = w
                j += 1
    if out is None:
        out = w
    return out[0] if single else out
