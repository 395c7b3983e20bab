"""2-D Helmholtz −Δu − (ω/c)²u = 0 on (0,1)², Neumann data on the top edge (de Hoop et al. set-up).

Set-up of ``Zhengyu-Huang/Operator-Learning`` (``Helmholtz/src/Box_Neumann_To_Dirichlet.jl``,
``Generate_sol``), used by MgNO's Helmholtz benchmark: ω = 1000, ∂u/∂n = g on ∂Ω with
g = 1 on the top edge (y = 1) where |x − 0.5| ≤ 0.15 and g = 0 elsewhere; wave speed
c = 20 + tanh(a), where a is the Karhunen–Loève field

    a(x, y) = Σ_{l=1}^{n_terms} θ_l √λ_l φ_l(x, y),    θ_l ~ N(0, 1) i.i.d.,
    λ_l = (π²(l₁² + l₂²) + τ²)^(−d),    φ_l = ψ_{l₁}(x) ψ_{l₂}(y),
    ψ_0 = 1, ψ_k(t) = √2 cos(πkt)

(so φ = √2 cos πl₁x, √2 cos πl₂y or 2 cos πl₁x cos πl₂y), over the pairs (l₁, l₂) ∈ ℕ² \\ (0, 0)
sorted by l₁² + l₂²; **ties are broken by increasing l₁** — the reference enumerates
l₁ = 0, 1, … (outer) × l₂ = 0, 1, … (inner) and sorts with Julia's stable ``sortperm``, which
gives the same order: (0,1), (1,0), (1,1), (0,2), (2,0), (1,2), (2,1), (2,2), (0,3), (3,0), …
Input ``c`` and output ``u`` at the (E+1)² nodes x_i = i/E, arrays indexed ``[..., i, j]`` ↔
(x_i, y_j) ("ij" indexing, as Darcy and as the reference's ``reshape(state, ne+1, ne+1)``).

Discretisation (as the reference): bilinear (Q1) elements on E×E squares, h = 1/E; all (E+1)²
nodes are unknowns (pure Neumann problem). A = K − M_{k²}:

* K, the Q1 stiffness matrix, is assembled once per resolution (exact);
* M_{k²}[i, j] = ∫ k² φ_i φ_j with k² = ω²/c² **evaluated at the 3×3 Gauss points of every
  element from the analytic KL field** (the reference computes ``ω²/c_func(gp)²`` at ngp = 3
  Gauss points the same way). This is the consistent mass matrix with the true coefficient,
  not an interpolated or lumped one: lumping adds an O(h²) dispersion error of its own, and
  interpolating nodal c would add an O(h²) coefficient error; 3×3 Gauss integrates the
  bilinear×bilinear×smooth integrand to O(h⁶) per element, so quadrature error is negligible.
  :func:`nodal_to_quadrature` gives the interpolated variant for a user with nodal c only.
* load b_i = ∫_{top} g φ_i ds. ``flux_load="exact"`` integrates the indicator exactly against
  the hat functions (total flux 1ᵀb = 2·half_width·flux = 0.3 at every resolution).
  ``flux_load="nodal"`` reproduces the reference: g is evaluated at the nodes (with its
  floating-point test ``abs(x − 0.5) <= 0.15``, which at E = 100 *excludes* the end nodes 0.35
  and 0.65) and its linear interpolant is integrated, giving total flux 0.29 at E = 100.

Solver: the system is real, symmetric and **indefinite** (k² ≈ 2500 lies above ≈ 210 Neumann
eigenvalues π²(m² + n²) of −Δ), so no Cholesky/CG. Per sample: one sparse LU (SuperLU after a
nested-dissection ordering of the grid computed once; symmetric mode with threshold partial
pivoting 0.1, so small diagonal pivots are avoided), one solve, then two checks that raise
``FloatingPointError`` naming the sample's position in the chunk: the normwise backward error
‖Au − b‖∞ / (‖A‖∞‖u‖∞ + ‖b‖∞) <= 1e-10 and ‖A‖∞‖u‖∞/‖b‖∞ <= 1e12 (a lower bound on cond(A):
the backward-stable LU returns a small residual even for a singular, i.e. resonant, matrix;
typical samples give ≈ 30). The matrix values of all samples of a chunk are computed at once
(element mass matrices by two matrix products, scattered by one sparse product into the
cached CSC pattern); only factorisation and solve loop over samples.

Accuracy at the reference size (E = 100, h = 0.01, ω/c ≈ 50, ≈ 12.6 nodes per wavelength,
kh ≈ 0.5): the scheme converges at order 2 (manufactured solution and constant-c series
solution in ``tests/test_helmholtz.py``), but the Q1 pollution error is large at this kh.
Against 800×800-element solutions of the same 8 random samples, the relative L2 nodal error
is 0.59–0.88 (median 0.69) for E = 100, 0.27–0.62 (median 0.32) for E = 200 and 0.07–0.48
(median 0.09) for E = 400. The closed, undamped cavity is near resonance (39 Neumann
eigenvalues lie in the range k² ∈ (2268, 2770) of c ∈ (19, 21)) and Q1 shifts the discrete
eigenvalues by ≈ (kh)²/12 ≈ 2 %, so the 101² data are the *discrete* operator of the
reference (the benchmark's definition, MgNO / de Hoop et al.), not accurate continuous
solutions; raise ``elements`` for those (≈ 0.04–0.1 s/sample at E = 100, ≈ 35 s at
E = 800).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from data_gen.pdes.base import Fields
from data_gen.pdes.darcy import nested_dissection

FluxLoad = Literal["exact", "nodal"]

# 3-point Gauss–Legendre rule on [0, 1] (the reference uses ngp = 3).
GAUSS_POINTS = 0.5 + 0.5 * np.array([-math.sqrt(0.6), 0.0, math.sqrt(0.6)])
GAUSS_WEIGHTS = np.array([5.0, 8.0, 5.0]) / 18.0
BACKWARD_ERROR_TOL = 1e-10
COND_BOUND_MAX = 1e12  # typical samples: ≈ 30


@dataclass(frozen=True)
class HelmholtzConfig:
    elements: int = 100  # elements per side; nodes per side = elements + 1
    omega: float = 1000.0  # angular frequency ω; k = ω / c
    c_mean: float = 20.0  # c = c_mean + c_amplitude · tanh(a)
    c_amplitude: float = 1.0
    n_terms: int = 100  # KL terms
    tau: float = 3.0  # KL: λ_l = (π²|l|² + τ²)^(−d)
    d: float = 2.0
    flux: float = 1.0  # ∂u/∂n on the top-edge window
    flux_center: float = 0.5  # window: |x − flux_center| ≤ flux_half_width on y = 1
    flux_half_width: float = 0.15
    flux_load: str = "exact"  # "exact" (∫ g φ_i exactly) or "nodal" (the reference's)

    def __post_init__(self) -> None:
        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"helmholtz: {key}={getattr(self, key)!r}, expected {expected}")

        for key in ("elements", "n_terms"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise bad(key, "an integer")
        if self.elements < 4:
            raise bad("elements", "an integer >= 4")
        if self.n_terms < 1:
            raise bad("n_terms", "an integer >= 1")
        for key in ("omega", "c_mean", "c_amplitude", "tau", "d", "flux", "flux_center",
                    "flux_half_width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value):
                raise bad(key, "a finite number")
        if not self.omega > 0:
            raise bad("omega", "> 0 (ω = 0 leaves the pure Neumann problem singular)")
        if not self.c_mean > abs(self.c_amplitude):
            raise ValueError(f"helmholtz: c_mean={self.c_mean!r}, expected > |c_amplitude| = "
                             f"{abs(self.c_amplitude)!r} so that c = c_mean + c_amplitude·tanh(a) "
                             "> 0")
        if self.tau < 0:
            raise bad("tau", ">= 0")
        if not self.d > 0:
            raise bad("d", "> 0 (decaying KL eigenvalues)")
        if not 0.0 <= self.flux_center <= 1.0:
            raise bad("flux_center", "in [0, 1] (a position on the top edge)")
        if not 0.0 < self.flux_half_width <= 0.5:
            raise bad("flux_half_width", "in (0, 0.5]")
        if self.flux_load not in ("exact", "nodal"):
            raise bad("flux_load", "'exact' or 'nodal'")

    @property
    def nodes(self) -> int:
        """Nodes per side, ``elements + 1``."""
        return self.elements + 1


Config = HelmholtzConfig


def coords(cfg: HelmholtzConfig) -> dict[str, np.ndarray]:
    """Node coordinates ``x``, ``y``: linspace(0, 1, elements + 1), float64."""
    x = np.linspace(0.0, 1.0, cfg.nodes)
    return {"x": x, "y": x.copy()}


def sample(cfg: HelmholtzConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/c`` and ``outputs/u``, float32 [len(rngs), 1, E+1, E+1].

    Sample i draws ``theta = rngs[i].standard_normal(n_terms)`` (the KL coefficients, in the
    order of :func:`kl_pairs`) and nothing else.
    """
    n_terms = cfg.n_terms
    theta = np.stack([r.standard_normal(n_terms) for r in rngs]) if len(rngs) else \
        np.zeros((0, n_terms))
    nodes = np.linspace(0.0, 1.0, cfg.nodes)
    quad = quadrature_points(cfg.elements)
    c_nodes = wave_speed(kl_field(theta, nodes, nodes, cfg.tau, cfg.d), cfg.c_mean,
                         cfg.c_amplitude)
    c_quad = wave_speed(kl_field(theta, quad, quad, cfg.tau, cfg.d), cfg.c_mean,
                        cfg.c_amplitude)
    k2 = (cfg.omega / c_quad) ** 2
    rhs = np.zeros((cfg.nodes, cfg.nodes))
    rhs[:, -1] = top_flux_load(cfg.elements, cfg.flux_center, cfg.flux_half_width, cfg.flux,
                               cfg.flux_load)
    u = solve(k2, rhs)
    return {
        "inputs": {"c": c_nodes[:, None].astype(np.float32)},
        "outputs": {"u": u[:, None].astype(np.float32)},
    }


