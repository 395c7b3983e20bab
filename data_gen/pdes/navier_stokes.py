"""2-D Navier–Stokes vorticity on the torus [0,1)² (FNO set-up, ``navier_stokes/ns_2d.py``).

    w_t + u·∇w = νΔw + f,   u = (ψ_y, −ψ_x),   −Δψ = w,   w(·, 0) = w0,

with f = A(sin 2π(x+y) + cos 2π(x+y)) (A = 0.1) and w0 a periodic GRF of covariance
7³(−Δ+49)^(−2.5) (``data_gen.grf.periodic_grf_2d``, α = 2.5, τ = 7). Fields live on the nodes
(i/s, j/s), arrays are indexed ``[..., i, j]`` ↔ (x_i, y_j) ("ij" indexing).

Discretisation (as FNO): pseudo-spectral (rfft2: scipy's pocketfft on the CPU, ``torch.fft``
on a GPU; torch tensors throughout, batched over the chunk) at ``solver_resolution``;
ψ̂ = ŵ/Λ with Λ = 4π²|k|²; the nonlinear term u·w_x + v·w_y is formed on the grid and its
transform masked to |k_x|, |k_y| ≤ (2/3)(S/2) (2/3 rule); Crank–Nicolson for the diffusion
with the nonlinearity explicit (forward Euler):

    ŵ ← [(1 − ½ΔtνΛ)ŵ − Δt·F̂ + Δt·f̂] / (1 + ½ΔtνΛ).

The scheme is second order in Δt for the linear part and first order for the advection.
One difference from FNO: odd derivatives zero the Nyquist modes (their derivative is not a
real field); the dealiasing mask removes those modes from F̂ anyway.

Records are taken every ``record_every`` time units and subsampled to ``resolution``
(every (solver_resolution/resolution)-th node, as FNO stores 64² from 256²).

Explicit advection and stability. For a uniform flow of speed U the step multiplies the
Fourier mode k by g = (1 − a − iC)/(1 + a), with C = Δt·U·2π|k| (the CFL number of the mode)
and a = ½Δt·ν·4π²|k|², so |g|² ≈ 1 + C² − 4a: forward Euler adds the anti-diffusion ΔtU²/2
against the viscosity ν, and the mode grows at the rate κ²(ΔtU²/2 − ν), κ = 2π|k|, when
ΔtU² > 2ν. ``sample`` estimates U(t) as the initial max speed plus the forced Stokes speed
(:func:`speed_estimate`) and refuses a step for which the cut-off mode (|k| = S/3, the largest
kept by the 2/3 rule) would grow by more than e^max_growth over [0, T]:

    G = κ² ∫_0^T max(0, Δt·U(t)²/2 − ν) dt  <=  max_growth  (default 8).

G is a worst case (a uniform U everywhere) and the threshold is empirical. Runs with
ν = 1e-5, T = 20: at 64² Δt = 2e-3 (G ≈ 14) blew up at t ≈ 18, Δt = 1e-3 (G ≈ 6) was 3% off
a Δt/4 run at t = 20 and Δt = 5e-4 (G ≈ 2) 0.3%; at 128² Δt = 1e-3 (G ≈ 22) blew up at
t ≈ 17. With ν = 1e-4, T = 30, 64², Δt = 2e-3 (G ≈ 12, refused) ran fine (1.6% off at t = 30):
the check is conservative there. The FNO set-up (256², Δt = 1e-4) has G = 0 for ν = 1e-3,
1e-4 and 1e-5 (the largest accepted Δt is ≈ 3e-4 for ν = 1e-5). A blow-up that passes the
check is still caught: ``solve`` raises FloatingPointError naming the sample.

``scheme="rk4"`` (option; default "cn" is the scheme above) integrates the diffusion exactly
(integrating factor E = e^{−νΛΔt}) and the rest, −P(u·∇w) + f, with classical RK4 (IFRK4,
Kassam & Trefethen 2005): 4 evaluations a step, fourth order, stable on the imaginary axis
up to CFL 2√2, so the step is set by accuracy, not by the anti-diffusion above. ``sample``
refuses C = Δt·max U(t)·2π√2·S/3 (the fastest kept mode, diagonal) above MAX_CFL_RK4 = 2.
At 64², ν = 1e-5 (4 GRF samples, relative L2 off an RK4 run at Δt/4): Δt = 2e-2 (C <= 0.8
to t = 11, U ≈ 0.04 + 0.17) is 4e-6 off at t = 10 and 1.5e-4 at t = 20 (Δt = 1e-2: 3e-7 at
t = 10); "cn" at Δt = 1e-3 (5x the evaluations) is 1.2e-3 off that reference at t = 10 and
converges to it at first order. float32 adds ≈ 2e-5 at t = 10, 3e-4 at t = 20.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch

from data_gen.grf import periodic_grf_2d
from data_gen.pdes.base import Fields

NAME = "navier_stokes"
BLOWUP_FACTOR = 10.0  # max|w(t)| > 10·(max|w0| + t·max|f|) is treated as a blow-up
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
SCHEMES = ("cn", "rk4")  # Crank–Nicolson + forward Euler (FNO); integrating-factor RK4
MAX_CFL_RK4 = 2.0  # RK4 is stable to 2√2 on the imaginary axis; margin for U's estimate


def _is_multiple(value: float, step: float) -> bool:
    """``value`` is a whole positive number of ``step`` (within rounding)."""
    ratio = value / step
    return round(ratio) >= 1 and abs(ratio - round(ratio)) <= 1e-9 * max(1.0, ratio)


@dataclass(frozen=True)
class NavierStokesConfig:
    viscosity: float = 1e-3  # ν
    T: float = 50.0  # final time; records at record_every, 2·record_every, ..., T
    record_every: float = 1.0  # time between stored records (a multiple of dt)
    dt: float = 1e-4  # time step
    solver_resolution: int = 256  # grid points per side of the solver
    resolution: int = 64  # grid points per side of the stored fields (divides the above)
    alpha: float = 2.5  # GRF smoothness: covariance σ²(−Δ+τ²)^(−α), σ = τ^(α−1)
    tau: float = 7.0  # GRF inverse length scale
    sigma: float | None = None  # GRF amplitude; None: τ^(α−1) = 7^1.5 (std(w0) ≈ 0.185)
    forcing_amplitude: float = 0.1  # f = A(sin 2π(x+y) + cos 2π(x+y))
    max_growth: float = 8.0  # refuse dt when the explicit advection may grow e^max_growth
    device: str = "cpu"  # torch device of the solver ("cpu", "cuda", "cuda:1", ...)
    dtype: str = "float64"  # solver precision: "float64" or "float32"
    fft: str = "auto"  # "scipy" (CPU, chunk-independent bits), "torch" (cuFFT); auto: by device
    scheme: str = "cn"  # "cn": CN + forward Euler (FNO); "rk4": integrating-factor RK4

    def __post_init__(self) -> None:
        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"{NAME}: {key}={getattr(self, key)!r}, expected {expected}")

        for key in ("viscosity", "dt", "record_every", "T", "tau", "max_growth"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise bad(key, "a finite number > 0")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 1):
            raise bad("alpha", "> 1 (the GRF needs α > d/2 = 1 for a finite variance)")
        if not (isinstance(self.forcing_amplitude, (int, float))
                and math.isfinite(self.forcing_amplitude)):
            raise bad("forcing_amplitude", "a finite number")
        if self.sigma is not None and not (isinstance(self.sigma, (int, float))
                                           and math.isfinite(self.sigma) and self.sigma > 0):
            raise bad("sigma", "null (FNO's τ^(α−1)) or a finite number > 0")
        for key in ("solver_resolution", "resolution"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 8 and value % 2 == 0):
                raise bad(key, "an even integer >= 8")
        if self.solver_resolution % self.resolution:
            raise ValueError(f"{NAME}: solver_resolution={self.solver_resolution} is not a "
                             f"multiple of resolution={self.resolution}; the stored fields "
                             "subsample the solver grid")
        if not _is_multiple(self.record_every, self.dt):
            raise ValueError(f"{NAME}: record_every={self.record_every} is not a whole "
                             f"number (>= 1) of time steps dt={self.dt}")
        if not _is_multiple(self.T, self.record_every):
            raise ValueError(f"{NAME}: T={self.T} is not a whole number (>= 1) of "
                             f"record_every={self.record_every}")
        if self.dtype not in _DTYPES:
            raise bad("dtype", f"one of {sorted(_DTYPES)}")
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise bad("device", "a torch device such as 'cpu' or 'cuda'") from err
        if dev.type not in ("cpu", "cuda"):
            raise bad("device", "'cpu' or 'cuda[:index]'")
        if self.scheme not in SCHEMES:
            raise bad("scheme", f"one of {list(SCHEMES)}")
        if self.fft not in ("auto", "scipy", "torch"):
            raise bad("fft", "'auto', 'scipy' or 'torch'")
        if self.fft == "scipy" and dev.type != "cpu":
            raise bad("fft", f"'torch' or 'auto' on device={self.device!r} (scipy is CPU only)")

    @property
    def steps_per_record(self) -> int:
        return round(self.record_every / self.dt)

    @property
    def n_records(self) -> int:
        return round(self.T / self.record_every)


Config = NavierStokesConfig


def coords(cfg: NavierStokesConfig) -> dict[str, np.ndarray]:
    """``x``, ``y``: linspace(0, 1, resolution+1)[:-1]; ``t``: record times [n_records]."""
    x = np.linspace(0.0, 1.0, cfg.resolution + 1)[:-1]
    t = cfg.record_every * np.arange(1, cfg.n_records + 1, dtype=np.float64)
    return {"x": x, "y": x.copy(), "t": t}


def fno_forcing(size: int, amplitude: float = 0.1) -> np.ndarray:
    """f(x, y) = A(sin 2π(x+y) + cos 2π(x+y)) on the nodes (i/size, j/size): [size, size]."""
    x = np.arange(size) / size
    phase = 2.0 * np.pi * (x[:, None] + x[None, :])
    return amplitude * (np.sin(phase) + np.cos(phase))


def forcing_speed(amplitude: float = 0.1) -> float:
    """max|g| of the velocity g = (∂_yφ, −∂_xφ), −Δφ = f, of the FNO forcing: A/(2π).

    f = A√2 sin(2π(x+y) + π/4) has |k|² = 2, so φ = f/(8π²) and |g| = 2π√2·A√2/(8π²).
    """
    return abs(amplitude) / (2.0 * np.pi)


def speed_estimate(w0: np.ndarray | torch.Tensor, viscosity: float, t: np.ndarray | float,
                forcing_amplitude: float = 0.1) -> np.ndarray:
    """Velocity scale U(t) [n, len(t)] (or [n]) of the stability check: max|u0| plus the
    forced Stokes speed |g|(1 − e^{−8π²νt})/(8π²ν), |g| = A/(2π).

    ``w0`` [n, S, S] (or [S, S]). The forcing is a single-direction shear (u·∇w = 0 for it),
    so from rest the forced mode follows the Stokes solution exactly; with the GRF on top this
    is an estimate of max|u|, not a bound: in runs with ν = 1e-5 the observed max|u| at t = 20
    was 0.45 against U = 0.36, with ν = 1e-4/1e-3 within 10% (0.43/0.47, 0.25/0.24).
    """
    w = torch.as_tensor(w0, dtype=torch.float64)
    if w.ndim == 2:
        w = w[None]
    u, v = velocity(w)
    u0 = torch.sqrt(u**2 + v**2).amax(dim=(-2, -1)).cpu().numpy()
    rate = 8.0 * np.pi**2 * viscosity
    stokes = forcing_speed(forcing_amplitude) * -np.expm1(-rate * np.asarray(t)) / rate
    return u0[:, None] + stokes if np.ndim(t) else u0 + stokes


def advection_growth(speed: np.ndarray, times: np.ndarray, dt: float | np.ndarray,
                     viscosity: float, resolution: int) -> np.ndarray:
    """G = κ²∫ max(0, dt·U(t)²/2 − ν) dt, κ = 2π·resolution/3 (trapezoid on ``times``).

    ``speed`` [..., len(times)]: U(t); ``dt`` a scalar or [...]. The e-folds by which
    forward-Euler advection at speed U outgrows Crank–Nicolson damping on the cut-off mode
    (module docstring). Returns [...].
    """
    kappa2 = (2.0 * np.pi * resolution / 3.0) ** 2
    dt = np.asarray(dt)[..., None]
    rate = kappa2 * np.maximum(0.0, 0.5 * dt * np.asarray(speed) ** 2 - viscosity)
    return np.sum(0.5 * (rate[..., 1:] + rate[..., :-1]) * np.diff(times), axis=-1)


def stable_dt(speed: np.ndarray, times: np.ndarray, viscosity: float, resolution: int,
              max_growth: float = 8.0) -> np.ndarray:
    """Largest dt [...] with ``advection_growth(speed, times, dt, ...) <= max_growth``.

    G grows monotonically with dt, so a bisection (in log dt) finds it to 0.1%.
    """
    speed = np.asarray(speed, dtype=np.float64)
    lo = np.full(speed.shape[:-1], 1e-12)
    hi = np.full(speed.shape[:-1], 1e3)
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        ok = advection_growth(speed, times, mid, viscosity, resolution) <= max_growth
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return lo


# ------------------------------------------------------------------------------ the solver


class _Spectral:
    """Wavenumber tables of an S×S rfft2 grid on ``device``/``dtype`` (k_x rows, k_y columns)."""

    def __init__(self, s: int, device: torch.device, dtype: torch.dtype) -> None:
        kx = torch.fft.fftfreq(s, d=1.0 / s, dtype=dtype, device=device)[:, None]
        ky = torch.fft.rfftfreq(s, d=1.0 / s, dtype=dtype, device=device)[None, :]
        self.lap = 4.0 * math.pi**2 * (kx**2 + ky**2)  # Λ = −symbol of Δ, [S, S/2+1]
        inv = torch.zeros_like(self.lap)
        inv[self.lap > 0] = 1.0 / self.lap[self.lap > 0]
        self.inv_lap = inv
        nyq = s // 2
        # 2πi·k for odd derivatives; the Nyquist modes are zeroed.
        dx = torch.where(kx.abs() == nyq, 0.0, 2.0 * math.pi * kx)
        dy = torch.where(ky.abs() == nyq, 0.0, 2.0 * math.pi * ky)
        self.cplx = cplx = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.ikx = torch.complex(torch.zeros_like(dx), dx).to(cplx).expand(s, s // 2 + 1)
        self.iky = torch.complex(torch.zeros_like(dy), dy).to(cplx).expand(s, s // 2 + 1)
        kmax = (2.0 / 3.0) * (s // 2)
        self.mask = ((kx.abs() <= kmax) & (ky.abs() <= kmax)).to(dtype)  # 2/3 rule


def velocity(w: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity (u, v) = (ψ_y, −ψ_x), −Δψ = w (zero-mean ψ), of w [..., S, S] (spectral)."""
    w = torch.as_tensor(w)
    s = w.shape[-1]
    sp = _Spectral(s, w.device, w.dtype)
    psi = torch.fft.rfft2(w) * sp.inv_lap.to(sp.cplx)
    return (torch.fft.irfft2(psi * sp.iky, s=(s, s)), torch.fft.irfft2(-psi * sp.ikx, s=(s, s)))


