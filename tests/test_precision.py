"""Mixed precision and torch.compile through train.py: ``trainer.precision=bf16-mixed`` trains
every model family (FFT-based losses stay in float32), ``compile=true`` compiles in place
(checkpoints load without it) or falls back with a warning where unsupported."""

import numpy as np
import pytest
import torch
from conftest import compose_train

from opnet import load_operator
from opnet.training import compile as compile_mod
from opnet.training.job import train
from opnet.training.losses import h1

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = ["~callbacks.progress_bar", "~callbacks.model_summary", "logger=none"]


def test_h1_loss_of_a_bf16_prediction_is_computed_in_float32():
    """cuFFT/MKL have no bf16 FFT: the loss upcasts, and equals the float32 loss of the
    same (bf16-rounded) prediction."""
    torch.manual_seed(0)
    y = torch.randn(3, 1, 16, 16)
    pred = (y + 0.1 * torch.randn_like(y)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = h1(pred, y)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, h1(pred.float(), y), rtol=1e-6, atol=0)


@pytest.mark.filterwarnings("ignore:Precision bf16-mixed is not supported")
def test_mgno_trains_in_bf16_mixed(tiny_cfg):
    """Two epochs under bf16 autocast: finite metrics, the test error below the untrained
    one (~1.0 for a random MgNO on Darcy)."""
    metrics = train(tiny_cfg("trainer.precision=bf16-mixed", "logger=none"))
    assert np.isfinite(metrics["test/rel_l2"]) and metrics["test/rel_l2"] < 0.9


@pytest.mark.filterwarnings("ignore:Precision bf16-mixed is not supported")
def test_deeponet_trains_in_bf16_mixed_through_autograd(antiderivative_small, tmp_path):
    """Mixed precision leaves the hand-derived fast path (full precision only) for
    autograd with Lightning's precision plugin; 300 iterations still learn."""
    metrics = train(compose_train(
        "experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
        "data.generate=null", "~extra_tests.chebyshev", *QUIET, "~callbacks.lr_monitor",
        f"paths.output_dir={tmp_path}", "trainer.max_steps=300", "data.steps_per_epoch=100",
        "trainer.precision=bf16-mixed"))
    assert metrics["test/rel_l2"] < 0.5


def test_compile_falls_back_with_a_warning_where_unsupported(tiny_cfg, monkeypatch):
    monkeypatch.setattr(compile_mod, "compile_unsupported_reason",
                        lambda device="cpu": "the CPU backend needs a C++ compiler")
    with pytest.warns(UserWarning, match="compile=true: the CPU backend needs a C.. compiler; "
                                         "training without torch.compile"):
        metrics = train(tiny_cfg("compile=true", "trainer.max_epochs=1", "logger=none"))
    assert np.isfinite(metrics["test/rel_l2"])


@pytest.mark.slow
def test_compiled_training_checkpoint_loads_uncompiled(antiderivative_small, tmp_path):
    """compile=true (autograd path) trains; the checkpoint keeps the plain keys, so the
    surrogate loads without compiling and reproduces the run's test error."""
    metrics = train(compose_train(
        "experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
        "data.generate=null", "~extra_tests.chebyshev", *QUIET, "~callbacks.lr_monitor",
        f"paths.output_dir={tmp_path}", "trainer.max_steps=40", "data.steps_per_epoch=20",
        "module.fast_path=false", "compile=true"))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in state)
    from opnet.evaluate import evaluate

    row = evaluate(load_operator(tmp_path / "checkpoints" / "last.ckpt"), antiderivative_small)
    assert np.isfinite(row["rel_l2"]) and row["rel_l2"] < 1.0
    assert metrics["test/rel_l2"] < 1.0