# ---------------------------------------------------------------------- the KL wave speed


def kl_pairs(n_terms: int) -> np.ndarray:
    """The first ``n_terms`` pairs (l₁, l₂) ≠ (0, 0), l ≥ 0, by l₁² + l₂² then l₁: int64 [n, 2].

    The order of the reference's ``compute_seq_pairs`` (enumeration l₁ outer, l₂ inner,
    stable sort by l₁² + l₂²).
    """
    if n_terms < 1:
        raise ValueError(f"kl_pairs: n_terms={n_terms}, expected >= 1")
    m = math.isqrt(2 * n_terms) + 2  # the quarter disc |l|² <= m² holds > π m²/4 > n_terms
    l1, l2 = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
    l1, l2 = l1.ravel()[1:], l2.ravel()[1:]  # drop (0, 0); ravel order = l₁ outer, l₂ inner
    order = np.lexsort((l1, l1**2 + l2**2))
    pairs = np.stack([l1[order], l2[order]], axis=1)[:n_terms].astype(np.int64)
    # Every pair with |l|² <= m² is enumerated, so the first n_terms are the true first ones.
    assert (pairs**2).sum(1).max() <= m * m
    return pairs


def kl_eigenvalues(pairs: np.ndarray, tau: float = 3.0, d: float = 2.0) -> np.ndarray:
    """λ_l = (π²(l₁² + l₂²) + τ²)^(−d) for ``pairs`` [n, 2]: float64 [n]."""
    pairs = np.asarray(pairs, dtype=np.float64)
    return (np.pi**2 * (pairs**2).sum(axis=-1) + tau**2) ** (-d)


