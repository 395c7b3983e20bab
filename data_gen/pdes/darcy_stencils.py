"""Stencil operators of the Darcy multigrid hierarchy (:mod:`data_gen.pdes.darcy_multigrid`):
the fine 5-point operator of −∇·(a∇u) on the m×m interior nodes, bilinear prolongation and
its transpose, and the Galerkin coarse operators PᵀAP as symmetric 9-point stencils computed
in closed form from stride-2 slices (:func:`galerkin`; :func:`galerkin_probe` checks it by
probing). Batched torch tensors [n, m, m], CPU or GPU.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

# ------------------------------------------------------------------------ stencil operators


@dataclass
class Stencil:
    """A batch of symmetric (5- or 9-point) stencils on m×m interior nodes, Dirichlet outside.

    ``c`` [n, m, m] is the diagonal; the off-diagonal entries are stored once per pair:
    ``ax[i, j] = A[(i+1, j), (i, j)]`` [n, m−1, m], ``ay[i, j] = A[(i, j+1), (i, j)]``
    [n, m, m−1], ``ad[i, j] = A[(i+1, j+1), (i, j)]`` and ``aa[i, j] = A[(i+1, j), (i, j+1)]``
    [n, m−1, m−1] (``None`` for a 5-point stencil).
    """

    c: Tensor
    ax: Tensor
    ay: Tensor
    ad: Tensor | None = None
    aa: Tensor | None = None

    @property
    def m(self) -> int:
        return self.c.shape[-1]

    def apply(self, u: Tensor) -> Tensor:
        """A u for u [n or 1, m, m] -> [n, m, m]."""
        zero = self.c.new_zeros(torch.broadcast_shapes(self.c.shape, u.shape))
        return self.residual(zero, u).neg_()

    def residual(self, r: Tensor, u: Tensor) -> Tensor:
        """r − A u for r [n, m, m], u [n or 1, m, m] (one pass per stencil array)."""
        y = torch.addcmul(r, self.c, u, value=-1.0)
        y[:, 1:, :].addcmul_(self.ax, u[:, :-1, :], value=-1.0)
        y[:, :-1, :].addcmul_(self.ax, u[:, 1:, :], value=-1.0)
        y[:, :, 1:].addcmul_(self.ay, u[:, :, :-1], value=-1.0)
        y[:, :, :-1].addcmul_(self.ay, u[:, :, 1:], value=-1.0)
        if self.ad is not None:
            y[:, 1:, 1:].addcmul_(self.ad, u[:, :-1, :-1], value=-1.0)
            y[:, :-1, :-1].addcmul_(self.ad, u[:, 1:, 1:], value=-1.0)
            y[:, 1:, :-1].addcmul_(self.aa, u[:, :-1, 1:], value=-1.0)
            y[:, :-1, 1:].addcmul_(self.aa, u[:, 1:, :-1], value=-1.0)
        return y

    def dense(self) -> Tensor:
        """The matrices [n, m², m²] (row-major interior numbering), for small m only."""
        m, n = self.m, self.c.shape[0]
        mat = self.c.new_zeros(n, m * m, m * m)
        for rows, cols, vals in _dense_entries(self, m):
            mat[:, rows, cols] = vals
            mat[:, cols, rows] = vals
        return mat


def _dense_entries(st: Stencil, m: int):
    idx = torch.arange(m * m, device=st.c.device).reshape(m, m)
    n = st.c.shape[0]
    yield idx.reshape(-1), idx.reshape(-1), st.c.reshape(n, -1)
    yield idx[1:, :].reshape(-1), idx[:-1, :].reshape(-1), st.ax.reshape(n, -1)
    yield idx[:, 1:].reshape(-1), idx[:, :-1].reshape(-1), st.ay.reshape(n, -1)
    if st.ad is not None:
        yield idx[1:, 1:].reshape(-1), idx[:-1, :-1].reshape(-1), st.ad.reshape(n, -1)
        yield idx[1:, :-1].reshape(-1), idx[:-1, 1:].reshape(-1), st.aa.reshape(n, -1)


def fine_stencil(a: Tensor) -> Stencil:
    """h²·A of the 5-point scheme for coefficients a [n, s, s] (faces (a_p + a_q)/2)."""
    fx = 0.5 * (a[:, :-1, :] + a[:, 1:, :])  # face (i+½, j): [n, s−1, s]
    fy = 0.5 * (a[:, :, :-1] + a[:, :, 1:])  # face (i, j+½): [n, s, s−1]
    c = fx[:, :-1, 1:-1] + fx[:, 1:, 1:-1] + fy[:, 1:-1, :-1] + fy[:, 1:-1, 1:]
    return Stencil(c.contiguous(), -fx[:, 1:-1, 1:-1].contiguous(),
                   -fy[:, 1:-1, 1:-1].contiguous())


# ----------------------------------------------------------------------- grid transfers


def prolong(e: Tensor, m: int) -> Tensor:
    """Bilinear interpolation of coarse e [n, m//2, m//2] to the fine interior [n, m, m].

    Coarse node k sits at fine interior index 2k+1; a fine node at an even index 2k takes the
    mean of its neighbours 2k−1 and 2k+1 (a missing neighbour is the boundary, value 0).
    """
    mc, nf = e.shape[-1], m - e.shape[-1]
    ep = F.pad(e, (0, 0, 1, 1))  # [n, mc+2, mc]
    t = e.new_empty(e.shape[0], m, mc)
    t[:, 1::2] = e
    torch.add(ep[:, :nf], ep[:, 1:nf + 1], out=t[:, 0::2]).mul_(0.5)
    tp = F.pad(t, (1, 1))  # [n, m, mc+2]
    u = e.new_empty(e.shape[0], m, m)
    u[:, :, 1::2] = t
    torch.add(tp[:, :, :nf], tp[:, :, 1:nf + 1], out=u[:, :, 0::2]).mul_(0.5)
    return u


def restrict(r: Tensor) -> Tensor:
    """Pᵀ r, the transpose of :func:`prolong`: fine r [n, m, m] -> coarse [n, m//2, m//2]."""
    m = r.shape[-1]
    mc = m // 2
    rp = F.pad(r, (0, 0, 0, 1))  # [n, m+1, m]: a zero row past the end
    t = rp[:, 0:2 * mc:2] + rp[:, 2:2 * mc + 1:2]
    t.mul_(0.5).add_(rp[:, 1:2 * mc:2])  # [n, mc, m]
    tp = F.pad(t, (0, 1))
    out = tp[:, :, 0:2 * mc:2] + tp[:, :, 2:2 * mc + 1:2]
    return out.mul_(0.5).add_(tp[:, :, 1:2 * mc:2])


# Stencil entries A[p, p+d] as (d, stored array, shift): A[p, p+d] = X[p + shift] (X = 0
# outside its index range), e.g. A[p, p−x̂] = ax[p − x̂] because ax[i, j] = A[(i+1, j), (i, j)].
ENTRIES = (((0, 0), "c", (0, 0)),
            ((1, 0), "ax", (0, 0)), ((-1, 0), "ax", (-1, 0)),
            ((0, 1), "ay", (0, 0)), ((0, -1), "ay", (0, -1)),
            ((1, 1), "ad", (0, 0)), ((-1, -1), "ad", (-1, -1)),
            ((1, -1), "aa", (0, -1)), ((-1, 1), "aa", (-1, 0)))
# Coarse arrays as (name, row node offset o_I, column offset D): X_c[i, j] = A_c[I, I + D] with
# I = (i, j) + o_I (aa[i, j] = A[(i+1, j), (i, j+1)] = A[(i, j+1), (i, j+1) + (1, −1)]).
_COARSE = (("c", (0, 0), (0, 0)), ("ax", (0, 0), (1, 0)), ("ay", (0, 0), (0, 1)),
           ("ad", (0, 0), (1, 1)), ("aa", (0, 1), (1, -1)))


def _weight(o: tuple[int, int]) -> float:
    """Bilinear weight P[2K+1+o, K] of the fine node at offset o from coarse node K."""
    return (1.0 - 0.5 * abs(o[0])) * (1.0 - 0.5 * abs(o[1])) if max(map(abs, o)) <= 1 else 0.0


@functools.lru_cache(maxsize=4)
def _galerkin_terms(nine_point: bool) -> dict[str, dict[tuple[str, int, int], float]]:
    """For each coarse array: {(fine array, row start, col start): weight} (see galerkin)."""
    out: dict[str, dict[tuple[str, int, int], float]] = {}
    entries = [e for e in ENTRIES if nine_point or e[1] not in ("ad", "aa")]
    for name, (oi, oj), (di, dj) in _COARSE:
        terms: dict[tuple[str, int, int], float] = {}
        for o in itertools.product((-1, 0, 1), repeat=2):
            for (ei, ej), x, (si, sj) in entries:
                w = _weight(o) * _weight((o[0] + ei - 2 * di, o[1] + ej - 2 * dj))
                if w:
                    key = (x, 2 + 2 * oi + o[0] + si, 2 + 2 * oj + o[1] + sj)
                    terms[key] = terms.get(key, 0.0) + w
        out[name] = terms
    return out


def galerkin(st: Stencil) -> Stencil:
    """The coarse operator PᵀAP: a symmetric 9-point :class:`Stencil` on (m//2)² nodes.

    A_c[I, I+D] = Σ_o Σ_d P[2I+1+o, I] · A[2I+1+o, 2I+1+o+d] · P[2I+1+o+d, I+D] over the
    fine offsets o ∈ {−1, 0, 1}² of I's basis function and the stencil offsets d of A. Each
    term is a stride-2 slice of a zero-padded fine array (entries with a node outside the
    interior vanish, which is the Dirichlet boundary); terms reading the same slice are
    merged, so the fine 5-point operator costs about 40 slice-and-add operations.
    """
    m, mc = st.m, st.m // 2
    size = m + 4  # fine index i is stored at i + 1; slices start at 0..5
    padded = {}
    for x in ("c", "ax", "ay", "ad", "aa"):
        arr = getattr(st, x)
        if arr is not None:
            padded[x] = F.pad(arr, (1, size - 1 - arr.shape[-1], 1, size - 1 - arr.shape[-2]))
    shapes = {"c": (mc, mc), "ax": (mc - 1, mc), "ay": (mc, mc - 1), "ad": (mc - 1, mc - 1),
              "aa": (mc - 1, mc - 1)}
    coarse = {}
    for name, terms in _galerkin_terms(st.ad is not None).items():
        rows, cols = shapes[name]
        acc = None
        for (x, i0, j0), w in terms.items():
            view = padded[x][:, i0:i0 + 2 * rows - 1:2, j0:j0 + 2 * cols - 1:2]
            if acc is None:
                acc = view * w
            else:
                acc.add_(view, alpha=w)
        coarse[name] = acc
    return Stencil(**coarse)


def galerkin_probe(st: Stencil) -> Stencil:
    """PᵀAP by probing with the 9 colours (I mod 3, J mod 3) of the coarse grid (a check).

    For colour (p, q) the probe e is 1 on the coarse nodes with I ≡ p, J ≡ q (mod 3);
    (PᵀAPe)(I) is then the single entry A_c[I, K] whose column K has that colour, because the
    3×3 neighbourhood of I holds each colour once.
    """
    m, n = st.m, st.c.shape[0]
    mc = m // 2
    like = st.c
    shapes = {"c": (mc, mc), "ax": (mc - 1, mc), "ay": (mc, mc - 1), "ad": (mc - 1, mc - 1),
              "aa": (mc - 1, mc - 1)}
    coarse = {k: like.new_empty(n, *v) for k, v in shapes.items()}
    for p in range(3):
        for q in range(3):
            e = like.new_zeros(1, mc, mc)
            e[:, p::3, q::3] = 1.0
            y = restrict(st.apply(prolong(e, m)))
            for name, (oi, oj), (di, dj) in _COARSE:
                i0, j0 = (p - oi - di) % 3, (q - oj - dj) % 3
                rows, cols = shapes[name]
                coarse[name][:, i0::3, j0::3] = y[:, oi:oi + rows, oj:oj + cols][:, i0::3, j0::3]
    return Stencil(**coarse)
