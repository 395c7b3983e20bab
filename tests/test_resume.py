"""Resuming honours or refuses a changed configuration, never ignores it (issue 15).

The tiny run: 64 samples, batch 8 -> 8 steps per epoch; 2 epochs = 16 steps, OneCycle per
epoch. A plain resume continues the checkpoint's run exactly and refuses changed settings
naming key and both values; ``resume.extend=true`` honours schedule settings (a new
optimiser/schedule over what is left, the Adam moments and counters kept); a changed network
or family is refused in one line, before any state_dict is loaded.
"""

from pathlib import Path

import pytest
import torch
from conftest import compose_train

from opnet.training.job import train
from opnet.training.module import ConfigError
from opnet.training.resume import RUN_CONFIG_KEY, changes, kind_of

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def first_run(tiny_cfg, tmp_path) -> Path:
    """2 epochs of the tiny run; its last.ckpt."""
    train(tiny_cfg("logger=none", "test=false"))
    return tmp_path / "run" / "checkpoints" / "last.ckpt"


def _resume(tiny_cfg, tmp_path, last, *overrides):
    return tiny_cfg("logger=none", "test=false", f"ckpt_path={last}",
                    f"paths.output_dir={tmp_path / 'resumed'}", *overrides)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and len(message) < 800, message
    return message


def test_changed_lr_is_refused_naming_key_and_both_values(tiny_cfg, tmp_path, first_run):
    """Before: module.lr was silently ignored (the restored optimizer kept 1e-3) while the
    new checkpoint recorded 5e-4."""
    with pytest.raises(ConfigError) as err:
        train(_resume(tiny_cfg, tmp_path, first_run, "trainer.max_epochs=2", "module.lr=5e-4"))
    message = _one_line(err)
    assert "module.lr: checkpoint 0.001, now 0.0005" in message
    assert "resume.extend=true" in message


def test_raised_max_epochs_is_refused_without_extend(tiny_cfg, tmp_path, first_run):
    """Before: OneCycle crashed ('Tried to step 19 times') or divided by zero."""
    with pytest.raises(ConfigError) as err:
        train(_resume(tiny_cfg, tmp_path, first_run, "trainer.max_epochs=4"))
    assert "trainer.max_epochs: checkpoint 2, now 4" in _one_line(err)


def test_extend_trains_on_with_a_new_schedule_and_the_new_lr(tiny_cfg, tmp_path, first_run):
    """resume.extend=true, max_epochs 2 -> 4 and lr 1e-3 -> 5e-4: 32 steps in all, a OneCycle
    of 2 epochs peaking at the new lr, Adam's moments carried on (its step count is 32, not
    16: they were not reset), and the checkpoint records what ran."""
    before = torch.load(first_run, weights_only=True)
    train(_resume(tiny_cfg, tmp_path, first_run, "trainer.max_epochs=4", "module.lr=5e-4",
                  "resume.extend=true"))
    after = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (after["global_step"], after["epoch"]) == (32, 3)
    sched = after["lr_schedulers"][0]
    assert sched["total_steps"] == 2 and sched["_step_count"] == 3
    group = after["optimizer_states"][0]["param_groups"][0]
    assert group["max_lr"] == pytest.approx(5e-4)
    steps = {float(s["step"]) for s in after["optimizer_states"][0]["state"].values()}
    assert steps == {32.0}
    assert after["hyper_parameters"]["lr"] == pytest.approx(5e-4)
    assert after[RUN_CONFIG_KEY]["trainer"]["max_epochs"] == 4
    moved = [k for k, v in after["state_dict"].items()
             if v.is_floating_point() and not torch.equal(v, before["state_dict"][k])]
    assert moved  # the weights trained on


def test_extend_honours_a_changed_loss_and_batch_size(tiny_cfg, tmp_path, first_run):
    """loss h1 -> rel_l2 and batch 8 -> 16 with one more epoch: 16 + 64/16 = 20 steps, and
    the module trained with rel_l2."""
    train(_resume(tiny_cfg, tmp_path, first_run, "trainer.max_epochs=3", "module.loss=rel_l2",
                  "data.batch_size=16", "resume.extend=true"))
    after = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 20
    assert after["hyper_parameters"]["loss"] == "rel_l2"


def test_extend_with_nothing_left_to_train_is_named(tiny_cfg, tmp_path, first_run):
    """A changed lr with the same max_epochs (2, all done) leaves nothing to run."""
    with pytest.raises(ConfigError, match=r"trainer.max_epochs=2: the checkpoint .* has done "
                                          r"2 epochs already; raise trainer.max_epochs"):
        train(_resume(tiny_cfg, tmp_path, first_run, "module.lr=5e-4", "resume.extend=true"))


