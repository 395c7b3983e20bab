"""One optimiser/schedule vocabulary (issue 17): ``module.optimizer=adamw
module.scheduler=cosine`` means the same for MgNO, DeepONet and PROSE; each schedule follows
its formula; unknown names and options are refused by name at construction."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from opnet.training.deeponet_module import DeepONetModule
from opnet.training.flat_adam import FlatAdam
from opnet.training.module import OperatorModule
from opnet.training.optim import (
    Recipe,
    build_optimizer,
    build_scheduler,
    inverse_sqrt_lr,
    scheduler_spec,
)
from opnet.training.prose_module import ProseModule

GRID_IO = {"in_channels": 1, "out_channels": 1, "grid": [16, 16], "in_normalizer": "scalar",
           "out_normalizer": "scalar"}
MGNO = {"_target_": "opnet.models.mgno.MgNO", "width": 4, "layers": 1,
        "smoothing": [[1, 0], [1, 0]]}
POINT_IO = {"input_shape": [8], "n_query": 5, "out_channels": 1, "sensor_points": 8,
            "sensor_dim": 1, "query_dim": 1}
DEEPONET = {"_target_": "opnet.models.deeponet.DeepONet", "branch": [8, 6, 6],
            "trunk": [1, 6, 6]}
PROSE_IO = {"vocab": {"pad_id": 0, "max_dim": 1, "size": None}}
LINEAR = {"_target_": "torch.nn.Linear", "in_features": 1, "out_features": 1}


def _prose(**options):
    from opnet.symbolic import Vocabulary

    io = {"vocab": {**PROSE_IO["vocab"], "size": len(Vocabulary(1))}}
    return ProseModule(LINEAR, io, **options)


def _modules(**options):
    return [OperatorModule(MGNO, GRID_IO, **options),
            DeepONetModule(DEEPONET, POINT_IO, **options), _prose(**options)]


def _lrs(module, steps: int, epochs: int = 4, per_epoch: int = 5) -> list[float]:
    module._trainer = SimpleNamespace(max_epochs=epochs, max_steps=-1,
                                      estimated_stepping_batches=epochs * per_epoch,
                                      num_training_batches=per_epoch, train_dataloader=None)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


def test_adamw_and_cosine_mean_the_same_for_every_family():
    """Decoupled weight decay, cosine from lr to min_lr over the run's 20 iterations."""
    runs = []
    for module in _modules(optimizer="adamw", lr=1e-3, weight_decay=0.01, fused=False,
                           scheduler={"name": "cosine", "interval": "step", "min_lr": 1e-5}):
        runs.append(_lrs(module, 21))
    expected = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * k / 20)) / 2 for k in range(21)]
    for seen in runs:
        assert seen == pytest.approx(expected, rel=1e-9)
    for module in _modules(optimizer="adamw", fused=False, scheduler="cosine"):
        module._trainer = SimpleNamespace(max_epochs=3, estimated_stepping_batches=30,
                                          max_steps=-1, num_training_batches=10,
                                          train_dataloader=None)
        opt = module.configure_optimizers()["optimizer"]
        assert type(opt) is torch.optim.AdamW, type(module)


def test_fused_null_is_each_familys_fastest_adam():
    """DeepONet: FlatAdam (one flat buffer); the others: torch's fused kernel."""
    deeponet = DeepONetModule(DEEPONET, POINT_IO, optimizer="adamw", fused=None)
    assert isinstance(deeponet.configure_optimizers(), FlatAdam)
    grid = OperatorModule(MGNO, GRID_IO, fused=None, scheduler="none")
    opt = grid.configure_optimizers()
    assert type(opt) is torch.optim.Adam and opt.defaults["fused"] is True


def test_schedules_follow_their_formulas():
    p = [torch.nn.Parameter(torch.zeros(2))]

    def run(spec, steps, total=10):
        opt = build_optimizer(p, "adam", lr=0.1, fused=False)
        sched = build_scheduler(opt, scheduler_spec(spec), 0.1, lambda interval: total)
        seen = []
        for _ in range(steps):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return seen

    assert run({"name": "inverse_time", "decay_steps": 4, "decay_rate": 0.5}, 9) == \
        pytest.approx([0.1 / (1 + 0.5 * k / 4) for k in range(9)])
    assert run({"name": "step", "step_size": 3, "gamma": 0.1}, 7) == \
        pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])
    assert run({"name": "inverse_sqrt", "warmup_steps": 4, "warmup_init_lr": 0.0}, 17) == \
        pytest.approx([inverse_sqrt_lr(k, 0.1, 4, 0.0) for k in range(17)])
    assert run({"name": "inverse_sqrt", "warmup_steps": 4, "warmup_init_lr": 0.0}, 17)[16] == \
        pytest.approx(0.05)  # lr·√(4/16)
    onecycle = run({"name": "onecycle"}, 10)
    assert onecycle[0] == pytest.approx(0.1 / 25) and max(onecycle) == pytest.approx(0.1)
    assert build_scheduler(build_optimizer(p), scheduler_spec("none"), 0.1, lambda i: 1) is None