def kl_cosines(kmax: int, t: np.ndarray) -> np.ndarray:
    """ψ_k(t) for k = 0..kmax: ψ_0 = 1, ψ_k = √2 cos(πkt). [kmax + 1, len(t)] float64."""
    t = np.asarray(t, dtype=np.float64)
    k = np.arange(kmax + 1, dtype=np.float64)
    psi = np.sqrt(2.0) * np.cos(np.pi * k[:, None] * t[None, :])
    psi[0] = 1.0
    return psi


def kl_field(theta: np.ndarray, x: np.ndarray, y: np.ndarray, tau: float = 3.0,
             d: float = 2.0) -> np.ndarray:
    """a(x_i, y_j) = Σ_l θ_l √λ_l ψ_{l₁}(x_i) ψ_{l₂}(y_j) for ``theta`` [n, n_terms].

    ``x`` [Nx], ``y`` [Ny]: the tensor grid (any points, e.g. nodes or Gauss points). The
    terms are those of :func:`kl_pairs` (n_terms = theta.shape[-1]). Returns [n, Nx, Ny]
    float64. Cost O(n·(L²Nx + L·Nx·Ny)), L = max l + 1 (≈ 14 for 100 terms).
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 2:
        raise ValueError(f"kl_field: theta has shape {theta.shape}, expected [n, n_terms]")
    n, n_terms = theta.shape
    pairs = kl_pairs(n_terms)
    kmax = int(pairs.max())
    coef = np.zeros((n, kmax + 1, kmax + 1))
    coef[:, pairs[:, 0], pairs[:, 1]] = theta * np.sqrt(kl_eigenvalues(pairs, tau, d))
    px, py = kl_cosines(kmax, x), kl_cosines(kmax, y)
    return np.einsum("ki,nkl,lj->nij", px, coef, py, optimize=True)


def wave_speed(a: np.ndarray, c_mean: float = 20.0, c_amplitude: float = 1.0) -> np.ndarray:
    """c = c_mean + c_amplitude · tanh(a) (the reference: 20 + 1²·tanh(a))."""
    return c_mean + c_amplitude * np.tanh(a)


# ------------------------------------------------------------------------ Q1 finite elements


def quadrature_points(elements: int) -> np.ndarray:
    """1-D coordinates of the 3 Gauss points of each of the E cells: [3E], cell-major.

    Coefficients "at the quadrature points" are tensor grids [..., 3E, 3E] over these
    coordinates: entry [..., 3e + p, 3f + q] is at (x_{e,p}, y_{f,q}) of element (e, f).
    """
    return ((np.arange(elements)[:, None] + GAUSS_POINTS[None, :]) / elements).ravel()


def nodal_to_quadrature(values: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of nodal values [..., E+1, E+1] to the Gauss grid [..., 3E, 3E]."""
    v = np.asarray(values, dtype=np.float64)
    s = GAUSS_POINTS
    basis = np.stack([1.0 - s, s])  # [2 (left/right node), 3 (point)]

    def along(arr: np.ndarray, axis: int) -> np.ndarray:
        arr = np.moveaxis(arr, axis, -1)
        out = arr[..., :-1, None] * basis[0] + arr[..., 1:, None] * basis[1]
        return np.moveaxis(out.reshape(*arr.shape[:-1], -1), -1, axis)

    return along(along(v, -2), -1)


