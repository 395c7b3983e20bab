"""Rollout training (issue 20, opnet/training/rollout.py): the unrolled loss against a hand
computation, the pushforward gradient, recomputation, input noise, the curriculum, windows of
k + 1 frames (no frame of another split, none past train_steps), the module's use of it and
resume of a run from before the option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_train, write_trajectories

from opnet.data import h5
from opnet.data.trajectory import TrajectoryDataModule, windows
from opnet.training.base import ConfigError
from opnet.training.module import OperatorModule
from opnet.training.resume import changes
from opnet.training.rollout import RolloutTraining, unrolled_loss

DECAY = 0.9


def mse(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.mean((p - t) ** 2)


def _linear_case():
    """step(u) = a·u with a = 0.8; x, targets y1 = 0.9 x, y2 = 0.81 x, y3 = 0.729 x."""
    torch.manual_seed(0)
    a = torch.tensor(0.8, requires_grad=True)
    x = torch.randn(3, 1, 4, 4)
    y = torch.cat([DECAY ** t * x for t in (1, 2, 3)], dim=1)
    return a, x, y


def test_two_step_loss_and_gradient_match_the_hand_computation():
    """k = 2: L = ½(mean((a x − 0.9 x)²) + mean((a² x − 0.81 x)²)), dL/da by hand."""
    a, x, y = _linear_case()
    loss = unrolled_loss(lambda u: a * u, x, y, 2, mse)
    m = float(torch.mean(x ** 2))
    av = 0.8
    want = 0.5 * ((av - 0.9) ** 2 * m + (av ** 2 - 0.81) ** 2 * m)
    assert float(loss) == pytest.approx(want, rel=1e-6)
    loss.backward()
    grad = 0.5 * (2 * (av - 0.9) * m + 2 * (av ** 2 - 0.81) * 2 * av * m)
    assert float(a.grad) == pytest.approx(grad, rel=1e-6)
    a.grad = None  # k = 1 is the one-step loss
    assert float(unrolled_loss(lambda u: a * u, x, y, 1, mse)) == pytest.approx(
        (av - 0.9) ** 2 * m, rel=1e-6)


def test_pushforward_sends_no_gradient_into_the_first_steps():
    """k = 3 with pushforward: L = mean((a·u2 − y3)²) with u2 = a² x held constant, so
    dL/da = 2 mean((a u2 − y3) u2) — not the full unroll's gradient."""
    a, x, y = _linear_case()
    loss = unrolled_loss(lambda u: a * u, x, y, 3, mse, pushforward=True)
    loss.backward()
    u2 = 0.8 ** 2 * x
    assert float(loss) == pytest.approx(float(mse(0.8 * u2, y[:, 2:3])), rel=1e-6)
    want = float(2 * torch.mean((0.8 * u2 - y[:, 2:3]) * u2))
    assert float(a.grad) == pytest.approx(want, rel=1e-5)
    b = torch.tensor(0.8, requires_grad=True)
    unrolled_loss(lambda u: b * u, x, y, 3, lambda p, t: mse(p, t)).backward()
    assert abs(float(b.grad) - want) > 0.1 * abs(want)  # full BPTT differs


