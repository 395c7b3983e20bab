"""Helmholtz residual with the generator's Q1 finite-element operator (:mod:`data_gen.pdes.
helmholtz`): R(u) = K u − M_{k²} u − b on all (E+1)² nodes (pure Neumann problem; the flux
condition ∂u/∂n = g is part of the weak form, so the boundary rows are the boundary condition).

What the dataset holds and what the residual needs. The generator assembles M_{k²} with
k² = ω²/c² evaluated at the 3×3 Gauss points of every element **from the analytic KL field**,
and the load b = ∮ g φ_i from the config (g: ``flux`` on the top-edge window). A dataset
stores only c at the nodes (``inputs/c``, float32) and u (``outputs/u``); the KL coefficients
θ are not stored. Two ways to get k² at the Gauss points (``coefficient``):

* ``"kl"`` (default, exact): a = atanh((c − c_mean)/c_amplitude) lies in the span of the
  tensor-product cosines ψ_k(x)ψ_l(y), k, l <= kmax (kmax ≈ 13 for 100 terms), which the nodes
  determine uniquely while E >= kmax; a per-axis least-squares projection onto those cosines,
  evaluated at the Gauss points, recovers the generator's k² to the rounding of the stored c
  (float32: ~1e-7 relative). The residual of the stored solutions is then ≈ 0 to rounding.
  Uses ``n_terms``, ``c_mean``, ``c_amplitude`` of the config (not τ, d: the span does not
  depend on the KL eigenvalues); exact for inputs drawn by the generator (another c is
  replaced by its projection onto the span).
* ``"bilinear"``: c interpolated bilinearly to the Gauss points
  (``helmholtz.nodal_to_quadrature``), for any nodal c; an O(h²) coefficient error, so the
  residual of the stored solutions is small but not 0.

Units: every row is divided by its lumped mass m_i = h²·w_i (w = 1 inside, ½ on an edge,
¼ at a corner), so ``pde`` (interior rows) approximates the strong residual −Δu − k²u (f = 0),
in units of k²u (k² ≈ 2500 for ω = 1000, c ≈ 20), and ``bc`` (boundary rows) is that plus
(2/h)·(∂u/∂n − g) -- boundary rows weigh the flux mismatch by 1/h. ``scale`` = RMS of b/m
over all nodes (the data of the problem in the same units: 2g/h on the ≈ 0.3/h window
nodes; ‖b/m‖₂ ≈ 1090 at E = 100).
Stored float32 data (E = 100): relative residual ‖(pde, bc)‖₂/scale ≈ 1.3e-6 with ``"kl"``,
≈ 2e-5 with ``"bilinear"``. A strided grid works but is not resolved at ω = 1000 (kh ≈ 1 on a
half grid: relative residual 0.4–50 near resonance): evaluate a physics loss on the stored grid.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from data_gen.physics.darcy import at_least_float32, boundary_values

__all__ = ["HelmholtzResidual", "fem_residual", "stiffness_apply", "to_gauss", "to_nodes"]

Coefficient = Literal["kl", "bilinear"]


def _gauss() -> tuple[Tensor, Tensor]:
    from data_gen.pdes.helmholtz import GAUSS_POINTS, GAUSS_WEIGHTS

    return torch.from_numpy(GAUSS_POINTS), torch.from_numpy(GAUSS_WEIGHTS)


def to_gauss(v: Tensor, dim: int) -> Tensor:
    """Linear interpolation of nodal values along ``dim`` (E+1 nodes) to the 3 Gauss points of
    each of the E cells (3E, cell-major, as ``helmholtz.quadrature_points``)."""
    s, _ = _gauss()
    s = s.to(v)
    v = v.movedim(dim, -1)
    out = v[..., :-1, None] * (1.0 - s) + v[..., 1:, None] * s  # [..., E, 3]
    return out.flatten(-2).movedim(-1, dim)


def to_nodes(g: Tensor, dim: int) -> Tensor:
    """∫ g φ_i along ``dim`` from g at the Gauss points [.., 3E, ..] -> [.., E+1, ..] (the
    transpose of :func:`to_gauss` with the quadrature weights and h = 1/E)."""
    s, w = _gauss()
    s, w = s.to(g), w.to(g)
    g = g.movedim(dim, -1)
    e = g.shape[-1] // 3
    gw = g.unflatten(-1, (e, 3)) * (w / e)
    left, right = (gw * (1.0 - s)).sum(-1), (gw * s).sum(-1)  # [..., E]
    return (F.pad(left, (0, 1)) + F.pad(right, (1, 0))).movedim(-1, dim)


def _stiffness_1d(v: Tensor, dim: int) -> Tensor:
    """h·K₁ v along ``dim``: the 1-D Q1 stiffness (natural ends), h-free."""
    v = v.movedim(dim, -1)
    d = v[..., 1:] - v[..., :-1]
    return (F.pad(-d, (0, 1)) + F.pad(d, (1, 0))).movedim(-1, dim)


def _mass_1d(v: Tensor, dim: int) -> Tensor:
    """M₁ v / h along ``dim``: the 1-D Q1 consistent mass matrix, h-free."""
    v = v.movedim(dim, -1)
    left, right = (2.0 * v[..., :-1] + v[..., 1:]) / 6.0, (v[..., :-1] + 2.0 * v[..., 1:]) / 6.0
    return (F.pad(left, (0, 1)) + F.pad(right, (1, 0))).movedim(-1, dim)


def stiffness_apply(u: Tensor) -> Tensor:
    """K u for the Q1 stiffness K = K₁⊗M₁ + M₁⊗K₁ (independent of h in 2-D): [.., N, N]."""
    return _stiffness_1d(_mass_1d(u, -1), -2) + _mass_1d(_stiffness_1d(u, -1), -2)


def fem_residual(k2_gauss: Tensor, u: Tensor, load: Tensor) -> Tensor:
    """K u − M_{k²} u − b: k² at the Gauss grid [B, 3E, 3E], u [B, E+1, E+1], assembled load
    b [E+1, E+1] or [B, E+1, E+1] -> [B, E+1, E+1] (the generator's matrix rows)."""
    u_gauss = to_gauss(to_gauss(u, -2), -1)
    mass = to_nodes(to_nodes(k2_gauss * u_gauss, -2), -1)
    return stiffness_apply(u) - mass - load


@functools.lru_cache(maxsize=16)
def _kl_map(elements: int, n_terms: int) -> np.ndarray:
    """T [3E, E+1]: nodal values -> Gauss points, exact on span{ψ_0..ψ_kmax} (least squares)."""
    from data_gen.pdes.helmholtz import kl_cosines, kl_pairs, quadrature_points

    kmax = int(kl_pairs(n_terms).max())
    if kmax > elements:
        raise ValueError(f"helmholtz residual: {elements} elements cannot resolve the KL field "
                         f"of n_terms={n_terms} (cosines up to k={kmax}); use "
                         "coefficient='bilinear' or a finer grid")
    nodes = np.linspace(0.0, 1.0, elements + 1)
    at_nodes = kl_cosines(kmax, nodes)  # [K, N]
    at_gauss = kl_cosines(kmax, quadrature_points(elements))  # [K, 3E]
    return at_gauss.T @ np.linalg.pinv(at_nodes.T)


@functools.lru_cache(maxsize=16)
def _load_and_mass(elements: int, flux: float, center: float, half_width: float,
                   mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The generator's load b [N, N] and the lumped Q1 mass m [N, N] (h²·w)."""
    from data_gen.pdes.helmholtz import top_flux_load

    nn = elements + 1
    load = np.zeros((nn, nn))
    load[:, -1] = top_flux_load(elements, center, half_width, flux, mode)
    w = np.ones(nn) / elements
    w[[0, -1]] *= 0.5
    return load, np.outer(w, w)


class HelmholtzResidual:
    """−Δu − k²u = 0, ∂u/∂n = g (a :class:`~data_gen.physics.GridResidual`), Q1 FEM.

    ``inputs`` [B, 1, N, N]: the wave speed c at the nodes (``inputs/c``); ``outputs``
    [B, 1, N, N]: u (``outputs/u``); N = E+1 nodes per side, "ij" indexing, E from the shape
    (a strided grid works: residual then O(h²)). Returns ``{"pde": [B, N−2, N−2], "bc":
    [B, 4(N−1)]}`` (rows divided by the lumped mass: units of k²u, see the module docstring),
    float32 at least, differentiable in both arguments.
    """

    terms: tuple[str, ...] = ("pde", "bc")

    def __init__(self, omega: float = 1000.0, c_mean: float = 20.0, c_amplitude: float = 1.0,
                 n_terms: int = 100, flux: float = 1.0, flux_center: float = 0.5,
                 flux_half_width: float = 0.15, flux_load: str = "exact",
                 coefficient: Coefficient = "kl") -> None:
        if coefficient not in ("kl", "bilinear"):
            raise ValueError(f"helmholtz residual: coefficient={coefficient!r}, expected 'kl' "
                             "or 'bilinear'")
        self.omega, self.c_mean, self.c_amplitude = float(omega), float(c_mean), float(c_amplitude)
        self.n_terms, self.coefficient = int(n_terms), coefficient
        self.flux = (float(flux), float(flux_center), float(flux_half_width), str(flux_load))

    @classmethod
    def from_config(cls, config: Mapping[str, Any],
                    coefficient: Coefficient = "kl") -> HelmholtzResidual:
        """From the helmholtz generator's config mapping (unknown keys are ignored)."""
        from data_gen.pdes import make_config
        from data_gen.pdes.helmholtz import HelmholtzConfig

        known = {f.name for f in dataclasses.fields(HelmholtzConfig)}
        cfg = make_config("helmholtz", {k: v for k, v in dict(config).items() if k in known})
        return cls(omega=cfg.omega, c_mean=cfg.c_mean, c_amplitude=cfg.c_amplitude,
                   n_terms=cfg.n_terms, flux=cfg.flux, flux_center=cfg.flux_center,
                   flux_half_width=cfg.flux_half_width, flux_load=cfg.flux_load,
                   coefficient=coefficient)

    def wave_number_squared(self, c: Tensor) -> Tensor:
        """k² = ω²/c² at the Gauss grid [B, 3E, 3E] from nodal c [B, N, N]."""
        if self.coefficient == "kl" and self.c_amplitude != 0.0:
            t = _kl_map(c.shape[-1] - 1, self.n_terms)
            t = torch.as_tensor(t, dtype=c.dtype, device=c.device)
            ratio = ((c - self.c_mean) / self.c_amplitude).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
            a_gauss = t @ torch.atanh(ratio) @ t.T
            c_gauss = self.c_mean + self.c_amplitude * torch.tanh(a_gauss)
        else:
            c_gauss = to_gauss(to_gauss(c, -2), -1)
        return (self.omega / c_gauss) ** 2

    def _load_and_mass(self, like: Tensor) -> tuple[Tensor, Tensor]:
        load, mass = _load_and_mass(like.shape[-1] - 1, *self.flux)
        return (torch.as_tensor(load, dtype=like.dtype, device=like.device),
                torch.as_tensor(mass, dtype=like.dtype, device=like.device))

    def __call__(self, inputs: Tensor, outputs: Tensor) -> dict[str, Tensor]:
        _check(inputs, outputs)
        c, u = at_least_float32(inputs[:, 0]), at_least_float32(outputs[:, 0])
        dtype = torch.promote_types(c.dtype, u.dtype)
        c, u = c.to(dtype), u.to(dtype)
        load, mass = self._load_and_mass(u)
        r = fem_residual(self.wave_number_squared(c), u, load) / mass
        return {"pde": r[:, 1:-1, 1:-1], "bc": boundary_values(r)}

    def scale(self, inputs: Tensor) -> Tensor:
        """RMS of b/m over all nodes, per sample [B] (the flux data in the residual's
        units), so ``RMS(r) / scale`` over all nodes is the relative residual of the
        (mass-scaled) linear system."""
        load, mass = self._load_and_mass(at_least_float32(inputs))
        data = load / mass
        return (data.norm() / data.numel() ** 0.5).expand(inputs.shape[0]).clone()

    def __repr__(self) -> str:
        return (f"HelmholtzResidual(omega={self.omega}, c_mean={self.c_mean}, "
                f"c_amplitude={self.c_amplitude}, n_terms={self.n_terms}, "
                f"coefficient={self.coefficient!r})")


def _check(inputs: Tensor, outputs: Tensor) -> None:
    for name, x in (("inputs", inputs), ("outputs", outputs)):
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 3:
            raise ValueError(f"helmholtz residual: {name} has shape {tuple(x.shape)}, expected "
                             "[B, 1, N, N] with N >= 3")
    if inputs.shape != outputs.shape:
        raise ValueError(f"helmholtz residual: inputs {tuple(inputs.shape)} and outputs "
                         f"{tuple(outputs.shape)} differ, expected the same [B, 1, N, N]")
