"""2-D Darcy flow −∇·(a∇u) = f on (0,1)², u = 0 on ∂Ω (FNO and MgNO set-ups).

Coefficients (``coefficient``):

* ``threshold`` (FNO piecewise constant; presets smooth α=2, τ=3 and rough α=2, τ=5):
  a = ``high`` where a cosine GRF ψ (α, τ, Neumann; ``data_gen.grf``) is >= ``threshold``,
  else ``low``.
* ``multiscale`` (MgNO/HANO "Darcy multiscale", **unverified**: the formula of the MgNO data
  was not found; this is the lead from the HANO paper, arXiv 2210.10890):
  a(x, y) = Π_{k=1}^{K} (1 + ½cos(a_k π(x+y))) (1 + ½sin(a_k π(y−3x))), a_k ~ U[2^{k−1}, 2^k]
  independently per sample, K = ``scales`` (6 is a guess); f ≡ ``forcing``.

Everything lives on the s×s nodes x_i = i/(s−1) (boundary included); arrays are indexed
``[..., i, j]`` ↔ (x_i, y_j) ("ij" indexing). Unlike FNO's ``solve_gwf.m`` there is no spline
step between cell centres and nodes, so ``sol`` is exactly 0 on the boundary.

Discretisation: 5-point finite differences on the (s−2)² interior nodes, face coefficients
a_{i+½,j} = (a_{ij} + a_{i+1,j})/2, scaled by 1/h², h = 1/(s−1). Two solvers agree to ~1e-10:

* ``direct`` (:func:`solve`): sparse LU (SuperLU, no pivoting) after a nested-dissection
  ordering of the grid; the ordering, the CSC pattern and the map from face coefficients to
  matrix entries are built once per resolution, so each sample only fills a data vector.
* ``multigrid`` (:mod:`data_gen.pdes.darcy_multigrid`): conjugate gradients preconditioned by a
  geometric-multigrid V-cycle, batched over the chunk in torch, to a relative residual <= 1e-10.

``solver="auto"`` takes the direct solve below ``MULTIGRID_FROM`` nodes per side (where it is
faster) and multigrid from there on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from data_gen.grf import cosine_grf_2d
from data_gen.pdes.base import Fields

Method = Literal["nd", "mmd", "spsolve"]
COEFFICIENTS = ("threshold", "multiscale")
SOLVERS = ("auto", "direct", "multigrid")
MULTIGRID_FROM = 40  # solver="auto": multigrid from this resolution on (measured crossover)
MULTIGRID_TOL = 1e-10  # relative residual of the multigrid solve


@dataclass(frozen=True)
class DarcyConfig:
    resolution: int = 64  # nodes per side, boundary included
    alpha: float = 2.0  # GRF smoothness (threshold coefficient)
    tau: float = 3.0  # GRF inverse length scale (threshold coefficient)
    high: float = 12.0  # coefficient where the GRF >= threshold
    low: float = 3.0  # coefficient where the GRF < threshold
    threshold: float = 0.0
    forcing: float = 1.0  # constant source f
    coefficient: str = "threshold"  # "threshold" (thresholded GRF) or "multiscale" (unverified)
    scales: int = 6  # multiscale: number K of frequency octaves (6 is a guess)
    solver: str = "auto"  # "direct", "multigrid", or "auto" (multigrid from MULTIGRID_FROM)
    solve: bool = True  # false: inputs only (no outputs; unlabelled physics-informed data)

    def __post_init__(self) -> None:
        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"darcy: {key}={getattr(self, key)!r}, expected {expected}")

        if not isinstance(self.resolution, int | np.integer) or self.resolution < 3:
            raise bad("resolution", "an integer >= 3")
        for key in ("alpha", "tau", "high", "low"):
            if not np.isfinite(getattr(self, key)) or getattr(self, key) <= 0:
                raise bad(key, "a finite number > 0")
        for key in ("threshold", "forcing"):
            if not np.isfinite(getattr(self, key)):
                raise bad(key, "a finite number")
        if self.coefficient not in COEFFICIENTS:
            raise bad("coefficient", " or ".join(map(repr, COEFFICIENTS)))
        if not isinstance(self.scales, int | np.integer) or not 1 <= self.scales <= 30:
            raise bad("scales", "an integer in 1..30")
        if self.solver not in SOLVERS:
            raise bad("solver", ", ".join(map(repr, SOLVERS)))
        if not isinstance(self.solve, bool | np.bool_):
            raise bad("solve", "true or false")


Config = DarcyConfig


def coords(cfg: DarcyConfig) -> dict[str, np.ndarray]:
    """Node coordinates ``x``, ``y``: linspace(0, 1, resolution), float64."""
    x = np.linspace(0.0, 1.0, cfg.resolution)
    return {"x": x, "y": x.copy()}


def coefficients(cfg: DarcyConfig, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """The coefficient fields alone, float64 [len(rngs), s, s] (what :func:`sample` solves
    for; e.g. Monte-Carlo inputs for a trained surrogate)."""
    if cfg.coefficient == "multiscale":
        return multiscale_coefficient(rngs, cfg.resolution, cfg.scales)
    psi = cosine_grf_2d(rngs, cfg.resolution, cfg.alpha, cfg.tau, grid="nodes")
    return np.where(psi >= cfg.threshold, cfg.high, cfg.low)


def sample(cfg: DarcyConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/coeff`` and ``outputs/sol``, float32 [len(rngs), 1, s, s]
    (``solve=False``: ``inputs/coeff`` only; the solve draws no random numbers, so the inputs
    are those of the solved data with the same seed)."""
    coeff = coefficients(cfg, rngs)
    fields: Fields = {"inputs": {"coeff": coeff[:, None].astype(np.float32)}}
    if cfg.solve:
        sol = solve_with(cfg.solver, coeff, cfg.forcing)
        fields["outputs"] = {"sol": sol[:, None].astype(np.float32)}
    return fields