class _FFT:
    """rfft2/irfft2 over the last two axes of torch tensors.

    ``"scipy"`` (CPU only): pocketfft through ``scipy.fft``, which transforms every line with
    the same code whatever the batch, so sample i does not depend on the rest of the batch to
    the last bit (MKL, behind ``torch.fft`` on CPU, picks other algorithms for other batch
    sizes at s <= 64 and the flow amplifies the rounding differences). ``"torch"``:
    ``torch.fft`` on the tensor's device, one batched call (cuFFT on a GPU; whether cuFFT
    gives bit-identical results for other batch sizes is untested, so on a GPU keep the
    chunk size fixed to reproduce a dataset).
    """

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode == "auto":
            mode = "scipy" if device.type == "cpu" else "torch"
        if mode not in ("scipy", "torch"):
            raise ValueError(f"{NAME}: fft={mode!r}, expected 'auto', 'scipy' or 'torch'")
        if mode == "scipy" and device.type != "cpu":
            raise ValueError(f"{NAME}: fft='scipy' runs on the CPU only (device={device})")
        self.scipy = mode == "scipy"

    def rfft2(self, x: torch.Tensor) -> torch.Tensor:
        if self.scipy:
            return torch.from_numpy(scipy.fft.rfft2(x.numpy()))
        return torch.fft.rfft2(x)

    def irfft2(self, x: torch.Tensor, s: int) -> torch.Tensor:
        if self.scipy:  # two 1-D passes: the same bits as scipy's irfft2, ~2x faster batched
            return torch.from_numpy(scipy.fft.irfft(scipy.fft.ifft(x.numpy(), axis=-2), n=s,
                                                    axis=-1))
        return torch.fft.irfft2(x, s=(s, s))


