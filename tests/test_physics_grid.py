"""Grid residuals (data_gen.physics.darcy / .helmholtz) held to their generators: ≈ 0 on the
generator's solutions, the right order on perturbed ones, second-order consistency on smooth
manufactured fields, gradients, registry construction and strided grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_gen.pdes import darcy, helmholtz
from data_gen.physics import residual_for
from data_gen.physics.darcy import DarcyResidual, boundary_values, darcy_residual
from data_gen.physics.helmholtz import HelmholtzResidual


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def relative(residual, inputs: torch.Tensor, outputs: torch.Tensor,
             term: str = "pde") -> torch.Tensor:
    """RMS(r_term) / scale per sample [B] (= ‖r‖₂/‖f‖₂ over the same points)."""
    r = residual(inputs, outputs)[term].flatten(1)
    return r.norm(dim=1) / r.shape[1] ** 0.5 / residual.scale(inputs)


def nodes(s: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 1.0, s)
    return np.meshgrid(x, x, indexing="ij")


# ------------------------------------------------------------------------------------ Darcy


def darcy_pair(s: int, seeds=range(3), forcing: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, u) float64 [B, 1, s, s]: generator coefficients and their float64 direct solve."""
    a = darcy.coefficients(darcy.DarcyConfig(resolution=s), rngs(seeds))
    u = darcy.solve(a, forcing)
    return torch.from_numpy(a)[:, None], torch.from_numpy(u)[:, None]


def test_darcy_float64_solution_has_zero_residual():
    """The generator's own scheme: ‖r‖/‖f‖ at rounding level (measured ≈ 4e-14 at s = 33)."""
    a, u = darcy_pair(33, forcing=2.5)
    res = DarcyResidual(forcing=2.5)
    out = res(a, u)
    assert out["pde"].shape == (3, 31, 31) and out["pde"].dtype == torch.float64
    assert out["bc"].shape == (3, 4 * 32)
    assert relative(res, a, u).max() < 1e-11
    assert out["bc"].abs().max() == 0.0


def test_darcy_stored_float32_sample_has_small_residual():
    """sample() stores float32: the rounding of u (≈ 6e-8·|u|) times 4a/h² leaves a relative
    residual ≈ 5e-6 at s = 33 (measured 4e-6 – 7e-6), computed in float32."""
    fields = darcy.sample(darcy.DarcyConfig(resolution=33), rngs(range(4)))
    a = torch.from_numpy(fields["inputs"]["coeff"])
    u = torch.from_numpy(fields["outputs"]["sol"])
    res = residual_for({"name": "darcy", "resolution": 33, "forcing": 1.0})
    assert res(a, u)["pde"].dtype == torch.float32
    rel = relative(res, a, u)
    assert rel.max() < 3e-5
    # ... the float32 floor, not a discretisation mismatch: a wrong operator is ~1e-2 or worse.
    assert relative(res, a, u.roll(1, dims=-1)).min() > 1e-2


def test_darcy_perturbation_gives_the_discrete_laplacian_of_the_bump():
    """Constant a: r(u + ε·b) = ε·a·λ_h·b for b = sin πx sin πy, λ_h = (8/h²)·sin²(πh/2)
    (the 5-point eigenvalue); on a generator coefficient, r(u + ε·b) = ε·A b ≠ 0."""
    s, a0, eps = 25, 4.0, 1e-3
    a = torch.full((1, 1, s, s), a0, dtype=torch.float64)
    u = torch.from_numpy(darcy.solve(a[:, 0].numpy(), 1.0))[:, None]
    x, y = nodes(s)
    bump = torch.from_numpy(np.sin(np.pi * x) * np.sin(np.pi * y))[None, None]
    h = 1.0 / (s - 1)
    expected = eps * a0 * (8.0 / h**2) * np.sin(np.pi * h / 2) ** 2 * bump[0, 0, 1:-1, 1:-1]
    r = DarcyResidual()(a, u + eps * bump)["pde"][0]
    torch.testing.assert_close(r, expected, rtol=1e-8, atol=1e-10)
    # ≈ ε·2π²·a·b to O(h²): the residual has the size of the continuous operator on the bump
    assert abs(r.max().item() / (eps * 2 * np.pi**2 * a0) - 1) < 0.01

    a, u = darcy_pair(17, seeds=[5])
    x, y = nodes(17)
    bump = torch.from_numpy(np.sin(np.pi * x) * np.sin(np.pi * y))[None, None]
    r = DarcyResidual()(a, u + eps * bump)["pde"]
    # variable a ∈ {3, 12}: |ε·∇·(a∇b)| lies near ε·2π²·a on the smooth parts, larger at jumps
    assert 0.5 * eps * 2 * np.pi**2 * 3 < r.abs().max() < 4 * eps * 2 * np.pi**2 * 12


