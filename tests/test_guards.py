"""A NaN training loss stops the run naming step and batch, before any checkpoint holds the
weights it produced (policy stop), or its update is dropped (policy skip)."""

import math

import lightning as L
import pytest
import torch
from conftest import compose_train

from opnet.training.guards import FiniteLossGuard, NonFiniteLossError
from opnet.training.job import train

pytestmark = pytest.mark.usefixtures("one_thread")


class PoisonBatch(L.Callback):
    """Writes NaN into the first sample of the batch at global step ``step`` (key ``key``)."""

    def __init__(self, step: int, key: str = "x") -> None:
        self.step, self.key = step, key

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            first = batch[0] if isinstance(batch, list) else batch
            first[self.key][0] = float("nan")


def _finite(path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def test_nan_loss_stops_with_step_and_batch_and_keeps_the_last_good_checkpoint(tiny_cfg,
                                                                                tmp_path):
    """64 samples / batch 8 = 8 steps per epoch: the poisoned step 11 is epoch 1, batch 3;
    last.ckpt stays the finite one of epoch 0 (step 8)."""
    cfg = tiny_cfg("logger=none", "+callbacks.poison._target_=test_guards.PoisonBatch",
                   "+callbacks.poison.step=11")
    with pytest.raises(NonFiniteLossError,
                       match=r"training loss nan at global step 12 \(epoch 1, batch 3\)"):
        train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 8 and _finite(last)


def test_skip_policy_drops_the_update_and_training_goes_on(tiny_cfg, tmp_path):
    """The poisoned step's gradient is NaN: no update, one skipped step, finite weights and
    metrics at the end."""
    cfg = tiny_cfg("logger=none", "+callbacks.poison._target_=test_guards.PoisonBatch",
                   "+callbacks.poison.step=5", "callbacks.nonfinite.policy=skip")
    metrics = train(cfg)
    assert math.isfinite(metrics["test/rel_l2"])
    assert _finite(tmp_path / "run" / "checkpoints" / "last.ckpt")
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    guard = [v for k, v in state["callbacks"].items() if k.startswith("FiniteLossGuard")]
    assert guard == [{"skipped": 1}]


def test_deeponet_nan_stops_inside_its_group_of_iterations(antiderivative_small, tmp_path):
    """The manual (hand-derived gradient) iterations return their summed loss; NaN labels
    at step 40 stop the run at the end of that Lightning step."""
    cfg = compose_train("experiment=deeponet_antiderivative",
                        f"data.data_dir={antiderivative_small}", "data.generate=null",
                        "~extra_tests.chebyshev", "~callbacks.progress_bar",
                        "~callbacks.model_summary", "logger=none", f"paths.output_dir={tmp_path}",
                        "trainer.max_steps=100", "data.steps_per_epoch=20",
                        "+callbacks.poison._target_=test_guards.PoisonBatch",
                        "+callbacks.poison.step=40", "+callbacks.poison.key=s")
    with pytest.raises(NonFiniteLossError, match=r"at global step 60 \(epoch 2, batch 0\)"):
        train(cfg)


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match=r"callbacks.nonfinite.policy='ignore': expected one of"):
        FiniteLossGuard("ignore")
