"""Batched multigrid-preconditioned conjugate gradients for the Darcy 5-point operator.

Solves −∇·(a∇u) = f, u|∂Ω = 0, on the s×s nodes x_i = i/(s−1) of (0,1)² for many coefficient
fields at once, with exactly the discretisation of :func:`data_gen.pdes.darcy.solve`: 5-point
finite differences on the (s−2)² interior nodes, face coefficients (a_p + a_q)/2, scaled by 1/h²
(the solver works with the equivalent h²-scaled system). Written with torch tensor operations
(slicing, element-wise products, batched Cholesky), so the same code runs on CPU and GPU; there
is no Python loop over samples or grid points.

Method
------
* **Hierarchy** (any s ≥ 3): a level with m interior nodes per side has the m//2 coarse nodes at
  the odd interior indices 1, 3, …, i.e. at even grid nodes 2, 4, …; when the number of grid
  intervals is odd (s = 256: 255 intervals) the last coarse interval is one fine interval wide.
  Prolongation P is bilinear interpolation in index space (neighbours outside the grid are the
  Dirichlet boundary, value 0), restriction is Pᵀ, and the coarse operators are the Galerkin
  products PᵀAP: symmetric 9-point stencils stored as tensors [n, m, m] / [n, m−1, m] / …,
  computed in closed form from stride-2 slices (:func:`galerkin`; :func:`galerkin_probe`
  checks it by probing). Galerkin coarsening keeps the hierarchy faithful to jumping
  coefficients (12/3 thresholds; multiscale products with a contrast of ~10⁴). Coarsening
  stops once m ≤ ``COARSEST``; that level is solved by a batched dense Cholesky factorisation.
  The operators and grid transfers are in :mod:`data_gen.pdes.darcy_stencils`.
* **V-cycle** (the preconditioner): one damped-Jacobi step (ω = 0.8) before and one after the
  coarse correction. Jacobi is self-adjoint, so the V(1,1)-cycle is a symmetric positive
  definite operator with spectrum of M⁻¹A in (0, 1]: a valid CG preconditioner. Every level
  keeps its operator as full stencil arrays and its vectors in zero-bordered buffers, so all
  shifted and stride-2 views are made once and a V-cycle neither slices nor allocates. The
  V-cycle runs in float32 by default (half the memory traffic; same iteration counts); CG
  then uses the flexible (Polak–Ribière) β, and CG, residuals and results stay float64.
* **CG**: all samples of a group are iterated together; each sample stops (its step length is
  set to 0, so its iterate no longer changes) as soon as its relative residual
  ‖b − Ax‖₂/‖b‖₂ ≤ ``tol``, checked again on the true residual at the end (with a restart if
  the recursive residual drifted). A sample's iterates therefore depend only on its own data:
  its result does not depend on the rest of the batch (per-sample reductions are done row by
  row, so even the bits are independent of the batch).
* **Groups** (``batch_size``): on CPU the samples are solved in groups of about 2¹⁹ grid points
  (a group's arrays stay in cache: a chunk of 16 samples at 421² solved in one group is
  about 1.5× slower per sample), on GPUs of 2²⁵ points (memory).

Measured on the 2-core development CPU (one torch thread, chunk 16, threshold coefficients;
``benchmarks/darcy_solver.py``): 12–14 V-cycles at every resolution; ~0.05 s per sample at
256² and ~0.14–0.2 s at 421², 7× faster than the sparse direct solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from data_gen.pdes.darcy_stencils import (
    ENTRIES,
    Stencil,
    fine_stencil,
    galerkin,
    galerkin_probe,
    prolong,
    restrict,
)

COARSEST = 7  # coarsen while a level has more interior nodes per side (then: dense Cholesky)
OMEGA = 0.8  # Jacobi damping
CPU_GROUP_POINTS = 2**19  # grid points per group on CPU (2 MiB per float32 V-cycle array)
DEVICE_GROUP_POINTS = 2**25  # grid points per group on GPUs (a few GiB of work arrays)


class ConvergenceError(RuntimeError):
    """Some samples did not reach the tolerance within ``max_iter`` CG iterations."""


# ------------------------------------------------------------------------------- hierarchy


def full_stencil(op: Stencil) -> list[tuple[tuple[int, int], Tensor]]:
    """[(d, A_d)]: A_d[p] = A[p, p+d] as [n, m, m] views (0 where p+d is outside), diagonal
    first. A_d and A_−d are two views of one zero-padded copy of the stored array."""
    m = op.m
    padded = {"c": op.c}
    for name in ("ax", "ay", "ad", "aa"):
        arr = getattr(op, name)
        if arr is not None:
            padded[name] = F.pad(arr, (1, 1, 1, 1))  # arr[i, j] at [i+1, j+1]
    out = [((0, 0), op.c)]
    for d, name, (si, sj) in ENTRIES[1:]:
        if name in padded:  # A[p, p+d] = arr[p + shift]
            out.append((d, padded[name][:, 1 + si:1 + si + m, 1 + sj:1 + sj + m]))
    return out


def shifted(arrays: list[tuple[tuple[int, int], Tensor]],
            buf: Tensor) -> list[tuple[Tensor, Tensor]]:
    """[(A_d, view of u at p + d)] for u stored inside the zero-bordered buf [n, m+2, m+2]."""
    m = buf.shape[-1] - 2
    return [(arr, buf[:, 1 + di:1 + di + m, 1 + dj:1 + dj + m]) for (di, dj), arr in arrays]


class _Level:
    """Work arrays of one level: the operator as full stencil arrays and preallocated buffers.

    ``z`` (the correction) and ``r`` (the residual) live inside zero-bordered buffers
    [n, m+2, m+2], so that every shifted or stride-2 view used by the smoother and the grid
    transfers is made once here; a V-cycle then runs without slicing or allocating.
    """

    def __init__(self, op: Stencil, omega: float) -> None:
        n, m = op.c.shape[0], op.m
        self.m, self.op = m, op
        self.d = omega / op.c
        self.zbuf = op.c.new_zeros(n, m + 2, m + 2)
        self.rbuf = op.c.new_zeros(n, m + 2, m + 2)
        self.z = self.zbuf[:, 1:-1, 1:-1]
        self.r = self.rbuf[:, 1:-1, 1:-1]
        self.rhs = op.c.new_zeros(n, m, m)  # filled by the finer level's restriction
        self.arrays = full_stencil(op)
        self.terms = shifted(self.arrays, self.zbuf)

    def residual(self, r: Tensor) -> None:
        """self.r = r − A self.z."""
        (c, z), *rest = self.terms
        torch.addcmul(r, c, z, value=-1.0, out=self.r)
        for arr, zv in rest:
            self.r.addcmul_(arr, zv, value=-1.0)

    def link(self, coarse: _Level) -> None:
        """Views for restricting self.r into coarse.rhs and prolonging coarse.z into self.z."""
        m, mc = self.m, coarse.m
        nf = m - mc  # fine rows at even interior indices (F rows)
        # Coarse node k = fine interior 2k+1 = padded 2k+2; its basis function covers the
        # padded fine nodes 2k+1, 2k+2, 2k+3 with weights ½, 1, ½ along each axis. Restriction
        # (Pᵀ) is applied along x into a work array [n, mc, m+2], then along y.
        self.rows = self.rbuf.new_empty(self.rbuf.shape[0], mc, m + 2)
        self.restriction = (
            [(w, self.rbuf[:, 2 + o:2 * mc + 1 + o:2, :]) for o, w in ((0, 1.0), (-1, 0.5),
                                                                        (1, 0.5))],
            [(w, self.rows[:, :, 2 + o:2 * mc + 1 + o:2]) for o, w in ((0, 1.0), (-1, 0.5),
                                                                        (1, 0.5))])
        # Fine padded rows: C rows 2, 4, …, 2mc; F rows 1, 3, …, 2nf−1. A C row takes coarse
        # padded row k+1, an F row 2k+1 the mean of coarse padded rows k and k+1.
        rows = {"C": (slice(2, 2 * mc + 1, 2), [(slice(1, mc + 1), 1.0)]),
                "F": (slice(1, 2 * nf, 2), [(slice(0, nf), 0.5), (slice(1, nf + 1), 0.5)])}
        self.prolongation = []
        for fi, ci in rows.values():
            for fj, cj in rows.values():
                zv = self.zbuf[:, fi, fj]
                for si, wi in ci:
                    for sj, wj in cj:
                        self.prolongation.append((zv, coarse.zbuf[:, si, sj], wi * wj))
        self.coarse = coarse


class Hierarchy:
    """Multigrid hierarchy of a batch: Galerkin operators of every level and their buffers.

    ``dtype`` (default: that of ``fine``) is the precision of the V-cycle; float32 halves its
    memory traffic, the outer CG stays in the precision of ``fine``.
    """

    def __init__(self, fine: Stencil, dtype: torch.dtype | None = None,
                 omega: float = OMEGA, coarsest: int | None = None) -> None:
        coarsest = COARSEST if coarsest is None else coarsest
        if dtype is not None and dtype != fine.c.dtype:
            fine = Stencil(*(None if x is None else x.to(dtype)
                             for x in (fine.c, fine.ax, fine.ay, fine.ad, fine.aa)))
        ops = [fine]
        while ops[-1].m > coarsest:
            ops.append(galerkin(ops[-1]))
        self.ops = ops
        self.dtype = fine.c.dtype
        self.levels = [_Level(op, omega) for op in ops]
        for fine_level, coarse_level in zip(self.levels[:-1], self.levels[1:], strict=True):
            fine_level.link(coarse_level)
        # The coarsest system (<= COARSEST² unknowns) is factorised in float64 whatever dtype.
        chol, info = torch.linalg.cholesky_ex(ops[-1].dense().to(torch.float64))
        if bool((info != 0).any()):
            bad = torch.nonzero(info).flatten().tolist()
            raise FloatingPointError(f"darcy multigrid: coarsest operator of sample(s) {bad} is "
                                     "not positive definite (coefficient not positive/finite?)")
        self.chol = chol

    def _cycle(self, k: int) -> None:
        """levels[k].z ≈ A⁻¹ levels[k].rhs by a symmetric V(1,1)-cycle from z = 0."""
        lev = self.levels[k]
        r = lev.rhs
        if k == len(self.levels) - 1:
            n, m = r.shape[0], lev.m
            rhs = r.reshape(n, m * m, 1).to(self.chol.dtype)
            lev.z.copy_(torch.cholesky_solve(rhs, self.chol).view(n, m, m))
            return
        torch.mul(lev.d, r, out=lev.z)  # pre-smoothing: one damped Jacobi step from 0
        lev.residual(r)
        for target, ((w0, v0), *rest) in zip((lev.rows, lev.coarse.rhs), lev.restriction,
                                              strict=True):  # Pᵀ along x, then along y
            torch.mul(v0, w0, out=target)
            for w, v in rest:
                target.add_(v, alpha=w)
        self._cycle(k + 1)
        for zv, ev, w in lev.prolongation:
            zv.add_(ev, alpha=w)
        lev.residual(r)  # post-smoothing: the same (self-adjoint) Jacobi step
        lev.z.addcmul_(lev.d, lev.r)

    def vcycle(self, r: Tensor, out: Tensor | None = None) -> Tensor:
        """z = M⁻¹ r, the V-cycle preconditioner applied to r [n, m, m].

        Returns the finest level's correction buffer (overwritten by the next call), converted
        into ``out`` when the V-cycle runs in another precision than r.
        """
        self.levels[0].rhs.copy_(r)
        self._cycle(0)
        z = self.levels[0].z
        if z.dtype == r.dtype:
            return z
        return z.to(r.dtype) if out is None else out.copy_(z)


# -------------------------------------------------------------------------------- PCG


def _dot(x: Tensor, y: Tensor, scratch: Tensor | None = None) -> Tensor:
    """Per-sample inner products [n] of x, y [n, m, m]: rows first, then the row sums, so a
    sample's bits never depend on the batch (a lone full reduction may be split over threads).
    """
    return torch.mul(x, y, out=scratch).sum(dim=-1).sum(dim=-1)


@dataclass
class Result:
    """Solutions and per-sample convergence data of :func:`solve_with_info`."""

    u: Tensor  # [n, s, s] float64, 0 on the boundary
    iterations: Tensor  # [n] int64, CG iterations (V-cycles) per sample
    residual: Tensor  # [n] float64, true relative residual ‖b − Au‖₂/‖b‖₂ (interior nodes)


def pcg(a: Tensor, f: Tensor, *, tol: float = 1e-10, max_iter: int = 100,
        precond_dtype: torch.dtype | None = None, first: int = 0) -> Result:
    """Multigrid-preconditioned CG on one group: a, f [n, s, s] float64 (same device).

    ``precond_dtype``: precision of the V-cycle (None: that of ``a``); with a lower one the
    flexible (Polak–Ribière) β keeps CG robust to the rounding of the preconditioner.
    ``first`` is the position of the group's first sample in the caller's batch (for errors).
    """
    n, s = a.shape[0], a.shape[-1]
    u = torch.zeros_like(a)
    its = torch.zeros(n, dtype=torch.int64, device=a.device)
    res = torch.zeros(n, dtype=a.dtype, device=a.device)
    if s < 3 or n == 0:
        return Result(u, its, res)
    op = fine_stencil(a)
    hier = Hierarchy(op, precond_dtype)
    flexible = hier.dtype != a.dtype
    # CG's search direction p lives in a zero-bordered buffer, for the shifted views of A p.
    pbuf = torch.zeros(n, s, s, dtype=a.dtype, device=a.device)
    p = pbuf[:, 1:-1, 1:-1]
    (diag, _), *apply_p = shifted(full_stencil(op) if flexible else hier.levels[0].arrays, pbuf)
    b = f[:, 1:-1, 1:-1] / float(s - 1) ** 2  # the h²-scaled system
    bnorm = _dot(b, b).sqrt()
    x = torch.zeros_like(b)
    q, scratch = torch.empty_like(b), torch.empty_like(b)
    z64 = torch.empty_like(b) if flexible else None
    zero = torch.zeros_like(bnorm)
    done = bnorm == 0
    it = 0
    for _restart in range(3):  # restart from the true residual if the recursive one drifted
        r = op.residual(b, x)
        active = ~done
        z = hier.vcycle(r, z64)
        p.copy_(z)
        rz = _dot(r, z, scratch)
        while bool(active.any()):
            if it >= max_iter:
                rel = _dot(r, r, scratch).sqrt() / bnorm
                bad = (torch.nonzero(active).flatten() + first).tolist()
                raise ConvergenceError(
                    f"darcy multigrid: sample(s) {bad} of the batch did not converge in "
                    f"max_iter={max_iter} CG iterations (relative residual up to "
                    f"{float(rel[active].max()):.2e} > tol {tol:.1e}); a coefficient with "
                    "extreme contrast or non-finite values?")
            torch.mul(diag, p, out=q)  # q = A p
            for arr, pshift in apply_p:
                q.addcmul_(arr, pshift)
            alpha = torch.where(active, rz / _dot(p, q, scratch), zero)[:, None, None]
            x.addcmul_(alpha, p)
            r.addcmul_(alpha, q, value=-1.0)
            it += 1
            its += active.to(its.dtype)
            active &= _dot(r, r, scratch).sqrt() > tol * bnorm
            if not bool(active.any()):
                break
            rz_old = _dot(r, z, scratch) if flexible else None  # r_new·z_old (Polak–Ribière)
            z = hier.vcycle(r, z64)
            rz_new = _dot(r, z, scratch)
            num = rz_new if rz_old is None else rz_new - rz_old
            beta = torch.where(active, num / rz, zero)
            p.mul_(beta[:, None, None]).add_(z)
            rz = torch.where(active, rz_new, rz)
        r = op.residual(b, x)
        res = torch.where(bnorm == 0, zero, _dot(r, r, scratch).sqrt() / bnorm)
        done = res <= tol
        if bool(done.all()):
            break
    else:
        bad = (torch.nonzero(~done).flatten() + first).tolist()
        raise ConvergenceError(
            f"darcy multigrid: sample(s) {bad} of the batch stopped with a true relative "
            f"residual up to {float(res[~done].max()):.2e} > tol {tol:.1e} after 3 restarts "
            "(the recursive CG residual drifted from the true one)")
    if not bool(torch.isfinite(x).all()):
        bad = (torch.nonzero(~torch.isfinite(x).flatten(1).all(1)).flatten() + first).tolist()
        raise FloatingPointError(f"darcy multigrid: non-finite solution for sample(s) {bad}")
    u[:, 1:-1, 1:-1] = x
    return Result(u, its, res)


def _as_tensor(x, device: torch.device) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(device=device, dtype=torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)


def solve_with_info(coeff, forcing=1.0, *, tol: float = 1e-10, max_iter: int = 100,
                    device: str | torch.device = "cpu", batch_size: int | None = None,
                    precond_dtype: torch.dtype | None = torch.float32) -> Result:
    """Solve −∇·(a∇u) = f, u|∂Ω = 0 for a batch ``coeff`` [n, s, s] (numpy or torch).

    ``forcing``: scalar or array broadcastable to [n, s, s] (nodal values; interior used).
    ``tol``: relative residual ‖b − Au‖₂/‖b‖₂ reached by every sample (else
    :class:`ConvergenceError` naming the samples after ``max_iter`` iterations).
    ``batch_size``: samples iterated together (None: about 2¹⁹ grid points per group on CPU,
    2²⁵ on other devices). ``precond_dtype``: precision of the V-cycle (float32 by
    default: half the memory traffic, same iteration counts; None: float64); CG, its residual
    and the result are float64 either way. Returns a :class:`Result` with torch tensors on
    ``device``.
    """
    device = torch.device(device)
    a = _as_tensor(coeff, device)
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"darcy multigrid: coeff has shape {tuple(a.shape)}, expected [n, s, s]")
    if not bool((a > 0).all()):
        raise ValueError("darcy multigrid: the coefficient must be positive (and finite) "
                         "everywhere")
    f = torch.broadcast_to(_as_tensor(forcing, device), a.shape)
    if not bool(torch.isfinite(f).all()):
        raise ValueError("darcy multigrid: the forcing must be finite")
    n, s = a.shape[0], a.shape[-1]
    if batch_size is None:
        points = CPU_GROUP_POINTS if device.type == "cpu" else DEVICE_GROUP_POINTS
        batch_size = max(1, points // (s * s))
    if batch_size < 1:
        raise ValueError(f"darcy multigrid: batch_size={batch_size}, expected >= 1")
    parts = [pcg(a[i:i + batch_size], f[i:i + batch_size], tol=tol, max_iter=max_iter,
                 precond_dtype=precond_dtype, first=i) for i in range(0, n, batch_size)]
    if not parts:
        return pcg(a, f, tol=tol, max_iter=max_iter)
    return Result(*(torch.cat([getattr(p, k) for p in parts]) for k in ("u", "iterations",
                                                                          "residual")))


def solve(coeff, forcing=1.0, *, tol: float = 1e-10, max_iter: int = 100,
          device: str | torch.device = "cpu", batch_size: int | None = None,
          precond_dtype: torch.dtype | None = torch.float32):
    """Like :func:`data_gen.pdes.darcy.solve` (u [n, s, s], or [s, s] for one field), by
    multigrid-preconditioned CG. Returns float64 numpy for numpy input, else a torch tensor on
    ``device``. See :func:`solve_with_info` for the arguments."""
    is_tensor = isinstance(coeff, Tensor)
    single = (coeff.ndim if is_tensor else np.ndim(coeff)) == 2
    if single:
        coeff = coeff[None]
        if getattr(forcing, "ndim", np.ndim(forcing)) == 2:
            forcing = forcing[None]
    u = solve_with_info(coeff, forcing, tol=tol, max_iter=max_iter, device=device,
                        batch_size=batch_size, precond_dtype=precond_dtype).u
    if single:
        u = u[0]
    return u if is_tensor else u.cpu().numpy()


__all__ = ["ConvergenceError", "Hierarchy", "Result", "Stencil", "fine_stencil", "galerkin",
           "galerkin_probe", "pcg", "prolong", "restrict", "solve", "solve_with_info"]
# Stencil, fine_stencil, galerkin, galerkin_probe, prolong, restrict: re-exported from
# data_gen.pdes.darcy_stencils
