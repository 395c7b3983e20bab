"""Point residuals of the DeepONet problems (Lu et al., NMI 2021): the equations of
:mod:`data_gen.pdes.antiderivative`, ``nonlinear_ode``, ``pendulum``, ``diffusion_reaction``
and ``advection`` at collocation points, with their initial/boundary conditions, for
physics-informed DeepONets (Wang, Wang & Perdikaris, Sci. Adv. 2021).

Call ``residual(u, sensors, y, s) -> {term: [B, P']}`` (see
:class:`data_gen.physics.PointResidual`): ``u`` [B, m] the input functions at the sensors
(physical units), ``sensors`` [m, 1] (or [m]), ``y`` [P, d] collocation points shared by the
batch, ``s(points [N, d]) -> [B, N, C_out]`` differentiable (a DeepONet with ``u`` fixed).
Residuals are ``lhs − rhs`` of the equation as written in each class, in physical units.
Derivatives in y: :func:`data_gen.physics.derivative` (forward mode, one pass per batch).

**Input values between the sensors.** The equations need u(y) at the collocation points;
only its m sensor values are known. They are interpolated (:func:`sensor_interpolation`):
``"cubic"`` (default: Catmull–Rom / Keys cubic convolution on the equispaced sensors,
third order, quadratic extrapolation at the ends) or ``"linear"``. Both reproduce the sensor
values exactly, so with the sensors as collocation points u is exact. Measured on GRF(l = 0.2)
inputs with m = 100 sensors (64 functions, 10⁴ random points; checked in
``tests/test_physics_points.py``): relative RMS error of u at the points 4.5e-4
mean,
1.3e-3 max (linear) / 7.6e-6, 2.2e-5 (cubic); error of ∫u (what a zero-label antiderivative
fit converges to) relative to RMS(s): 2.3e-4, 9.3e-4 (linear) / 5.5e-7, 2.8e-6 (cubic).
Both below the 1 % target; cubic costs the same (one [P, m] matrix per call).

**Initial/boundary points** are made inside the call from ``y`` (so their number follows the
collocation count and they are re-drawn with it): s(0) for the ODEs (one point); for the
PDEs the IC at (x_p, 0) and the BC at (0, t_p), (1, t_p) for the collocation points'
coordinates — except an IC equal to the input (advection), which is imposed at the sensors
themselves (exact values, no interpolation).

:meth:`scale` [B] is a root-mean-square over the sensors (independent of the point count):
RMS of the forcing u (ODEs, diffusion–reaction), |a|·RMS(u') for advection (the size of
s_t and a s_x of the exact solution). ``rms(r_pde) / scale`` is the relative residual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from data_gen.pdes import advection, antiderivative, diffusion_reaction, nonlinear_ode, pendulum
from data_gen.physics import derivative

__all__ = ["AdvectionResidual", "AntiderivativeResidual", "DiffusionReactionResidual",
           "NonlinearODEResidual", "PendulumResidual", "periodic_derivatives",
           "sensor_interpolation"]

INTERPOLATIONS = ("cubic", "linear")
Surrogate = Callable[[Tensor], Tensor]

# Catmull–Rom weights of the nodes i−1, i, i+1, i+2 at fraction f of cell [i, i+1]
_CUBIC = ((-1, lambda f: 0.5 * f * (-f * f + 2 * f - 1)),
          (0, lambda f: 0.5 * (3 * f**3 - 5 * f * f + 2)),
          (1, lambda f: 0.5 * f * (-3 * f * f + 4 * f + 1)),
          (2, lambda f: 0.5 * f * f * (f - 1)))
_LINEAR = ((0, lambda f: 1 - f), (1, lambda f: f))


def generator_config(config_class: type, config: Mapping[str, Any]) -> Any:
    """The generator's config dataclass from ``config`` (unknown keys ignored, the
    generator's own defaults and checks for the rest)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in dict(config).items() if k in names})


def _sensor_positions(sensors: Tensor) -> Tensor:
    if sensors.ndim == 2 and sensors.shape[1] != 1:
        raise ValueError(f"sensors have shape {list(sensors.shape)}, expected [m, 1] or [m] "
                         "(1-D input functions)")
    return sensors.reshape(-1)


