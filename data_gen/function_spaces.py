"""1-D random input functions for the DeepONet problems (Lu et al. 2021, ``src/spaces.py``).

Two spaces, each drawn one sample per ``np.random.Generator`` (sample i uses only ``rngs[i]``):

* ``grf``: Gaussian random field with the RBF kernel k(x, y) = exp(−(x − y)²/(2l²)) (variance
  1, mean 0) on N equispaced points of [a, b] (reference: [0, T], N = 1000·T): values
  L·z with L = cholesky(K + 1e-13·I) (cached per (l, N, a, b)) and z ~ N(0, I_N). The function
  is the not-a-knot cubic spline through these N values (scipy ``interp1d(kind="cubic")`` and
  ``CubicSpline`` build the same spline); sensors, ODE right-hand sides and PDE sources all
  evaluate that one spline.
* ``chebyshev``: u(x) = Σ_{i<terms} a_i T_i(2(x − a)/(b − a) − 1), a_i ~ U[−M, M] (reference
  ``FiniteChebyshev``: T_i(2x − 1) on [0, 1], N = 20, M = 1), for out-of-distribution tests.

A drawn batch is a :class:`FunctionBatch`: evaluate all functions at shared points
(``u(x)`` -> [n, q]), each function at its own points (``u.at(index, t)``), or the exact
integral from the left end (``u.antiderivative(x)``). Everything is float64.

Threads: K + 1e-13·I is ill-conditioned (l = 0.2, N = 1000: cond ~1e13), so the rounding of a
multi-threaded (blocked, parallel) Cholesky changes L by up to ~3e-3 and u by up to ~0.05.
The factorisation and the products L·z therefore run with BLAS on one thread: the same bytes
for any OMP/OPENBLAS/MKL_NUM_THREADS (the bytes of the single-threaded run before this rule).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.polynomial import chebyshev as cheb
from scipy.interpolate import CubicSpline, PPoly
from threadpoolctl import ThreadpoolController

Space = Literal["grf", "chebyshev"]
SPACES = ("grf", "chebyshev")
GRF_JITTER = 1e-13  # added to the kernel diagonal before the Cholesky factorisation (reference)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS/LAPACK libraries loaded now (numpy's and scipy's), found once per process."""
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """Context manager: BLAS/LAPACK on one thread inside, so rounding does not depend on the
    thread count (~10 µs to enter and leave)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def rbf_kernel(x: np.ndarray, y: np.ndarray, length_scale: float) -> np.ndarray:
    """k(x_i, y_j) = exp(−(x_i − y_j)²/(2 l²)): [len(x), len(y)]."""
    d = np.asarray(x, np.float64)[:, None] - np.asarray(y, np.float64)[None, :]
    return np.exp(-0.5 * (d / length_scale) ** 2)


@functools.lru_cache(maxsize=8)
def rbf_cholesky(length_scale: float, n_points: int, a: float = 0.0, b: float = 1.0
                 ) -> np.ndarray:
    """Lower Cholesky factor of K + 1e-13·I on linspace(a, b, n_points): [N, N], read-only.

    Factorised with BLAS on one thread (same bytes for any thread count, see the module doc).
    Raises ValueError if the factorisation fails (the jitter is too small for l, N).
    """
    x = np.linspace(a, b, n_points)
    k = rbf_kernel(x, x, length_scale)
    k[np.diag_indices_from(k)] += GRF_JITTER
    try:
        with one_blas_thread():
            chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError as err:
        raise ValueError(f"grf: Cholesky of the RBF kernel (length_scale={length_scale}, "
                         f"{n_points} points on [{a}, {b}]) + {GRF_JITTER}·I failed; use fewer "
                         "points or a shorter length_scale") from err
    chol.setflags(write=False)
    return chol


class FunctionBatch:
    """n real functions on [a, b] (abstract): evaluation, per-sample evaluation, integral."""

    n: int
    domain: tuple[float, float]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Values at shared points ``x`` [q]: [n, q]."""
        raise NotImplementedError

    def at(self, index: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Value of function ``index[k]`` at ``t[k]`` (same shapes): array like ``t``."""
        raise NotImplementedError

    def antiderivative(self, x: np.ndarray) -> np.ndarray:
        """Exact ∫_a^x u(y) dy at shared points ``x`` [q]: [n, q]."""
        raise NotImplementedError

    def select(self, index: np.ndarray) -> FunctionBatch:
        """The sub-batch of functions ``index``."""
        raise NotImplementedError


@dataclass(frozen=True)
class SplineFunctions(FunctionBatch):
    """Not-a-knot cubic splines through ``values`` [n, N] on ``knots`` [N] (increasing).

    ``coeffs`` [4, N−1, n]: the spline on [knots[i], knots[i+1]] is
    Σ_k coeffs[k, i] (x − knots[i])^(3−k) (scipy ``PPoly`` layout).
    """

    knots: np.ndarray
    values: np.ndarray
    coeffs: np.ndarray

    @classmethod
    def from_values(cls, knots: np.ndarray, values: np.ndarray) -> SplineFunctions:
        knots = np.asarray(knots, np.float64)
        values = np.atleast_2d(np.asarray(values, np.float64))
        if knots.ndim != 1 or knots.size < 4 or values.shape[-1] != knots.size:
            raise ValueError(f"SplineFunctions: knots {knots.shape} and values {values.shape}: "
                             "expected knots [N], N >= 4, and values [n, N]")
        if len(values) == 0:
            coeffs = np.zeros((4, knots.size - 1, 0))
        else:
            coeffs = CubicSpline(knots, values, axis=1, bc_type="not-a-knot").c
        return cls(knots, values, coeffs)

    @property
    def n(self) -> int:  # type: ignore[override]
        return self.values.shape[0]

    @property
    def domain(self) -> tuple[float, float]:  # type: ignore[override]
        return float(self.knots[0]), float(self.knots[-1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return np.moveaxis(PPoly(self.coeffs, self.knots, extrapolate=True)(x), -1, 0)

    def at(self, index: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)
        i = np.clip(np.searchsorted(self.knots, t, side="right") - 1, 0, self.knots.size - 2)
        dx = t - self.knots[i]
        c = self.coeffs[:, i, np.asarray(index)]
        return ((c[0] * dx + c[1]) * dx + c[2]) * dx + c[3]

    def antiderivative(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        prim = PPoly(self.coeffs, self.knots, extrapolate=True).antiderivative()
        return np.moveaxis(prim(x), -1, 0)

    def select(self, index: np.ndarray) -> SplineFunctions:
        index = np.asarray(index)
        return SplineFunctions(self.knots, self.values[index], self.coeffs[..., index])


@dataclass(frozen=True)
class ChebyshevFunctions(FunctionBatch):
    """u_k(x) = Σ_i coeffs[k, i] T_i(2(x − a)/(b − a) − 1) on ``domain`` = (a, b)."""

    coeffs: np.ndarray  # [n, terms]
    domain: tuple[float, float] = (0.0, 1.0)

    @property
    def n(self) -> int:  # type: ignore[override]
        return self.coeffs.shape[0]

    def _z(self, x: np.ndarray) -> np.ndarray:
        a, b = self.domain
        return 2.0 * (np.asarray(x, np.float64) - a) / (b - a) - 1.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return cheb.chebval(self._z(x), self.coeffs.T)

    def at(self, index: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = self._z(t)
        c = self.coeffs[np.asarray(index)]  # [..., terms]; Clenshaw, vectorised over points
        b1 = np.zeros_like(z)
        b2 = np.zeros_like(z)
        for i in range(c.shape[-1] - 1, 0, -1):
            b1, b2 = 2.0 * z * b1 - b2 + c[..., i], b1
        return z * b1 - b2 + c[..., 0]

    def antiderivative(self, x: np.ndarray) -> np.ndarray:
        a, b = self.domain
        prim = cheb.chebint(self.coeffs, m=1, lbnd=-1.0, scl=(b - a) / 2.0, axis=1)
        return cheb.chebval(self._z(x), prim.T)

    def select(self, index: np.ndarray) -> ChebyshevFunctions:
        return ChebyshevFunctions(self.coeffs[np.asarray(index)], self.domain)


def sample_grf(rngs: Sequence[np.random.Generator], length_scale: float = 0.2,
               n_points: int = 1000, domain: tuple[float, float] = (0.0, 1.0)
               ) -> SplineFunctions:
    """RBF GRF samples on ``n_points`` equispaced knots of ``domain``, as cubic splines.

    Sample i is L·z_i with z_i = ``rngs[i].standard_normal(n_points)`` (one matrix-vector
    product per sample on one BLAS thread, so its bytes depend neither on the batch nor on the
    thread count).
    """
    a, b = float(domain[0]), float(domain[1])
    chol = rbf_cholesky(float(length_scale), int(n_points), a, b)
    with one_blas_thread():
        values = np.stack([chol @ r.standard_normal(n_points) for r in rngs]) if len(rngs) \
            else np.zeros((0, n_points))
    return SplineFunctions.from_values(np.linspace(a, b, n_points), values)


def sample_chebyshev(rngs: Sequence[np.random.Generator], terms: int = 20, bound: float = 1.0,
                     domain: tuple[float, float] = (0.0, 1.0)) -> ChebyshevFunctions:
    """Σ_{i<terms} a_i T_i(2(x−a)/(b−a) − 1), a_i = ``rngs[k].uniform(−bound, bound)``."""
    coeffs = np.stack([r.uniform(-bound, bound, terms) for r in rngs]) if len(rngs) else \
        np.zeros((0, terms))
    return ChebyshevFunctions(coeffs, (float(domain[0]), float(domain[1])))


def sample_space(space: Space, rngs: Sequence[np.random.Generator], *,
                 domain: tuple[float, float] = (0.0, 1.0), length_scale: float = 0.2,
                 grf_points: int = 1000, cheb_terms: int = 20, cheb_bound: float = 1.0
                 ) -> FunctionBatch:
    """One function per generator from ``space`` ("grf" or "chebyshev") on ``domain``."""
    if space == "grf":
        return sample_grf(rngs, length_scale, grf_points, domain)
    if space == "chebyshev":
        return sample_chebyshev(rngs, cheb_terms, cheb_bound, domain)
    raise ValueError(f"space={space!r}, expected one of {SPACES}")
