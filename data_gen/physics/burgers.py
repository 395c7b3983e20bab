"""Point residual of viscous Burgers in (x, t) (:mod:`data_gen.pdes.burgers`) for a DeepONet
that maps the initial condition u₀ (at the sensors x_i = i/m of the periodic grid, the
dataset's ``inputs/u0``) to s(x, t) on [0, 1) × [0, T]:

    s_t + s s_x = ν s_xx,   s(x, 0) = u₀(x),   s and s_x periodic in x (period 1),

ν = the generator's ``viscosity``, T = the last of ``record_times`` (or ``T`` when none).
Call it as any :class:`data_gen.physics.PointResidual`; the trunk takes (x, t) [P, 2].

Note: the stored labels are u(·, T) (or the record times) on the x grid, which the point
datamodule reads as query points [Q, 1] (x only, one channel per record time); a DeepONet
trained with this residual takes (x, t), so its labelled points are (x_q, T) (or (x_q, t_c)
for channel c).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.func import jvp

from data_gen.pdes import burgers
from data_gen.physics import derivative
from data_gen.physics.deeponet import (
    Surrogate,
    _channels,
    _rms,
    _sensor_positions,
    _with_column,
    generator_config,
)

__all__ = ["BurgersResidual"]


def slope_and_curvature(s: Surrogate, y: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """(∂s/∂y_axis, ∂²s/∂y_axis²) [B, P, C] in one nested forward-mode pass (for s as in
    :func:`data_gen.physics.derivative`, which returns s and the second derivative only)."""
    tangent = torch.zeros_like(y)
    tangent[..., axis] = 1.0

    def first(points: Tensor) -> Tensor:
        return jvp(s, (points,), (tangent,))[1]

    return jvp(first, (y,), (tangent,))


class BurgersResidual:
    """``pde`` = s_t + s s_x − ν s_xx [B, P] at y; ``ic`` = s(x_i, 0) − u₀(x_i) [B, m] at the
    sensors (exact input values); ``bc`` = [s(0, t_p) − s(1, t_p), s_x(0, t_p) − s_x(1, t_p)]
    [B, 2P] (t_p: the collocation times). A DeepONet whose trunk has Fourier features of
    period 1 in x has ``bc`` = 0 by construction.

    :meth:`scale` [B]: a·(2π a + 4π² ν), a = RMS(u₀) over the sensors: the size of s s_x and
    ν s_xx for a unit-wavelength mode of u₀'s amplitude (not u₀'s own derivatives: the GRF
    u₀ is rough, its ν u₀'' grows with the grid and decays at once).
    """

    terms: tuple[str, ...] = ("pde", "ic", "bc")

    def __init__(self, viscosity: float = 0.1, T: float = 1.0) -> None:
        if not viscosity > 0 or not T > 0:
            raise ValueError(f"burgers residual: viscosity={viscosity}, T={T}; expected > 0")
        self.viscosity, self.T = float(viscosity), float(T)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BurgersResidual:
        cfg = generator_config(burgers.Config, config)
        end = max(cfg.record_times) if cfg.record_times else cfg.T
        return cls(viscosity=cfg.viscosity, T=end)

    def collocation(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points (x, t) uniform on [0, 1) × [0, T]: [n, 2] float32."""
        return torch.rand(n, 2, generator=generator) * torch.tensor([1.0, self.T])

    def scale(self, u: Tensor) -> Tensor:
        amplitude = _rms(u)
        return amplitude * (2 * torch.pi * amplitude + 4 * torch.pi**2 * self.viscosity)

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor, s: Surrogate
                 ) -> dict[str, Tensor]:
        p = len(y)
        u = u.reshape(len(u), -1)
        xs = _sensor_positions(sensors).to(y)
        t = y[:, 1]
        sides = torch.cat([_with_column(t, 1, 0.0), _with_column(t, 1, 1.0)])
        value, s_t = derivative(s, torch.cat([y, sides, _with_column(xs, 0, 0.0)]), 1)
        _channels(value, (1,), "burgers")
        s_x, s_xx = slope_and_curvature(s, torch.cat([y, sides]), 0)
        v = value[:, :p, 0]
        pde = s_t[:, :p, 0] + v * s_x[:, :p, 0] - self.viscosity * s_xx[:, :p, 0]
        edge, edge_x = value[:, p:3 * p, 0], s_x[:, p:, 0]
        bc = torch.cat([edge[:, :p] - edge[:, p:], edge_x[:, :p] - edge_x[:, p:]], dim=1)
        return {"pde": pde, "ic": value[:, 3 * p:, 0] - u.to(value.dtype), "bc": bc}
