"""Time-stepping operators from trajectory datasets: one-step pairs for training,
autoregressive rollouts for evaluation (the MgNO NS2 / FNO Navier–Stokes set-up).

A trajectory field ``outputs/<field>`` holds frames ``[N, T, *grid]`` (time as the channel
axis, as the Navier–Stokes generator writes it). Training uses every window
``frame t -> frames t+1 .. t+unroll`` of frames ``0 .. train_steps`` of every trajectory,
shuffled: with ``unroll = 1`` the one-step pairs (NS2: 1000 trajectories x 10 steps = 10,000
pairs); with more, what rollout training (:mod:`opnet.training.rollout`) unrolls over.
Windows come from one split's file only, so no frame of a validation or test trajectory is
ever a training target. Validation and test give the first frame
as ``x [B, 1, *grid]`` and the next ``rollout_steps`` frames as ``y [B, R, *grid]``; the
LightningModule rolls the one-step model out R times and reports the relative L2 of the
stacked frames per trajectory (NS2 ``test_l2_full``) and of the first step alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from opnet.data import h5
from opnet.data.datamodule import (
    GridDataModule,
    GridDataset,
    LazySplit,
    check_finite,
    chunk_size,
)
from opnet.data.h5 import DatasetError, grid_field


def windows(traj: np.ndarray, unroll: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``unroll + 1`` consecutive frames of ``traj [N, F, *grid]``,
    trajectory-major: ``x [N·W, 1, *grid]`` (frame t) and ``y [N·W, unroll, *grid]`` (frames
    t+1 .. t+unroll), ``W = F − unroll`` windows per trajectory."""
    n, frames, *grid = traj.shape
    view = np.lib.stride_tricks.sliding_window_view(traj, unroll + 1, axis=1)
    view = np.moveaxis(view, -1, 2)  # [N, W, unroll + 1, *grid]
    x = np.ascontiguousarray(view[:, :, :1]).reshape(-1, 1, *grid)
    y = np.ascontiguousarray(view[:, :, 1:]).reshape(-1, unroll, *grid)
    return x, y


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


class LazyTrajectories(LazySplit, Dataset):
    """Trajectory items read from the file one at a time (``in_memory=False``), the same
    values as the in-memory splits of :class:`TrajectoryDataModule` (frames as
    :func:`read_trajectories`): with ``pairs`` (training) item ``j * steps + t`` is frame t
    -> frame t+1 of trajectory j (t < steps); otherwise item j is frame 0 -> frames
    1..steps (a rollout). Only shapes and a first sample are read in ``__init__``."""

    def __init__(self, path: str | Path, field: str, initial_field: str | None, steps: int,
                 pairs: bool, stride: int = 1, limit: int | None = None,
                 unroll: int = 1) -> None:
        keys = ([f"inputs/{initial_field}"] if initial_field else []) + [f"outputs/{field}"]
        super().__init__(path, keys)
        self.steps, self.pairs, self.stride = int(steps), bool(pairs), int(stride)
        self.unroll = int(unroll) if pairs else self.steps
        self.per_trajectory = self.steps - self.unroll + 1 if pairs else 1
        self.layout: list[tuple[str, int, int, int]] = []  # key, first frame, frames, ndim
        frames, sizes, grids = 0, set(), set()
        with h5.open_split(self.path) as f:
            for key in keys:
                ds = grid_field(f, self.path, *key.split("/", 1))
                if len(ds):  # dtype check as read_fields does
                    h5.read_float32(self.path, ds, self._index(ds.ndim, slice(0, 1)))
                self.layout.append((key, frames, ds.shape[1], ds.ndim))
                frames += ds.shape[1]
                sizes.add(len(range(*slice(0, limit).indices(len(ds)))))
                grids.add(tuple(len(range(0, n, self.stride)) for n in ds.shape[2:]))
        if frames < self.steps + 1:
            what = f"inputs/{initial_field} + " if initial_field else ""
            raise DatasetError(f"{self.path}: {what}outputs/{field} hold {frames} frames, the "
                               f"data config needs {self.steps + 1} (train_steps/rollout_steps "
                               "+ 1)")
        if len(sizes) > 1 or len(grids) > 1:
            raise DatasetError(f"{self.path}: {' and '.join(keys)} differ in samples {sizes} "
                               f"or grid {grids}")
        self.n_trajectories, self.grid = sizes.pop(), grids.pop()

    def _index(self, ndim: int, rows: int | slice, frames: slice = slice(None)) -> tuple:
        return (rows, frames) + (slice(None, None, self.stride),) * (ndim - 2)

    def frames(self, rows: int | slice, start: int, stop: int) -> np.ndarray:
        """Frames ``start .. stop-1`` of one trajectory ``[F, *grid]`` or of a slice of
        consecutive trajectories ``[n, F, *grid]`` (float32, finite, stride applied)."""
        parts = []
        for key, first, count, ndim in self.layout:
            lo, hi = max(start, first) - first, min(stop, first + count) - first
            if lo < hi:
                parts.append(self._get(key, self._index(ndim, rows, slice(lo, hi))))
        batched = isinstance(rows, slice)
        values = np.concatenate(parts, axis=int(batched)) if len(parts) > 1 else parts[0]
        check_finite(self.path, f"the frames of {' + '.join(self.keys)}", values,
                     rows.start or 0 if isinstance(rows, slice) else rows, batched)
        return values

    def __len__(self) -> int:
        return self.n_trajectories * self.per_trajectory

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a split with {len(self)} items ({self.path})")
        i %= len(self)
        j, t = divmod(i, self.per_trajectory)
        frames = self.frames(j, t, t + self.unroll + 1)
        return {"x": torch.from_numpy(frames[:1]), "y": torch.from_numpy(frames[1:])}

    @property
    def sample_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Per-sample shapes ``(C_in, *grid)``, ``(C_out, *grid)``."""
        return (1, *self.grid), (self.unroll, *self.grid)

    @property
    def nbytes(self) -> int:
        """Bytes of the split's items in memory (float32)."""
        x, y = self.sample_shapes
        return 4 * len(self) * (int(np.prod(x)) + int(np.prod(y)))

    def chunks(self, group: str, size: int | None = None) -> Iterator[np.ndarray]:
        """The items' ``x`` (``group="inputs"``) or ``y`` (``"outputs"``) stacked, read
        ``size`` trajectories at a time (as :meth:`LazyGridDataset.chunks`)."""
        size = chunk_size((self.steps + 1, *self.grid), size)
        for start in range(0, self.n_trajectories, size):
            traj = self.frames(slice(start, min(start + size, self.n_trajectories)), 0,
                               self.steps + 1)
            if self.pairs:
                part = windows(traj, self.unroll)[0 if group == "inputs" else 1]
                yield part.reshape(-1, 1, *self.grid)  # frames: the normalisers' samples
            else:
                yield traj[:, :1] if group == "inputs" else traj[:, 1:]