def _element_basis() -> np.ndarray:
    """B[p, a, b] = W_p L_a(s_p) L_b(s_p), 1-D linear shapes L_0 = 1 − s, L_1 = s: [3, 2, 2]."""
    s = GAUSS_POINTS
    shape = np.stack([1.0 - s, s], axis=1)  # [3, 2]
    return GAUSS_WEIGHTS[:, None, None] * shape[:, :, None] * shape[:, None, :]


def element_mass(weight: np.ndarray) -> np.ndarray:
    """∫_e w φ_a φ_b per element from w at the Gauss grid [n, 3E, 3E]: [n, E, 2, 2, E, 2, 2].

    Indexed [..., e, a_x, b_x, f, a_y, b_y] for the corners a = (e + a_x, f + a_y) and
    b = (e + b_x, f + b_y) of element (e, f); 3×3 Gauss quadrature as two 1-D contractions
    (two matrix products, no transposes).
    """
    w = np.asarray(weight, dtype=np.float64)
    n, e = w.shape[0], w.shape[-1] // 3
    b = _element_basis().reshape(3, 4)  # [p, (a, b)]
    ty = (w.reshape(-1, 3) @ b).reshape(n, e, 3, e * 4)  # [n, e, p, (f, a_y, b_y)]
    m = np.ascontiguousarray(b.T) @ ty  # [n, e, (a_x, b_x), (f, a_y, b_y)]
    return m.reshape(n, e, 2, 2, e, 2, 2) / (e * e)