def solve_inputs(cfg: DarcyConfig, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The solve alone for given coefficients: ``inputs["coeff"]`` [n, 1, s, s] (any s >= 3,
    not ``cfg.resolution``) -> ``{"sol": [n, 1, s, s] float64}`` with ``cfg.solver`` and
    ``cfg.forcing`` (see :mod:`data_gen.pdes.base`)."""
    coeff = np.asarray(inputs["coeff"], dtype=np.float64)
    if coeff.ndim != 4 or coeff.shape[1] != 1 or coeff.shape[2] != coeff.shape[3]:
        raise ValueError(f"darcy.solve_inputs: coeff has shape {coeff.shape}, expected "
                         "[n, 1, s, s]")
    return {"sol": solve_with(cfg.solver, coeff[:, 0], cfg.forcing)[:, None]}


def multiscale_frequencies(rngs: Sequence[np.random.Generator], scales: int = 6) -> np.ndarray:
    """a_k ~ U[2^{k−1}, 2^k], k = 1..K, row i drawn from ``rngs[i]`` only: [len(rngs), K]."""
    low = 2.0 ** np.arange(scales)
    if len(rngs) == 0:
        return np.zeros((0, scales))
    return np.stack([r.uniform(low, 2.0 * low) for r in rngs])


def multiscale_coefficient(rngs: Sequence[np.random.Generator], size: int,
                           scales: int = 6) -> np.ndarray:
    """Trigonometric multiscale coefficient on the nodes: [len(rngs), size, size] float64.

    a(x, y) = Π_k (1 + ½cos(a_k π(x+y))) (1 + ½sin(a_k π(y−3x))) with
    :func:`multiscale_frequencies`; each factor lies in [½, 3/2], so 2^{−2K} <= a <=
    (3/2)^{2K} (the HANO-paper lead for MgNO's "Darcy multiscale"; unverified).
    """
    freq = multiscale_frequencies(rngs, scales)
    x = np.linspace(0.0, 1.0, size)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    plus, skew = np.pi * (xx + yy), np.pi * (yy - 3.0 * xx)
    a = np.ones((len(rngs), size, size))
    for k in range(scales):  # K factors, each vectorised over samples and nodes
        ak = freq[:, k, None, None]
        a *= (1.0 + 0.5 * np.cos(ak * plus)) * (1.0 + 0.5 * np.sin(ak * skew))
    return a


def solve_with(solver: str, coeff: np.ndarray, forcing: float | np.ndarray = 1.0) -> np.ndarray:
    """Solve with ``solver`` ("direct", "multigrid" or "auto", see :class:`DarcyConfig`).

    coeff [n, s, s] -> u [n, s, s] float64. The multigrid solve raises
    ``darcy_multigrid.ConvergenceError`` naming the samples (positions in ``coeff``) that did
    not reach the tolerance.
    """
    if solver not in SOLVERS:
        raise ValueError(f"darcy: solver={solver!r}, expected one of {SOLVERS}")
    s = np.shape(coeff)[-1]
    if solver == "direct" or (solver == "auto" and s < MULTIGRID_FROM):
        return solve(coeff, forcing)
    from data_gen.pdes import darcy_multigrid  # imports torch: only when needed

    return darcy_multigrid.solve(coeff, forcing, tol=MULTIGRID_TOL)


# ------------------------------------------------------------------------------ the solver


def nested_dissection(m: int, leaf: int = 4) -> np.ndarray:
    """Nested-dissection order of an m×m grid (row-major ids): [m²] int64, position → id.

    Recursively removes the middle line of the longer side of a block, orders the two halves,
    then the separator; blocks with at most ``leaf``² nodes (or a side <= 2) stay row-major.
    """
    ids = np.arange(m * m, dtype=np.int64).reshape(m, m)
    parts: list[np.ndarray] = []

    def visit(block: np.ndarray) -> None:
        r, c = block.shape
        if r == 0 or c == 0:
            return
        if r * c <= leaf * leaf or min(r, c) <= 2:
            parts.append(block.ravel())
        elif r >= c:
            k = r // 2
            visit(block[:k])
            visit(block[k + 1:])
            parts.append(block[k])
        else:
            k = c // 2
            visit(block[:, :k])
            visit(block[:, k + 1:])
            parts.append(block[:, k])

    visit(ids)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class _Pattern:
    """Per-resolution sparsity data of the interior system (m = s − 2 unknowns per side)."""

    m: int
    order: np.ndarray  # [m²] permuted position -> row-major interior id
    indptr: np.ndarray  # CSC of the permuted matrix
    indices: np.ndarray
    source: np.ndarray  # [nnz] CSC entry -> index into the value vector of _values()


@functools.lru_cache(maxsize=8)
def _pattern(s: int, dissect: bool = True) -> _Pattern:
    m = s - 2
    ids = np.arange(m * m, dtype=np.int64).reshape(m, m)
    order = nested_dissection(m) if dissect else ids.ravel()
    position = np.empty(m * m, dtype=np.int64)
    position[order] = np.arange(m * m)
    # Entries in the order of _values(): diagonal, x-neighbours (both triangles), y-neighbours.
    n_d, n_x = m * m, (m - 1) * m
    vx = n_d + np.arange(n_x)
    vy = n_d + n_x + np.arange(n_x)
    rows = np.concatenate([ids.ravel(), ids[:-1].ravel(), ids[1:].ravel(),
                           ids[:, :-1].ravel(), ids[:, 1:].ravel()])
    cols = np.concatenate([ids.ravel(), ids[1:].ravel(), ids[:-1].ravel(),
                           ids[:, 1:].ravel(), ids[:, :-1].ravel()])
    src = np.concatenate([np.arange(n_d), vx, vx, vy, vy])
    # Label entries 1..nnz (no duplicates), so the CSC data tells where each entry came from.
    label = sp.csc_matrix((np.arange(1, src.size + 1, dtype=np.float64),
                           (position[rows], position[cols])), shape=(m * m, m * m))
    label.sort_indices()
    source = src[label.data.astype(np.int64) - 1]
    return _Pattern(m, order, label.indptr.copy(), label.indices.copy(), source)


def _values(a: np.ndarray) -> np.ndarray:
    """Matrix values h²·A of a batch a [n, s, s]: [n, m² + 2(m−1)m] (diag, x-offd, y-offd)."""
    n = a.shape[0]
    fx = 0.5 * (a[:, :-1, :] + a[:, 1:, :])  # face (i+½, j): [n, s−1, s]
    fy = 0.5 * (a[:, :, :-1] + a[:, :, 1:])  # face (i, j+½): [n, s, s−1]
    diag = fx[:, :-1, 1:-1] + fx[:, 1:, 1:-1] + fy[:, 1:-1, :-1] + fy[:, 1:-1, 1:]
    return np.concatenate([diag.reshape(n, -1), -fx[:, 1:-1, 1:-1].reshape(n, -1),
                           -fy[:, 1:-1, 1:-1].reshape(n, -1)], axis=1)


def solve(coeff: np.ndarray, forcing: float | np.ndarray = 1.0, *,
          method: Method = "nd") -> np.ndarray:
    """Solve −∇·(a∇u) = f, u|∂Ω = 0, for each a in ``coeff`` [n, s, s] (or [s, s]).

    ``forcing``: a scalar or an array broadcastable to ``coeff`` (nodal values; only the
    interior ones are used). Returns u [n, s, s] (or [s, s]) float64, exactly 0 on the boundary.
    ``method``: "nd" (nested dissection + SuperLU without pivoting, the fastest), "mmd"
    (SuperLU's MMD on A+Aᵀ) or "spsolve" (scipy default); all are direct and agree to rounding.
    """
    if method not in ("nd", "mmd", "spsolve"):
        raise ValueError(f"darcy.solve: method={method!r}, expected 'nd', 'mmd' or 'spsolve'")
    a = np.asarray(coeff, dtype=np.float64)
    single = a.ndim == 2
    if single:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"darcy.solve: coeff has shape {np.shape(coeff)}, expected [n, s, s]")
    n, s = a.shape[0], a.shape[-1]
    if np.any(~(a > 0)):
        raise ValueError("darcy.solve: the coefficient must be positive everywhere")
    f = np.broadcast_to(np.asarray(forcing, dtype=np.float64), a.shape)
    u = np.zeros_like(a)
    if s >= 3:
        pat = _pattern(s, dissect=method == "nd")
        values = _values(a) * float(s - 1) ** 2  # 1/h²
        rhs = f[:, 1:-1, 1:-1].reshape(n, -1)[:, pat.order]
        interior = np.empty((n, pat.m * pat.m))
        for k in range(n):
            mat = sp.csc_matrix((values[k][pat.source], pat.indices, pat.indptr),
                                shape=(pat.m**2, pat.m**2))
            if method == "spsolve":
                x = spla.spsolve(mat, rhs[k])
            else:
                lu = spla.splu(mat, permc_spec="NATURAL" if method == "nd" else "MMD_AT_PLUS_A",
                               diag_pivot_thresh=0.0, options={"SymmetricMode": True})
                x = lu.solve(rhs[k])
            interior[k, pat.order] = x
        u[:, 1:-1, 1:-1] = interior.reshape(n, pat.m, pat.m)
    return u[0] if single else u