def test_family_recipes_are_defaults_not_meanings():
    """MgNO: one-cycle per epoch with its factors; PROSE: inverse-sqrt with the module's
    warm-up; DeepONet: constant. Naming a schedule gives every family the same one."""
    assert scheduler_spec(None, OperatorModule.recipe) == {
        "name": "onecycle", "interval": "epoch", "div_factor": 2.0, "final_div_factor": 100.0,
        "pct_start": 0.2}
    assert _prose(warmup_steps=7).scheduler_spec() == {
        "name": "inverse_sqrt", "interval": "step", "warmup_steps": 7, "warmup_init_lr": 1e-7}
    assert DeepONetModule(DEEPONET, POINT_IO).scheduler_spec()["name"] == "none"
    specs = [m.scheduler_spec() for m in _modules(scheduler={"name": "step", "step_size": 3,
                                                             "interval": "step"})]
    assert specs[0] == specs[1] == specs[2] == {"name": "step", "interval": "step",
                                                "step_size": 3, "gamma": 0.5}
    # options of other schedules are ignored, so switching is one override
    assert scheduler_spec({"name": "cosine", "decay_steps": 3, "min_lr": 0.1}) == {
        "name": "cosine", "interval": "step", "min_lr": 0.1}
    assert scheduler_spec("cosine", Recipe(interval="epoch"))["interval"] == "epoch"


@pytest.mark.parametrize("options, match", [
    ({"scheduler": "cosinus"}, r"module.scheduler.name='cosinus': expected one of none, "
                               r"onecycle, cosine"),
    ({"scheduler": {"name": "cosine", "min_lrr": 0}}, r"unknown option\(s\) \['min_lrr'\]"),
    ({"scheduler": {"name": "cosine", "interval": "batch"}},
     r"module.scheduler.interval='batch': expected one of step, epoch"),
    ({"optimizer": "sgd"}, r"module.optimizer='sgd': expected one of adam, adamw"),
])
def test_unknown_names_and_options_are_refused_at_construction(options, match):
    for build in (lambda: OperatorModule(MGNO, GRID_IO, **options),
                  lambda: DeepONetModule(DEEPONET, POINT_IO, **options),
                  lambda: _prose(**options)):
        with pytest.raises(ValueError, match=match):
            build()


def test_deeponet_steps_an_epoch_schedule_once_per_epoch(tmp_path):
    """Manual optimisation: interval=epoch steps the schedule at each epoch's end, not per
    iteration (Lightning does not step schedulers of manually optimised modules)."""
    import lightning as L
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(0)
    u, s = torch.randn(20, 8, generator=gen), torch.randn(20, 5, 1, generator=gen)
    y = torch.linspace(0, 1, 5)[:, None]
    batches = [{"u": u[i:i + 5], "y": y, "s": s[i:i + 5]} for i in range(0, 20, 5)]
    module = DeepONetModule(DEEPONET, POINT_IO, lr=0.1, fused=False,
                            scheduler={"name": "step", "step_size": 1, "gamma": 0.5,
                                       "interval": "epoch"})
    module._prepared = True
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert trainer.global_step == 12  # iterations
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)


@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 5, 9, 10])
def test_onecycle_per_epoch_works_for_short_runs(epochs):
    """5 epochs x pct_start 0.2 made torch divide by a zero-length warm-up
    (ZeroDivisionError at the first step of `python train.py trainer.max_epochs=5`)."""
    module = OperatorModule(MGNO, GRID_IO, lr=1e-3)
    lrs = _lrs(module, epochs, epochs=epochs)
    assert all(math.isfinite(v) and 0 < v <= 1e-3 * (1 + 1e-9) for v in lrs)
    if epochs >= 3:
        assert max(lrs) == pytest.approx(1e-3) and lrs[0] == pytest.approx(1e-3 / 2)