def manufactured_darcy(s: int) -> float:
    """u = sin πx sin πy, a = 2 + cos πx sin 2πy, f = −∇·(a∇u): max |r| of the nodal u."""
    x, y = nodes(s)
    pi = np.pi
    u = np.sin(pi * x) * np.sin(pi * y)
    a = 2.0 + np.cos(pi * x) * np.sin(2 * pi * y)
    ax, ay = -pi * np.sin(pi * x) * np.sin(2 * pi * y), 2 * pi * np.cos(pi * x) * np.cos(2 * pi * y)
    ux, uy = pi * np.cos(pi * x) * np.sin(pi * y), pi * np.sin(pi * x) * np.cos(pi * y)
    f = -(ax * ux + ay * uy) + 2 * pi**2 * a * u
    r = darcy_residual(torch.from_numpy(a)[None], torch.from_numpy(u)[None],
                       torch.from_numpy(f[1:-1, 1:-1])[None])
    return r.abs().max().item()


def test_darcy_operator_is_second_order_consistent():
    """Truncation error of the flux scheme on smooth a, u falls 4× per halving of h."""
    err = [manufactured_darcy(s) for s in (17, 33, 65)]
    orders = np.log2(np.array(err[:-1]) / np.array(err[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.2), orders


def test_darcy_gradients_reach_the_outputs_in_float32():
    """Autograd through both terms; bf16 fields are computed in float32, no NaN."""
    a, u = darcy_pair(17, seeds=[1, 2])
    u = u.to(torch.bfloat16).requires_grad_(True)
    out = DarcyResidual()(a.to(torch.bfloat16), u)
    assert out["pde"].dtype == torch.float32
    loss = out["pde"].square().mean() + out["bc"].square().mean()
    loss.backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().max() > 0


def test_darcy_from_config_ignores_unknown_keys_and_sets_the_scale():
    """residual_for({name: darcy, ...}) builds it; scale = RMS of f over the interior."""
    res = residual_for({"name": "darcy", "resolution": 9, "forcing": 2.0, "solver": "direct",
                        "tau": 5.0, "not_a_darcy_key": 1})
    assert isinstance(res, DarcyResidual) and res.terms == ("pde", "bc")
    assert res.forcing == 2.0
    torch.testing.assert_close(res.scale(torch.ones(3, 1, 9, 9)), torch.full((3,), 2.0))
    assert isinstance(residual_for("name: darcy\nforcing: 3.0\n"), DarcyResidual)
    with pytest.raises(ValueError, match="darcy: forcing"):
        residual_for({"name": "darcy", "forcing": float("nan")})
    with pytest.raises(ValueError, match=r"outputs has shape \(2, 9, 9\)"):
        res(torch.ones(2, 1, 9, 9), torch.ones(2, 9, 9))


def strided_relative(s: int, coefficient: str) -> torch.Tensor:
    """‖r_pde‖/‖f‖ of every 2nd node of s² generator solutions (a grid with h doubled)."""
    cfg = darcy.DarcyConfig(resolution=s, coefficient=coefficient, scales=2)
    a = darcy.coefficients(cfg, rngs(range(3)))
    a, u = torch.from_numpy(a)[:, None], torch.from_numpy(darcy.solve(a))[:, None]
    return relative(DarcyResidual(), a[..., ::2, ::2], u[..., ::2, ::2])


def test_darcy_strided_grid_residual_is_second_order_for_smooth_coefficients():
    """Smooth (multiscale, K = 2) a: the strided solution is not the coarse scheme's, so r ≠ 0,
    and it falls ≈ 4× per halving of h (measured 3.5–3.7 from s = 65 to 129)."""
    coarse, fine = strided_relative(65, "multiscale"), strided_relative(129, "multiscale")
    assert torch.isfinite(fine).all() and (fine > 1e-3).all()
    ratio = coarse / fine
    assert (ratio > 3.0).all() and (ratio < 5.0).all(), ratio


def test_darcy_strided_grid_residual_is_order_one_for_jumps():
    """Thresholded (3/12) a: subsampling moves the jumps by O(h), so the strided residual is
    O(1) relative (measured 0.35–0.9 at s = 17–65) and does not converge: a physics loss on
    such data must use the stored grid, never a subsampled one."""
    rel = strided_relative(33, "threshold")
    assert torch.isfinite(rel).all() and (rel > 0.1).all() and (rel < 3.0).all()


# ------------------------------------------------------------------------------- Helmholtz

SMALL = {"elements": 20, "omega": 1000.0, "n_terms": 100}


def helmholtz_pair(cfg: helmholtz.HelmholtzConfig,
                   seeds=range(3)) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, u) float64 [B, 1, N, N], drawn exactly as helmholtz.sample does, solved in float64."""
    theta = np.stack([r.standard_normal(cfg.n_terms) for r in rngs(seeds)])
    x, q = np.linspace(0.0, 1.0, cfg.nodes), helmholtz.quadrature_points(cfg.elements)
    c_nodes = helmholtz.wave_speed(helmholtz.kl_field(theta, x, x, cfg.tau, cfg.d),
                                   cfg.c_mean, cfg.c_amplitude)
    c_quad = helmholtz.wave_speed(helmholtz.kl_field(theta, q, q, cfg.tau, cfg.d),
                                  cfg.c_mean, cfg.c_amplitude)
    rhs = np.zeros((cfg.nodes, cfg.nodes))
    rhs[:, -1] = helmholtz.top_flux_load(cfg.elements, cfg.flux_center, cfg.flux_half_width,
                                         cfg.flux, cfg.flux_load)
    u = helmholtz.solve((cfg.omega / c_quad) ** 2, rhs)
    return torch.from_numpy(c_nodes)[:, None], torch.from_numpy(u)[:, None]


def full(residual, c: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """RMS(pde, bc) / scale per sample: the whole FEM system."""
    out = residual(c, u)
    r = torch.cat([out["pde"].flatten(1), out["bc"]], 1)
    return r.norm(dim=1) / r.shape[1] ** 0.5 / residual.scale(c)


@pytest.mark.parametrize("flux_load", ["exact", "nodal"])
def test_helmholtz_float64_solution_has_zero_residual(flux_load):
    """KL reconstruction of k² at the Gauss points + the generator's load: ‖Au − b‖/‖b‖ at
    rounding level (measured ≈ 2e-14 at E = 20)."""
    cfg = helmholtz.HelmholtzConfig(**SMALL, flux_load=flux_load)
    c, u = helmholtz_pair(cfg)
    res = residual_for({"name": "helmholtz", **SMALL, "flux_load": flux_load, "seed": 3})
    assert isinstance(res, HelmholtzResidual) and res.terms == ("pde", "bc")
    out = res(c, u)
    assert out["pde"].shape == (3, 19, 19) and out["bc"].shape == (3, 80)
    assert full(res, c, u).max() < 1e-11


def test_helmholtz_stored_float32_sample_has_small_residual():
    """sample() stores float32 c and u: relative residual ≈ 6e-7 (measured), in float32; the
    bilinear nodal coefficient instead leaves its O(h²) error (≈ 7e-4 at E = 20)."""
    cfg = helmholtz.HelmholtzConfig(**SMALL)
    fields = helmholtz.sample(cfg, rngs(range(3)))
    c, u = torch.from_numpy(fields["inputs"]["c"]), torch.from_numpy(fields["outputs"]["u"])
    res = HelmholtzResidual.from_config(SMALL)
    assert res(c, u)["pde"].dtype == torch.float32
    assert full(res, c, u).max() < 1e-5
    bilinear = full(HelmholtzResidual.from_config(SMALL, coefficient="bilinear"), c, u)
    assert (bilinear > 1e-4).all() and (bilinear < 3e-3).all()


def test_helmholtz_perturbation_gives_the_fem_stencil():
    """Constant k² (c_amplitude = 0): a nodal bump ε at an interior node p changes row p by
    ε(8/3 − 4k²h²/9)/h², its edge neighbours by ε(−1/3 − k²h²/9)/h², its diagonal neighbours
    by ε(−1/3 − k²h²/36)/h² (the Q1 stiffness and consistent mass stencils)."""
    e, omega, c0, eps = 16, 300.0, 20.0, 1e-3
    res = HelmholtzResidual(omega=omega, c_mean=c0, c_amplitude=0.0)
    c = torch.full((1, 1, e + 1, e + 1), c0, dtype=torch.float64)
    u = torch.zeros_like(c)
    bump = torch.zeros_like(c)
    bump[..., 7, 5] = eps
    diff = res(c, u + bump)["pde"][0] - res(c, u)["pde"][0]  # interior rows, index − 1
    k2h2, h2 = (omega / c0) ** 2 / e**2, 1.0 / e**2
    expected = torch.zeros_like(diff)
    expected[6, 4] = 8 / 3 - 4 * k2h2 / 9
    expected[[5, 7, 6, 6], [4, 4, 3, 5]] = -1 / 3 - k2h2 / 9
    expected[[5, 5, 7, 7], [3, 5, 3, 5]] = -1 / 3 - k2h2 / 36
    torch.testing.assert_close(diff, eps * expected / h2, rtol=1e-10, atol=1e-9)


def manufactured_helmholtz(e: int) -> float:
    """u = cos πx cos 2πy (∂u/∂n = 0), c = 20 + cos πx cos πy (bilinear to the Gauss points),
    no flux: the lumped-mass-scaled rows approximate −Δu − k²u = (5π² − ω²/c²)u; max error
    over all nodes (boundary rows included)."""
    omega = 100.0
    x, y = nodes(e + 1)
    u = np.cos(np.pi * x) * np.cos(2 * np.pi * y)
    c = 20.0 + np.cos(np.pi * x) * np.cos(np.pi * y)
    res = HelmholtzResidual(omega=omega, flux=0.0, coefficient="bilinear")
    out = res(torch.from_numpy(c)[None, None], torch.from_numpy(u)[None, None])
    strong = (5 * np.pi**2 - (omega / c) ** 2) * u
    err_pde = np.abs(out["pde"][0].numpy() - strong[1:-1, 1:-1]).max()
    strong_bc = torch.from_numpy(strong)[None]
    err_bc = (out["bc"] - boundary_values(strong_bc)).abs().max().item()
    return max(err_pde, err_bc)


def test_helmholtz_operator_is_second_order_consistent():
    """The Q1 rows (K − M_{k²})u / m_i on smooth fields: error falls 4× per halving of h."""
    err = [manufactured_helmholtz(e) for e in (16, 32, 64)]
    orders = np.log2(np.array(err[:-1]) / np.array(err[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.2), orders


def test_helmholtz_gradients_reach_both_arguments():
    """Autograd to u and c through the KL reconstruction; bf16 is computed in float32."""
    c, u = helmholtz_pair(helmholtz.HelmholtzConfig(**SMALL), seeds=[4])
    c = c.float().requires_grad_(True)
    u = u.to(torch.bfloat16).requires_grad_(True)
    out = HelmholtzResidual.from_config(SMALL)(c, u)
    assert out["pde"].dtype == torch.float32
    (out["pde"].square().mean() + out["bc"].square().mean()).backward()
    for grad in (u.grad, c.grad):
        assert torch.isfinite(grad).all() and grad.abs().max() > 0


def test_helmholtz_strided_grid_residual_is_small_but_not_zero():
    """Every 2nd node of a resolved solution (ω = 200, kh <= 0.3): finite, nonzero, small and
    falling with h (measured 0.045–0.051 at E = 32 -> 16, 0.025 at 64 -> 32; slower than h²
    because u is singular at the ends of the flux window). At the dataset's ω = 1000 a half
    grid (kh ≈ 1, near resonance) gives 0.4–50: use the stored grid for physics."""
    small = {**SMALL, "omega": 200.0}
    res = HelmholtzResidual.from_config(small)
    rel = {}
    for e in (32, 64):
        c, u = helmholtz_pair(helmholtz.HelmholtzConfig(**{**small, "elements": e}))
        rel[e] = full(res, c[..., ::2, ::2], u[..., ::2, ::2])
        assert torch.isfinite(rel[e]).all() and (rel[e] > 1e-3).all() and (rel[e] < 0.2).all()
    assert (rel[64] < 0.7 * rel[32]).all()


def test_helmholtz_configuration_errors_name_the_problem():
    """A grid too coarse for the KL cosines, or an unknown coefficient mode, is refused."""
    c, u = helmholtz_pair(helmholtz.HelmholtzConfig(**{**SMALL, "elements": 40}), seeds=[0])
    res = HelmholtzResidual.from_config(SMALL)
    with pytest.raises(ValueError, match="8 elements cannot resolve the KL field"):
        res(c[..., ::5, ::5], u[..., ::5, ::5])
    with pytest.raises(ValueError, match="coefficient='nodal'"):
        HelmholtzResidual(coefficient="nodal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="helmholtz: omega"):
        residual_for({"name": "helmholtz", "omega": -1.0})