def test_recomputation_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.GELU(),
                              torch.nn.Conv2d(4, 1, 3, padding=1))
    x, y = torch.randn(2, 1, 8, 8), torch.randn(2, 3, 8, 8)
    grads = []
    for checkpoint in (False, True):
        net.zero_grad()
        loss = unrolled_loss(net, x, y, 3, mse, checkpoint=checkpoint)
        loss.backward()
        grads.append((float(loss), [p.grad.clone() for p in net.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for g0, g1 in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(g0, g1)


def test_input_noise_is_relative_to_each_frame():
    """noise=0.1 on frames of std 1 and 100: the perturbation's std is 0.1 and 10."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 64, 64) * torch.tensor([1.0, 100.0]).view(2, 1, 1, 1)
    seen = {}

    def step(u):
        seen["u"] = u
        return u

    unrolled_loss(step, x, x, 1, mse, noise=0.1)
    spread = (seen["u"] - x).flatten(1).std(dim=1) / x.flatten(1).std(dim=1)
    torch.testing.assert_close(spread, torch.full((2,), 0.1), rtol=0.05, atol=0)


def test_curriculum_and_option_errors():
    plan = RolloutTraining.from_options({"steps": 4, "curriculum": [[0, 1], [3, 2], [6, 4]]},
                                        unroll=4)
    assert [plan.steps_at(e) for e in (0, 2, 3, 5, 6, 20)] == [1, 1, 2, 2, 4, 4]
    assert not RolloutTraining.from_options(None).active
    for options, match in (({"steps": 0}, "module.rollout.steps=0"),
                           ({"steps": 2, "curriculum": [[0, 3]]}, "module.rollout.curriculum"),
                           ({"steps": 2, "curriculum": [[2, 1], [1, 2]]}, "increasing"),
                           ({"noise": -1}, "module.rollout.noise"),
                           ({"pushfoward": True}, "module.rollout.pushfoward: unknown key")):
        with pytest.raises(ValueError, match=match):
            RolloutTraining.from_options(options, unroll=4)
    with pytest.raises(ValueError, match=r"set data.unroll=3"):
        RolloutTraining.from_options({"steps": 3}, unroll=1)


# -- windows ---------------------------------------------------------------------------------
def test_windows_are_consecutive_frames_of_one_trajectory():
    traj = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)  # frame value = 15 j + 3 t + i
    x, y = windows(traj, 2)
    assert x.shape == (2 * 3, 1, 3) and y.shape == (2 * 3, 2, 3)
    for item in range(6):
        j, t = divmod(item, 3)
        np.testing.assert_array_equal(x[item, 0], traj[j, t])
        np.testing.assert_array_equal(y[item], traj[j, t + 1:t + 3])


@pytest.mark.parametrize("in_memory", [True, False])
def test_training_windows_come_from_the_train_split_up_to_train_steps(tmp_path, in_memory):
    """unroll=2, train_steps=3 of 5 frames: 2 windows per trajectory, frames 0..3 only, all of
    them train.h5's (the val/test trajectories have other fields); lazy = in memory."""
    folder = write_trajectories(tmp_path / "traj", n=4, frames=5, decay=DECAY)
    dm = TrajectoryDataModule(str(folder), trajectory_field="w", train_steps=3,
                              rollout_steps=2, unroll=2, in_memory=in_memory)
    dm.setup("fit")
    train = dm.splits["train"]
    items = [train[i] for i in range(len(train))]
    assert len(items) == 4 * 2
    frames = h5.read_fields(h5.split_path(folder, "train"), "outputs", ["w"])  # [4, 5, 8, 8]
    for item, (x, y) in enumerate((it["x"], it["y"]) for it in items):
        j, t = divmod(item, 2)
        np.testing.assert_array_equal(x.numpy()[0], frames[j, t])
        np.testing.assert_array_equal(y.numpy(), frames[j, t + 1:t + 3])
        assert t + 2 <= 3  # never a frame past train_steps
    others = np.concatenate([h5.read_fields(h5.split_path(folder, s), "outputs", ["w"])
                             for s in ("val", "test")])
    assert not np.isin(frames[:, :4].ravel(), others.ravel()).any()
    assert dm.io_spec()["unroll"] == 2 and dm.io_spec()["dataset"]["n_trajectories"] == 4
    with pytest.raises(ValueError, match="data.unroll=4: expected at most data.train_steps=3"):
        TrajectoryDataModule(str(folder), trajectory_field="w", train_steps=3, unroll=4)


# -- the module -------------------------------------------------------------------------------
def _module(tmp_path, rollout=None, unroll=1):
    folder = write_trajectories(tmp_path / "traj", n=4, frames=5, decay=DECAY)
    dm = TrajectoryDataModule(str(folder), trajectory_field="w", train_steps=4,
                              rollout_steps=4, unroll=unroll)
    dm.setup("fit")
    io = {**dm.io_spec(), "in_normalizer": "none", "out_normalizer": "none"}
    torch.manual_seed(0)
    model = {"_target_": "opnet.models.mgno.MgNO", "width": 4, "layers": 1,
             "smoothing": [[1, 0], [1, 0]], "padding": "circular"}
    return OperatorModule(model, io, loss="rel_l2", rollout=rollout), dm


def test_module_trains_on_k_step_windows(tmp_path):
    """steps=2 on unroll=2 windows: the module's loss is the two-step loss of its operator;
    with k = 1 (or the default) it is the one-step loss of before."""
    module, dm = _module(tmp_path, {"steps": 2}, unroll=2)
    module.log = lambda *a, **k: None
    module.trainer = type("T", (), {"world_size": 1, "current_epoch": 0})()
    batch = {"x": dm.splits["train"].x[:4], "y": dm.splits["train"].y[:4]}
    from opnet.training.losses import get_loss, reduce

    def loss(p, t):
        return reduce(get_loss("rel_l2")(p, t), "sum")

    want = unrolled_loss(module.operator, batch["x"], batch["y"], 2, loss)
    torch.testing.assert_close(module.training_step(batch, 0), want)
    one = unrolled_loss(module.operator, batch["x"], batch["y"], 1, loss)
    torch.testing.assert_close(one, loss(module.operator(batch["x"]), batch["y"][:, :1]))


def test_rollout_on_data_that_do_not_step_is_refused(tmp_path):
    module, dm = _module(tmp_path)
    io = {**dm.io_spec(), "rollout_steps": None}
    with pytest.raises(ConfigError, match="rollout training needs time-stepping"):
        OperatorModule(dict(module.hparams.model), io, loss="rel_l2", rollout={"steps": 2})
    with pytest.raises(ConfigError, match="set data.unroll=2"):
        _module(tmp_path / "again", {"steps": 2}, unroll=1)


def test_config_wires_the_window_to_the_unroll_and_old_runs_resume():
    cfg = compose_train("experiment=mgno_navier_stokes_cpu", "module.rollout.steps=3")
    assert cfg.data.unroll == 3 and cfg.module.rollout.pushforward is False
    assert compose_train("experiment=mgno_navier_stokes_cpu").data.unroll == 1
    saved = {"module": {"lr": 1e-3}, "data": {"train_steps": 10}}
    now = {"module": {"lr": 1e-3, "rollout": {"steps": 1, "curriculum": None,
                                               "pushforward": False, "noise": 0.0,
                                               "checkpoint": False}},
           "data": {"train_steps": 10, "unroll": 1}}
    assert changes(saved, now) == []
    now["module"]["rollout"]["steps"] = 2
    assert [c[0] for c in changes(saved, now)] == ["module.rollout.steps"]


def test_navier_stokes_experiment_trains_with_a_curriculum_and_pushforward(tmp_path):
    """The whole path: train.py's config with k growing 1 -> 3, pushforward and noise, on
    synthetic 32x32 trajectories: finite losses, the unroll logged, a test rollout."""
    from opnet.training.job import train

    folder = write_trajectories(tmp_path / "ns", n=4, frames=11, s=32)
    cfg = compose_train("experiment=mgno_navier_stokes_cpu", f"data.data_dir={folder}",
                        "data.generate=null", "data.batch_size=8", "trainer.max_epochs=3",
                        "module.rollout.steps=3", "module.rollout.curriculum=[[0,1],[2,3]]",
                        "module.rollout.pushforward=true", "module.rollout.noise=0.01",
                        "logger=none", f"paths.output_dir={tmp_path / 'run'}")
    metrics = train(cfg)
    assert np.isfinite(metrics["test/rel_l2"])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["hyper_parameters"]["rollout"]["steps"] == 3


def test_pushforward_draws_the_unrolled_steps_per_batch():
    """pushforward: j ~ U{1..k} per batch (j = 1: the one-step loss stays in the mix);
    without it every batch unrolls k."""
    torch.manual_seed(0)
    plan = RolloutTraining.from_options({"steps": 3, "pushforward": True}, unroll=3)
    counts = np.bincount([plan.steps_for_batch(0) for _ in range(3000)], minlength=4)
    assert counts[0] == 0 and all(900 < c < 1100 for c in counts[1:])
    assert {RolloutTraining.from_options({"steps": 3}, unroll=3).steps_for_batch(5)
            for _ in range(20)} == {3}
