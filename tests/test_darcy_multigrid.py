"""Batched multigrid-preconditioned CG for Darcy: transfers, Galerkin operators, the V-cycle as
an SPD preconditioner, agreement with the direct solve, iteration counts, batch independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_gen.grf import cosine_grf_2d
from data_gen.pdes import darcy
from data_gen.pdes import darcy_multigrid as mg


@pytest.fixture
def one_thread():
    """One torch thread: stable timings on a shared machine (results do not depend on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rngs(seeds) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def threshold_coeff(n: int, s: int, tau: float = 3.0, seed: int = 0) -> np.ndarray:
    """FNO 12/3 coefficient from the cosine GRF (α = 2): [n, s, s]."""
    psi = cosine_grf_2d(rngs(range(seed, seed + n)), s, 2.0, tau)
    return np.where(psi >= 0.0, 12.0, 3.0)


def multiscale_coeff(n: int, s: int, seed: int = 0) -> np.ndarray:
    return darcy.multiscale_coefficient(rngs(range(seed, seed + n)), s, 6)


def dense_prolongation(m: int) -> torch.Tensor:
    """P [m², (m//2)²] column by column from :func:`mg.prolong`."""
    mc = m // 2
    eye = torch.eye(mc * mc, dtype=torch.float64).reshape(mc * mc, mc, mc)
    return mg.prolong(eye, m).reshape(mc * mc, m * m).T


def random_stencil(m: int, seed: int = 0) -> mg.Stencil:
    a = torch.from_numpy(np.random.default_rng(seed).uniform(0.5, 5.0, (2, m + 2, m + 2)))
    return mg.fine_stencil(a)


# ------------------------------------------------------------------ operators and transfers


def test_fine_stencil_is_the_direct_solvers_matrix():
    """Dense h²A from the stencil equals the CSC matrix of darcy.solve (same entries)."""
    s = 8
    a = np.random.default_rng(1).uniform(1.0, 5.0, (1, s, s))
    st = mg.fine_stencil(torch.from_numpy(a))
    pat = darcy._pattern(s, dissect=False)
    values = darcy._values(a)[0]
    import scipy.sparse as sp
    mat = sp.csc_matrix((values[pat.source], pat.indices, pat.indptr), shape=(36, 36)).toarray()
    np.testing.assert_allclose(st.dense()[0].numpy(), mat, rtol=0, atol=1e-14)


@pytest.mark.parametrize("m", [1, 2, 5, 6, 7, 8])
def test_restriction_is_the_transpose_of_bilinear_prolongation(m):
    """restrict = Pᵀ exactly; P reproduces a coarse constant at fine nodes between coarse ones,
    halves it next to the boundary (Dirichlet value 0), for even and odd m."""
    mc = m // 2
    p = dense_prolongation(m)
    eye = torch.eye(m * m, dtype=torch.float64).reshape(m * m, m, m)
    r = mg.restrict(eye).reshape(m * m, mc * mc).T
    np.testing.assert_array_equal(r.numpy(), p.T.numpy())
    if mc:
        u = mg.prolong(torch.ones(1, mc, mc, dtype=torch.float64), m)[0].numpy()
        inner = slice(1, 2 * mc)  # fine nodes with coarse neighbours on both sides
        np.testing.assert_array_equal(u[inner, inner], 1.0)
        assert u[0, 1] == 0.5 and u[0, 0] == 0.25  # next to the boundary (node 0)
        assert u[m - 1, 1] == (1.0 if m % 2 == 0 else 0.5)  # m even: the last node is coarse


@pytest.mark.parametrize("m", [3, 5, 6, 7, 8, 12])
def test_galerkin_operator_equals_dense_triple_product(m):
    """Closed-form PᵀAP (5-point fine, then 9-point coarse) = dense PᵀAP = the probing result."""
    st = random_stencil(m)
    coarse = mg.galerkin(st)
    p = dense_prolongation(m)
    np.testing.assert_allclose(coarse.dense().numpy(), (p.T @ st.dense() @ p).numpy(),
                               rtol=0, atol=1e-13)
    probe = mg.galerkin_probe(st)
    np.testing.assert_allclose(coarse.dense().numpy(), probe.dense().numpy(), rtol=0, atol=1e-13)
    if coarse.m >= 2:
        p2 = dense_prolongation(coarse.m)
        np.testing.assert_allclose(mg.galerkin(coarse).dense().numpy(),
                                   (p2.T @ coarse.dense() @ p2).numpy(), rtol=0, atol=1e-13)


def test_stencil_apply_and_residual_match_dense_matrix():
    st = mg.galerkin(random_stencil(14))
    u = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 7, 7)))
    r = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 7, 7)))
    au = (st.dense() @ u.reshape(2, 49, 1)).reshape(2, 7, 7)
    np.testing.assert_allclose(st.apply(u).numpy(), au.numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(st.residual(r, u).numpy(), (r - au).numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("s", [19, 20])
def test_vcycle_is_a_symmetric_positive_definite_operator(s, one_thread):
    """Dense M⁻¹ of the float64 V-cycle over 4 levels (m = 17 → 8 → 4 → 2 and 18 → 9 → 4 → 2,
    dense Cholesky on 2²), by applying it to all unit vectors at once: symmetric to rounding,
    and the spectrum of M⁻¹A lies in (0, 1] (Jacobi-smoothed V(1,1) with Galerkin coarse
    operators is an A-contraction), so M is a valid CG preconditioner."""
    a = torch.from_numpy(threshold_coeff(1, s, seed=4))
    m = s - 2
    op = mg.fine_stencil(a.expand(m * m, s, s))
    hier = mg.Hierarchy(op, dtype=torch.float64, coarsest=2)
    assert [lev.m for lev in hier.levels] == [m, m // 2, m // 4, 2]
    basis = torch.eye(m * m, dtype=torch.float64).reshape(m * m, m, m)
    minv = hier.vcycle(basis).reshape(m * m, m * m)  # row k = M⁻¹ e_k
    np.testing.assert_allclose(minv.numpy(), minv.T.numpy(), rtol=0,
                               atol=1e-12 * float(minv.abs().max()))
    sym = 0.5 * (minv + minv.T)
    evals, evecs = torch.linalg.eigh(op.dense()[0])
    half = evecs @ torch.diag(evals.sqrt()) @ evecs.T  # A^½: A^½ M⁻¹ A^½ is similar to M⁻¹A
    spec = torch.linalg.eigvalsh(half @ sym @ half)
    assert 0.0 < float(spec.min()) and float(spec.max()) <= 1.0 + 1e-9, (spec.min(), spec.max())


# ------------------------------------------------------------------------ the PCG solver


@pytest.mark.parametrize("s", [33, 64, 85])
@pytest.mark.parametrize("kind", ["threshold", "multiscale"])
def test_agrees_with_direct_solve(s, kind):
    """Relative residual <= 1e-10 and max|u_mg − u_direct| <= 1e-8 max|u_direct| (observed
    ~1e-12), odd and even node counts (s − 1 = 32, 63, 84 intervals)."""
    coeff = threshold_coeff(3, s) if kind == "threshold" else multiscale_coeff(3, s)
    res = mg.solve_with_info(coeff)
    direct = darcy.solve(coeff)
    assert float(res.residual.max()) <= 1e-10
    err = np.abs(res.u.numpy() - direct).max(axis=(1, 2)) / np.abs(direct).max(axis=(1, 2))
    assert np.all(err <= 1e-8), err
    assert np.all(res.u.numpy()[:, [0, -1], :] == 0) and np.all(res.u.numpy()[:, :, [0, -1]] == 0)


def test_float64_and_float32_vcycle_agree():
    """The V-cycle precision changes neither the solution (beyond the tolerance) nor, here,
    the iteration counts by more than one."""
    coeff = multiscale_coeff(2, 40, seed=7)
    r32 = mg.solve_with_info(coeff)
    r64 = mg.solve_with_info(coeff, precond_dtype=None)
    assert float(r64.residual.max()) <= 1e-10
    np.testing.assert_allclose(r32.u.numpy(), r64.u.numpy(), rtol=0,
                               atol=1e-9 * float(r64.u.abs().max()))
    assert int((r32.iterations - r64.iterations).abs().max()) <= 1


def test_manufactured_solution_with_forcing_array():
    """u = sin πx sin πy, a = 1 + x + 2y², f = −∇·(a∇u): same discrete solution as direct."""
    s = 41
    x, y = np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s), indexing="ij")
    a = 1.0 + x + 2.0 * y**2
    ux = np.pi * np.cos(np.pi * x) * np.sin(np.pi * y)
    uy = np.pi * np.sin(np.pi * x) * np.cos(np.pi * y)
    f = -(ux + 4.0 * y * uy) + 2.0 * np.pi**2 * a * np.sin(np.pi * x) * np.sin(np.pi * y)
    u = mg.solve(a, f)
    assert u.shape == (s, s)
    np.testing.assert_allclose(u, darcy.solve(a, f), rtol=0, atol=1e-10)
    assert np.abs(u - np.sin(np.pi * x) * np.sin(np.pi * y)).max() < 2e-3  # O(h²)


@pytest.mark.slow
def test_iteration_counts_are_bounded_and_nearly_resolution_independent(one_thread):
    """V-cycles to 1e-10 (measured: threshold 12–14 and multiscale 14–21 at s = 33…257).
    Bounds: threshold <= 15 at every s, multiscale < 25, and at most +3/+4 from 65 to 257."""
    counts = {}
    for s in (65, 129, 257):
        t = mg.solve_with_info(threshold_coeff(2, s, tau=5.0)).iterations
        m = mg.solve_with_info(multiscale_coeff(2, s)).iterations
        counts[s] = (int(t.max()), int(m.max()))
    assert all(t <= 15 and m < 25 for t, m in counts.values()), counts
    assert counts[257][0] - counts[65][0] <= 3 and counts[257][1] - counts[65][1] <= 4, counts


def test_iteration_counts_small_grids():
    """Threshold coefficients at s = 33 and 65 need 12–13 V-cycles (bound 15)."""
    for s in (33, 65):
        its = mg.solve_with_info(threshold_coeff(2, s)).iterations
        assert int(its.max()) <= 15 and int(its.min()) >= 8, its


def test_sample_result_does_not_depend_on_the_batch():
    """Sample i solved alone, in a batch of 5, or in groups of 2 gives the same bits (each
    sample stops on its own residual; reductions are per sample)."""
    coeff = np.concatenate([threshold_coeff(3, 45), multiscale_coeff(2, 45)])
    full = mg.solve_with_info(coeff, batch_size=5)
    pairs = mg.solve_with_info(coeff, batch_size=2)
    assert torch.equal(full.u, pairs.u) and torch.equal(full.iterations, pairs.iterations)
    for i in (0, 4):
        alone = mg.solve_with_info(coeff[i:i + 1])
        assert torch.equal(alone.u[0], full.u[i])
        assert float((alone.u[0] - full.u[i]).abs().max()) <= 1e-10 * float(full.u[i].max())


def test_convergence_failure_names_the_sample():
    """max_iter below what sample 1 (multiscale) needs but above sample 0 (a = 1): the error
    names sample 1 only, with its residual."""
    s = 40
    coeff = np.stack([np.ones((s, s)), multiscale_coeff(1, s)[0]])
    need = mg.solve_with_info(coeff).iterations.tolist()
    assert need[0] < need[1]
    with pytest.raises(mg.ConvergenceError, match=r"sample\(s\) \[1\] .*max_iter=") as exc:
        mg.solve_with_info(coeff, max_iter=need[0])
    assert "relative residual" in str(exc.value)
    batch = np.stack([coeff[0], coeff[0], coeff[0], coeff[1]])  # groups [0, 1], [2, 3]
    with pytest.raises(mg.ConvergenceError, match=r"sample\(s\) \[3\] "):
        mg.solve_with_info(batch, max_iter=need[0], batch_size=2)


def test_zero_forcing_tiny_grids_and_empty_batch():
    assert np.all(mg.solve(np.ones((2, 20, 20)), 0.0) == 0.0)
    for s in (3, 4, 17, 18):  # only the coarsest (dense) level, or one coarsening
        a = threshold_coeff(1, s)
        np.testing.assert_allclose(mg.solve(a), darcy.solve(a), rtol=0, atol=1e-12)
    assert mg.solve(np.ones((0, 9, 9))).shape == (0, 9, 9)


def test_torch_input_stays_torch():
    a = torch.ones(2, 12, 12, dtype=torch.float32)
    u = mg.solve(a)
    assert isinstance(u, torch.Tensor) and u.dtype == torch.float64 and u.shape == (2, 12, 12)


def test_input_validation():
    with pytest.raises(ValueError, match=r"expected \[n, s, s\]"):
        mg.solve(np.ones((2, 5, 6)))
    with pytest.raises(ValueError, match="positive"):
        mg.solve(np.zeros((1, 5, 5)))
    bad = np.ones((1, 9, 9))
    bad[0, 4, 4] = np.nan
    with pytest.raises(ValueError, match="positive"):
        mg.solve(bad)
    with pytest.raises(ValueError, match="forcing must be finite"):
        mg.solve(np.ones((1, 9, 9)), np.inf)
    with pytest.raises(ValueError, match="batch_size"):
        mg.solve(np.ones((1, 9, 9)), batch_size=0)


@pytest.mark.parametrize("m", [17, 18])
def test_vcycle_transfer_views_match_restrict_and_prolong(m):
    """The preallocated stride-2 views of a level compute exactly restrict() and prolong()."""
    a = torch.from_numpy(threshold_coeff(2, m + 2))
    hier = mg.Hierarchy(mg.fine_stencil(a), dtype=torch.float64)
    fine, coarse = hier.levels[0], hier.levels[1]
    r = torch.from_numpy(np.random.default_rng(5).standard_normal((2, m, m)))
    fine.r.copy_(r)
    for target, terms in zip((fine.rows, coarse.rhs), fine.restriction, strict=True):
        target.zero_()
        for w, v in terms:
            target.add_(v, alpha=w)
    np.testing.assert_allclose(coarse.rhs.numpy(), mg.restrict(r).numpy(), rtol=0, atol=1e-14)
    e = torch.from_numpy(np.random.default_rng(6).standard_normal((2, m // 2, m // 2)))
    coarse.z.copy_(e)
    fine.z.zero_()
    for zv, ev, w in fine.prolongation:
        zv.add_(ev, alpha=w)
    np.testing.assert_allclose(fine.z.numpy(), mg.prolong(e, m).numpy(), rtol=0, atol=1e-14)