def sensor_interpolation(sensors: Tensor, x: Tensor, kind: str = "cubic",
                         period: float | None = None) -> Tensor:
    """Interpolation matrix ``W`` [P, m] with ``u(x) ≈ u_sensors @ W.T`` for equispaced
    ``sensors`` [m] or [m, 1] and points ``x`` [P] (same units). ``period``: periodic
    interpolation (a last sensor at first + period is a duplicate and gets weight 0);
    otherwise points outside the sensor range are extrapolated. Exact at the sensors."""
    if kind not in INTERPOLATIONS:
        raise ValueError(f"interpolation={kind!r}, expected one of {INTERPOLATIONS}")
    pos = _sensor_positions(sensors).to(torch.float64)
    x = x.detach().reshape(-1).to(device=pos.device, dtype=torch.float64)
    m = pos.numel()
    if m < 2:
        raise ValueError(f"sensor interpolation needs >= 2 sensors, got {m}")
    n = m
    if period is not None:
        if abs(float(pos[-1] - pos[0]) - period) <= 1e-6 * period:
            n = m - 1  # the last sensor repeats the first
        h = period / n
    else:
        h = float(pos[-1] - pos[0]) / (m - 1)
    if not h > 0 or float((pos[:n] - pos[0] - h * torch.arange(n, dtype=pos.dtype)).abs().max()
                          ) > 1e-4 * h:
        raise ValueError(f"sensor interpolation: the {m} sensors are not equispaced and "
                         "increasing" + (f" over the period {period}" if period else ""))
    t = (x - pos[0]) / h
    i = torch.floor(t)
    if period is None:
        i = i.clamp(0, m - 2)
    f = t - i
    i = i.long()
    stencil = _CUBIC if kind == "cubic" and (period is not None or m >= 3) else _LINEAR
    cols = torch.stack([i + o for o, _ in stencil], dim=1)
    weights = torch.stack([w(f) for _, w in stencil], dim=1)
    if period is not None:
        out = torch.zeros(len(x), m, dtype=pos.dtype, device=pos.device)
        out[:, :n].scatter_add_(1, cols % n, weights)
        return out
    ext = torch.zeros(len(x), m + 2, dtype=pos.dtype, device=pos.device)  # columns −1 .. m
    ext.scatter_add_(1, cols + 1, weights)
    out = ext[:, 1:-1].clone()
    if m >= 3:  # ghosts by quadratic extrapolation: u₋₁ = 3u₀ − 3u₁ + u₂ (third order kept)
        ghost = torch.tensor([3.0, -3.0, 1.0], dtype=pos.dtype, device=pos.device)
        out[:, :3] += ext[:, :1] * ghost
        out[:, -3:] += ext[:, -1:] * ghost.flip(0)
    return out


def interpolate(u: Tensor, sensors: Tensor, x: Tensor, kind: str = "cubic",
                period: float | None = None) -> Tensor:
    """u [B, m] at the sensors -> [B, P] at points ``x`` [P] (see :func:`sensor_interpolation`)."""
    w = sensor_interpolation(sensors, x, kind, period).to(device=u.device, dtype=u.dtype)
    return u @ w.T


