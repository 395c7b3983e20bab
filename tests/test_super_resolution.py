"""One trained model on other grids (issue 19): FNO's domain padding as a fraction of the domain
(the operator is the same on every grid), the resolution-aware MgNO (multigrid cycles on the
training grid), their checkpoints through the surrogate, the experiments' configs and resume
across the added option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import compose_train
from omegaconf import OmegaConf
from test_surrogate_safety import MGNO, grid_io, save

from opnet import load_operator
from opnet.models.fno import FNO2d
from opnet.models.layers import SpectralConv
from opnet.models.mgno import MgNO
from opnet.training.module import OperatorModule
from opnet.training.resume import changes


# -- FNO ---------------------------------------------------------------------------------------
def test_fractional_padding_keeps_the_fft_period_fixed():
    """p = 1/8 of the domain: 7, 15, 31 points at 65, 129, 257 nodes, i.e. an FFT period of
    (n + pad) h = 9/8 on every grid; an int stays that many points."""
    net = FNO2d(modes=4, width=4, domain_padding=0.125)
    for n, pad in ((65, 7), (129, 15), (257, 31)):
        assert net.padding(n) == pad
        assert (n + pad) / (n - 1) == pytest.approx(1.125)
    assert FNO2d(modes=4, width=4, domain_padding=8).padding(257) == 8
    assert net.padding(64) == 8 and net.padding(128) == 16  # rounded up to fast FFT sizes 72, 144
    assert sum(p.numel() for p in FNO2d(domain_padding=0.125).parameters()) == 2_368_001


@pytest.mark.parametrize("bad", [1.5, 0.0, -1, True, "8"])
def test_bad_domain_padding_is_one_line(bad):
    with pytest.raises(ValueError, match=r"domain_padding=.*an int >= 0 .* a float in \(0, 1\)"):
        FNO2d(modes=4, width=4, domain_padding=bad)


def _smooth(n: int) -> torch.Tensor:
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(x, x, indexing="ij")
    return (torch.sin(math.pi * xx) * torch.cos(2 * math.pi * yy) + xx * yy)[None, None]


def _refinement_steps(domain_padding: int | float) -> list[float]:
    """How much an FNO's output on a smooth input changes at the 33 coarse nodes from one grid
    to the next (33 -> 65 -> 129 -> 257), relative to its size. Spectral weights are drawn
    large enough that the Fourier layers, not the 1x1 path, carry the output."""
    torch.manual_seed(0)
    net = FNO2d(modes=8, width=16, domain_padding=domain_padding).double()
    with torch.no_grad():
        for conv in net.spectral:
            conv.weight.normal_(0, 1 / 16)
        out = [net(_smooth(n))[..., ::(n - 1) // 32, ::(n - 1) // 32] for n in (33, 65, 129, 257)]
    size = out[0].norm()
    return [float((b - a).norm() / size) for a, b in zip(out, out[1:], strict=False)]


def test_fno_output_on_refined_inputs_converges_with_fractional_padding():
    """The issue's FNO cause: padding by grid points changes the FFT's period with the grid
    (73/64 at 65 nodes, 265/256 at 257), so the refined output approaches another operator.
    With a fraction the change halves with every refinement (O(h), the zero padding's jump)
    and is >= 5x smaller than with 8 points at every step (measured ~8x)."""
    fraction, points = _refinement_steps(0.125), _refinement_steps(8)
    assert fraction[2] < 0.6 * fraction[1] < 0.36 * fraction[0]
    assert fraction[2] < 2e-4  # the prediction at 4x barely differs from the one at 2x
    assert all(f < p / 5 for f, p in zip(fraction, points, strict=True))


def test_spectral_conv_evaluates_its_modes_on_a_finer_grid_of_the_same_domain():
    """``sizes``: the kept modes evaluated on a 3x finer periodic grid agree with the coarse
    output at the shared points and are the exact trigonometric interpolant between them."""
    torch.manual_seed(0)
    conv = SpectralConv(2, 3, (4, 4), dim=2)
    x = torch.randn(2, 2, 12, 12)
    fine = conv(x, sizes=(36, 36))
    assert fine.shape == (2, 3, 36, 36)
    torch.testing.assert_close(fine[..., ::3, ::3], conv(x), rtol=1e-4, atol=1e-5)
    again = torch.fft.rfftn(fine, dim=(-2, -1)).abs()  # no energy above the kept modes
    assert again[..., 5:-4, :].max() < 1e-3 and again[..., 4:].max() < 1e-3  # (+4: the
    assert again[..., 4, 1:].max() < 1e-3  # conjugate of -4 in the real column 0 only)


def _fno_pair() -> tuple[FNO2d, FNO2d]:
    torch.manual_seed(0)
    aware = FNO2d(modes=6, width=8, domain_padding=0.125, resolution_aware=True,
                  core_grid=[33, 33]).eval()
    plain = FNO2d(modes=6, width=8, domain_padding=0.125).eval()
    plain.load_state_dict(aware.state_dict())
    with torch.no_grad():
        for a, p in zip(aware.spectral, plain.spectral, strict=True):
            a.weight.normal_(0, 1 / 8)
            p.weight.copy_(a.weight)
    return aware, plain


def test_resolution_aware_fno_is_the_plain_fno_on_its_grid_and_consistent_on_finer_ones():
    """On the 33x33 training grid: the plain FNO's numbers. On a nested 129x129 grid: the
    33x33 prediction at the shared nodes (the Fourier transforms see what they saw in
    training); the plain FNO differs there (it transforms the finer samples)."""
    aware, plain = _fno_pair()
    coarse_grid = torch.randn(2, 1, 33, 33)
    fine = torch.nn.functional.interpolate(coarse_grid, size=(129, 129), mode="nearest-exact")
    fine[..., ::4, ::4] = coarse_grid
    with torch.no_grad():
        torch.testing.assert_close(aware(coarse_grid), plain(coarse_grid), rtol=0, atol=0)
        want = aware(coarse_grid)
        torch.testing.assert_close(aware(fine)[..., ::4, ::4], want, rtol=1e-4, atol=1e-5)
        assert (plain(fine)[..., ::4, ::4] - want).norm() > 1e-3 * want.norm()
        assert aware(torch.randn(1, 1, 50, 41)).shape == (1, 1, 50, 41)  # any grid


@pytest.mark.parametrize("kwargs", [{"domain_padding": 8, "core_grid": [33, 33]},
                                    {"domain_padding": 0.125}])
def test_resolution_aware_fno_needs_a_core_grid_and_a_fractional_padding(kwargs):
    with pytest.raises(ValueError, match="resolution_aware=True needs core_grid"):
        FNO2d(modes=4, width=4, resolution_aware=True, **kwargs)


# -- MgNO ----------------------------------------------------------------------------------------
def _pair(core: int = 33) -> tuple[MgNO, MgNO]:
    torch.manual_seed(0)
    aware = MgNO(resolution_aware=True, core_grid=[core, core]).eval()
    paper = MgNO().eval()
    paper.load_state_dict(aware.state_dict())
    return aware, paper


def test_resolution_aware_mgno_is_the_paper_model_on_its_grid():
    """Same parameters (572,661) and, on the training grid, the same numbers."""
    aware, paper = _pair()
    assert sum(p.numel() for p in aware.parameters()) == 572_661
    x = torch.randn(2, 1, 33, 33)
    with torch.no_grad():
        torch.testing.assert_close(aware(x), paper(x), rtol=0, atol=0)


def test_resolution_aware_mgno_gives_the_training_grid_prediction_at_nested_nodes():
    """On a 4x finer nested grid the coarse nodes get exactly the 33x33 prediction; the paper
    model's 3x3 stencils, in grid units, give another function there."""
    aware, paper = _pair()
    fine = torch.randn(2, 1, 129, 129)
    coarse = fine[..., ::4, ::4]
    with torch.no_grad():
        want = aware(coarse)
        torch.testing.assert_close(aware(fine)[..., ::4, ::4], want, rtol=1e-5, atol=1e-6)
        gap = (paper(fine)[..., ::4, ::4] - want).norm() / want.norm()
        assert gap > 0.1
        assert aware(torch.randn(1, 1, 50, 47)).shape == (1, 1, 50, 47)  # any grid


def test_grids_without_the_core_nodes_run_the_whole_network_on_the_core_grid():
    """64x48 from a 33x33 core shares no nodes with it: the pointwise parts on the input grid
    mixed features shifted by a fraction of a cell (a 65²-trained MgNO: 17.6 % error at 64²
    instead of 1.5 %, FNO 7.4 % instead of 2.0 %); now the network runs on the core grid,
    interpolated in and out. Nested grids keep the finer evaluation."""
    from opnet.models.layers.resample import nested, resample_nodes

    assert nested((129, 33), (33, 33)) and nested((17, 9), (33, 33))
    assert not nested((64, 33), (33, 33)) and not nested((97, 97), (65, 65))
    torch.manual_seed(1)
    x = torch.randn(2, 1, 64, 48)
    for aware in (_pair()[0], _fno_pair()[0]):
        with torch.no_grad():
            on_core = resample_nodes(aware(resample_nodes(x, (33, 33))), (64, 48))
            torch.testing.assert_close(aware(x), on_core, rtol=1e-5, atol=1e-6)
            fine = torch.randn(1, 1, 65, 65)  # nested: not the interpolated core prediction
            via_core = resample_nodes(aware(resample_nodes(fine, (33, 33))), (65, 65))
            assert (aware(fine) - via_core).norm() > 1e-4 * via_core.norm()


def test_resolution_aware_needs_a_core_grid():
    with pytest.raises(ValueError, match="resolution_aware=True needs core_grid"):
        MgNO(resolution_aware=True)


def test_training_fills_the_core_grid_from_the_data_and_the_surrogate_keeps_it(tmp_path):
    """model.resolution_aware=true: the core is the training grid (8x8 here), saved with the
    checkpoint; the loaded surrogate predicts on a nested 15x15 grid with the 8x8 values at
    the shared nodes and, between them, values that use the fine input (not interpolation)."""
    spec = OperatorModule.model_spec({**MGNO, "resolution_aware": True}, grid_io(), {})
    assert spec["core_grid"] == [8, 8]
    torch.manual_seed(0)
    op = load_operator(save(OperatorModule(spec, grid_io()), tmp_path / "aware.ckpt"))
    assert op.operator.model.core_grid == (8, 8)
    fine = 1 + torch.rand(3, 1, 15, 15, generator=torch.Generator().manual_seed(0))
    out = op.predict(fine)
    np.testing.assert_allclose(out[..., ::2, ::2], op.predict(fine[..., ::2, ::2]),
                               rtol=1e-5, atol=1e-6)
    assert np.abs(out - op.predict(fine, resample=True)).max() > 1e-4


# -- configs and resume --------------------------------------------------------------------------
def test_super_resolution_experiments_train_at_65_on_the_fine_257_set():
    fno = compose_train("experiment=fno_darcy_superres_cpu")
    mgno = compose_train("experiment=mgno_darcy_superres_cpu")
    for cfg in (fno, mgno):
        assert cfg.data.generate.pde.resolution == 257 and cfg.data.stride == 4
        assert len(range(0, 257, cfg.data.stride)) == 65  # nested: every 4th fine node
        assert cfg.module.loss == "h1" and cfg.trainer.max_epochs >= 10
    assert fno.model.domain_padding == 0.125 and fno.model._target_.endswith("FNO2d")
    for cfg in (fno, mgno):
        assert cfg.model.resolution_aware is True
        spec = OperatorModule.model_spec(OmegaConf.to_container(cfg.model), grid_io(
            grid=[65, 65]), {})
        assert spec["core_grid"] == [65, 65]
    assert compose_train("model=mgno").model.resolution_aware is False  # the paper's default
    assert compose_train("model=fno").model.resolution_aware is False


def test_resume_of_a_run_saved_before_the_option_sees_no_change():
    """A checkpoint from before ``model.resolution_aware`` existed resumes under a config that
    leaves it false; turning it on is a change."""
    saved = {"model": {"_target_": "opnet.models.mgno.MgNO", "width": 24}}
    now = {"model": {**saved["model"], "resolution_aware": False}}
    assert changes(saved, now) == []
    on = {"model": {**saved["model"], "resolution_aware": True}}
    assert [c[0] for c in changes(saved, on)] == ["model.resolution_aware"]
