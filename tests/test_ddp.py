"""Data-parallel training: ``python train.py trainer=ddp_sim`` (2 CPU processes, gloo) gives
the single-process result for the same global batch, and its metrics count every test
sample once (equal to a single-process evaluation of the same checkpoint)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL

from opnet.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["~callbacks.progress_bar", "~callbacks.model_summary", "logger=none"]

pytestmark = pytest.mark.slow


def _train(out: Path, *overrides: str) -> dict:
    """``python train.py`` in a subprocess (Lightning's DDP launcher re-runs the command for
    rank 1); returns its metrics.json."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    # started beside ``out`` and with Hydra's run folder pinned: nothing under the repo's outputs/
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *QUIET,
                           f"paths.output_dir={out}", f"hydra.run.dir={out}", *overrides],
                          cwd=out.parent, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _same_weights(a: Path, b: Path, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=rtol, atol=atol, msg=key)


def test_mgno_ddp_sim_equals_one_process_with_the_same_global_batch(darcy16, tmp_path):
    """Unshuffled order: ranks take samples 0,2,4,.. and 1,3,5,.. in batches of 4, i.e. the
    single process's batches of 8; averaged gradients -> the same weights after 2 epochs.
    The test metrics (whole test split on each rank) equal a one-process evaluation."""
    common = [f"data.data_dir={darcy16}", "data.generate=null", *TINY_MODEL,
              "trainer.max_epochs=2", "data.shuffle=false"]
    single = _train(tmp_path / "single", *common, "data.batch_size=8")
    ddp = _train(tmp_path / "ddp", *common, "data.batch_size=4", "trainer=ddp_sim")
    assert ddp["steps"] == single["steps"] == 2 * 64 // 8
    _same_weights(tmp_path / "single", tmp_path / "ddp")
    again = evaluate(ddp["best_checkpoint"], darcy16)
    assert ddp["test"]["test/rel_l2"] == pytest.approx(again["rel_l2"], rel=1e-4)
    assert ddp["test"]["test/rel_l2"] == pytest.approx(single["test"]["test/rel_l2"], rel=1e-3)


def test_physics_loss_under_ddp_sim_equals_one_process(darcy16, tmp_path):
    """module.physics under DDP: the residual terms are means per rank (averaged gradients =
    the global mean), the summed data term is scaled by the ranks: the same weights as one
    process with the global batch (issue 18)."""
    common = [f"data.data_dir={darcy16}", "data.generate=null", *TINY_MODEL,
              "trainer.max_epochs=2", "data.shuffle=false", "module.physics.weight=0.1"]
    single = _train(tmp_path / "single", *common, "data.batch_size=8")
    ddp = _train(tmp_path / "ddp", *common, "data.batch_size=4", "trainer=ddp_sim")
    assert ddp["steps"] == single["steps"] == 2 * 64 // 8
    _same_weights(tmp_path / "single", tmp_path / "ddp")
    assert ddp["test"]["test/residual"] == pytest.approx(single["test"]["test/residual"],
                                                         rel=1e-3)


def test_deeponet_ddp_sim_full_batch_equals_one_process(antiderivative_small, tmp_path):
    """Full batch: each rank trains on half the functions; the averaged gradient is the
    full-batch gradient (equal halves), so 40 Adam iterations end at the same weights."""
    common = ["experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
              "data.generate=null", "~extra_tests.chebyshev", "trainer.max_steps=40",
              "data.steps_per_epoch=20", "~callbacks.lr_monitor"]
    single = _train(tmp_path / "single", *common)
    ddp = _train(tmp_path / "ddp", *common, "trainer=ddp_sim")
    assert ddp["steps"] == single["steps"] == 40
    _same_weights(tmp_path / "single", tmp_path / "ddp")
    assert ddp["test"]["test/rel_l2"] == pytest.approx(single["test"]["test/rel_l2"], rel=1e-3)


@pytest.fixture(scope="module")
def ode_small(tmp_path_factory):
    """Lorenz and Thomas: 32 train / 8 val / 8 test trajectories."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("ddp_prose") / "ode"
    generate("ode_systems", out=out, types="lorenz_3d,thomas", n_train=32, n_val=8, n_test=8,
             ics_per_equation=4, eval_ics_per_equation=2, chunk_size=16, progress=False)
    return out


def test_prose_ddp_sim_trains_and_counts_each_test_sample_once(ode_small, tmp_path):
    """Ranks hold disjoint halves of the test split; the summed (not averaged-of-means)
    metrics equal a one-process evaluation of the same checkpoint, and both ranks end with
    the same weights (a mismatch would fail the DDP parameter check)."""
    ddp = _train(tmp_path / "ddp", "experiment=prose_ode_cpu", f"data.data_dir={ode_small}",
                 "data.generate=null", "model.dim=32", "model.heads=4", "model.ffn=64",
                 "model.data_encoder_layers=1", "model.symbol_encoder_layers=1",
                 "model.fusion_layers=1", "model.data_decoder_layers=1",
                 "model.symbol_decoder_layers=1", "trainer.max_steps=3", "data.batch_size=4",
                 "data.steps_per_epoch=3", "module.max_decode_len=20", "trainer=ddp_sim",
                 "~callbacks.lr_monitor")
    assert ddp["steps"] == 3
    again = evaluate(ddp["best_checkpoint"], ode_small)
    for key in ("rel_l2_2_4", "rel_l2_2_6"):
        assert ddp["test"][f"test/{key}"] == pytest.approx(again[key], rel=1e-4)
