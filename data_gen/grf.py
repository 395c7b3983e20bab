"""Gaussian random fields on the unit square, batched over samples.

Two families, each as "draw white noise" + "synthesise from noise" so tests can check the
synthesis exactly against an explicit sum:

* cosine (Neumann) fields, FNO ``darcy/GRF.m``: covariance τ^(2α−2)(−Δ+τ²)^(−α) on (0,1)²
  with homogeneous Neumann conditions, eigenpairs λ_k, φ_{k1}(x)φ_{k2}(y), φ_0 = 1,
  φ_k = √2 cos(πkx), k1, k2 in 0..size−1, mean mode (0, 0) removed;
* periodic fields, FNO ``navier_stokes/random_fields.py``: covariance σ²(−Δ+τ²)^(−α) on the
  torus [0,1)², Δ with eigenvalues −4π²|k|², k in [−size/2, size/2−1]², mean mode removed.

Every sample draws its own standard normals from its own ``np.random.Generator``, so sample i
does not depend on which other samples share its batch. All outputs are float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.fft

Grid = Literal["nodes", "cells"]


def _white_noise(rngs: Sequence[np.random.Generator], shape: tuple[int, ...]) -> np.ndarray:
    """Standard normals [len(rngs), *shape], row i drawn from ``rngs[i]`` only."""
    if len(rngs) == 0:
        return np.zeros((0, *shape))
    return np.stack([r.standard_normal(shape) for r in rngs])


# --------------------------------------------------------------------------- cosine (Neumann)


def cosine_grf_eigenvalues(size: int, alpha: float = 2.0, tau: float = 3.0) -> np.ndarray:
    """Covariance eigenvalues λ[k1, k2] = τ^(2α−2)(π²(k1²+k2²)+τ²)^(−α), λ[0, 0] = 0.

    Shape [size, size]; λ is the variance of the coefficient of φ_{k1}(x)φ_{k2}(y).
    """
    k = np.arange(size, dtype=np.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    lam = tau ** (2.0 * alpha - 2.0) * (np.pi**2 * k2 + tau**2) ** (-alpha)
    lam[0, 0] = 0.0
    return lam


def cosine_grf_from_noise(xi: np.ndarray, alpha: float = 2.0, tau: float = 3.0,
                          grid: Grid = "nodes") -> np.ndarray:
    """Field Σ_k √λ_k ξ_k φ_{k1}(x)φ_{k2}(y) from noise ``xi`` [n, s, s] (one DCT call).

    ``grid="nodes"``: values at (x_i, y_j) = (i, j)/(s−1), boundary included (DCT-I).
    ``grid="cells"``: values at ((i+½)/s, (j+½)/s) (orthonormal inverse DCT-II of
    L = s·√λ·ξ, exactly FNO's ``GRF.m``). Returns [n, s, s], index [..., i, j] ↔ (x_i, y_j).
    """
    xi = np.asarray(xi, dtype=np.float64)
    s = xi.shape[-1]
    if xi.ndim != 3 or xi.shape[-2] != s:
        raise ValueError(f"cosine_grf_from_noise: noise has shape {xi.shape}, expected [n, s, s]")
    c = np.sqrt(cosine_grf_eigenvalues(s, alpha, tau))
    if grid == "cells":
        return scipy.fft.idctn(s * c * xi, type=2, norm="ortho", axes=(-2, -1))
    if grid != "nodes":
        raise ValueError(f"cosine_grf_from_noise: grid={grid!r}, expected 'nodes' or 'cells'")
    if s < 2:
        raise ValueError(f"cosine_grf_from_noise: grid='nodes' needs size >= 2, got {s}")
    # Unnormalised DCT-I: y_i = x_0 + (−1)^i x_{s−1} + 2 Σ_{0<k<s−1} x_k cos(πki/(s−1)).
    # Coefficient d_k = w_k·b_k (w_0 = 1, w_k = √2) enters as x_k = m_k d_k, m = (1, ½, …, ½, 1).
    w = np.full(s, np.sqrt(2.0))
    w[0] = 1.0
    m = np.full(s, 0.5)
    m[0] = m[-1] = 1.0
    wm = w * m
    return scipy.fft.dctn(c * wm[:, None] * wm[None, :] * xi, type=1, axes=(-2, -1))


def cosine_grf_2d(rngs: Sequence[np.random.Generator], size: int, alpha: float = 2.0,
                  tau: float = 3.0, grid: Grid = "nodes") -> np.ndarray:
    """Neumann cosine GRF, covariance τ^(2α−2)(−Δ+τ²)^(−α): [len(rngs), size, size] float64."""
    return cosine_grf_from_noise(_white_noise(rngs, (size, size)), alpha, tau, grid)


# --------------------------------------------------------------------------------- periodic


def periodic_default_sigma(alpha: float, tau: float) -> float:
    """FNO's σ = τ^(0.5(2α−d)) for d = 2 (α = 2.5, τ = 7 → σ² = 7³)."""
    return float(tau ** (0.5 * (2.0 * alpha - 2.0)))


def periodic_grf_eigenvalues(size: int, alpha: float, tau: float,
                             sigma: float | None = None) -> np.ndarray:
    """λ[k1, k2] = σ²(4π²|k|²+τ²)^(−α) in FFT order (k = fftfreq(size)·size), λ[0, 0] = 0."""
    if sigma is None:
        sigma = periodic_default_sigma(alpha, tau)
    k = np.fft.fftfreq(size, d=1.0 / size)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    lam = sigma**2 * (4.0 * np.pi**2 * k2 + tau**2) ** (-alpha)
    lam[0, 0] = 0.0
    return lam


def periodic_grf_from_noise(z: np.ndarray, alpha: float, tau: float,
                            sigma: float | None = None) -> np.ndarray:
    """Field Re Σ_k √(2λ_k) z_k e^{2πi k·x} from complex noise ``z`` [n, s, s] (FFT order).

    ``z`` has independent real and imaginary parts, each N(0, ½); then the real field has
    covariance Σ_k λ_k cos(2πk·(x−y)), k in [−s/2, s/2−1]². Values at (i/s, j/s), [n, s, s].
    """
    z = np.asarray(z)
    s = z.shape[-1]
    if z.ndim != 3 or z.shape[-2] != s:
        raise ValueError(f"periodic_grf_from_noise: noise has shape {z.shape}, expected [n, s, s]")
    amp = s * s * np.sqrt(2.0 * periodic_grf_eigenvalues(s, alpha, tau, sigma))
    return scipy.fft.ifft2(amp * z, axes=(-2, -1)).real


def periodic_grf_2d(rngs: Sequence[np.random.Generator], size: int, alpha: float = 2.5,
                    tau: float = 7.0, sigma: float | None = None) -> np.ndarray:
    """Periodic GRF, covariance σ²(−Δ+τ²)^(−α) on [0,1)²: [len(rngs), size, size] float64.

    Construction: real part of ``ifft2`` of complex-normal coefficients (see
    ``periodic_grf_from_noise``); each sample draws 2·size² normals. σ defaults to
    ``periodic_default_sigma(alpha, tau)``. Grid points (i/size, j/size).
    """
    g = _white_noise(rngs, (2, size, size))
    z = (g[:, 0] + 1j * g[:, 1]) * np.sqrt(0.5)
    return periodic_grf_from_noise(z, alpha, tau, sigma)


# ------------------------------------------------------------------------- periodic, 1-D


def periodic_grf_1d_std(size: int, sigma: float = 25.0, tau: float = 5.0,
                        gamma: float = 2.0) -> np.ndarray:
    """Coefficient standard deviations λ_k = √2·|σ|·((2πk)²+τ²)^(−γ/2), k = 1..size//2: [size//2].

    FNO ``burgers/GRF1.m`` ("periodic", N = size/2 modes): λ_k² = 2μ_k with μ_k = σ²((2πk)²+τ²)^(−γ)
    the eigenvalues of the covariance operator σ²(−Δ+τ²)^(−γ) on [0, 1) (orthonormal
    eigenfunctions √2 cos 2πkx, √2 sin 2πkx; the mean mode k = 0 is not random).
    """
    k = np.arange(1, size // 2 + 1, dtype=np.float64)
    return np.sqrt(2.0) * abs(sigma) * ((2.0 * np.pi * k) ** 2 + tau**2) ** (-gamma / 2.0)


def periodic_grf_1d_from_noise(noise: np.ndarray, size: int, sigma: float = 25.0,
                               tau: float = 5.0, gamma: float = 2.0,
                               mean: float = 0.0) -> np.ndarray:
    """u(x_i) = m + Σ_{k=1}^{size//2} λ_k (ξ_k cos 2πkx_i + η_k sin 2πkx_i), x_i = i/size.

    ``noise`` [n, K, 2] with K >= size//2: ``noise[:, k−1, 0]`` = ξ_k, ``noise[:, k−1, 1]`` = η_k
    (only the first size//2 modes are used). One ``irfft``; returns [n, size] float64. For even
    ``size`` the Nyquist sine sin(πi) vanishes on the grid, so η_{size/2} has no effect.
    """
    noise = np.asarray(noise, dtype=np.float64)
    half = size // 2
    if noise.ndim != 3 or noise.shape[-1] != 2 or noise.shape[1] < half:
        raise ValueError(f"periodic_grf_1d_from_noise: noise has shape {noise.shape}, "
                         f"expected [n, >= {half}, 2] for size={size}")
    lam = periodic_grf_1d_std(size, sigma, tau, gamma)
    xi, eta = noise[:, :half, 0], noise[:, :half, 1]
    # irfft: u_i = (1/s)[c_0 + 2 Re Σ_{0<k<s/2} c_k e^{2πiki/s} (+ c_{s/2}(−1)^i, s even)].
    c = np.zeros((noise.shape[0], size // 2 + 1), dtype=np.complex128)
    c[:, 0] = size * mean
    c[:, 1:half + 1] = 0.5 * size * lam * (xi - 1j * eta)
    if size % 2 == 0 and half > 0:
        c[:, half] = size * lam[-1] * xi[:, -1]
    return scipy.fft.irfft(c, n=size, axis=-1)


def periodic_grf_1d(rngs: Sequence[np.random.Generator], size: int, sigma: float = 25.0,
                    tau: float = 5.0, gamma: float = 2.0, mean: float = 0.0) -> np.ndarray:
    """Periodic 1-D GRF N(m, σ²(−Δ+τ²)^(−γ)) on [0, 1) (FNO ``GRF1.m``): [len(rngs), size] float64.

    Each sample draws ``standard_normal((size//2, 2))`` from its own generator, ordered by
    wavenumber (ξ_1, η_1, ξ_2, η_2, ...): the draws of the first K modes do not depend on
    ``size``, so a field at a finer grid only adds higher modes to the coarse one.
    The Burgers paper set-up is σ = 25, τ = 5, γ = 2, m = 0 (N(0, 625(−Δ+25I)^(−2))).
    """
    return periodic_grf_1d_from_noise(_white_noise(rngs, (size // 2, 2)), size, sigma, tau,
                                      gamma, mean)