def periodic_derivatives(u: Tensor, period: float = 1.0, endpoint: bool = False
                         ) -> tuple[Tensor, Tensor]:
    """Spectral (u', u'') [B, n] of u [B, m] sampled on a uniform periodic grid over
    ``period`` (``endpoint``: the last value repeats the first and is dropped, n = m − 1)."""
    u = u.reshape(len(u), -1)
    if endpoint:
        u = u[:, :-1]
    n = u.shape[1]
    k = 2 * torch.pi / period * torch.arange(n // 2 + 1, device=u.device, dtype=u.dtype)
    odd = k.clone()
    if n % 2 == 0:
        odd[-1] = 0.0  # the Nyquist mode has no odd derivative on the grid
    spectrum = torch.fft.rfft(u, dim=1)
    return (torch.fft.irfft(1j * odd * spectrum, n=n, dim=1),
            torch.fft.irfft(-k * k * spectrum, n=n, dim=1))


def _rms(v: Tensor) -> Tensor:
    return v.reshape(len(v), -1).square().mean(dim=1).sqrt()


def _channels(values: Tensor, expected: tuple[int, ...], owner: str) -> None:
    if values.ndim != 3 or values.shape[2] not in expected:
        got = values.shape[2] if values.ndim == 3 else f"shape {list(values.shape)}"
        raise ValueError(f"{owner}: s(y) gives {got} output channel(s), expected "
                         f"[B, P, C] with C in {list(expected)}")


def _with_column(values: Tensor, column: int, fill: float) -> Tensor:
    """[P] values -> [P, 2] points with ``fill`` in the other column at ``column``."""
    out = torch.full((len(values), 2), fill, dtype=values.dtype, device=values.device)
    out[:, column] = values
    return out


# ------------------------------------------------------------------------------------- ODEs
class _ODEResidual:
    """ODE on y ∈ [0, T] with s(0) = 0; the forcing u is given at sensors on [0, T]."""

    terms: tuple[str, ...] = ("pde", "ic")
    config_class: type = object

    def __init__(self, T: float = 1.0, interpolation: str = "cubic") -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={interpolation!r}, expected one of {INTERPOLATIONS}")
        self.T, self.interpolation = float(T), interpolation

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> _ODEResidual:
        cfg = generator_config(cls.config_class, config)
        return cls(T=cfg.T)

    def collocation(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points uniform on [0, T]: [n, 1] float32."""
        return torch.rand(n, 1, generator=generator) * self.T

    def scale(self, u: Tensor) -> Tensor:
        """RMS of the forcing u over the sensors: [B]."""
        return _rms(u)

    def _forcing(self, u: Tensor, sensors: Tensor, y: Tensor) -> Tensor:
        return interpolate(u, sensors, y[:, 0], self.interpolation).to(y.dtype)

    def _with_origin(self, y: Tensor) -> Tensor:
        return torch.cat([y, y.new_zeros(1, y.shape[1])])


class AntiderivativeResidual(_ODEResidual):
    """ds/dy = u(y), s(0) = 0 on [0, T]: ``pde`` = s' − u [B, P], ``ic`` = s(0) [B, 1]."""

    config_class = antiderivative.Config

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor, s: Surrogate
                 ) -> dict[str, Tensor]:
        value, slope = derivative(s, self._with_origin(y), 0)
        _channels(value, (1,), "antiderivative")
        return {"pde": slope[:, :-1, 0] - self._forcing(u, sensors, y), "ic": value[:, -1:, 0]}


class NonlinearODEResidual(_ODEResidual):
    """ds/dy = −s² + u(y), s(0) = 0 on [0, T]: ``pde`` = s' + s² − u [B, P],
    ``ic`` = s(0) [B, 1]."""

    config_class = nonlinear_ode.Config

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor, s: Surrogate
                 ) -> dict[str, Tensor]:
        value, slope = derivative(s, self._with_origin(y), 0)
        _channels(value, (1,), "nonlinear_ode")
        v = value[:, :-1, 0]
        return {"pde": slope[:, :-1, 0] + v * v - self._forcing(u, sensors, y),
                "ic": value[:, -1:, 0]}


class PendulumResidual(_ODEResidual):
    """s₁' = s₂, s₂' = −k sin s₁ + u(t), s(0) = 0 on [0, T].

    With C_out = 2 (outputs ``s``, ``velocity``): ``pde`` = [s₁' − s₂, s₂' + k sin s₁ − u]
    [B, 2P], ``ic`` = [s₁(0), s₂(0)] [B, 2]. With C_out = 1 (s₁ only, the default data):
    ``pde`` = s₁'' + k sin s₁ − u [B, P], ``ic`` = [s₁(0), s₁'(0)] [B, 2].
    """

    config_class = pendulum.Config

    def __init__(self, T: float = 1.0, k: float = 1.0, interpolation: str = "cubic") -> None:
        super().__init__(T, interpolation)
        self.k = float(k)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PendulumResidual:
        cfg = generator_config(cls.config_class, config)
        return cls(T=cfg.T, k=cfg.k)

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor, s: Surrogate
                 ) -> dict[str, Tensor]:
        points = self._with_origin(y)
        value, slope = derivative(s, points, 0)
        _channels(value, (1, 2), "pendulum")
        forcing = self._forcing(u, sensors, y)
        if value.shape[2] == 2:
            s1, s2 = value[:, :-1, 0], value[:, :-1, 1]
            pde = torch.cat([slope[:, :-1, 0] - s2,
                             slope[:, :-1, 1] + self.k * torch.sin(s1) - forcing], dim=1)
            return {"pde": pde, "ic": value[:, -1, :]}
        _, curvature = derivative(s, y, 0, order=2)
        pde = curvature[..., 0] + self.k * torch.sin(value[:, :-1, 0]) - forcing
        return {"pde": pde, "ic": torch.stack([value[:, -1, 0], slope[:, -1, 0]], dim=1)}


