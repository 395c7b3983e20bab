"""Darcy residual −∇·(a∇u) − f with exactly the generator's 5-point flux scheme
(:mod:`data_gen.pdes.darcy`): face coefficients a_{i+½,j} = (a_{ij} + a_{i+1,j})/2, scaled by
1/h², h = 1/(s−1) from the array's shape, on the (s−2)² interior nodes; u = 0 on ∂Ω.

Units: ``pde`` is in the units of the source f (here f = ``forcing``, O(1)), not of u: the
stored solutions are u ~ 1e-2 (max ≈ 0.014 for a ∈ {3, 12}, f = 1), so a nodal error δu
shows up as ≈ 4·a·δu/h² in ``pde`` -- an amplification of 4·a·(s−1)² (≈ 2e5 at s = 64,
a = 12) that weighs high frequencies most: u·1.01 gives a relative residual 0.01, but 1 %
white noise on u gives ≈ 10 (s = 64). The float32 rounding of the stored u leaves a floor:
relative residual ‖r‖₂/‖f‖₂ ≈ 1e-6 (s = 17), 5e-6 (s = 33), 2e-5 (s = 64), max |r| ≈ 1.3e-4·f
at s = 64, growing like s². ``pde`` takes the boundary values from the Dirichlet data
(u = 0), as the scheme does, so the interior equations and the boundary condition are
separate terms: a network's boundary error does not leak into ``pde``. ``bc`` is the
Dirichlet condition written as the scheme's row
would weigh it, 4·a·u/h² at the boundary nodes (units of f too, exactly 0 on the stored
data): a boundary error δu counts like the same error at an interior node. (With u itself,
in units of u ~ 1e-2, the condition would be ~1e-8 of the equation's weight and a trained
or refined network would drift by a harmonic function that the interior residual cannot
see.)

A strided grid (every 2nd node) is a valid input: the residual is then the coarse scheme's
truncation error, O(h²) for a smooth a, but O(1) relative for the thresholded (3/12) a,
whose jumps subsampling moves by O(h) (measured 0.35–0.9, growing with s): evaluate a
physics loss on the stored grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["DarcyResidual", "at_least_float32", "boundary_values", "darcy_residual"]


def at_least_float32(x: Tensor) -> Tensor:
    """x in float32 at least (bf16/fp16 -> float32; float64 stays float64)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def darcy_residual(a: Tensor, u: Tensor, f: float | Tensor = 1.0) -> Tensor:
    """−∇·(a∇u) − f with the generator's 5-point flux scheme: a, u [B, s, s] -> [B, s−2, s−2].

    Interior nodes only (the boundary values of u enter as the Dirichlet data); h = 1/(s−1).
    ``f``: a scalar or a tensor broadcastable to [B, s−2, s−2]. Zero to rounding on the
    generator's float64 solutions.
    """
    s = u.shape[-1]
    fx = 0.5 * (a[..., :-1, :] + a[..., 1:, :])  # face (i+½, j): [B, s−1, s]
    fy = 0.5 * (a[..., :, :-1] + a[..., :, 1:])  # face (i, j+½): [B, s, s−1]
    flux_x = fx * (u[..., 1:, :] - u[..., :-1, :])  # a_{i+½,j}(u_{i+1,j} − u_{ij})
    flux_y = fy * (u[..., :, 1:] - u[..., :, :-1])
    div = (flux_x[..., 1:, 1:-1] - flux_x[..., :-1, 1:-1]
           + flux_y[..., 1:-1, 1:] - flux_y[..., 1:-1, :-1])
    return -div * float(s - 1) ** 2 - f


def boundary_values(u: Tensor) -> Tensor:
    """The 4(s−1) boundary nodes of u [B, s, s] -> [B, 4(s−1)], each node once (the
    edges x = 0 and x = 1 whole, then y = 0 and y = 1 without their corners)."""
    return torch.cat([u[..., 0, :], u[..., -1, :], u[..., 1:-1, 0], u[..., 1:-1, -1]], dim=-1)


class DarcyResidual:
    """−∇·(a∇u) = f, u|∂Ω = 0, on the generator's grid (a :class:`~data_gen.physics.GridResidual`).

    ``inputs`` [B, 1, s, s]: the coefficient a (the dataset's ``inputs/coeff``); ``outputs``
    [B, 1, s, s]: u (``outputs/sol``), physical units, nodes x_i = i/(s−1) including the
    boundary ("ij" indexing). Any s >= 3 (a strided grid works: the residual is then O(h²)).
    Returns ``{"pde": [B, s−2, s−2], "bc": [B, 4(s−1)]}`` (both in units of f), in float32
    at least (float64 in, float64 out), differentiable in both arguments.
    """

    terms: tuple[str, ...] = ("pde", "bc")
    #: the boundary rows at 1 % of the equations' weight: measured on refinement of a
    #: smooth-trained MgNO on rough inputs (32²), weight 1 lets the large initial boundary
    #: error dominate the first steps (rel. L2 1.3 % -> 3.9 %), 0.01 gives 0.06 %
    default_weights: dict[str, float] = {"pde": 1.0, "bc": 0.01}

    def __init__(self, forcing: float = 1.0) -> None:
        self.forcing = float(forcing)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DarcyResidual:
        """From the darcy generator's config mapping (``resolution``, ``forcing``, ...; keys
        this residual does not use, or the config dataclass does not know, are ignored)."""
        from data_gen.pdes import make_config
        from data_gen.pdes.darcy import DarcyConfig

        known = {f.name for f in dataclasses.fields(DarcyConfig)}
        cfg = make_config("darcy", {k: v for k, v in dict(config).items() if k in known})
        return cls(forcing=cfg.forcing)

    def __call__(self, inputs: Tensor, outputs: Tensor) -> dict[str, Tensor]:
        _check(inputs, outputs)
        a, u = at_least_float32(inputs[:, 0]), at_least_float32(outputs[:, 0])
        dtype = torch.promote_types(a.dtype, u.dtype)
        a, u = a.to(dtype), u.to(dtype)
        h2 = float(u.shape[-1] - 1) ** 2  # 1/h²
        interior = torch.zeros_like(u)  # the Dirichlet data (0) on the boundary, as the scheme
        interior[..., 1:-1, 1:-1] = u[..., 1:-1, 1:-1]
        return {"pde": darcy_residual(a, interior, self.forcing),
                "bc": 4.0 * boundary_values(a) * boundary_values(u) * h2}

    def scale(self, inputs: Tensor) -> Tensor:
        """RMS of f over the interior nodes, per sample [B] (= |f| for the constant source;
        0 when f = 0), so ``RMS(r_pde) / scale`` is the relative residual of the linear
        system."""
        value = abs(self.forcing)
        return torch.full((inputs.shape[0],), value, dtype=at_least_float32(inputs).dtype,
                          device=inputs.device)

    def __repr__(self) -> str:
        return f"DarcyResidual(forcing={self.forcing})"


def _check(inputs: Tensor, outputs: Tensor) -> None:
    for name, x in (("inputs", inputs), ("outputs", outputs)):
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 3:
            raise ValueError(f"darcy residual: {name} has shape {tuple(x.shape)}, expected "
                             "[B, 1, s, s] with s >= 3")
    if inputs.shape != outputs.shape:
        raise ValueError(f"darcy residual: inputs {tuple(inputs.shape)} and outputs "
                         f"{tuple(outputs.shape)} differ, expected the same [B, 1, s, s]")