def element_stiffness() -> np.ndarray:
    """∫_e ∇φ_a·∇φ_b on a square (independent of h in 2-D): [2, 2, 2, 2] indexed
    [a_x, b_x, a_y, b_y] (as :func:`element_mass`); K_x ⊗ M_y + M_x ⊗ K_y of 1-D matrices."""
    k1 = np.array([[1.0, -1.0], [-1.0, 1.0]])
    m1 = np.array([[2.0, 1.0], [1.0, 2.0]]) / 6.0
    return np.einsum("ik,jl->ikjl", k1, m1) + np.einsum("ik,jl->ikjl", m1, k1)


@dataclass(frozen=True)
class _Pattern:
    """Per-resolution sparsity data of the (E+1)² system in nested-dissection order."""

    nodes: int
    order: np.ndarray  # [N²] permuted position -> node id (i·N + j)
    indptr: np.ndarray  # CSC of the permuted matrix
    indices: np.ndarray
    scatter: sp.csr_matrix  # [nnz, E²·16]: element entries -> CSC data (sums duplicates)
    stiffness: np.ndarray  # [nnz] K in CSC order


@functools.lru_cache(maxsize=8)
def _pattern(elements: int) -> _Pattern:
    nn = elements + 1
    order = nested_dissection(nn)
    position = np.empty(nn * nn, dtype=np.int64)
    position[order] = np.arange(nn * nn)
    # Element entry [e, a_x, b_x, f, a_y, b_y] couples (e + a_x, f + a_y) with (e + b_x, f + b_y).
    two = np.arange(2)
    e, ax, bx, f, ay, by = np.meshgrid(np.arange(elements), two, two, np.arange(elements), two,
                                       two, indexing="ij")
    rows = position[((e + ax) * nn + f + ay).ravel()]
    cols = position[((e + bx) * nn + f + by).ravel()]
    key = cols * (nn * nn) + rows  # CSC order: by column, then row
    uniq, inverse = np.unique(key, return_inverse=True)
    indices = uniq % (nn * nn)
    indptr = np.searchsorted(uniq // (nn * nn), np.arange(nn * nn + 1))
    scatter = sp.csr_matrix((np.ones(key.size), (inverse, np.arange(key.size))),
                            shape=(uniq.size, key.size))
    k = element_stiffness()[None, :, :, None]  # [1, a_x, b_x, 1, a_y, b_y]
    stiffness = scatter @ np.broadcast_to(k, (elements, 2, 2, elements, 2, 2)).ravel()
    return _Pattern(nn, order, indptr, indices, scatter, stiffness)


def system_matrices(k2: np.ndarray) -> tuple[list[sp.csc_matrix], np.ndarray]:
    """A = K − M_{k²} for each k² [n, 3E, 3E] at the Gauss grid: CSC matrices in
    nested-dissection order, and that order ([N²] position -> node id i·N + j)."""
    k2 = np.asarray(k2, dtype=np.float64)
    if k2.ndim != 3 or k2.shape[1] != k2.shape[2] or k2.shape[1] % 3 or k2.shape[1] < 3:
        raise ValueError(f"helmholtz: k2 has shape {np.shape(k2)}, expected [n, 3E, 3E] "
                         "(values at the Gauss grid, see quadrature_points)")
    n, elements = k2.shape[0], k2.shape[1] // 3
    pat = _pattern(elements)
    mass = element_mass(k2).reshape(n, pat.scatter.shape[1])
    data = pat.stiffness[:, None] - pat.scatter @ mass.T  # [nnz, n]
    size = pat.nodes**2
    mats = [sp.csc_matrix((np.ascontiguousarray(data[:, k]), pat.indices, pat.indptr),
                          shape=(size, size)) for k in range(n)]
    return mats, pat.order


def top_flux_load(elements: int, center: float = 0.5, half_width: float = 0.15,
                  flux: float = 1.0, mode: FluxLoad = "exact") -> np.ndarray:
    """b_i = ∫_0^1 g(x) φ_i(x) dx on an edge for g = flux·1{|x − center| ≤ half_width}: [E+1].

    ``mode="exact"``: the indicator integrated exactly against the hat functions (Σb = flux ×
    length of [center ± half_width] ∩ [0, 1]). ``mode="nodal"``: the reference's
    discretisation, g at the nodes x_i = i/E by ``abs(x − center) <= half_width`` and its linear
    interpolant integrated (1-D consistent mass matrix times the nodal values).
    """
    h = 1.0 / elements
    if mode == "nodal":
        x = np.arange(elements + 1) / elements
        g = flux * (np.abs(x - center) <= half_width).astype(np.float64)
        return edge_load(nodal_to_edge_quadrature(g))
    if mode != "exact":
        raise ValueError(f"helmholtz.top_flux_load: mode={mode!r}, expected 'exact' or 'nodal'")
    left = np.arange(elements) * h
    lo = np.clip(center - half_width, left, left + h)  # window ∩ cell, per cell
    hi = np.clip(center + half_width, left, left + h)
    # ∫_lo^hi (x − x_e)/h dx and ∫_lo^hi (x_{e+1} − x)/h dx, with s = (x − x_e)/h.
    s0, s1 = (lo - left) / h, (hi - left) / h
    right_part = h * 0.5 * (s1**2 - s0**2)
    left_part = h * (s1 - s0) - right_part
    b = np.zeros(elements + 1)
    b[:-1] += left_part
    b[1:] += right_part
    return flux * b


def nodal_to_edge_quadrature(values: np.ndarray) -> np.ndarray:
    """Linear interpolation of edge nodal values [..., E+1] to the 1-D Gauss points [..., 3E]."""
    v = np.asarray(values, dtype=np.float64)
    s = GAUSS_POINTS
    out = v[..., :-1, None] * (1.0 - s) + v[..., 1:, None] * s
    return out.reshape(*v.shape[:-1], -1)


def edge_load(g: np.ndarray) -> np.ndarray:
    """∫ g φ_i ds along an edge from g at its 1-D Gauss points [..., 3E]: [..., E+1]."""
    g = np.asarray(g, dtype=np.float64)
    e = g.shape[-1] // 3
    s = GAUSS_POINTS
    gw = g.reshape(*g.shape[:-1], e, 3) * GAUSS_WEIGHTS / e
    out = np.zeros((*g.shape[:-1], e + 1))
    out[..., :-1] += (gw * (1.0 - s)).sum(-1)
    out[..., 1:] += (gw * s).sum(-1)
    return out


def body_load(f: np.ndarray) -> np.ndarray:
    """∫ f φ_i dx from f at the Gauss grid [..., 3E, 3E]: nodal load [..., E+1, E+1]."""
    f = np.asarray(f, dtype=np.float64)
    e = f.shape[-1] // 3
    s = GAUSS_POINTS
    shape = np.stack([1.0 - s, s], axis=1) * GAUSS_WEIGHTS[:, None]  # [3, 2]
    fe = f.reshape(*f.shape[:-2], e, 3, e, 3)
    local = np.einsum("...epfq,pi,qj->...efij", fe, shape, shape) / e**2
    out = np.zeros((*f.shape[:-2], e + 1, e + 1))
    for i in (0, 1):
        for j in (0, 1):
            out[..., i:i + e, j:j + e] += local[..., i, j]
    return out


def solve(k2: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve (K − M_{k²}) u = rhs, i.e. −Δu − k²u = f with ∂u/∂n = g, for each sample.

    ``k2`` [n, 3E, 3E]: k² = ω²/c² at the Gauss grid (:func:`quadrature_points`; from nodal
    values use :func:`nodal_to_quadrature`). ``rhs`` [n, E+1, E+1] or [E+1, E+1] (shared):
    the assembled load ∫ f φ_i + ∮ g φ_i (:func:`body_load`, :func:`edge_load`,
    :func:`top_flux_load`), node (i, j) ↔ (x_i, y_j). Returns u [n, E+1, E+1] float64.
    Raises ``FloatingPointError`` naming the sample's position if k² or the solution is not
    finite, the SuperLU factor is singular, the backward error exceeds 1e-10, or
    ‖A‖∞‖u‖∞/‖b‖∞ (a lower bound on cond(A)) exceeds 1e12: a numerically singular, i.e.
    resonant, system.
    """
    k2 = np.asarray(k2, dtype=np.float64)
    rhs = np.asarray(rhs, dtype=np.float64)
    if k2.ndim == 3:
        n, nn = k2.shape[0], k2.shape[1] // 3 + 1
        if rhs.shape[-2:] != (nn, nn) or rhs.ndim not in (2, 3) or \
                (rhs.ndim == 3 and rhs.shape[0] != n):
            raise ValueError(f"helmholtz.solve: rhs has shape {rhs.shape}, expected "
                             f"[{n}, {nn}, {nn}] or [{nn}, {nn}]")
        finite = np.isfinite(k2).all(axis=(1, 2))
        if not np.all(finite):
            raise FloatingPointError(f"helmholtz: sample {int(np.argmin(finite))} of the chunk: "
                                     "k² = ω²/c² has non-finite values")
    mats, order = system_matrices(k2)  # validates the shape of k2
    b = np.broadcast_to(rhs, (n, nn, nn)).reshape(n, nn * nn)[:, order]
    u = np.empty((n, nn * nn))
    for k, mat in enumerate(mats):
        try:
            lu = spla.splu(mat, permc_spec="NATURAL", diag_pivot_thresh=0.1,
                           options={"SymmetricMode": True})
            x = lu.solve(b[k])
        except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
            raise FloatingPointError(f"helmholtz: sample {k} of the chunk: the system is "
                                     f"singular ({err})") from err
        norm_a = abs(mat).sum(axis=1).max()
        norm_x, norm_b = np.abs(x).max(), np.abs(b[k]).max()
        backward = np.abs(mat @ x - b[k]).max() / (norm_a * norm_x + norm_b) if norm_b > 0 \
            else 0.0
        # ‖A‖‖u‖/‖b‖ is a lower bound on cond(A): a huge value means a (numerically) singular
        # system, where the backward-stable LU still returns a tiny residual.
        cond_bound = norm_a * norm_x / norm_b if norm_b > 0 else 0.0
        if not (np.all(np.isfinite(x)) and backward <= BACKWARD_ERROR_TOL
                and cond_bound <= COND_BOUND_MAX):
            raise FloatingPointError(
                f"helmholtz: sample {k} of the chunk: solve failed (finite: "
                f"{bool(np.all(np.isfinite(x)))}, backward error {backward:.2e} (max "
                f"{BACKWARD_ERROR_TOL:g}), ‖A‖‖u‖/‖b‖ = {cond_bound:.2e} (max "
                f"{COND_BOUND_MAX:g})); the system is numerically singular (resonant k²?)")
        u[k, order] = x
    return u.reshape(n, nn, nn)
