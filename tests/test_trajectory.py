"""Time-stepping data: one-step pairs for training, rollouts (NS2 test_l2_full) for evaluation."""

import math

import numpy as np
import pytest
import torch
from conftest import write_trajectories

from opnet.data import h5
from opnet.data.h5 import DatasetError
from opnet.data.trajectory import TrajectoryDataModule
from opnet.training.module import OperatorModule

DECAY = 0.9  # every synthetic trajectory is w_t = DECAY**t * w_0


@pytest.fixture
def traj_dir(tmp_path):
    return write_trajectories(tmp_path / "traj", decay=DECAY)


def test_train_split_is_every_consecutive_pair(traj_dir):
    dm = TrajectoryDataModule(str(traj_dir), trajectory_field="w", train_steps=3,
                              rollout_steps=4)
    dm.setup("fit")
    train, val = dm.splits["train"], dm.splits["val"]
    assert train.x.shape == (6 * 3, 1, 8, 8) and train.y.shape == (6 * 3, 1, 8, 8)
    torch.testing.assert_close(train.y, DECAY * train.x)  # each pair is one step
    assert val.x.shape == (6, 1, 8, 8) and val.y.shape == (6, 4, 8, 8)
    torch.testing.assert_close(val.y[:, 3:4], DECAY**4 * val.x)
    io = dm.io_spec()
    assert io["out_channels"] == 1 and io["rollout_steps"] == 4
    assert io["dataset"]["n_trajectories"] == 6


def test_initial_field_is_frame_zero(traj_dir):
    dm = TrajectoryDataModule(str(traj_dir), trajectory_field="w", initial_field="w0",
                              train_steps=5, rollout_steps=5)
    dm.setup("fit")
    w0 = h5.read_fields(traj_dir / "val.h5", "inputs", ["w0"])
    np.testing.assert_array_equal(dm.splits["val"].x.numpy(), w0)
    assert len(dm.splits["train"]) == 6 * 5


def test_too_few_frames_is_named(traj_dir):
    dm = TrajectoryDataModule(str(traj_dir), trajectory_field="w", train_steps=5,
                              rollout_steps=2)
    with pytest.raises(DatasetError, match=r"outputs/w hold 5 frames, the data config needs 6"):
        dm.setup("fit")


def test_rollout_metric_is_the_stacked_relative_error(traj_dir):
    """The identity operator predicts w_k = w_0 for every k; the error of the stacked frames
    is sqrt(Σ(1−d^k)²)/sqrt(Σd^2k), k = 1..R, and the first step alone (1−d)/d."""
    steps = 4
    dm = TrajectoryDataModule(str(traj_dir), trajectory_field="w", train_steps=2,
                              rollout_steps=steps)
    dm.setup("fit")
    io = {**dm.io_spec(), "in_normalizer": "none", "out_normalizer": "none"}
    module = OperatorModule({"_target_": "torch.nn.Identity"}, io, loss="rel_l2")
    logged = {}
    module.log_dict = lambda metrics, **kw: logged.update({k: float(v) for k, v in metrics.items()})
    batch = {"x": dm.splits["val"].x, "y": dm.splits["val"].y}
    module.evaluate_batch(batch, "val")
    k = np.arange(1, steps + 1)
    want = math.sqrt(np.sum((1 - DECAY**k) ** 2)) / math.sqrt(np.sum(DECAY ** (2 * k)))
    assert logged["val/rel_l2"] == pytest.approx(want, rel=1e-5)
    assert logged["val/rel_l2_step1"] == pytest.approx((1 - DECAY) / DECAY, rel=1e-5)
