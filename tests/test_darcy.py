"""Darcy flow generator: discretisation accuracy, symmetries, maximum principle, statistics."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from data_gen.pdes import darcy
from data_gen.pdes.darcy import DarcyConfig, coords, nested_dissection, sample, solve


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def poisson_series(s: int, modes: int = 1000) -> np.ndarray:
    """−Δu = 1, u|∂Ω = 0 on nodes i/(s−1): Σ_{k,l odd} 16 sin(kπx) sin(lπy) / (π⁴kl(k²+l²)).

    Truncation error ≲ 16/(π⁴ modes²) ~ 2e-7, far below the O(h²) errors compared here.
    """
    x = np.linspace(0.0, 1.0, s)
    k = np.arange(1, modes, 2, dtype=np.float64)
    sk = np.sin(np.pi * np.outer(x, k))
    c = 16.0 / (np.pi**4 * np.outer(k, k) * (k[:, None] ** 2 + k[None, :] ** 2))
    return sk @ c @ sk.T


def random_piecewise(n: int, s: int, seed: int = 0) -> np.ndarray:
    """Random 3/12 coefficient from thresholded white noise (rougher than the GRF): [n, s, s]."""
    return np.where(np.random.default_rng(seed).standard_normal((n, s, s)) >= 0, 12.0, 3.0)


def test_constant_coefficient_is_second_order_against_series():
    """a = 1, f = 1: max nodal error vs the series solution falls 4x from s = 33 to s = 65."""
    err = {s: np.abs(solve(np.ones((s, s))) - poisson_series(s)).max() for s in (33, 65)}
    order = np.log2(err[33] / err[65])
    assert 1.8 <= order <= 2.2, (err, order)
    assert err[65] < 1e-4


def test_constant_coefficient_peak_scales_as_one_over_a():
    """max u = 0.07367/a for −∇·(a∇u) = 1 (reference §5: 0.0061 for a = 12, 0.0246 for a = 3)."""
    s = 65
    u1 = solve(np.ones((s, s)))
    assert u1.max() == pytest.approx(poisson_series(s)[32, 32], rel=2e-4)
    assert u1.max() == pytest.approx(0.0737, abs=1e-4)
    for a in (3.0, 12.0):
        np.testing.assert_allclose(solve(np.full((s, s), a)), u1 / a, rtol=1e-10, atol=1e-15)


def test_variable_coefficient_manufactured_solution_is_second_order():
    """u = sin πx sin πy, a = 1 + x + 2y², f = −∇·(a∇u) analytically: order ≈ 2 (33 → 65).

    Fields are built with ``indexing="ij"``, the documented convention coeff[i, j] ↔ (x_i, y_j).
    """
    err = {}
    for s in (33, 65):
        x, y = np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s), indexing="ij")
        a = 1.0 + x + 2.0 * y**2
        u = np.sin(np.pi * x) * np.sin(np.pi * y)
        ux = np.pi * np.cos(np.pi * x) * np.sin(np.pi * y)
        uy = np.pi * np.sin(np.pi * x) * np.cos(np.pi * y)
        f = -(1.0 * ux + 4.0 * y * uy) + 2.0 * np.pi**2 * a * u
        err[s] = np.abs(solve(a, f) - u).max()
    order = np.log2(err[33] / err[65])
    assert 1.8 <= order <= 2.2, (err, order)


def test_matches_independent_dense_assembly():
    """The 5-point operator assembled entry by entry ((a_ij + a_nb)/2/h² faces), solved densely."""
    s = 9
    a = np.random.default_rng(3).uniform(1.0, 5.0, (s, s))
    f = np.random.default_rng(4).uniform(0.0, 2.0, (s, s))
    m, h = s - 2, 1.0 / (s - 1)
    mat = np.zeros((m * m, m * m))
    for i in range(1, s - 1):
        for j in range(1, s - 1):
            p = (i - 1) * m + (j - 1)
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                face = 0.5 * (a[i, j] + a[i + di, j + dj]) / h**2
                mat[p, p] += face
                if 1 <= i + di <= s - 2 and 1 <= j + dj <= s - 2:
                    mat[p, (i + di - 1) * m + (j + dj - 1)] -= face
    expected = np.linalg.solve(mat, f[1:-1, 1:-1].ravel()).reshape(m, m)
    for method in ("nd", "mmd", "spsolve"):
        u = solve(a, f, method=method)
        np.testing.assert_allclose(u[1:-1, 1:-1], expected, rtol=1e-12, atol=1e-15)


def test_transpose_symmetric_coefficient_gives_symmetric_solution():
    """a(x, y) = a(y, x) ⇒ u(x, y) = u(y, x) (the operator commutes with the transpose)."""
    a = random_piecewise(1, 40)[0]
    a = np.where(a + a.T >= 15.0, 12.0, 3.0)
    u = solve(a)
    np.testing.assert_allclose(u, u.T, rtol=0, atol=1e-12 * u.max())


@pytest.mark.parametrize("flip", [
    lambda z: z[..., ::-1, :], lambda z: z[..., :, ::-1], lambda z: np.swapaxes(z, -1, -2),
], ids=["x-mirror", "y-mirror", "transpose"])
def test_solution_is_equivariant_under_square_symmetries(flip):
    """Mirroring/transposing a (and f = 1) mirrors/transposes u."""
    a = random_piecewise(2, 37, seed=5)
    np.testing.assert_allclose(solve(flip(a)), flip(solve(a)), rtol=0, atol=1e-12)


def test_maximum_principle_and_exact_boundary():
    """f ≥ 0 ⇒ u > 0 inside (the matrix is an M-matrix); u = 0 exactly on ∂Ω."""
    u = solve(random_piecewise(4, 50, seed=6))
    assert np.all(u[:, 1:-1, 1:-1] > 0)
    for edge in (u[:, 0], u[:, -1], u[:, :, 0], u[:, :, -1]):
        assert np.all(edge == 0.0)
    f = np.random.default_rng(7).uniform(0.0, 1.0, (4, 50, 50))
    assert solve(random_piecewise(4, 50, seed=8), f).min() >= 0.0


def test_nested_dissection_is_a_permutation():
    for m in (0, 1, 2, 7, 30):
        order = nested_dissection(m)
        np.testing.assert_array_equal(np.sort(order), np.arange(m * m))


def test_solve_validates_input():
    with pytest.raises(ValueError, match="expected \\[n, s, s\\]"):
        solve(np.ones((2, 5, 6)))
    with pytest.raises(ValueError, match="positive"):
        solve(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="method"):
        solve(np.ones((5, 5)), method="cg")


def test_sample_shapes_dtypes_and_coords():
    cfg = DarcyConfig(resolution=29)
    out = sample(cfg, rngs(range(3)))
    assert set(out) == {"inputs", "outputs"}
    for arr in (out["inputs"]["coeff"], out["outputs"]["sol"]):
        assert arr.shape == (3, 1, 29, 29) and arr.dtype == np.float32
    c = coords(cfg)
    assert set(c) == {"x", "y"}
    np.testing.assert_array_equal(c["x"], np.linspace(0.0, 1.0, 29))
    assert c["x"].dtype == np.float64 and c["y"].shape == (29,)
    assert darcy.Config is DarcyConfig


def test_sample_statistics_match_reference():
    """300 samples at s = 33 (reference §5, §7 checks).

    * a takes exactly the values 3 and 12;
    * the a = 12 fraction has mean ½ (ψ and −ψ are equally likely); per-sample std ≈ 0.06,
      so the standard error is ≈ 0.0035 and ±0.05 is a loose (>10 SE) bound;
    * max u is O(0.01): each between the constant-coefficient peaks 0.0737/12 and 0.0737/3,
      and the mean within [0.010, 0.017] (scipy prototype at s = 85: 0.0142).
    """
    out = sample(DarcyConfig(resolution=33), rngs(range(300)))
    coeff, sol = out["inputs"]["coeff"], out["outputs"]["sol"]
    assert set(np.unique(coeff).tolist()) == {3.0, 12.0}
    assert abs((coeff == 12.0).mean() - 0.5) < 0.05
    peak = sol.max(axis=(1, 2, 3))
    assert np.all(peak > 0.0737 / 12) and np.all(peak < 0.0737 / 3)
    assert 0.010 < peak.mean() < 0.017


def test_sample_is_deterministic_and_chunk_independent():
    """Same generators ⇒ identical bytes; sample i does not depend on the rest of its chunk."""
    cfg = DarcyConfig(resolution=33)
    full = sample(cfg, rngs(range(20, 26)))
    again = sample(cfg, rngs(range(20, 26)))
    for group in ("inputs", "outputs"):
        for name, arr in full[group].items():
            assert again[group][name].tobytes() == arr.tobytes()
    part = sample(cfg, rngs([25, 22]))
    for group, name in (("inputs", "coeff"), ("outputs", "sol")):
        assert part[group][name][0].tobytes() == full[group][name][5].tobytes()
        assert part[group][name][1].tobytes() == full[group][name][2].tobytes()


def test_threshold_and_levels_are_configurable():
    cfg = DarcyConfig(resolution=17, high=5.0, low=1.0, threshold=10.0)  # ψ never reaches 10
    coeff = sample(cfg, rngs([0]))["inputs"]["coeff"]
    assert np.all(coeff == 1.0)


# ------------------------------------------------------- config, presets, multiscale, solvers

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("key, value, expected", [
    ("resolution", 2, "an integer >= 3"), ("resolution", 64.0, "an integer >= 3"),
    ("alpha", 0.0, "> 0"), ("tau", -1.0, "> 0"), ("high", float("nan"), "> 0"),
    ("low", 0.0, "> 0"), ("forcing", float("inf"), "finite"),
    ("coefficient", "gaussian", "'threshold' or 'multiscale'"), ("scales", 0, "1..30"),
    ("solver", "amg", "'auto', 'direct', 'multigrid'"),
])
def test_config_rejects_impossible_parameters(key, value, expected):
    with pytest.raises(ValueError, match=rf"darcy: {key}=.*expected .*{re.escape(expected)}"):
        DarcyConfig(**{key: value})


def test_pde_presets_compose_with_hydra():
    """``pde=darcy|darcy_rough|darcy_multiscale``: every Config field, in Config order; the
    smooth preset equals the Config defaults; rough differs only by τ = 5, multiscale only by
    the coefficient."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from data_gen.pdes import make_config

    fields = [f.name for f in dataclasses.fields(DarcyConfig)]
    cfgs = {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for preset in ("darcy", "darcy_rough", "darcy_multiscale"):
            pde = OmegaConf.to_container(compose("datagen", overrides=[f"pde={preset}"]).pde)
            assert pde.pop("name") == "darcy"
            assert list(pde) == fields, preset
            cfgs[preset] = make_config("darcy", pde)
    assert cfgs["darcy"] == DarcyConfig()
    assert cfgs["darcy_rough"] == DarcyConfig(tau=5.0)
    assert cfgs["darcy_multiscale"] == DarcyConfig(coefficient="multiscale")


def test_multiscale_coefficient_is_the_stated_product():
    """a = Π_k (1 + ½cos(a_k π(x+y)))(1 + ½sin(a_k π(y−3x))) on the nodes ("ij" indexing),
    a_k from the sample's own generator; within [2^(−2K), (3/2)^(2K)]."""
    s, k = 21, 4
    a = darcy.multiscale_coefficient(rngs([3, 4]), s, k)
    freq = darcy.multiscale_frequencies(rngs([4]), k)[0]
    x = np.linspace(0.0, 1.0, s)
    expected = np.ones((s, s))
    for i in range(s):
        for j in range(s):
            for ak in freq:
                expected[i, j] *= ((1 + 0.5 * np.cos(ak * np.pi * (x[i] + x[j])))
                                   * (1 + 0.5 * np.sin(ak * np.pi * (x[j] - 3 * x[i]))))
    np.testing.assert_allclose(a[1], expected, rtol=1e-13)
    assert a.min() >= 0.5 ** (2 * k) and a.max() <= 1.5 ** (2 * k)
    assert not np.allclose(a[0], a[0].T)  # the y − 3x factor breaks the x ↔ y symmetry


def test_multiscale_frequencies_are_uniform_on_octaves():
    """a_k ~ U[2^(k−1), 2^k]: all inside, and the mean of 400 draws within 5 standard errors
    (σ = 2^(k−1)/√12) of the centre 0.75·2^k, for every k."""
    freq = darcy.multiscale_frequencies(rngs(range(400)), 6)
    low = 2.0 ** np.arange(6)
    assert np.all(freq >= low) and np.all(freq <= 2 * low)
    se = low / np.sqrt(12.0) / np.sqrt(400)
    assert np.all(np.abs(freq.mean(axis=0) - 1.5 * low) < 5 * se)


def test_multiscale_sample_is_positive_deterministic_and_chunk_independent():
    """Multiscale samples through the multigrid solver: u > 0 inside (f = 1 > 0, M-matrix),
    identical bytes for the same generators, sample i the same alone or in a chunk."""
    cfg = DarcyConfig(resolution=49, coefficient="multiscale", solver="multigrid")
    full = sample(cfg, rngs(range(30, 34)))
    sol = full["outputs"]["sol"]
    assert sol.shape == (4, 1, 49, 49) and sol.dtype == np.float32
    assert np.all(sol[:, 0, 1:-1, 1:-1] > 0) and np.all(sol[:, 0, 0] == 0)
    again = sample(cfg, rngs(range(30, 34)))
    part = sample(cfg, rngs([33, 31]))
    for group, name in (("inputs", "coeff"), ("outputs", "sol")):
        assert again[group][name].tobytes() == full[group][name].tobytes()
        assert part[group][name][0].tobytes() == full[group][name][3].tobytes()
        assert part[group][name][1].tobytes() == full[group][name][1].tobytes()


@pytest.mark.parametrize("coefficient", ["threshold", "multiscale"])
def test_direct_and_multigrid_samples_agree(coefficient):
    """Same config, solver=direct vs multigrid: same coeff bytes, sol equal to float32 rounding
    (the solves differ by ~1e-12 relative)."""
    kw = dict(resolution=50, coefficient=coefficient)
    d = sample(DarcyConfig(solver="direct", **kw), rngs(range(3)))
    m = sample(DarcyConfig(solver="multigrid", **kw), rngs(range(3)))
    assert d["inputs"]["coeff"].tobytes() == m["inputs"]["coeff"].tobytes()
    ref = d["outputs"]["sol"]
    assert np.abs(m["outputs"]["sol"] - ref).max() <= 1e-6 * np.abs(ref).max()


def test_auto_solver_is_direct_below_the_crossover_and_multigrid_from_it(monkeypatch):
    from data_gen.pdes import darcy_multigrid

    calls = []
    monkeypatch.setattr(darcy_multigrid, "solve", lambda a, f, **kw: calls.append(a.shape[-1])
                        or np.zeros_like(a))
    s0 = darcy.MULTIGRID_FROM
    darcy.solve_with("auto", np.ones((1, s0 - 1, s0 - 1)))
    darcy.solve_with("direct", np.ones((1, s0, s0)))
    assert calls == []
    darcy.solve_with("auto", np.ones((1, s0, s0)))
    darcy.solve_with("multigrid", np.ones((1, 9, 9)))
    assert calls == [s0, 9]


def test_coefficients_are_the_fields_sample_solves_for():
    """darcy.coefficients draws exactly the coefficient fields of darcy.sample (same
    per-sample streams), without solving: Monte-Carlo inputs for a surrogate."""
    from data_gen.pdes import darcy, make_config
    from data_gen.runner import sample_rngs

    cfg = make_config("darcy", {"resolution": 16})
    fields = darcy.sample(cfg, sample_rngs(0, "train", 0, 3))
    coeff = darcy.coefficients(cfg, sample_rngs(0, "train", 0, 3))
    assert coeff.shape == (3, 16, 16) and set(np.unique(coeff)) <= {3.0, 12.0}
    np.testing.assert_array_equal(coeff.astype(np.float32), fields["inputs"]["coeff"][:, 0])
