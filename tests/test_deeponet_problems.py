"""DeepONet problems: input spaces, exact and manufactured solutions, convergence orders, the
reference-solver switch, determinism, layout and configuration errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml
from numpy.polynomial import Chebyshev, Polynomial
from numpy.polynomial import chebyshev as cheb
from scipy.integrate import solve_ivp
from scipy.interpolate import interp1d

from data_gen.function_spaces import (
    ChebyshevFunctions,
    SplineFunctions,
    rbf_cholesky,
    rbf_kernel,
    sample_chebyshev,
    sample_grf,
)
from data_gen.pdes import (
    advection,
    antiderivative,
    diffusion_reaction,
    get_pde,
    make_config,
    nonlinear_ode,
    pendulum,
)
from data_gen.pdes.deeponet_problems import (
    advection_exact,
    advection_reference,
    random_triples,
    rk4,
    rk45_reference,
    solve_adr_reference,
    solve_diffusion_reaction,
    solve_ode,
)
from tests.conftest import CONF

NAMES = ["antiderivative", "nonlinear_ode", "pendulum", "diffusion_reaction", "advection"]
SMALL = {"diffusion_reaction": {"nx": 21, "nt": 11, "refine": 16},
         "advection": {"nx": 21, "nt": 11}}


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def cheb_on_unit(p: Polynomial) -> ChebyshevFunctions:
    """The polynomial p(x) on [0, 1] as one exact Chebyshev function (z = 2x − 1)."""
    return ChebyshevFunctions(Chebyshev.cast(p(Polynomial([0.5, 0.5]))).coef[None])


def cheb_interp(f, degree: int = 40, T: float = 1.0) -> ChebyshevFunctions:
    """An entire function f on [0, T] interpolated at Chebyshev points (machine precision)."""
    return ChebyshevFunctions(cheb.chebinterpolate(lambda z: f((z + 1) * T / 2), degree)[None],
                              (0.0, T))


# ---------------------------------------------------------------------------- input spaces


def test_rbf_cholesky_factors_the_jittered_kernel_and_is_cached():
    """L Lᵀ = K + 1e-13·I (to rounding); the factor is cached per (l, N, domain), read-only."""
    chol = rbf_cholesky(0.2, 200)
    x = np.linspace(0, 1, 200)
    np.testing.assert_allclose(chol @ chol.T, rbf_kernel(x, x, 0.2) + 1e-13 * np.eye(200),
                               rtol=0, atol=1e-13)
    assert rbf_cholesky(0.2, 200) is chol and not chol.flags.writeable
    assert rbf_kernel(np.array([0.0]), np.array([0.2]), 0.2)[0, 0] == pytest.approx(np.exp(-0.5))


@pytest.mark.slow
@pytest.mark.parametrize("length_scale", [0.1, 0.2, 0.5])
def test_rbf_cholesky_succeeds_at_reference_size(length_scale):
    """Reference §7.3: the 1e-13 jitter suffices in float64 for l ∈ {0.1, 0.2, 0.5}, N = 1000."""
    chol = rbf_cholesky(length_scale, 1000)
    assert np.all(np.isfinite(chol)) and np.all(np.diag(chol) > 0)


def test_grf_empirical_covariance_matches_rbf_kernel():
    """4000 draws on 200 knots: |Ĉ − K| < 5σ with σ = √(2/n) ≥ sd(Ĉ_ij) = √((1 + K_ij²)/n);
    |mean| < 5/√n. (Ĉ over 20 points spread on [0, 1], lags 0 … 1, K from 1 to 4e-6.)"""
    n = 4000
    u = sample_grf(rngs(range(n)), length_scale=0.2, n_points=200)
    pts = np.linspace(0, 199, 20).astype(int)
    v = u.values[:, pts]
    emp = v.T @ v / n
    kern = rbf_kernel(u.knots[pts], u.knots[pts], 0.2)
    assert np.abs(emp - kern).max() < 5 * np.sqrt(2 / n)
    assert np.abs(v.mean(axis=0)).max() < 5 / np.sqrt(n)
    assert np.diag(emp).mean() == pytest.approx(1.0, abs=5 * np.sqrt(2 / (20 * n)) + 0.03)


def test_grf_functions_are_the_reference_cubic_interpolant():
    """Values at the knots are the drawn values; between knots, scipy interp1d(kind="cubic")
    (the reference's interpolant) to rounding; per-point ``at`` equals shared-point calls."""
    u = sample_grf(rngs([1, 2]), n_points=1000)
    np.testing.assert_allclose(u(u.knots), u.values, rtol=0, atol=1e-13)
    x = np.random.default_rng(0).uniform(0, 1, 50)
    for i in range(2):
        ref = interp1d(u.knots, u.values[i], kind="cubic", assume_sorted=True)(x)
        np.testing.assert_allclose(u(x)[i], ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(u.at(np.full(50, i), x), u(x)[i], rtol=0, atol=1e-14)


def test_chebyshev_coefficients_are_uniform_in_range():
    """a_i ~ U[−M, M]: all within ±M, extremes near ±M, mean 0 and variance M²/3 within 5σ;
    u(x) = Σ a_i T_i(2x − 1) exactly as numpy's chebval (the reference's formula)."""
    M, n, terms = 2.5, 2000, 20
    u = sample_chebyshev(rngs(range(n)), terms=terms, bound=M)
    a = u.coeffs
    assert a.shape == (n, terms) and np.abs(a).max() <= M
    assert a.min() < -0.999 * M and a.max() > 0.999 * M
    count = a.size
    assert abs(a.mean()) < 5 * M / np.sqrt(3 * count)
    assert a.var() == pytest.approx(M**2 / 3, abs=5 * M**2 * np.sqrt(4 / 45 / count))
    x = np.linspace(0, 1, 7)
    np.testing.assert_allclose(u(x)[3], cheb.chebval(2 * x - 1, a[3]), rtol=0, atol=1e-13)
    np.testing.assert_allclose(u.at(np.full(7, 3), x), u(x)[3], rtol=0, atol=1e-13)


# -------------------------------------------------------------------------- antiderivative


def test_antiderivative_is_exact_for_cubics_and_trig_on_the_spline_path():
    """A cubic is its own not-a-knot spline ⇒ exact integral (to rounding, 1e-13);
    sin 2πx + cos 3x on 1000 knots ⇒ spline error O(h⁴) ≈ 1e-12."""
    x = np.linspace(0, 1, 1000)
    q = np.linspace(0, 1, 100)
    u = SplineFunctions.from_values(x, np.stack([1 + x - 2 * x**2 + 0.5 * x**3,
                                                 np.sin(2 * np.pi * x) + np.cos(3 * x)]))
    s = antiderivative.labels(u, q)
    np.testing.assert_allclose(s[0], q + q**2 / 2 - 2 * q**3 / 3 + q**4 / 8, rtol=0, atol=1e-13)
    exact = (1 - np.cos(2 * np.pi * q)) / (2 * np.pi) + np.sin(3 * q) / 3
    np.testing.assert_allclose(s[1], exact, rtol=0, atol=2e-12)


def test_antiderivative_is_exact_for_chebyshev_inputs():
    """Σ a_i T_i(2x/T − 1) integrates exactly (chebint with the domain scaling), T = 2."""
    u = ChebyshevFunctions(np.array([[0.3, -1.0, 0.5, 2.0]]), (0.0, 2.0))
    q = np.linspace(0, 2, 9)
    z = Polynomial([-1.0, 1.0])  # z = x − 1 on [0, 2]
    p = sum(c * Chebyshev.basis(i).convert(kind=Polynomial)(z) for i, c in
            enumerate([0.3, -1.0, 0.5, 2.0]))
    np.testing.assert_allclose(antiderivative.labels(u, q)[0], p.integ(lbnd=0)(q), atol=1e-13)


def test_antiderivative_reference_switch_has_the_reference_label_error():
    """RK45 at default tolerances vs the exact integral: MSE of the order the reference
    reports (≈4e-7; heavy tailed: median ~1e-9), far above the accurate labels' 0."""
    u = sample_grf(rngs(range(100, 200)))
    q = np.linspace(0, 1, 100)
    err = (antiderivative.labels(u, q, "reference") - antiderivative.labels(u, q)) ** 2
    assert 5e-8 < err.mean() < 5e-6
    assert np.median(err) < 1e-8


# ------------------------------------------------------------------------------------ ODEs


def test_rk45_reference_reproduces_scipy_solve_ivp():
    """Each (function, y) of the vectorised RK45 equals solve_ivp(RK45, [0, y]) to rounding
    (same right-hand side; any different accept/reject decision would show as ~1e-4), for the
    nonlinear ODE and the pendulum."""
    u = sample_grf(rngs([5, 6]))
    q = np.array([0.0, 0.013, 0.5, 1.0])
    for rhs, s0 in [(nonlinear_ode.rhs, [0.0]), (pendulum.make_rhs(1.0), [0.0, 0.0])]:
        s, failed = rk45_reference(rhs, s0, u, q)
        assert not failed.any()
        for i in range(2):
            for j, y in enumerate(q):
                def f(t, state, i=i, rhs=rhs):
                    return rhs(state[:, None], u.at(np.array([i]), np.array([t])))[:, 0]
                ref = solve_ivp(f, [0, y], s0, method="RK45").y[:, -1]
                np.testing.assert_allclose(s[i, :, j], ref, rtol=1e-10, atol=1e-14)


def test_nonlinear_ode_manufactured_polynomial_solution():
    """s = x − x³/2 ⇒ u = s' + s² (a polynomial, exact as Chebyshev): labels = s to 1e-12."""
    x = Polynomial([0, 1])
    s = x - x**3 / 2
    u = cheb_on_unit(s.deriv() + s**2)
    q = np.linspace(0, 1, 100)
    got, why = nonlinear_ode.labels(u, q, base=np.linspace(0, 1, 4001))
    assert why[0] == ""
    np.testing.assert_allclose(got[0], s(q), rtol=0, atol=1e-12)


def test_nonlinear_ode_spline_path_manufactured():
    """s = sin(3x)·x on the GRF path (u = s' + s² on 1000 knots, cubic spline): the spline's
    O(h⁴) and RK4 on the knots leave ~1e-12."""
    kx = np.linspace(0, 1, 1000)

    def s(x):
        return np.sin(3 * x) * x

    u_vals = 3 * np.cos(3 * kx) * kx + np.sin(3 * kx) + s(kx) ** 2
    u = SplineFunctions.from_values(kx, u_vals[None])
    q = np.linspace(0, 1, 100)
    got, why = nonlinear_ode.labels(u, q, base=kx)
    assert why[0] == ""
    np.testing.assert_allclose(got[0], s(q), rtol=0, atol=1e-11)


def test_ode_rk4_is_fourth_order():
    """Nonlinear ODE with a smooth input, s = x·sin 3x: the RK4 error falls ≈16× per halving
    of the step (25 → 50 → 100 steps); the step-doubling estimate bounds the labels' error."""
    s_exact = lambda x: x * np.sin(3 * x)  # noqa: E731
    u = cheb_interp(lambda x: np.sin(3 * x) + 3 * x * np.cos(3 * x) + s_exact(x) ** 2)
    q = np.linspace(0, 1, 6)
    err = {}
    for k in (25, 50, 100):
        states = rk4(nonlinear_ode.rhs, [0.0], u, np.linspace(0, 1, k + 1))
        err[k] = np.abs(states[:: k // 5, 0, 0] - s_exact(q)).max()
    orders = [np.log2(err[25] / err[50]), np.log2(err[50] / err[100])]
    assert all(3.7 < o < 4.3 for o in orders), (err, orders)
    labels, est, finite = solve_ode(nonlinear_ode.rhs, [0.0], u, q, np.linspace(0, 1, 51))
    assert finite[0] and np.abs(labels[0, 0] - s_exact(q)).max() < est[0] < 20 * err[50]


def test_pendulum_manufactured_solution_and_velocity():
    """s₁ = t² sin 2t (s₁(0) = s₁'(0) = 0), u = s₁'' + k sin s₁, k = 1.3, T = 2:
    s₁ and s₂ = s₁' to 1e-11 (accurate) and ~1e-4 (reference RK45)."""
    k, T = 1.3, 2.0

    def s1(t):
        return t**2 * np.sin(2 * t)

    def ds1(t):
        return 2 * t * np.sin(2 * t) + 2 * t**2 * np.cos(2 * t)

    def dds1(t):
        return 2 * np.sin(2 * t) + 8 * t * np.cos(2 * t) - 4 * t**2 * np.sin(2 * t)

    u = cheb_interp(lambda t: dds1(t) + k * np.sin(s1(t)), 60, T)
    q = np.linspace(0, T, 50)
    got, why = pendulum.labels(u, q, k, base=np.linspace(0, T, 2001))
    assert why[0] == ""
    np.testing.assert_allclose(got[0, 0], s1(q), rtol=0, atol=1e-11)
    np.testing.assert_allclose(got[0, 1], ds1(q), rtol=0, atol=1e-11)
    ref, _ = pendulum.labels(u, q, k, "reference")
    assert 1e-9 < np.abs(ref[0] - got[0]).max() < 1e-2


def test_nonlinear_ode_reference_switch_has_the_reference_label_error():
    """RK45 at default tolerances vs accurate labels over 100 GRF inputs: MSE ~1e-6
    (measured 3e-6 over 1000), orders above the accurate labels' ~1e-24."""
    u = sample_grf(rngs(range(300, 400)))
    q = np.linspace(0, 1, 100)
    acc, why = nonlinear_ode.labels(u, q, base=np.linspace(0, 1, 1000))
    ref, _ = nonlinear_ode.labels(u, q, "reference")
    ok = why == ""
    assert ok.sum() >= 99
    assert 1e-7 < ((acc - ref)[ok] ** 2).mean() < 3e-5


def _constant_solution(c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """s' = −s² + c, s(0) = 0: √c tanh(√c x) (c > 0), −√|c| tan(√|c| x) (c < 0)."""
    r = np.sqrt(np.abs(c))[:, None]
    return np.where(c[:, None] > 0, r * np.tanh(r * x), -r * np.tan(r * x))


def test_nonlinear_ode_blowup_error_names_the_sample():
    """u ≡ c ~ U[−20, 20] (Chebyshev, one term): c < −π²/4 blows up before x = 1."""
    cfg = nonlinear_ode.Config(space="chebyshev", cheb_terms=1, cheb_bound=20.0,
                               on_blowup="error", ode_steps=500)
    c = np.array([r.uniform(-20, 20) for r in rngs(range(8))])
    first = int(np.flatnonzero(c < -np.pi**2 / 4)[0])
    with pytest.raises(FloatingPointError, match=rf"nonlinear_ode: sample {first} of the chunk"):
        nonlinear_ode.sample(cfg, rngs(range(8)))


def test_nonlinear_ode_near_blowup_is_refined_not_dropped():
    """u ≡ −(π/2.04)²: blow-up at x* = 1.02, s(1) ≈ −49 exists. 250 RK4 steps fail the
    1e-8 check; the per-sample refinement (4×, 16×) meets it and matches −√c tan(√c x)."""
    c = -((np.pi / 2.04) ** 2)
    u = ChebyshevFunctions(np.array([[c], [1.0]]))
    q = np.linspace(0, 1, 11)
    base = np.linspace(0, 1, 251)
    _, est, finite = solve_ode(nonlinear_ode.rhs, [0.0], u, q, base)
    assert finite.all() and est[0] > 1e-8 > est[1]
    s, why = nonlinear_ode.labels(u, q, base=base)
    assert list(why) == ["", ""]
    np.testing.assert_allclose(s, _constant_solution(np.array([c, 1.0]), q), rtol=1e-9)
    assert s[0, -1] < -40


def test_nonlinear_ode_resample_redraws_blown_up_inputs_deterministically():
    """on_blowup=resample: every kept u ≡ c has c > −π²/4 and exact labels (tanh/tan); the
    redraw counts are recorded; sample i is the same alone or in the chunk."""
    cfg = nonlinear_ode.Config(space="chebyshev", cheb_terms=1, cheb_bound=20.0, ode_steps=500,
                               n_query=11)
    out = nonlinear_ode.sample(cfg, rngs(range(8)))
    c = out["inputs"]["u"][:, 0].astype(np.float64)
    assert np.all(c > -np.pi**2 / 4) and out["params"]["redraws"].sum() > 0
    c_exact = np.array([_redrawn_constant(seed, int(k))
                        for seed, k in enumerate(out["params"]["redraws"])])
    np.testing.assert_allclose(c, c_exact, rtol=1e-6)
    np.testing.assert_allclose(out["outputs"]["s"], _constant_solution(c_exact, cfg.query()),
                               rtol=1e-6, atol=1e-7)
    for i in (0, 5):
        alone = nonlinear_ode.sample(cfg, rngs([i]))
        for group in ("inputs", "outputs", "params"):
            for key, arr in out[group].items():
                assert arr[i].tobytes() == alone[group][key][0].tobytes()


def _redrawn_constant(seed: int, redraws: int) -> float:
    """The constant drawn after ``redraws`` rejections from ``default_rng(seed)``."""
    r = np.random.default_rng(seed)
    for _ in range(redraws + 1):
        c = r.uniform(-20, 20, 1)[0]
    return c


# ----------------------------------------------------------------------- diffusion–reaction


def _heat_u1_exact(x: np.ndarray, t: np.ndarray, D: float, modes: int = 4000) -> np.ndarray:
    """s_t = D s_xx + 1, zero IC/BC: x(1−x)/(2D) − Σ_{j odd} 4/(Dπ³j³) e^{−Dπ²j²t} sin jπx."""
    j = np.arange(1, modes, 2)
    decay = np.exp(-D * np.pi**2 * np.outer(t, j**2))  # [nt, J]
    series = np.einsum("xj,tj,j->xt", np.sin(np.pi * np.outer(x, j)), decay,
                       4 / (D * np.pi**3 * j**3))
    s = x[:, None] * (1 - x[:, None]) / (2 * D) - series
    s[:, t == 0] = 0.0
    return s


def test_diffusion_solver_is_fourth_order_with_incompatible_source():
    """k = 0, u ≡ 1 (u ≠ 0 at the walls, a corner singularity at t = 0): error vs the series
    solution falls ≈16× per refinement (compact scheme + boundary rows), 2e-6 at refine 4."""
    x, t = np.linspace(0, 1, 21), np.linspace(0, 1, 11)
    exact = _heat_u1_exact(x, t, 0.01)
    one = ChebyshevFunctions(np.array([[1.0]]))
    err = {r: np.abs(solve_diffusion_reaction(one, 0.01, 0.0, 1.0, 21, 11, r)[0] - exact).max()
           for r in (1, 2, 4)}
    orders = [np.log2(err[1] / err[2]), np.log2(err[2] / err[4])]
    assert all(3.7 < o < 4.3 for o in orders), (err, orders)
    assert err[4] < 2e-6


def test_diffusion_reaction_reaches_the_manufactured_steady_state():
    """D = 1, k = 0.5, u = 2D − k x²(1 − x)² ⇒ steady state x(1 − x) (+k s² sign), attracting
    at rate π² − 2k·max s > 9: at T = 4 the solution equals it to 1e-12."""
    x = Polynomial([0, 1])
    steady = x * (1 - x)
    u = cheb_on_unit(-1.0 * steady.deriv(2) - 0.5 * steady**2)
    s = solve_diffusion_reaction(u, 1.0, 0.5, 4.0, 21, 5, refine=4)[0]
    np.testing.assert_allclose(s[:, -1], steady(np.linspace(0, 1, 21)), rtol=0, atol=1e-12)
    wrong_sign = solve_diffusion_reaction(u, 1.0, -0.5, 4.0, 21, 5, refine=4)[0]
    assert np.abs(wrong_sign[:, -1] - steady(np.linspace(0, 1, 21))).max() > 1e-3


def test_diffusion_reaction_grf_labels_converge():
    """GRF source, reference parameters and grid (100 × 100): the differences between refine
    2, 4, 8, 16 fall ≥ 12× (4th order; measured 16×), to 4e-9 between 8 and 16."""
    u = sample_grf(rngs([7, 8]))
    s = {r: solve_diffusion_reaction(u, 0.01, 0.01, 1.0, 100, 100, r) for r in (2, 4, 8, 16)}
    d = [np.abs(s[a] - s[2 * a]).max() for a in (2, 4, 8)]
    assert d[0] / d[1] > 12 and d[1] / d[2] > 12, d
    assert d[2] < 1e-8


def test_reference_adr_scheme_and_its_second_order_error():
    """The reference scheme is (sⁿ⁺¹ − sⁿ)/dt = (D/2)Δ_h(sⁿ⁺¹ + sⁿ) + u + k sⁿ sⁿ⁺¹ (CN with
    the reaction linearised): equal to a direct per-sample implementation; vs the accurate
    labels its error falls ≈4× from 21 × 21 to 41 × 41 nodes (second order in h and dt)."""
    u = sample_grf(rngs([9, 10]))
    nx, nt, D, k = 13, 9, 0.01, 0.5
    f = u(np.linspace(0, 1, nx))
    got = solve_adr_reference(f, D, k, 1.0, nt)
    h, dt = 1 / (nx - 1), 1 / (nt - 1)
    lap = (np.eye(nx - 2, k=1) - 2 * np.eye(nx - 2) + np.eye(nx - 2, k=-1)) / h**2
    for i in range(2):
        s = np.zeros(nx - 2)
        for n_ in range(nt - 1):
            a = np.eye(nx - 2) / dt - D / 2 * lap - k * np.diag(s)
            s = np.linalg.solve(a, s / dt + D / 2 * lap @ s + f[i, 1:-1])
            np.testing.assert_allclose(got[i, 1:-1, n_ + 1], s, rtol=1e-12, atol=1e-14)
    err = {}
    for n_ in (21, 41):
        ref = solve_adr_reference(u(np.linspace(0, 1, n_)), 0.01, 0.01, 1.0, n_)
        acc = solve_diffusion_reaction(u, 0.01, 0.01, 1.0, n_, n_, 8)
        err[n_] = np.abs(ref[:, :: (n_ - 1) // 20, :: (n_ - 1) // 20]
                         - acc[:, :: (n_ - 1) // 20, :: (n_ - 1) // 20]).max()
    assert 3.0 < err[21] / err[41] < 5.0, err


def test_diffusion_reaction_reference_label_error_order():
    """Reference CN on the 100 × 100 grid vs accurate labels: MSE ~1e-8 (measured 8e-9 over
    64 GRF sources), max error ~5e-4."""
    cfg_ref = diffusion_reaction.Config(label_solver="reference")
    cfg_acc = diffusion_reaction.Config()
    u = cfg_acc.draw(rngs(range(4)))
    ref, _ = diffusion_reaction.labels(cfg_ref, u)
    acc, why = diffusion_reaction.labels(cfg_acc, u)
    assert all(w == "" for w in why)
    assert 1e-9 < ((ref - acc) ** 2).mean() < 1e-7
    assert np.abs(ref - acc).max() < 2e-3


# -------------------------------------------------------------------------------- advection


def test_advection_exact_solution_is_a_periodic_shift():
    """s(x, 0) = u(x) = V(sin²πx) (the sensors when nx = m); with a = 1 and aligned grids
    s(x_i, t_j) = u(x_{i−j mod}) ; the reference interpolation agrees on the default grid
    (x − t falls on sensors) and only to O(h⁴) off it."""
    cfg = advection.Config(nx=100, nt=100)
    out = advection.sample(cfg, rngs([3]))
    u, s = out["inputs"]["u"][0], out["outputs"]["s"][0].reshape(100, 100)
    np.testing.assert_array_equal(s[:, 0], u)
    i, j = np.meshgrid(np.arange(100), np.arange(100), indexing="ij")
    np.testing.assert_allclose(s, u[(i - j) % 99], rtol=0, atol=1e-6)  # x_0 ≡ x_99 (periodic)
    v = cfg.draw(rngs([3]))
    sens = advection.initial_condition(v, cfg.sensors())
    exact = advection_exact(v, cfg.x(), cfg.t())
    np.testing.assert_allclose(advection_reference(sens, cfg.x(), cfg.t()), exact, atol=1e-13)
    x_off, t_off = np.linspace(0, 1, 37), np.linspace(0, 0.7, 5)
    off = np.abs(advection_reference(sens, x_off, t_off) - advection_exact(v, x_off, t_off))
    assert 1e-9 < off.max() < 1e-3
    np.testing.assert_allclose(advection_exact(v, x_off, t_off, speed=-2.0)[0],
                               v(np.sin(np.pi * (x_off[:, None] + 2 * t_off)) ** 2)[0]
                               .reshape(37, 5), atol=1e-14)


# ------------------------------------------------------------------- layout and determinism


@pytest.mark.parametrize("name", NAMES)
def test_layout_shapes_and_coords(name):
    """inputs/u [n, m], outputs/s [n, Q] float32; coords sensors [m], query [Q, d], with the
    x-major (x, t) order for the PDEs; labels vanish where the problem says s = 0."""
    mod = get_pde(name)
    cfg = make_config(name, {"n_sensors": 17, **SMALL.get(name, {"n_query": 23})})
    out = mod.sample(cfg, rngs([0, 1, 2]))
    c = mod.coords(cfg)
    q = c["query"]
    assert out["inputs"]["u"].shape == (3, 17) and out["inputs"]["u"].dtype == np.float32
    assert out["outputs"]["s"].shape == (3, len(q)) and out["outputs"]["s"].dtype == np.float32
    assert c["sensors"].shape == (17,) and c["sensors"][0] == 0.0
    if name in ("diffusion_reaction", "advection"):
        assert q.shape == (21 * 11, 2) and c["sensors"][-1] == 1.0
        np.testing.assert_array_equal(q[11 * 4 + 3], [c["x"][4], c["t"][3]])
        s = out["outputs"]["s"].reshape(3, 21, 11)
        if name == "diffusion_reaction":
            assert np.all(s[:, :, 0] == 0) and np.all(s[:, [0, -1]] == 0)
    else:
        assert q.shape == (23, 1) and q[-1, 0] == cfg.T
        assert np.all(out["outputs"]["s"][:, 0] == 0)


@pytest.mark.parametrize("name,params", [(n, {}) for n in NAMES] + [
    ("nonlinear_ode", {"label_solver": "reference"}),
    ("pendulum", {"space": "chebyshev", "cheb_terms": 8, "with_velocity": True, "ode_steps": 500}),
    ("diffusion_reaction", {"label_solver": "reference"}),
    ("advection", {"label_solver": "reference"}),
])
def test_determinism_and_chunk_independence(name, params):
    """Fresh generators of the same seeds ⇒ identical bytes; sample i alone = in the chunk."""
    mod = get_pde(name)
    cfg = make_config(name, {**SMALL.get(name, {"n_query": 20}), **params})
    a = mod.sample(cfg, rngs([11, 12, 13]))
    b = mod.sample(cfg, rngs([11, 12, 13]))
    alone = mod.sample(cfg, rngs([12]))
    for group, fields in a.items():
        for key, arr in fields.items():
            assert arr.tobytes() == b[group][key].tobytes(), (group, key)
            assert arr[1].tobytes() == alone[group][key][0].tobytes(), (group, key)


def test_random_triples_reproduce_the_reference_sampling():
    """P indices per function, drawn with replacement from the fixed query set."""
    u = np.arange(12.0).reshape(3, 4)
    s = np.arange(15.0).reshape(3, 5) * 10
    query = np.stack([np.arange(5.0), -np.arange(5.0)], axis=1)
    uu, y, ss = random_triples(u, s, query, 7, np.random.default_rng(0))
    assert uu.shape == (21, 4) and y.shape == (21, 2) and ss.shape == (21, 1)
    rows = np.repeat(np.arange(3), 7)
    np.testing.assert_array_equal(uu, u[rows])
    np.testing.assert_array_equal(ss[:, 0], s[rows, y[:, 0].astype(int)])


def test_pde_yaml_files_list_every_field_with_its_default():
    for name in NAMES:
        params = yaml.safe_load((CONF / "pde" / f"{name}.yaml").read_text())
        assert params.pop("name") == name
        assert params == dataclasses.asdict(get_pde(name).Config())


def test_generate_writes_the_point_layout(tmp_path):
    """The runner stores the fields and the coords (query [Q, d]) of a DeepONet problem."""
    import h5py

    from data_gen import generate

    generate("diffusion_reaction", out=tmp_path, n_train=3, n_val=1, n_test=1, progress=False,
             nx=11, nt=6, n_sensors=11, refine=32)
    with h5py.File(tmp_path / "train.h5") as f:
        assert f["inputs/u"].shape == (3, 11) and f["outputs/s"].shape == (3, 66)
        assert f["coords/query"].shape == (66, 2) and f["coords/t"].shape == (6,)


# ---------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("name,params,match", [
    ("antiderivative", {"length_scale": 0.0}, "antiderivative: length_scale=0.0, expected > 0"),
    ("antiderivative", {"n_sensors": 1}, "n_sensors=1, expected an integer >= 2"),
    ("antiderivative", {"space": "gp"}, "space='gp', expected one of"),
    ("antiderivative", {"label_solver": "rk45"}, "label_solver='rk45'"),
    ("antiderivative", {"grf_points": 3}, "grf_points=3"),
    ("nonlinear_ode", {"T": -1.0}, "nonlinear_ode: T=-1.0, expected > 0"),
    ("nonlinear_ode", {"n_query": 1}, "n_query=1, expected an integer >= 2"),
    ("nonlinear_ode", {"on_blowup": "ignore"}, "on_blowup='ignore'"),
    ("nonlinear_ode", {"ode_steps": 0}, "ode_steps=0"),
    ("pendulum", {"cheb_bound": -1.0}, "cheb_bound=-1.0, expected > 0"),
    ("pendulum", {"k": float("nan")}, "pendulum: k=nan"),
    ("diffusion_reaction", {"D": 0.0}, "diffusion_reaction: D=0.0, expected > 0"),
    ("diffusion_reaction", {"nx": 2}, "nx=2, expected an integer >= 3"),
    ("diffusion_reaction", {"nt": 1}, "nt=1"),
    ("diffusion_reaction", {"refine": 3}, "refine=3, expected an even integer >= 2"),
    ("diffusion_reaction", {"substeps": 0}, "substeps=0"),
    ("advection", {"speed": float("inf")}, "advection: speed=inf"),
    ("advection", {"cheb_terms": 0}, "cheb_terms=0"),
])
def test_bad_parameters_name_the_key(name, params, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("+", r"\+")):
        make_config(name, params)