def test_changed_width_is_one_line_naming_both_values(tiny_cfg, tmp_path, first_run):
    """Before: Lightning's 127-line state_dict size-mismatch dump. Refused even with
    extend, before the data or the network are built."""
    for extra in ([], ["resume.extend=true"]):
        with pytest.raises(ConfigError) as err:
            train(_resume(tiny_cfg, tmp_path, first_run, "model.width=12", *extra))
        message = _one_line(err)
        assert "model.width: checkpoint 8, now 12" in message
        assert "network or data" in message


def test_another_model_or_family_is_refused_by_name(darcy16, tmp_path, first_run):
    """Refused before the data or the network are built (the DeepONet experiment's data do
    not even exist here)."""
    common = [f"ckpt_path={first_run}", f"paths.output_dir={tmp_path / 'resumed'}"]
    with pytest.raises(ConfigError) as err:
        train(compose_train(f"data.data_dir={darcy16}", "data.generate=null", "model=fno",
                            *common))
    assert "model._target_: checkpoint 'opnet.models.mgno.MgNO', now " \
           "'opnet.models.fno.FNO2d'" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        train(compose_train("experiment=deeponet_antiderivative",
                            f"paths.data_dir={tmp_path / 'nowhere'}", *common))
    message = _one_line(err)
    assert "module._target_: checkpoint 'opnet.training.module.OperatorModule', now " \
           "'opnet.training.deeponet_module.DeepONetModule'" in message


def test_checkpoint_without_stored_config_is_checked_by_its_operator_block(
        tiny_cfg, tmp_path, first_run):
    """Checkpoints of older opnet versions: the network's kwargs come from the operator
    block."""
    ckpt = torch.load(first_run, weights_only=True)
    del ckpt[RUN_CONFIG_KEY]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    with pytest.raises(ConfigError) as err:
        train(_resume(tiny_cfg, tmp_path, old, "model.layers=3"))
    assert "model.layers: checkpoint 2, now 3" in _one_line(err)


def test_runtime_keys_may_change(tiny_cfg, tmp_path, first_run):
    """Another output folder, logger, loader workers and in-memory mode are not the run's
    identity: the resume is accepted (with nothing left to train, it just tests)."""
    cfg = _resume(tiny_cfg, tmp_path, first_run, "logger=tensorboard", "data.in_memory=false",
                  "test=true")
    saved = torch.load(first_run, weights_only=True)[RUN_CONFIG_KEY]
    assert saved["paths"]["output_dir"] != str(tmp_path / "resumed")
    metrics = train(cfg)
    assert 0 < metrics["test/rel_l2"] < 1


def test_key_classes():
    assert kind_of("module.lr") == "schedule" and kind_of("trainer.max_epochs") == "schedule"
    assert kind_of("module._target_") == "identity" and kind_of("model.width") == "identity"
    assert kind_of("seed") == "identity" and kind_of("data.stride") == "identity"
    assert kind_of("paths.output_dir") == "runtime" and kind_of("data.num_workers") == "runtime"
    assert changes({"a": {"b": 1}, "paths": {"x": 1}}, {"a": {"b": 2}, "paths": {"x": 2}}) == [
        ("a.b", 1, 2)]


def test_deeponet_extend_keeps_flat_adam_moments_and_runs_to_the_new_max_steps(
        antiderivative_small, tmp_path):
    """DeepONet (hand-derived gradients into FlatAdam's flat buffer, 20 iterations per
    Lightning step): max_steps 40 -> 80 with resume.extend=true and a new lr ends at step 80
    with a cosine schedule over the 40 new iterations from the new lr, FlatAdam's step count
    carried on."""
    common = ["experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
              "data.generate=null", "~extra_tests.chebyshev", "~callbacks.progress_bar",
              "~callbacks.model_summary", "logger=none", "test=false",
              "data.steps_per_epoch=20"]
    train(compose_train(*common, "trainer.max_steps=40", f"paths.output_dir={tmp_path / 'a'}"))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 40
    train(compose_train(*common, "trainer.max_steps=80", "module.lr=2e-4", "resume.extend=true",
                        f"ckpt_path={last}", f"paths.output_dir={tmp_path / 'b'}"))
    after = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 80
    opt = after["optimizer_states"][0]
    assert opt["param_groups"][0]["initial_lr"] == pytest.approx(2e-4)  # the new lr
    assert after["lr_schedulers"][0]["T_max"] == 40  # cosine over the 40 added iterations
    assert float(opt["state"][0]["step"]) == 80  # the moments carried on from step 40
