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


def test_weights_blown_up_by_a_finite_step_are_never_checkpointed(tiny_cfg, tmp_path):
    """One step per epoch (batch 64 of 64 samples) at lr=30: the first step's loss is finite
    but its update makes the weights non-finite. Lightning's ModelCheckpoint would write them
    as epoch_000.ckpt, best with score inf; now no checkpoint holds them and the message
    says so truthfully."""
    cfg = tiny_cfg("logger=none", "data.batch_size=64", "module.lr=30",
                   "module.scheduler.name=none", "callbacks.nonfinite.policy=stop")
    with pytest.raises(NonFiniteLossError, match=r"at global step 1 \(epoch 0\): not "
                       r"checkpointed, training stopped; the last good checkpoint is none"):
        train(cfg)
    folder = tmp_path / "run" / "checkpoints"
    assert not folder.exists() or not list(folder.glob("*.ckpt"))


def test_a_non_finite_validation_metric_is_never_the_best(tiny_cfg, tmp_path):
    """Finite weights, but val/rel_l2 = inf in epoch 1 (a val batch poisoned with Inf): the
    epoch-0 checkpoints stay, nothing of epoch 1 is written, the run stops naming the metric."""
    cfg = tiny_cfg("logger=none", "callbacks.nonfinite.policy=stop",
                   "+callbacks.poison_val._target_=test_guards.PoisonValidation",
                   "+callbacks.poison_val.epoch=1")
    with pytest.raises(NonFiniteLossError, match=r"val/rel_l2 is (inf|nan) at global step 16 "
                                                 r"\(epoch 1\)"):
        train(cfg)
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["epoch_000.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 0


class PoisonValidation(L.Callback):
    """Writes Inf into the targets of every validation batch of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx,
                                  dataloader_idx=0) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            batch["y"][:] = float("inf")
