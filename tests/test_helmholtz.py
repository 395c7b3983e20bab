"""Helmholtz generator: FEM convergence, flux identity, assembly, KL field, determinism, config."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_gen.pdes import get_pde, helmholtz, make_config
from data_gen.pdes.helmholtz import (
    GAUSS_POINTS,
    GAUSS_WEIGHTS,
    HelmholtzConfig,
    body_load,
    coords,
    edge_load,
    kl_eigenvalues,
    kl_field,
    kl_pairs,
    nodal_to_quadrature,
    quadrature_points,
    sample,
    solve,
    system_matrices,
    top_flux_load,
    wave_speed,
)


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def integrate(values_q: np.ndarray) -> np.ndarray:
    """∫_Ω v dx from v at the Gauss grid [..., 3E, 3E] (3×3 Gauss per element)."""
    e = values_q.shape[-1] // 3
    w = np.tile(GAUSS_WEIGHTS, e) / e
    return np.einsum("...ij,i,j->...", values_q, w, w)


def flux_rhs(elements: int, mode: str = "exact") -> np.ndarray:
    rhs = np.zeros((elements + 1, elements + 1))
    rhs[:, -1] = top_flux_load(elements, 0.5, 0.15, 1.0, mode)
    return rhs


# ------------------------------------------------------------------------ discretisation


def manufactured(elements: int) -> tuple[float, float]:
    """u* = cos πx cos 2πy + x²y, k² = 60(1 + 0.3 sin πx cos πy): (max nodal, L2) errors.

    f = −Δu* − k²u* = 5π² cos πx cos 2πy − 2y − k²u*; ∂u*/∂n = −x² (y = 0), x² (y = 1),
    0 (x = 0), 2y (x = 1). Loads from f and g at the Gauss points (body_load / edge_load).
    """
    q = quadrature_points(elements)
    xq, yq = np.meshgrid(q, q, indexing="ij")

    def exact(x, y):
        return np.cos(np.pi * x) * np.cos(2 * np.pi * y) + x**2 * y

    k2 = 60.0 * (1.0 + 0.3 * np.sin(np.pi * xq) * np.cos(np.pi * yq))
    f = 5 * np.pi**2 * np.cos(np.pi * xq) * np.cos(2 * np.pi * yq) - 2 * yq - k2 * exact(xq, yq)
    rhs = body_load(f)
    rhs[:, 0] += edge_load(-(q**2))  # bottom, y = 0
    rhs[:, -1] += edge_load(q**2)  # top, y = 1
    rhs[-1, :] += edge_load(2 * q)  # right, x = 1 (left: g = 0)
    u = solve(k2[None], rhs)[0]
    x = np.linspace(0.0, 1.0, elements + 1)
    xn, yn = np.meshgrid(x, x, indexing="ij")
    nodal = np.abs(u - exact(xn, yn)).max()
    l2 = math.sqrt(integrate((nodal_to_quadrature(u) - exact(xq, yq)) ** 2))
    return nodal, l2


def test_manufactured_solution_converges_at_second_order():
    """Variable k², non-homogeneous Neumann data on three edges: Q1 errors fall 4× per halving.

    Observed (E = 8 → 16 → 32 → 64 → 128): L2 orders 2.28, 2.06, 2.02, 2.00; max nodal
    orders 2.29, 2.07, 2.02, 2.00.
    """
    errs = {e: manufactured(e) for e in (8, 16, 32, 64)}
    for kind in (0, 1):
        orders = [math.log2(errs[e][kind] / errs[2 * e][kind]) for e in (8, 16, 32)]
        assert all(1.85 <= p <= 2.2 for p in orders[1:]), (kind, orders, errs)
    assert errs[64][1] < 2e-3


def series_solution(k: float, x: np.ndarray, y: np.ndarray, modes: int) -> np.ndarray:
    """Exact u for constant k and the window flux: Σ_m g_m ψ_m(x) Y_m(y) on the grid x × y.

    ψ_0 = 1, ψ_m = √2 cos πmx; g_m = ∫_{0.35}^{0.65} ψ_m; Y_m'' = (π²m² − k²)Y_m, Y_m'(0) = 0,
    Y_m'(1) = g_m: Y_m = g_m cos βy / (−β sin β), β² = k² − π²m² > 0, or g_m cosh γy / (γ sinh γ),
    γ² = π²m² − k² > 0 (ratio written with exponentials to avoid overflow).
    """
    m = np.arange(modes, dtype=np.float64)
    g = np.sqrt(2.0) * (np.sin(np.pi * m * 0.65) - np.sin(np.pi * m * 0.35)) / np.maximum(
        np.pi * m, 1e-300)
    g[0] = 0.3
    lam = np.pi**2 * m**2 - k**2
    ym = np.empty((modes, y.size))
    osc = lam < 0
    beta = np.sqrt(-lam[osc])[:, None]
    ym[osc] = np.cos(beta * y) / (-beta * np.sin(beta))
    gam = np.sqrt(lam[~osc])[:, None]
    ym[~osc] = (np.exp(gam * (y - 1)) + np.exp(-gam * (y + 1))) / (gam * (1 - np.exp(-2 * gam)))
    psi = np.sqrt(2.0) * np.cos(np.pi * np.outer(m, x))
    psi[0] = 1.0
    return (psi * g[:, None]).T @ ym


def test_constant_c_window_flux_matches_series_solution():
    """Constant c (k = 8, between the Neumann eigenvalues 5π² and 8π²), the real window flux:
    the relative L2 nodal error against the cosine-series solution falls ≈ 4× per halving
    (observed L2 orders 2.04, 1.99, 1.99 for E = 16 → 128 despite the flux jumps at x = 0.35,
    0.65; the max nodal error, at the jumps, converges more slowly)."""
    k, errs = 8.0, {}
    # Truncation: the top row needs many modes (20 000: change < 1e-7 vs 400 000); the
    # inner rows decay like e^{−πm(1−y)} (2000 modes: exact to rounding for y <= 1 − 1/128).
    top = series_solution(k, np.linspace(0, 1, 129), np.ones(1), 20_000)[:, 0]
    exact = series_solution(k, np.linspace(0, 1, 129), np.linspace(0, 1, 129), 2000)
    exact[:, -1] = top
    for e in (32, 64, 128):
        u = solve(np.full((1, 3 * e, 3 * e), k * k), flux_rhs(e))[0]
        ref = exact[:: 128 // e, :: 128 // e]
        errs[e] = np.linalg.norm(u - ref) / np.linalg.norm(ref)
    orders = [math.log2(errs[e] / errs[2 * e]) for e in (32, 64)]
    assert all(1.8 <= p <= 2.3 for p in orders), (orders, errs)
    assert errs[128] < 5e-3


@pytest.mark.parametrize("variable", [False, True], ids=["constant-c", "variable-c"])
def test_flux_identity_holds_for_the_discrete_solution(variable):
    """Integrating the PDE: −∮∂u/∂n − ∫k²u = 0 ⇒ ∫k²u dx = −∫g ds = −0.3.

    Discretely 1ᵀ(K − M_{k²})u = 1ᵀb with 1ᵀK = 0 and Σφ_i = 1, so ∫k²u_h = −1ᵀb exactly;
    ∫k²u_h is computed here by Gauss quadrature of k²·(bilinear u_h), not with the matrix.
    """
    cfg = HelmholtzConfig(elements=100)
    q = quadrature_points(cfg.elements)
    if variable:
        theta = np.random.default_rng(7).standard_normal((2, cfg.n_terms))
        k2 = (cfg.omega / wave_speed(kl_field(theta, q, q))) ** 2
    else:
        k2 = np.full((2, q.size, q.size), (cfg.omega / np.array([19.3, 20.6]))[:, None, None] ** 2)
    rhs = flux_rhs(cfg.elements)
    assert rhs.sum() == pytest.approx(0.3, rel=1e-14)
    u = solve(k2, rhs)
    flux_integral = integrate(k2 * nodal_to_quadrature(u))
    np.testing.assert_allclose(flux_integral, -0.3, rtol=1e-9)
    assert np.abs(u).max() > 1e-3  # not trivially zero


def test_flux_load_exact_and_nodal():
    """exact: Σb = 0.3 at any resolution, window ends inside cells integrated exactly;
    nodal (the reference's): at E = 100 the end nodes 0.35, 0.65 fail its float test, Σb = 0.29."""
    for e in (7, 10, 100, 333):
        assert top_flux_load(e).sum() == pytest.approx(0.3, rel=1e-12)
    b = top_flux_load(4, center=0.3, half_width=0.1)  # window [0.2, 0.4], h = 0.25
    # ∫_{0.2}^{0.4} hat_i: node 0 (0..0.25): ∫(1 − x/h) over [0.2, 0.25] = 0.05 − (0.0625 −
    # 0.04)/0.5 = 0.005; node 1: the rest of the two cells; node 2 (0.25..0.5): (0.4−0.25)²/2/h.
    np.testing.assert_allclose(b, [0.005, 0.2 - 0.005 - 0.045, 0.045, 0, 0], atol=1e-15)
    assert top_flux_load(100, mode="nodal").sum() == pytest.approx(0.29, rel=1e-12)
    nodal = top_flux_load(100, mode="nodal")
    assert nodal[35] == pytest.approx(0.01 / 6) and nodal[36] == pytest.approx(0.01 * 5 / 6)
    with pytest.raises(ValueError, match="mode"):
        top_flux_load(10, mode="lumped")


def test_matrix_matches_independent_element_loop():
    """E = 3: A = K − M_{k²} assembled densely element by element from Q1 shape functions."""
    e = 3
    h = 1.0 / e
    k2 = np.random.default_rng(0).uniform(10.0, 40.0, (1, 3 * e, 3 * e))
    mats, order = system_matrices(k2)
    got = np.zeros(((e + 1) ** 2,) * 2)
    got[np.ix_(order, order)] = mats[0].toarray()
    expected = np.zeros_like(got)
    for ex in range(e):
        for ey in range(e):
            for p in range(3):
                for q in range(3):
                    s, t = GAUSS_POINTS[p], GAUSS_POINTS[q]
                    wgt = GAUSS_WEIGHTS[p] * GAUSS_WEIGHTS[q] * h * h
                    kk = k2[0, 3 * ex + p, 3 * ey + q]
                    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    val = [(s if a else 1 - s) * (t if c else 1 - t) for a, c in corners]
                    grad = [((1 if a else -1) * (t if c else 1 - t) / h,
                             (s if a else 1 - s) * (1 if c else -1) / h) for a, c in corners]
                    ids = [(ex + a) * (e + 1) + ey + c for a, c in corners]
                    for i in range(4):
                        for j in range(4):
                            expected[ids[i], ids[j]] += wgt * (
                                grad[i][0] * grad[j][0] + grad[i][1] * grad[j][1]
                                - kk * val[i] * val[j])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(got, got.T, atol=0)  # symmetric
    # K·1 = 0: A·1 = −M·1 = −∫k²φ_i, so row sums add up to −∫k².
    assert got.sum() == pytest.approx(-integrate(k2[0]), rel=1e-12)


def test_mirror_symmetry():
    """Window centred at 0.5: mirroring c in x mirrors u (checks the "ij" layout and edges)."""
    e = 40
    q = quadrature_points(e)
    np.testing.assert_allclose(q[::-1], 1.0 - q, atol=1e-15)
    theta = np.random.default_rng(2).standard_normal((1, 100))
    k2 = (400.0 / wave_speed(kl_field(theta, q, q))) ** 2
    u = solve(np.concatenate([k2, k2[:, ::-1]]), flux_rhs(e))
    np.testing.assert_allclose(u[1], u[0, ::-1], rtol=0, atol=1e-10 * np.abs(u).max())


def test_nodal_to_quadrature_is_exact_for_bilinear_functions():
    e = 5
    x = np.linspace(0, 1, e + 1)
    q = quadrature_points(e)
    f = lambda a, b: 1 + 2 * a - 3 * b + 4 * a * b  # noqa: E731
    got = nodal_to_quadrature(f(x[:, None], x[None, :]))
    np.testing.assert_allclose(got, f(q[:, None], q[None, :]), atol=1e-14)


def test_solve_raises_on_singular_or_non_finite_samples():
    """k² = 0 leaves the pure Neumann problem singular; NaN k²: both name sample 1."""
    e = 10
    k2 = np.full((3, 3 * e, 3 * e), 50.0)
    k2[1] = 0.0
    with pytest.raises(FloatingPointError, match="sample 1 of the chunk.*singular"):
        solve(k2, flux_rhs(e))
    k2[1] = np.nan
    with pytest.raises(FloatingPointError, match="sample 1 of the chunk.*non-finite"):
        solve(k2, flux_rhs(e))
    with pytest.raises(ValueError, match="rhs has shape"):
        solve(k2[:1], np.zeros((e, e)))
    with pytest.raises(ValueError, match="k2 has shape"):
        system_matrices(np.ones((1, 10, 10)))


# ---------------------------------------------------------------------------- the KL field


def test_kl_pairs_order_and_completeness():
    """Sorted by l₁² + l₂², ties by increasing l₁ (the reference's stable sort of l₁-major)."""
    assert kl_pairs(12).tolist() == [[0, 1], [1, 0], [1, 1], [0, 2], [2, 0], [1, 2], [2, 1],
                                     [2, 2], [0, 3], [3, 0], [1, 3], [3, 1]]
    p = kl_pairs(100)
    mag = (p**2).sum(1)
    assert len({tuple(r) for r in p.tolist()}) == 100 and (p >= 0).all()
    assert np.all(np.diff(mag) >= 0)
    ties = np.diff(mag) == 0
    assert np.all(np.diff(p[:, 0])[ties] > 0)
    # complete: every pair with |l|² below the 100th one is listed
    cut = mag[-1]
    below = [(a, b) for a in range(15) for b in range(15) if 0 < a * a + b * b < cut]
    assert set(below) <= {tuple(r) for r in p.tolist()}
    # The reference's loop (compute_seq_pairs): l₁ = 0..M outer, l₂ = 0..M inner,
    # M = trunc(√(2N)) + 1, (0, 0) skipped, stable sort by |l|².
    for n in (100, 1000):
        top = int(math.sqrt(2 * n)) + 1
        loop = [(a, b) for a in range(top + 1) for b in range(top + 1) if a or b]
        expected = sorted(loop, key=lambda ab: ab[0] ** 2 + ab[1] ** 2)[:n]
        assert list(map(tuple, kl_pairs(n).tolist())) == expected
    # The tie-break decides the last term: |l|² = 116 = 4² + 10² = 10² + 4²; (4, 10) is in.
    assert tuple(p[-1]) == (4, 10) and cut == 116


def test_kl_eigenvalues_and_basis_match_definition():
    """θ = e_l gives √λ_l φ_l with φ = √2 cos πl₁x, √2 cos πl₂y, or 2 cos πl₁x cos πl₂y."""
    assert kl_eigenvalues(np.array([[0, 1]]))[0] == pytest.approx((np.pi**2 + 9.0) ** -2)
    assert kl_eigenvalues(np.array([[2, 3]]), tau=5.0, d=1.5)[0] == pytest.approx(
        (13 * np.pi**2 + 25.0) ** -1.5)
    x, y = np.linspace(0, 1, 7), np.linspace(0, 1, 9)
    pairs = kl_pairs(30)
    field = kl_field(np.eye(30), x, y)
    for i, (l1, l2) in enumerate(pairs.tolist()):
        lam = (np.pi**2 * (l1 * l1 + l2 * l2) + 9.0) ** -2
        if l1 == 0:
            phi = np.sqrt(2) * np.cos(np.pi * l2 * y)[None, :].repeat(7, 0)
        elif l2 == 0:
            phi = np.sqrt(2) * np.cos(np.pi * l1 * x)[:, None].repeat(9, 1)
        else:
            phi = 2 * np.cos(np.pi * l1 * x)[:, None] * np.cos(np.pi * l2 * y)[None, :]
        np.testing.assert_allclose(field[i], np.sqrt(lam) * phi, atol=1e-15)


def test_kl_field_statistics():
    """3000 fields on a 21² grid: mean ≈ 0 and Var a(x) = Σ_l λ_l φ_l(x)², whose grid
    average is ≈ Σλ_l (each φ_l² averages to 1 over the square); c stays inside (19, 21)."""
    n, s = 3000, 21
    x = np.linspace(0, 1, s)
    theta = np.stack([r.standard_normal(100) for r in rngs(range(n))])
    a = kl_field(theta, x, x)
    var_exact = (kl_field(np.eye(100), x, x) ** 2).sum(0)
    sum_lam = kl_eigenvalues(kl_pairs(100)).sum()
    assert var_exact.mean() == pytest.approx(sum_lam, rel=0.1)  # trapezoid-free grid average
    # standard error of a sample variance: √(2/n) ≈ 2.6 %; compare the grid average (±8 %)
    assert a.var(0).mean() == pytest.approx(var_exact.mean(), rel=0.08)
    assert np.abs(a.mean(0)).max() < 5 * math.sqrt(var_exact.max() / n)
    c = wave_speed(a)
    assert c.min() > 19.0 and c.max() < 21.0


# ------------------------------------------------------------------- the generator contract


def test_sample_shapes_coords_and_consistency():
    """c at the nodes equals 20 + tanh(KL field of θ drawn from the sample's generator)."""
    cfg = HelmholtzConfig(elements=24)
    out = sample(cfg, rngs([3, 4]))
    assert set(out) == {"inputs", "outputs"}
    c, u = out["inputs"]["c"], out["outputs"]["u"]
    assert c.shape == u.shape == (2, 1, 25, 25) and c.dtype == u.dtype == np.float32
    xy = coords(cfg)
    np.testing.assert_array_equal(xy["x"], np.linspace(0, 1, 25))
    np.testing.assert_array_equal(xy["y"], xy["x"])
    theta = np.stack([r.standard_normal(100) for r in rngs([3, 4])])
    np.testing.assert_allclose(c[:, 0], wave_speed(kl_field(theta, xy["x"], xy["y"])), rtol=1e-7)
    assert c.min() > 19.0 and c.max() < 21.0 and np.isfinite(u).all()
    assert helmholtz.Config is HelmholtzConfig and cfg.nodes == 25


def test_sample_is_deterministic_and_chunk_independent():
    """Same generators ⇒ identical bytes; sample i does not depend on the rest of its chunk."""
    cfg = HelmholtzConfig(elements=24)
    full = sample(cfg, rngs(range(10, 15)))
    again = sample(cfg, rngs(range(10, 15)))
    part = sample(cfg, rngs([14, 11]))
    for group, name in (("inputs", "c"), ("outputs", "u")):
        assert again[group][name].tobytes() == full[group][name].tobytes()
        assert part[group][name][0].tobytes() == full[group][name][4].tobytes()
        assert part[group][name][1].tobytes() == full[group][name][1].tobytes()


def test_registry_and_yaml_defaults():
    """``conf/pde/helmholtz.yaml`` lists every Config field with its default."""
    conf = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/pde/helmholtz.yaml")
                          .read_text())
    assert conf.pop("name") == "helmholtz"
    assert set(conf) == {f.name for f in dataclasses.fields(HelmholtzConfig)}
    assert get_pde("helmholtz") is helmholtz
    assert make_config("helmholtz", conf) == HelmholtzConfig()