@contextlib.contextmanager
def _one_torch_thread(device: torch.device):
    """On the CPU, step with one torch thread: the per-step tensors are small (a chunk of 64²
    fields), so more threads only add synchronisation (10x slower with 2 threads on a busy
    2-core machine). Parallelism comes from the runner's worker processes."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def solve(w0: np.ndarray | torch.Tensor, forcing: np.ndarray | torch.Tensor | None = None,
          viscosity: float = 1e-3, T: float = 1.0, dt: float = 1e-4,
          record_every: float | None = None, *, stride: int = 1,
          device: str | torch.device | None = None, dtype: torch.dtype = torch.float64,
          fft: str = "auto", scheme: str = "cn") -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
    """Integrate w_t + u·∇w = νΔw + f on [0,1)² from ``w0`` [n, S, S] (or [S, S]) to ``T``.

    ``forcing``: f on the same grid, broadcastable to [n, S, S] (None: f = 0), constant in
    time. ``record_every`` (default T) must be a whole number of steps ``dt`` and divide T.
    ``stride``: keep every stride-th node of each record. Runs on ``device`` (default: that
    of a tensor ``w0``, else the CPU) in ``dtype`` (float64 or float32), batched over n.
    ``fft``: "scipy" (CPU; sample i is bit-for-bit independent of the rest of the batch),
    "torch" (``torch.fft``: cuFFT on a GPU) or "auto" (scipy on the CPU, torch elsewhere).
    ``scheme``: "cn" (Crank–Nicolson + forward Euler, FNO) or "rk4" (integrating-factor RK4).

    Returns ``(w, t)``: records w [n, R, S/stride, S/stride] (or [R, ...] for one [S, S]
    field) at t = record_every·(1..R), R = T/record_every — a tensor on ``device`` if ``w0``
    is a tensor, else a numpy array — and t [R] float64. Raises FloatingPointError naming the
    sample when a record is not finite or max|w| exceeds 10·(max|w0| + t·max|f|) (the
    continuous maximum principle allows at most max|w0| + t·max|f|).
    """
    as_tensor = isinstance(w0, torch.Tensor)
    if device is None:
        device = w0.device if as_tensor else "cpu"
    w = torch.as_tensor(w0).to(device=device, dtype=dtype)
    single = w.ndim == 2
    if single:
        w = w[None]
    if w.ndim != 3 or w.shape[-1] != w.shape[-2] or w.shape[-1] % 2:
        raise ValueError(f"{NAME}.solve: w0 has shape {tuple(w0.shape)}, expected [n, S, S] "
                         "with S even")
    n, s = w.shape[0], w.shape[-1]
    record_every = T if record_every is None else record_every
    for key, value in (("viscosity", viscosity), ("dt", dt), ("T", T),
                       ("record_every", record_every)):
        if not value > 0:
            raise ValueError(f"{NAME}.solve: {key}={value}, expected > 0")
    if not _is_multiple(record_every, dt) or not _is_multiple(T, record_every):
        raise ValueError(f"{NAME}.solve: need T={T} = whole multiple of record_every="
                         f"{record_every} = whole multiple of dt={dt}")
    if s % stride:
        raise ValueError(f"{NAME}.solve: stride={stride} does not divide S={s}")
    if scheme not in SCHEMES:
        raise ValueError(f"{NAME}.solve: scheme={scheme!r}, expected one of {list(SCHEMES)}")
    steps, n_rec = round(record_every / dt), round(T / record_every)
    tr = _FFT(fft, w.device)
    sp = _Spectral(s, w.device, dtype)
    f = torch.zeros((s, s), dtype=dtype, device=w.device) if forcing is None else \
        torch.as_tensor(forcing).to(device=w.device, dtype=dtype)
    f = torch.broadcast_to(f, w.shape).contiguous()
    f_max = f.abs().amax(dim=(-2, -1)).cpu().numpy()
    w0_max = w.abs().amax(dim=(-2, -1)).cpu().numpy()

    # Factors as complex tensors with zero imaginary part (complex × real promotes each step).
    half = 0.5 * dt * viscosity * sp.lap
    damp = ((1.0 - half) / (1.0 + half)).to(sp.cplx)  # CN factor of ŵ
    gain = (dt * sp.mask / (1.0 + half)).to(sp.cplx)  # factor of the (dealiased) F̂
    push = tr.rfft2(f) * (dt / (1.0 + half)).to(sp.cplx)
    inv_lap = sp.inv_lap.to(sp.cplx)
    mult = torch.stack([sp.iky, -sp.ikx, sp.ikx, sp.iky])  # ψ→u, ψ→v, w→w_x, w→w_y
    if scheme == "rk4":
        decay = (-0.5 * dt * viscosity * sp.lap).exp().to(sp.cplx)  # E(Δt/2) = e^{−νΛΔt/2}
        decay2 = decay * decay  # E(Δt)
        one = torch.ones_like(inv_lap)
        to_grads = mult * torch.stack([inv_lap, inv_lap, one, one])  # ŵ → (û, v̂, ŵ_x, ŵ_y)
        minus_h = (-dt * sp.mask).to(sp.cplx)  # −Δt·P
        push_rk = tr.rfft2(f) * dt  # Δt·f̂

        def rhs(wh: torch.Tensor) -> torch.Tensor:
            """Δt·(−P(u·∇w)^ + f̂) of ŵ [n, S, S/2+1]."""
            u, v, wx, wy = tr.irfft2(wh[:, None] * to_grads, s).unbind(1)
            return tr.rfft2(u * wx + v * wy) * minus_h + push_rk

    with _one_torch_thread(w.device):
        what = tr.rfft2(w)
        grads = torch.empty((n, 4, s, s // 2 + 1), dtype=sp.cplx, device=w.device)
        out = torch.empty((n, n_rec, s // stride, s // stride), dtype=dtype, device=w.device)
        for r in range(n_rec):
            for _ in range(steps):
                if scheme == "rk4":  # IFRK4 (Kassam & Trefethen 2005, kdv.m)
                    a = rhs(what)
                    ew = what * decay
                    b = rhs((what + 0.5 * a) * decay)
                    c = rhs(ew + 0.5 * b)
                    d = rhs(ew * decay + c * decay)
                    what = (what + a * (1.0 / 6.0)) * decay2 \
                        + ((b + c) * (1.0 / 3.0)) * decay + d * (1.0 / 6.0)
                    continue
                psi = what * inv_lap
                torch.mul(psi[:, None], mult[:2], out=grads[:, :2])
                torch.mul(what[:, None], mult[2:], out=grads[:, 2:])
                u, v, wx, wy = tr.irfft2(grads, s).unbind(1)
                nonlin = tr.rfft2(u * wx + v * wy)
                what = what * damp - nonlin * gain + push
            rec = tr.irfft2(what, s)
            t = (r + 1) * record_every
            peak = rec.abs().amax(dim=(-2, -1)).cpu().numpy()
            bound = BLOWUP_FACTOR * (w0_max + t * f_max) + 1e-12
            bad = np.flatnonzero(~(peak <= bound))
            if bad.size:
                i = int(bad[0])
                raise FloatingPointError(
                    f"{NAME}: sample {i} of the batch (of {n}) blew up by t={t:g}: max|w| = "
                    f"{peak[i]:.3g} > {bound[i]:.3g} = 10·(max|w0| + t·max|f|); reduce dt "
                    f"(now {dt:g})")
            out[:, r] = rec[:, ::stride, ::stride]
    times = record_every * np.arange(1, n_rec + 1, dtype=np.float64)
    if single:
        out = out[0]
    return (out if as_tensor else out.cpu().numpy()), times


# ---------------------------------------------------------------------------- the sampler


def _round_step(limit: float, record_every: float) -> float:
    """The largest {1, 2, 2.5, 5}·10^k <= ``limit`` dividing ``record_every``, else
    record_every/ceil(record_every/limit)."""
    for exponent in range(math.floor(math.log10(limit)), math.floor(math.log10(limit)) - 4, -1):
        for mantissa in (5.0, 2.5, 2.0, 1.0):
            step = mantissa * 10.0**exponent
            if step <= limit and _is_multiple(record_every, step):
                return step
    return record_every / math.ceil(record_every / limit)


def sample(cfg: NavierStokesConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/w0`` [n, 1, s, s] and ``outputs/w`` [n, R, s, s], float32.

    w0 is drawn at ``solver_resolution`` (each sample from its own generator) and both fields
    are subsampled to ``resolution``; ``outputs/w[:, r]`` is the vorticity at
    t = (r+1)·record_every. Raises ValueError when dt is too large for a sample's velocity
    (see :func:`stable_dt`), FloatingPointError when a sample blows up anyway.
    """
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{NAME}: device={cfg.device!r} but CUDA is not available here")
    s, stride = cfg.solver_resolution, cfg.solver_resolution // cfg.resolution
    w0 = periodic_grf_2d(rngs, s, cfg.alpha, cfg.tau, cfg.sigma)  # [n, S, S] float64
    n = w0.shape[0]
    if n and cfg.scheme == "rk4":
        u_max = float(speed_estimate(w0, cfg.viscosity, cfg.T, cfg.forcing_amplitude).max())
        kappa = 2.0 * np.pi * math.sqrt(2.0) * s / 3.0  # fastest kept mode (diagonal)
        if cfg.dt * u_max * kappa > MAX_CFL_RK4:
            limit = MAX_CFL_RK4 / (u_max * kappa)
            raise ValueError(
                f"{NAME}: dt={cfg.dt:g} is too large for scheme='rk4': CFL number "
                f"{cfg.dt * u_max * kappa:.3g} > {MAX_CFL_RK4:g} (speed up to U={u_max:.3g}, "
                f"initial + forced); use dt <= {limit:.3g}, e.g. dt="
                f"{_round_step(limit, cfg.record_every):.3g}")
    elif n:
        times = np.linspace(0.0, cfg.T, 1001)
        speed = speed_estimate(w0, cfg.viscosity, times, cfg.forcing_amplitude)  # [n, 1001]
        growth = advection_growth(speed, times, cfg.dt, cfg.viscosity, s)
        bad = np.flatnonzero(growth > cfg.max_growth)
        if bad.size:
            i = int(bad[np.argmax(growth[bad])])
            limit = float(stable_dt(speed[i], times, cfg.viscosity, s, cfg.max_growth))
            fit = _round_step(limit, cfg.record_every)
            raise ValueError(
                f"{NAME}: dt={cfg.dt:g} is too large for sample {i} of the chunk: the explicit "
                f"advection (speed up to U={speed[i, -1]:.3g}, initial + forced) may grow the "
                f"cut-off mode by e^{growth[i]:.3g} over [0, T={cfg.T:g}] (max_growth="
                f"{cfg.max_growth:g}); use dt <= {limit:.3g}, e.g. dt={fit:.3g} (divides "
                f"record_every={cfg.record_every:g})")
    f = fno_forcing(s, cfg.forcing_amplitude)
    w, _ = solve(torch.from_numpy(w0), f, cfg.viscosity, cfg.T, cfg.dt, cfg.record_every,
                 stride=stride, device=device, dtype=_DTYPES[cfg.dtype], fft=cfg.fft,
                 scheme=cfg.scheme)
    return {
        "inputs": {"w0": w0[:, None, ::stride, ::stride].astype(np.float32)},
        "outputs": {"w": w.cpu().numpy().astype(np.float32)},
    }
