"""Time-stepping operators from trajectory datasets: one-step pairs for training,
autoregressive rollouts for evaluation (the MgNO NS2 / FNO Navier–Stokes set-up).

A trajectory field ``outputs/<field>`` holds frames ``[N, T, *grid]`` (time as the channel
axis, as the Navier–Stokes generator writes it). Training uses every pair
``frame t -> frame t+1`` for ``t < train_steps`` of every trajectory, shuffled (NS2:
1000 trajectories x 10 steps = 10,000 pairs). Validation and test give the first frame
as ``x [B, 1, *grid]`` and the next ``rollout_steps`` frames as ``y [B, R, *grid]``; the
LightningModule rolls the one-step model out R times and reports the relative L2 of the
stacked frames per trajectory (NS2 ``test_l2_full``) and of the first step alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opnet.data import h5
from opnet.data.datamodule import GridDataModule, GridDataset
from opnet.data.h5 import DatasetError


def read_trajectories(path: str | Path, field: str, initial_field: str | None, frames: int,
                      stride: int = 1, limit: int | None = None) -> np.ndarray:
    """Frames ``[N, frames, *grid]`` float32 of ``outputs/<field>``, optionally preceded by
    ``inputs/<initial_field>`` (the initial condition) as frame 0."""
    parts = []
    if initial_field:
        parts.append(h5.read_fields(path, "inputs", [initial_field], stride, limit))
    parts.append(h5.read_fields(path, "outputs", [field], stride, limit))
    traj = np.concatenate(parts, axis=1)
    if traj.shape[1] < frames:
        what = f"inputs/{initial_field} + " if initial_field else ""
        raise DatasetError(f"{path}: {what}outputs/{field} hold {traj.shape[1]} frames, the "
                           f"data config needs {frames} (train_steps/rollout_steps + 1)")
    return traj[:, :frames]


class TrajectoryDataModule(GridDataModule):
    """One-step pairs (train) and rollouts (val/test) from trajectory files.

    ``trajectory_field``: the ``outputs`` field with frames ``[N, T, *grid]``;
    ``initial_field``: an ``inputs`` field prepended as frame 0 (null: the trajectory's
    own first frame starts it, as FNO's ``u``); ``train_steps``: pairs per trajectory;
    ``rollout_steps``: frames predicted autoregressively in validation/test. Other
    arguments as :class:`GridDataModule` (its ``input_fields``/``output_fields`` are set
    to the trajectory field).
    """

    def __init__(self, data_dir: str, trajectory_field: str = "w",
                 initial_field: str | None = None, train_steps: int = 10,
                 rollout_steps: int = 10, **kwargs) -> None:
        for key in ("input_fields", "output_fields"):
            kwargs.pop(key, None)
        super().__init__(data_dir, input_fields=[trajectory_field],
                         output_fields=[trajectory_field], **kwargs)
        for key, value in (("train_steps", train_steps), ("rollout_steps", rollout_steps)):
            if int(value) < 1:
                raise ValueError(f"data.{key}={value}: expected an integer >= 1")
        self.trajectory_field, self.initial_field = trajectory_field, initial_field
        self.train_steps, self.rollout_steps = int(train_steps), int(rollout_steps)

    def _trajectories(self, split: str, frames: int) -> np.ndarray:
        return read_trajectories(h5.split_path(self.data_dir, split), self.trajectory_field,
                                 self.initial_field, frames, self.stride, self.limits[split])

    def setup(self, stage: str | None = None) -> None:
        if self.missing_splits():
            self.prepare_data()
        need = {"fit": ["train", "val"], "validate": ["train", "val"],
                "test": ["train", "test"], "predict": ["train", "test"]}.get(stage or "", h5.SPLITS)
        for split in need:
            if split in self.splits:
                continue
            if split == "train":
                traj = self._trajectories(split, self.train_steps + 1)
                x = traj[:, :-1].reshape(-1, 1, *traj.shape[2:])
                y = traj[:, 1:].reshape(-1, 1, *traj.shape[2:])
                self.splits[split] = GridDataset(np.ascontiguousarray(x), np.ascontiguousarray(y))
            else:
                traj = self._trajectories(split, self.rollout_steps + 1)
                self.splits[split] = GridDataset(np.ascontiguousarray(traj[:, :1]),
                                                 np.ascontiguousarray(traj[:, 1:]))

    def io_spec(self) -> dict:
        spec = super().io_spec()
        spec["out_channels"] = 1  # one frame per step; evaluation rolls out
        spec["rollout_steps"] = self.rollout_steps
        spec["dataset"].update(trajectory_field=self.trajectory_field,
                               initial_field=self.initial_field, train_steps=self.train_steps,
                               n_trajectories=len(self.splits["train"]) // self.train_steps)
        return spec