@pytest.mark.parametrize("key, value, match", [
    ("elements", 3, "elements=3, expected an integer >= 4"),
    ("elements", 10.0, "elements=10.0, expected an integer"),
    ("n_terms", 0, "n_terms=0, expected an integer >= 1"),
    ("omega", 0.0, "omega=0.0, expected > 0"),
    ("omega", float("nan"), "omega=nan, expected a finite number"),
    ("c_mean", 1.0, "c_mean=1.0, expected > \\|c_amplitude\\|"),
    ("c_amplitude", -25.0, "c_mean=20.0, expected > \\|c_amplitude\\| = 25.0"),
    ("tau", -1.0, "tau=-1.0, expected >= 0"),
    ("d", 0.0, "d=0.0, expected > 0"),
    ("flux_center", 1.5, "flux_center=1.5, expected in \\[0, 1\\]"),
    ("flux_half_width", 0.0, "flux_half_width=0.0, expected in \\(0, 0.5\\]"),
    ("flux_half_width", 0.6, "flux_half_width=0.6, expected in \\(0, 0.5\\]"),
    ("flux_load", "lumped", "flux_load='lumped', expected 'exact' or 'nodal'"),
])
def test_config_errors_name_key_value_and_expectation(key, value, match):
    with pytest.raises(ValueError, match=f"^helmholtz: {match}"):
        HelmholtzConfig(**{key: value})