class TrajectoryDataModule(GridDataModule):
    """One-step pairs (train) and rollouts (val/test) from trajectory files.

    ``trajectory_field``: the ``outputs`` field with frames ``[N, T, *grid]``;
    ``initial_field``: an ``inputs`` field prepended as frame 0 (null: the trajectory's
    own first frame starts it, as FNO's ``u``); ``train_steps``: pairs per trajectory;
    ``rollout_steps``: frames predicted autoregressively in validation/test; ``unroll``: frames
    each training item predicts (windows of ``unroll + 1`` frames; 1: one-step pairs). Other
    arguments as :class:`GridDataModule` (its ``input_fields``/``output_fields`` are set
    to the trajectory field; ``in_memory=False`` reads the pairs and rollouts one item at a
    time from the file, :class:`LazyTrajectories`).
    """

    def __init__(self, data_dir: str, trajectory_field: str = "w",
                 initial_field: str | None = None, train_steps: int = 10,
                 rollout_steps: int = 10, unroll: int = 1, **kwargs) -> None:
        for key in ("input_fields", "output_fields"):
            kwargs.pop(key, None)
        for key in ("labels", "unlabelled_dir"):
            if kwargs.get(key) is not None:
                raise ValueError(f"data.{key}={kwargs[key]!r}: trajectory data cannot leave "
                                 "samples unlabelled (its inputs are frames of its outputs); "
                                 "expected null")
        super().__init__(data_dir, input_fields=[trajectory_field],
                         output_fields=[trajectory_field], **kwargs)
        for key, value in (("train_steps", train_steps), ("rollout_steps", rollout_steps),
                           ("unroll", unroll)):
            if int(value) < 1:
                raise ValueError(f"data.{key}={value}: expected an integer >= 1")
        if int(unroll) > int(train_steps):
            raise ValueError(f"data.unroll={unroll}: expected at most data.train_steps="
                             f"{train_steps} (windows of unroll + 1 of the frames 0..train_steps)")
        self.trajectory_field, self.initial_field = trajectory_field, initial_field
        self.train_steps, self.rollout_steps = int(train_steps), int(rollout_steps)
        self.unroll = int(unroll)

    def _trajectories(self, split: str, frames: int) -> np.ndarray:
        return read_trajectories(h5.split_path(self.data_dir, split), self.trajectory_field,
                                 self.initial_field, frames, self.stride, self.limits[split])

    def load_split(self, split: str) -> GridDataset | LazyTrajectories:
        """One-step pairs (train) or rollouts (val/test), in memory or read lazily."""
        if self.in_memory is not True:
            lazy = LazyTrajectories(
                h5.split_path(self.data_dir, split), self.trajectory_field, self.initial_field,
                self.train_steps if split == "train" else self.rollout_steps, split == "train",
                self.stride, self.limits[split], self.unroll)
            if not self.keep_in_memory(lazy.nbytes):
                return lazy
        if split == "train":
            return GridDataset(*windows(self._trajectories(split, self.train_steps + 1),
                                        self.unroll))
        traj = self._trajectories(split, self.rollout_steps + 1)
        return GridDataset(np.ascontiguousarray(traj[:, :1]), np.ascontiguousarray(traj[:, 1:]))

    def train_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs and targets for fitting normalizers, one frame per sample."""
        x, y = super().train_arrays()
        return x, y.reshape(-1, 1, *y.shape[2:])

    def _stat_sources(self, group: str) -> list:
        """As :class:`GridDataModule`'s, the targets of a window one frame per sample (the
        normalizers see frames, whatever ``unroll``)."""
        sources = super()._stat_sources(group)
        return [src.reshape(-1, 1, *src.shape[2:]) if isinstance(src, torch.Tensor) else src
                for src in sources]

    def io_spec(self) -> dict:
        """The data description the module and checkpoint keep: channels, grid, normalizers,
        fields, rollout steps, provenance."""
        spec = super().io_spec()
        spec["out_channels"] = 1  # one frame per step; evaluation rolls out
        spec["rollout_steps"], spec["unroll"] = self.rollout_steps, self.unroll
        per_trajectory = self.train_steps - self.unroll + 1
        spec["dataset"].update(trajectory_field=self.trajectory_field,
                               initial_field=self.initial_field, train_steps=self.train_steps,
                               n_trajectories=len(self.splits["train"]) // per_trajectory)
        return spec

