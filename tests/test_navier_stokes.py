"""Navier–Stokes vorticity generator: exact solutions, time order, the advection term,
conservation, GRF statistics, determinism, subsampling and configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_gen.grf import periodic_grf_2d, periodic_grf_eigenvalues
from data_gen.pdes import get_pde, make_config
from data_gen.pdes import navier_stokes as ns
from data_gen.pdes.navier_stokes import NavierStokesConfig, coords, fno_forcing, sample, solve

TWO_PI = 2.0 * np.pi


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(s) / s
    return np.meshgrid(x, x, indexing="ij")


def small(**kw) -> NavierStokesConfig:
    """32² solver and store, ν = 1e-3, two records of 0.05 (100 steps of 1e-3)."""
    base = dict(viscosity=1e-3, T=0.1, record_every=0.05, dt=1e-3, solver_resolution=32,
                resolution=32)
    return NavierStokesConfig(**{**base, **kw})


def shell25(s: int) -> np.ndarray:
    """Σ of modes with |k|² = 25 in different directions: an eigenfunction of Δ whose
    nonlinear term u·∇w = (ψ_y w_x − ψ_x w_y) = (w_y w_x − w_x w_y)/Λ vanishes pointwise,
    although each product in it does not."""
    x, y = grid(s)
    return (np.cos(TWO_PI * (3 * x + 4 * y)) + np.sin(TWO_PI * 5 * x)
            + 0.7 * np.cos(TWO_PI * (4 * x - 3 * y) + 0.3))


def test_laplacian_eigenfunction_decays_exactly_and_crank_nicolson_is_second_order():
    """Unforced w0 on the shell |k|² = 25 decays as exp(−ν·4π²·25·t); error ratio ≈ 4 per
    halving of dt (CN: ((1−a)/(1+a))^n vs e^{−2an}, error ∝ dt²)."""
    s, nu, t_end = 32, 1e-3, 1.0
    w0 = shell25(s)
    exact = w0 * np.exp(-nu * 4 * np.pi**2 * 25 * t_end)
    err = {}
    for dt in (0.1, 0.05, 0.025):
        w, t = solve(w0, None, nu, t_end, dt)
        assert w.shape == (1, s, s) and t.tolist() == [1.0]
        err[dt] = np.abs(w[0] - exact).max() / np.abs(exact).max()
    ratios = [err[0.1] / err[0.05], err[0.05] / err[0.025]]
    assert all(3.8 < r < 4.2 for r in ratios), (err, ratios)
    assert 1e-6 < err[0.025] < 1e-4, err  # CN error, far above rounding


def test_forced_shear_from_rest_and_its_steady_state():
    """f = 0.1(sin 2π(x+y) + cos 2π(x+y)) is a single-direction shear with |k|² = 2, so
    u·∇w = 0 for w ∝ f and the exact solution from rest is w*(1 − e^{−8π²νt}) with the steady
    state w* = f/(8π²ν). The scheme keeps w* exactly and converges to w(t) at order 2."""
    s, nu = 16, 1e-2
    f = fno_forcing(s)
    w_star = f / (8 * np.pi**2 * nu)
    steady, _ = solve(w_star, f, nu, T=1.0, dt=0.01)
    np.testing.assert_allclose(steady[0], w_star, rtol=0, atol=1e-12 * np.abs(w_star).max())
    t_end = 2.0
    exact = w_star * -np.expm1(-8 * np.pi**2 * nu * t_end)
    err = {dt: np.abs(solve(np.zeros((s, s)), f, nu, t_end, dt)[0][0] - exact).max()
           for dt in (0.2, 0.1, 0.05)}
    ratios = [err[0.2] / err[0.1], err[0.1] / err[0.05]]
    assert all(3.8 < r < 4.2 for r in ratios), (err, ratios)
    assert err[0.05] < 1e-4 * np.abs(exact).max()


def test_one_step_is_the_dealiased_advection_term():
    """ν ≈ 0, f = 0: (w1 − w0)/dt = −P(u·∇w0) with u = (ψ_y, −ψ_x), −Δψ = w0, written out by
    hand for w0 = cos 2π·4x + sin 2π(2x+y); P keeps |k_x|, |k_y| ≤ 16/3. The product has the
    modes (6, 1) (removed by the 2/3 rule) and (2, −1) (kept), both with O(1) amplitude."""
    s, dt = 16, 1e-3
    x, y = grid(s)
    a, b = TWO_PI * 4 * x, TWO_PI * (2 * x + y)
    w0 = np.cos(a) + np.sin(b)
    lam1, lam2 = 4 * np.pi**2 * 16, 4 * np.pi**2 * 5  # Λ of (4, 0) and (2, 1)
    psi_x = -TWO_PI * 4 * np.sin(a) / lam1 + TWO_PI * 2 * np.cos(b) / lam2
    psi_y = TWO_PI * np.cos(b) / lam2
    w_x = -TWO_PI * 4 * np.sin(a) + TWO_PI * 2 * np.cos(b)
    w_y = TWO_PI * np.cos(b)
    adv = psi_y * w_x - psi_x * w_y  # u·w_x + v·w_y
    k = np.fft.fftfreq(s, 1 / s)[:, None], np.fft.rfftfreq(s, 1 / s)[None, :]
    keep = (np.abs(k[0]) <= 16 / 3) & (np.abs(k[1]) <= 16 / 3)
    adv_hat = np.fft.rfft2(adv)
    assert np.abs(adv_hat[~keep]).max() > 0.1 * s * s and np.abs(adv_hat[keep]).max() > 0.1 * s * s
    expected = np.fft.irfft2(np.where(keep, adv_hat, 0.0), s=(s, s))
    w1, _ = solve(w0, None, 1e-300, dt, dt)
    np.testing.assert_allclose((w1[0] - w0) / dt, -expected, rtol=0, atol=1e-9)


def test_nonlinear_flow_is_first_order_in_dt():
    """GRF start, forced, ν = 1e-3, 32², T = 1: with the advection explicit (forward Euler) the
    error against a dt = 2.5e-4 run falls ≈ 2x per halving of dt (first order)."""
    s = 32
    w0, f = periodic_grf_2d(rngs([9]), s) * 4.0, fno_forcing(s)
    ref, _ = solve(w0, f, 1e-3, T=1.0, dt=2.5e-4)
    err = {dt: np.abs(solve(w0, f, 1e-3, T=1.0, dt=dt)[0] - ref).max() for dt in (4e-3, 2e-3)}
    # first order: err(dt) ≈ C(dt − 2.5e-4) → ratio (4e-3 − 2.5e-4)/(2e-3 − 2.5e-4) ≈ 2.14
    ratio = err[4e-3] / err[2e-3]
    assert 1.95 < ratio < 2.35, (err, ratio)


def test_mean_vorticity_is_conserved():
    """The mean of w is invariant: ∫u·∇w = ∫∇·(uw) = 0, ∫Δw = 0, ∫f = 0 (w0 = GRF + 0.3)."""
    s = 32
    w0 = periodic_grf_2d(rngs([1, 2]), s) + 0.3
    w, _ = solve(w0, fno_forcing(s), 1e-4, T=1.0, dt=2e-3, record_every=0.25)
    assert np.abs(w - w0[:, None]).max() > 0.01  # the flow did move
    np.testing.assert_allclose(w.mean(axis=(-2, -1)), 0.3, rtol=0, atol=1e-12)


def test_initial_vorticity_statistics_match_the_grf():
    """400 samples at 64²: the pointwise variance is Σ_k λ_k, λ = 7³(4π²|k|²+49)^(−2.5), i.e.
    std ≈ 0.185 (FNO's random_fields.py with complex-normal coefficients). The sample std has
    a relative standard error of ~1.5% (per-sample stds spread 0.14–0.23, 10–90%), so 5% is
    a loose bound; the mean mode is zero in every sample. (The reference's prototype figure
    0.125 is a low single-sample value: 6% of samples are below 0.13.)"""
    cfg = NavierStokesConfig(viscosity=1e-3, T=1e-3, record_every=1e-3, dt=1e-3,
                             solver_resolution=64, resolution=64)
    w0 = sample(cfg, rngs(range(400)))["inputs"]["w0"].astype(np.float64)
    theory = np.sqrt(periodic_grf_eigenvalues(64, 2.5, 7.0).sum())
    assert theory == pytest.approx(0.1852, abs=1e-4)
    assert w0.std() == pytest.approx(theory, rel=0.05)
    assert np.abs(w0.mean(axis=(1, 2, 3))).max() < 1e-7
    assert 0.4 < np.abs(w0).max(axis=(1, 2, 3)).mean() < 0.6  # ≈ 0.48
    doubled = sample(NavierStokesConfig(**{**cfg.__dict__, "sigma": 2 * 7**1.5}),
                     rngs(range(3)))["inputs"]["w0"]
    np.testing.assert_allclose(doubled, 2 * w0[:3], rtol=1e-6, atol=1e-7)


def test_sample_shapes_dtypes_and_coords():
    cfg = small(resolution=16)
    out = sample(cfg, rngs(range(3)))
    assert set(out) == {"inputs", "outputs"}
    assert out["inputs"]["w0"].shape == (3, 1, 16, 16)
    assert out["outputs"]["w"].shape == (3, 2, 16, 16)
    assert out["inputs"]["w0"].dtype == np.float32 and out["outputs"]["w"].dtype == np.float32
    c = coords(cfg)
    np.testing.assert_array_equal(c["x"], np.linspace(0.0, 1.0, 17)[:-1])
    np.testing.assert_array_equal(c["y"], c["x"])
    np.testing.assert_allclose(c["t"], [0.05, 0.1], rtol=1e-15)
    assert all(v.dtype == np.float64 for v in c.values())
    assert get_pde("navier_stokes").Config is NavierStokesConfig
    assert make_config("navier_stokes", {"viscosity": 1e-4}).viscosity == 1e-4


def test_records_are_the_solution_at_the_record_times():
    """outputs/w[:, r] = solve(w0, f, ...) up to t = (r+1)·record_every, and the last record of
    a run to T equals a single run to T (the records do not disturb the stepping)."""
    cfg = small()
    out = sample(cfg, rngs([7]))
    w0 = periodic_grf_2d(rngs([7]), 32)
    first, _ = solve(w0, fno_forcing(32), cfg.viscosity, 0.05, cfg.dt)
    last, _ = solve(w0, fno_forcing(32), cfg.viscosity, 0.1, cfg.dt)
    np.testing.assert_array_equal(out["outputs"]["w"][0, 0], first[0, 0].astype(np.float32))
    np.testing.assert_array_equal(out["outputs"]["w"][0, 1], last[0, 0].astype(np.float32))
    np.testing.assert_array_equal(out["inputs"]["w0"][0, 0], w0[0].astype(np.float32))


def test_stored_fields_subsample_the_solver_grid():
    """resolution = solver_resolution/2 keeps every second node of the same solve."""
    fine = sample(small(), rngs([3, 4]))
    coarse = sample(small(resolution=16), rngs([3, 4]))
    for group, name in (("inputs", "w0"), ("outputs", "w")):
        assert coarse[group][name].tobytes() == fine[group][name][..., ::2, ::2].tobytes()
    np.testing.assert_array_equal(coords(small(resolution=16))["x"], coords(small())["x"][::2])


def test_sample_is_deterministic_and_chunk_independent():
    """Same generators ⇒ identical bytes; sample i does not depend on the rest of its chunk
    (the scipy FFT path transforms every sample with the same code whatever the batch)."""
    cfg = small()
    full = sample(cfg, rngs(range(10, 15)))
    again = sample(cfg, rngs(range(10, 15)))
    part = sample(cfg, rngs([14, 11]))
    for group, name in (("inputs", "w0"), ("outputs", "w")):
        assert again[group][name].tobytes() == full[group][name].tobytes()
        assert part[group][name][0].tobytes() == full[group][name][4].tobytes()
        assert part[group][name][1].tobytes() == full[group][name][1].tobytes()


def test_torch_fft_and_float32_agree_with_the_default():
    """fft='torch' (MKL here, cuFFT on a GPU) matches scipy to rounding; float32 to ~1e-5."""
    ref = sample(small(), rngs([5, 6]))["outputs"]["w"]
    torch_fft = sample(small(fft="torch"), rngs([5, 6]))["outputs"]["w"]
    single = sample(small(dtype="float32"), rngs([5, 6]))["outputs"]["w"]
    scale = np.abs(ref).max()
    np.testing.assert_allclose(torch_fft, ref, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(single, ref, rtol=0, atol=1e-4 * scale)


def test_solve_accepts_tensors_and_keeps_them_on_their_device():
    """Tensor in, tensor out (same values as numpy in); the torch thread count is restored."""
    threads = torch.get_num_threads()
    w0 = torch.from_numpy(periodic_grf_2d(rngs([0]), 16))
    w, t = solve(w0, fno_forcing(16), 1e-3, T=0.02, dt=0.01, record_every=0.01, stride=2)
    assert isinstance(w, torch.Tensor) and w.shape == (1, 2, 8, 8) and w.dtype == torch.float64
    np.testing.assert_allclose(t, [0.01, 0.02])
    w_np, _ = solve(w0.numpy(), fno_forcing(16), 1e-3, T=0.02, dt=0.01, record_every=0.01,
                    stride=2)
    np.testing.assert_array_equal(w.numpy(), w_np)
    assert torch.get_num_threads() == threads


def test_blow_up_names_the_sample():
    """A too large step for a strong field (sample 1 of 3) is reported, not returned."""
    w0 = periodic_grf_2d(rngs([0, 1, 2]), 32) * np.array([1.0, 200.0, 1.0])[:, None, None]
    with pytest.raises(FloatingPointError, match="sample 1 of the batch"):
        solve(w0, None, 1e-4, T=2.0, dt=0.05, record_every=0.5)


def test_velocity_of_a_single_mode():
    """w = cos 2πx: ψ = w/(4π²), (u, v) = (ψ_y, −ψ_x) = (0, sin(2πx)/(2π)); and w = v_x − u_y."""
    x, _ = grid(16)
    u, v = ns.velocity(torch.from_numpy(np.cos(TWO_PI * x)))
    np.testing.assert_allclose(u.numpy(), 0.0, atol=1e-15)
    np.testing.assert_allclose(v.numpy(), np.sin(TWO_PI * x) / TWO_PI, atol=1e-15)


def test_speed_estimate_is_exact_for_the_forced_flow_from_rest():
    """From w0 = 0 the flow is the Stokes shear: max|u(t)| = (A/2π)(1 − e^{−8π²νt})/(8π²ν)."""
    s, nu = 16, 1e-2
    w, t = solve(np.zeros((s, s)), fno_forcing(s), nu, T=2.0, dt=1e-3, record_every=1.0)
    u, v = ns.velocity(torch.from_numpy(w))  # w: [R, S, S] for one [S, S] start
    speed = torch.sqrt(u**2 + v**2).amax(dim=(-2, -1)).numpy()
    bound = ns.speed_estimate(np.zeros((1, s, s)), nu, t)[0]
    np.testing.assert_allclose(speed, bound, rtol=1e-5)
    assert ns.speed_estimate(np.zeros((s, s)), nu, 0.0)[0] == 0.0


def test_advection_growth_of_a_constant_speed():
    """U constant: G = κ²·T·max(0, dt·U²/2 − ν), κ = 2π·S/3; zero exactly when dt·U² <= 2ν
    (forward Euler's anti-diffusion within the viscosity); stable_dt inverts it."""
    t = np.linspace(0.0, 5.0, 11)
    speed = np.full((2, 11), 0.5)
    kappa2 = (TWO_PI * 64 / 3) ** 2
    g = ns.advection_growth(speed, t, 1e-3, 1e-5, 64)
    np.testing.assert_allclose(g, kappa2 * 5.0 * (1e-3 * 0.25 / 2 - 1e-5), rtol=1e-12)
    assert ns.advection_growth(speed, t, 2 * 1e-5 / 0.25, 1e-5, 64).max() == 0.0
    dt = ns.stable_dt(speed, t, 1e-5, 64, max_growth=8.0)
    np.testing.assert_allclose(ns.advection_growth(speed, t, dt, 1e-5, 64), 8.0, rtol=1e-3)


def test_too_large_dt_is_refused_before_solving():
    """ν = 1e-5 to T = 20 at 64² with dt = 2e-3 blew up in a trial run (t ≈ 18): refused at
    once (no solve), with a step that the check accepts as the suggestion."""
    cfg = NavierStokesConfig(viscosity=1e-5, T=20.0, dt=2e-3, solver_resolution=64,
                             resolution=64)
    with pytest.raises(ValueError, match=r"dt=0.002 is too large for sample \d of the chunk"
                       r".*use dt <= 0.001\d+, e.g. dt=0.001 ") as err:
        sample(cfg, rngs([0, 1]))
    fit = float(str(err.value).split("e.g. dt=")[1].split(" ")[0])
    w0 = periodic_grf_2d(rngs([0, 1]), 64)
    times = np.linspace(0.0, 20.0, 1001)
    speed = ns.speed_estimate(w0, 1e-5, times)
    assert ns.advection_growth(speed, times, fit, 1e-5, 64).max() <= 8.0


@pytest.mark.slow
def test_a_real_blow_up_is_caught_when_the_check_is_disabled():
    """64², ν = 1e-5, dt = 4e-3 (G ≈ 31 > 8): with the check switched off the run blows up
    (t ≈ 14 in a trial) and sample() raises FloatingPointError instead of writing garbage."""
    cfg = NavierStokesConfig(viscosity=1e-5, T=20.0, dt=4e-3, solver_resolution=64,
                             resolution=64, max_growth=1e9)
    with pytest.raises(FloatingPointError, match=r"sample 0 of the batch .* blew up by t="):
        sample(cfg, rngs([100]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        sample(small(device="cuda", fft="auto"), rngs([0]))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"viscosity": -1.0}, r"viscosity=-1.0, expected a finite number > 0"),
    ({"viscosity": 0.0}, r"viscosity=0.0"),
    ({"dt": 0.0}, r"dt=0.0, expected a finite number > 0"),
    ({"T": float("nan")}, r"T=nan"),
    ({"resolution": 15, "solver_resolution": 30}, r"resolution=15, expected an even integer"),
    ({"resolution": 4}, r"resolution=4, expected an even integer >= 8"),
    ({"solver_resolution": 33}, r"solver_resolution=33, expected an even integer"),
    ({"sigma": 0.0}, r"sigma=0.0, expected null"),
    ({"resolution": 24}, r"solver_resolution=32 is not a multiple of resolution=24"),
    ({"resolution": 64}, r"solver_resolution=32 is not a multiple of resolution=64"),
    ({"record_every": 0.0015}, r"record_every=0.0015 is not a whole number .* dt=0.001"),
    ({"record_every": 0.0005, "T": 0.001}, r"record_every=0.0005 is not a whole number"),
    ({"T": 0.12}, r"T=0.12 is not a whole number .* record_every=0.05"),
    ({"alpha": 1.0}, r"alpha=1.0, expected > 1"),
    ({"dtype": "float16"}, r"dtype='float16', expected one of"),
    ({"device": "tpu"}, r"device='tpu'"),
    ({"fft": "mkl"}, r"fft='mkl'"),
    ({"scheme": "ab2"}, r"scheme='ab2', expected one of \['cn', 'rk4'\]"),
    ({"device": "cuda", "fft": "scipy"}, r"fft='scipy'.*scipy is CPU only"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=f"navier_stokes: {match}"):
        small(**kwargs)


def test_record_every_and_t_tolerate_rounding():
    cfg = NavierStokesConfig(T=0.3, record_every=0.1, dt=1e-4)  # 0.3/0.1 = 2.9999999999999996
    assert cfg.n_records == 3 and cfg.steps_per_record == 1000
    assert len(coords(cfg)["t"]) == 3


# ----------------------------------------------------------- scheme="rk4" (integrating factor)


def test_rk4_keeps_laplacian_eigenfunctions_exact_and_is_fourth_order_for_the_forced_shear():
    """The integrating factor makes the unforced shell-25 decay exact to rounding at any dt;
    from rest the forced shear w*(1 − e^{−8π²νt}) (u·∇w = 0) converges at order 4 (ratio
    16 per halving of dt; "cn" gives 4 in the tests above)."""
    s, nu = 32, 1e-3
    w0 = shell25(s)
    w, _ = solve(w0, None, nu, 1.0, 0.25, scheme="rk4")
    exact = w0 * np.exp(-nu * 4 * np.pi**2 * 25)
    np.testing.assert_allclose(w[0], exact, rtol=0, atol=1e-13)
    s, nu, t_end = 16, 1e-1, 0.5
    f = fno_forcing(s)
    exact = f / (8 * np.pi**2 * nu) * -np.expm1(-8 * np.pi**2 * nu * t_end)
    err = {dt: np.abs(solve(np.zeros((s, s)), f, nu, t_end, dt, scheme="rk4")[0][0]
                      - exact).max() for dt in (0.1, 0.05, 0.025)}
    ratios = [err[0.1] / err[0.05], err[0.05] / err[0.025]]
    assert all(14.5 < r < 17.0 for r in ratios), (err, ratios)


def test_rk4_preset_step_matches_a_quarter_step_reference():
    """conf/pde/navier_stokes_cpu.yaml: ν = 1e-5, 64², dt = 2e-2 (CFL <= 0.8 to T = 11). Against
    dt = 5e-3 on 2 trajectories to t = 2 the relative L2 error is ≈ 1.2e-8 (4e-6 at t = 10,
    documented in the config), and halving dt cuts it ≈ 17x (fourth order)."""
    cfg = NavierStokesConfig(viscosity=1e-5, T=2.0, record_every=1.0, dt=2e-2,
                             solver_resolution=64, resolution=64, scheme="rk4")
    w0 = periodic_grf_2d(rngs([0, 1]), 64)
    args = (w0, fno_forcing(64), 1e-5, 2.0)
    ref, _ = solve(*args, 5e-3, 1.0, scheme="rk4")
    out = sample(cfg, rngs([0, 1]))["outputs"]["w"]
    w1, _ = solve(*args, 1e-2, 1.0, scheme="rk4")

    def rel(w: np.ndarray) -> float:
        return float((np.linalg.norm(w[:, -1] - ref[:, -1], axis=(-2, -1))
                      / np.linalg.norm(ref[:, -1], axis=(-2, -1))).max())

    coarse = rel(solve(*args, 2e-2, 1.0, scheme="rk4")[0])
    assert 2e-9 < coarse < 1e-7, coarse
    assert 12.0 < coarse / rel(w1) < 20.0, (coarse, rel(w1))
    assert rel(out) < 1e-6  # the sampler (float32 output, rounding ~3e-8) runs the same solve


def test_rk4_float32_is_within_its_documented_tolerance():
    """float32 (the CPU preset's dtype) vs float64 at dt = 2e-2, 64², ν = 1e-5, t = 2:
    rounding amplified by the flow, ≈ 3e-6 relative (2e-5 at t = 10), below 1e-4."""
    kw = dict(viscosity=1e-5, T=2.0, record_every=1.0, dt=2e-2, solver_resolution=64,
              resolution=64, scheme="rk4")
    w64 = sample(NavierStokesConfig(**kw), rngs([2, 3]))["outputs"]["w"].astype(np.float64)
    w32 = sample(NavierStokesConfig(**kw, dtype="float32"), rngs([2, 3]))["outputs"]["w"]
    err = np.linalg.norm(w32 - w64, axis=(-2, -1)) / np.linalg.norm(w64, axis=(-2, -1))
    assert 1e-8 < err.max() < 2e-5, err


def test_rk4_batch_equals_one_at_a_time():
    """Trajectories solved together (scipy FFT path) equal each solved alone, bit for bit."""
    cfg = small(scheme="rk4", dt=0.01, T=0.2, record_every=0.1)
    full = sample(cfg, rngs(range(20, 24)))
    for i, seed in enumerate(range(20, 24)):
        one = sample(cfg, rngs([seed]))
        assert one["outputs"]["w"][0].tobytes() == full["outputs"]["w"][i].tobytes()
    assert np.abs(full["outputs"]["w"][:, -1] - full["inputs"]["w0"][:, 0]).max() > 1e-3


def test_rk4_too_large_dt_is_refused_by_the_cfl_check():
    """U(10) ≈ 0.2 here (initial ≈ 0.04 + forced 0.16): dt = 0.1 gives C ≈ 3.8 > 2."""
    cfg = NavierStokesConfig(viscosity=1e-5, T=10.0, dt=0.1, solver_resolution=64,
                             resolution=64, scheme="rk4")
    with pytest.raises(ValueError, match=r"dt=0.1 is too large for scheme='rk4': CFL number "
                       r"[\d.]+ > 2 .*use dt <= 0.0\d+, e.g. dt=0.0\d+"):
        sample(cfg, rngs([0, 1]))