# ------------------------------------------------------------------------------------ PDEs
class _SpaceTimeResidual:
    """PDE on (x, t) ∈ [0, 1] × [0, T]; the input u is given at sensors on x ∈ [0, 1]."""

    terms: tuple[str, ...] = ("pde", "ic", "bc")
    config_class: type = object

    def __init__(self, T: float = 1.0, interpolation: str = "cubic") -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={interpolation!r}, expected one of {INTERPOLATIONS}")
        self.T, self.interpolation = float(T), interpolation

    def collocation(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points (x, t) uniform on [0, 1] × [0, T]: [n, 2] float32."""
        return torch.rand(n, 2, generator=generator) * torch.tensor([1.0, self.T])


class DiffusionReactionResidual(_SpaceTimeResidual):
    """s_t = D s_xx + k s² + u(x), s(x, 0) = 0, s(0, t) = s(1, t) = 0.

    ``pde`` = s_t − D s_xx − k s² − u [B, P] at y; ``ic`` = s(x_p, 0) [B, P];
    ``bc`` = [s(0, t_p), s(1, t_p)] [B, 2P] (x_p, t_p: the coordinates of y).
    """

    config_class = diffusion_reaction.Config

    def __init__(self, D: float = 0.01, k: float = 0.01, T: float = 1.0,
                 interpolation: str = "cubic") -> None:
        super().__init__(T, interpolation)
        self.D, self.k = float(D), float(k)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DiffusionReactionResidual:
        cfg = generator_config(cls.config_class, config)
        return cls(D=cfg.D, k=cfg.k, T=cfg.T)

    def scale(self, u: Tensor) -> Tensor:
        """RMS of the source u over the sensors: [B]."""
        return _rms(u)

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor, s: Surrogate
                 ) -> dict[str, Tensor]:
        p = len(y)
        x, t = y[:, 0], y[:, 1]
        points = torch.cat([y, _with_column(x, 0, 0.0), _with_column(t, 1, 0.0),
                            _with_column(t, 1, 1.0)])
        value, s_t = derivative(s, points, 1)
        _channels(value, (1,), "diffusion_reaction")
        _, s_xx = derivative(s, y, 0, order=2)
        v = value[:, :p, 0]
        source = interpolate(u, sensors, x, self.interpolation).to(y.dtype)
        pde = s_t[:, :p, 0] - self.D * s_xx[..., 0] - self.k * v * v - source
        return {"pde": pde, "ic": value[:, p:2 * p, 0], "bc": value[:, 2 * p:, 0]}


class AdvectionResidual(_SpaceTimeResidual):
    """s_t + a s_x = 0, periodic in x on [0, 1), s(x, 0) = u(x) (the input; sensors on
    linspace(0, 1, m), endpoint included).

    ``pde`` = s_t + a s_x [B, P] at y; ``ic`` = s(x_i, 0) − u_i [B, m] at the sensors;
    ``bc`` = s(0, t_p) − s(1, t_p) [B, P].
    """

    config_class = advection.Config

    def __init__(self, speed: float = 1.0, T: float = 1.0, interpolation: str = "cubic") -> None:
        super().__init__(T, interpolation)
        self.speed = float(speed)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AdvectionResidual:
        cfg = generator_config(cls.config_class, config)
        return cls(speed=cfg.speed, T=cfg.T)

    def scale(self, u: Tensor) -> Tensor:
        """|a|·RMS(u') (spectral u' over the periodic sensors; RMS(u)/T when a = 0): [B]."""
        if self.speed == 0:
            return _rms(u) / self.T
        return abs(self.speed) * _rms(periodic_derivatives(u, 1.0, endpoint=True)[0])

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor, s: Surrogate
                 ) -> dict[str, Tensor]:
        p = len(y)
        xs = _sensor_positions(sensors).to(y)
        t = y[:, 1]
        points = torch.cat([y, _with_column(t, 1, 0.0), _with_column(t, 1, 1.0),
                            _with_column(xs, 0, 0.0)])
        value, s_t = derivative(s, points, 1)
        _channels(value, (1,), "advection")
        _, s_x = derivative(s, y, 0)
        pde = s_t[:, :p, 0] + self.speed * s_x[..., 0]
        rest = value[:, p:, 0]
        return {"pde": pde, "ic": rest[:, 2 * p:] - u.to(rest.dtype),
                "bc": rest[:, :p] - rest[:, p:2 * p]}
