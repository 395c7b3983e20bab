"""2-D Darcy flow −∇·(a∇u) = f on (0,1)², u = 0 on ∂Ω, piecewise-constant a (FNO setup).

a = ``high`` where a cosine GRF ψ (α, τ, Neumann; ``data_gen.grf``) is >= ``threshold``, else
``low``. Everything lives on the s×s nodes x_i = i/(s−1) (boundary included); arrays are
indexed ``[..., i, j]`` ↔ (x_i, y_j) ("ij" indexing). Unlike FNO's ``solve_gwf.m`` there is no
spline step between cell centres and nodes, so ``sol`` is exactly 0 on the boundary.

Discretisation: 5-point finite differences on the (s−2)² interior nodes, face coefficients
a_{i+½,j} = (a_{ij} + a_{i+1,j})/2, scaled by 1/h², h = 1/(s−1). The SPD system is solved by
sparse LU (SuperLU, no pivoting) after a nested-dissection ordering of the grid; the ordering,
the CSC pattern and the map from face coefficients to matrix entries are built once per
resolution, so each sample only fills a data vector.
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


@dataclass(frozen=True)
class DarcyConfig:
    resolution: int = 64  # nodes per side, boundary included
    alpha: float = 2.0  # GRF smoothness
    tau: float = 3.0  # GRF inverse length scale
    high: float = 12.0  # coefficient where the GRF >= threshold
    low: float = 3.0  # coefficient where the GRF < threshold
    threshold: float = 0.0
    forcing: float = 1.0  # constant source f


Config = DarcyConfig


def coords(cfg: DarcyConfig) -> dict[str, np.ndarray]:
    """Node coordinates ``x``, ``y``: linspace(0, 1, resolution), float64."""
    x = np.linspace(0.0, 1.0, cfg.resolution)
    return {"x": x, "y": x.copy()}


def sample(cfg: DarcyConfig, rngs: Sequence[np.random.Generator]) -> Fields:
    """One chunk: ``inputs/coeff`` and ``outputs/sol``, float32 [len(rngs), 1, s, s]."""
    psi = cosine_grf_2d(rngs, cfg.resolution, cfg.alpha, cfg.tau, grid="nodes")
    coeff = np.where(psi >= cfg.threshold, cfg.high, cfg.low)
    sol = solve(coeff, cfg.forcing)
    return {
        "inputs": {"coeff": coeff[:, None].astype(np.float32)},
        "outputs": {"sol": sol[:, None].astype(np.float32)},
    }


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
