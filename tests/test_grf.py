"""Gaussian random fields: exact synthesis, second-order statistics, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.grf import (
    cosine_grf_2d,
    cosine_grf_eigenvalues,
    cosine_grf_from_noise,
    periodic_default_sigma,
    periodic_grf_2d,
    periodic_grf_eigenvalues,
    periodic_grf_from_noise,
)

N_FIELDS = 4000  # relative std of a variance estimate: sqrt(2/N) ~ 2.2 %
VAR_RTOL = 5.0 * np.sqrt(2.0 / N_FIELDS)  # 5 sigma of the worst (real, chi²₁) case: 11 %


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def cosine_basis(size: int, grid: str) -> np.ndarray:
    """Φ[i, k] = φ_k(x_i), φ_0 = 1, φ_k = √2 cos(πkx): [size, size], built without any DCT."""
    x = np.arange(size) / (size - 1) if grid == "nodes" else (np.arange(size) + 0.5) / size
    phi = np.sqrt(2.0) * np.cos(np.pi * np.outer(x, np.arange(size)))
    phi[:, 0] = 1.0
    return phi


@pytest.mark.parametrize("grid", ["nodes", "cells"])
def test_cosine_synthesis_equals_explicit_eigen_sum(grid):
    """field[i, j] = Σ_k √λ_k ξ_k φ_{k1}(x_i) φ_{k2}(y_j), to rounding, for odd and even sizes."""
    for size in (7, 8):
        xi = np.random.default_rng(1).standard_normal((3, size, size))
        phi = cosine_basis(size, grid)
        coef = np.sqrt(cosine_grf_eigenvalues(size, 2.0, 3.0)) * xi
        expected = np.einsum("ik,jl,nkl->nij", phi, phi, coef)
        got = cosine_grf_from_noise(xi, 2.0, 3.0, grid=grid)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


def test_cosine_eigenvalues_formula():
    """λ = τ^(2α−2)(π²|k|²+τ²)^(−α) with the mean mode removed (α=2, τ=3: λ(0,1) = 9/(π²+9)²)."""
    lam = cosine_grf_eigenvalues(5, alpha=2.0, tau=3.0)
    assert lam.shape == (5, 5) and lam[0, 0] == 0.0
    assert lam[0, 1] == pytest.approx(9.0 / (np.pi**2 + 9.0) ** 2, rel=1e-14)
    assert lam[2, 1] == pytest.approx(9.0 / (5 * np.pi**2 + 9.0) ** 2, rel=1e-14)
    np.testing.assert_array_equal(lam, lam.T)


@pytest.mark.parametrize("grid", ["nodes", "cells"])
def test_cosine_mode_variances_match_eigenvalues(grid):
    """Projecting N fields on the cosine basis: per-mode variance = λ_k within 5σ, mean mode 0."""
    size, alpha, tau = 8, 2.0, 3.0
    fields = cosine_grf_2d(rngs(range(N_FIELDS)), size, alpha, tau, grid=grid)
    phi_inv = np.linalg.inv(cosine_basis(size, grid))
    coef = np.einsum("ki,lj,nij->nkl", phi_inv, phi_inv, fields)
    lam = cosine_grf_eigenvalues(size, alpha, tau)
    assert np.abs(coef[:, 0, 0]).max() < 1e-12
    var = (coef**2).mean(axis=0)  # known zero mean
    ok = lam > 0
    np.testing.assert_allclose(var[ok], lam[ok], rtol=VAR_RTOL)


def test_cosine_pointwise_covariance_matches_formula():
    """Empirical covariance of node values vs Σ_k λ_k φ_k(x)φ_k(x'), entrywise within 5.5σ.

    σ of an empirical covariance entry with known zero mean: sqrt((C_ii C_jj + C_ij²)/N).
    """
    size, alpha, tau = 6, 2.0, 5.0
    fields = cosine_grf_2d(rngs(range(N_FIELDS)), size, alpha, tau).reshape(N_FIELDS, -1)
    phi = cosine_basis(size, "nodes")
    basis = np.einsum("ik,jl->ijkl", phi, phi).reshape(size * size, -1)
    cov = basis @ np.diag(cosine_grf_eigenvalues(size, alpha, tau).ravel()) @ basis.T
    emp = fields.T @ fields / N_FIELDS
    d = np.diag(cov)
    sd = np.sqrt((np.outer(d, d) + cov**2) / N_FIELDS)
    assert np.all(np.abs(emp - cov) <= 5.5 * sd)


def test_periodic_synthesis_equals_explicit_fourier_sum():
    """field = Re Σ_k √(2λ_k) z_k e^{2πi k·x} over k in [−s/2, s/2−1]², to rounding."""
    size, alpha, tau = 6, 2.5, 7.0
    g = np.random.default_rng(2).standard_normal((2, 3, size, size))
    z = (g[0] + 1j * g[1]) * np.sqrt(0.5)
    k = np.fft.fftfreq(size, d=1.0 / size)
    e = np.exp(2j * np.pi * np.outer(np.arange(size) / size, k))
    lam = periodic_grf_eigenvalues(size, alpha, tau)
    expected = np.einsum("ik,jl,nkl->nij", e, e, np.sqrt(2 * lam) * z).real
    got = periodic_grf_from_noise(z, alpha, tau)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_periodic_default_sigma_is_fno():
    """α = 2.5, τ = 7: σ² = 7³ (FNO navier_stokes/random_fields.py)."""
    assert periodic_default_sigma(2.5, 7.0) ** 2 == pytest.approx(343.0, rel=1e-14)
    lam = periodic_grf_eigenvalues(4, 2.5, 7.0)
    assert lam[0, 1] == pytest.approx(343.0 * (4 * np.pi**2 + 49.0) ** -2.5, rel=1e-14)
    assert lam[0, 0] == 0.0


def test_periodic_mode_variances_match_eigenvalues():
    """E|û_k|²/s⁴ = λ_k = σ²(4π²|k|²+τ²)^(−α) for every k ≠ 0 within 5σ; û_0 = 0 (zero mean)."""
    size, alpha, tau = 8, 2.5, 7.0
    fields = periodic_grf_2d(rngs(range(N_FIELDS)), size, alpha, tau)
    assert np.abs(fields.mean(axis=(1, 2))).max() < 1e-12 * np.abs(fields).max()
    power = (np.abs(np.fft.fft2(fields)) ** 2).mean(axis=0) / size**4
    lam = periodic_grf_eigenvalues(size, alpha, tau)
    ok = lam > 0
    np.testing.assert_allclose(power[ok], lam[ok], rtol=VAR_RTOL)


def test_periodic_pointwise_variance_and_stationarity():
    """Var u(x) = Σ_k λ_k at every point (stationary), within 5σ of the N-field estimate."""
    size, alpha, tau, sigma = 8, 2.0, 3.0, 1.5
    fields = periodic_grf_2d(rngs(range(N_FIELDS)), size, alpha, tau, sigma=sigma)
    total = periodic_grf_eigenvalues(size, alpha, tau, sigma).sum()
    np.testing.assert_allclose((fields**2).mean(axis=0), total, rtol=VAR_RTOL)


@pytest.mark.parametrize("make", [
    lambda r, s: cosine_grf_2d(r, s, grid="nodes"),
    lambda r, s: cosine_grf_2d(r, s, grid="cells"),
    lambda r, s: periodic_grf_2d(r, s, 2.5, 7.0),
], ids=["cosine-nodes", "cosine-cells", "periodic"])
def test_shapes_and_determinism(make):
    """[n, s, s] float64; same seeds give identical bytes; sample i ignores its batch-mates."""
    size = 33
    full = make(rngs(range(10, 17)), size)
    assert full.shape == (7, size, size) and full.dtype == np.float64
    assert make(rngs(range(10, 17)), size).tobytes() == full.tobytes()
    for i, seeds in [(0, [13]), (1, [12, 11, 13]), (0, [16, 13, 15, 15, 15])]:
        alone = make(rngs(seeds), size)
        assert alone[i].tobytes() == full[seeds[i] - 10].tobytes()
    assert make([], size).shape == (0, size, size)


def test_bad_noise_shape_is_reported():
    with pytest.raises(ValueError, match="expected \\[n, s, s\\]"):
        cosine_grf_from_noise(np.zeros((2, 4, 5)))
