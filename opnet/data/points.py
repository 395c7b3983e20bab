"""Point data for DeepONets: sensor values, query points and labels, served as whole batches.

A DeepONet learns ``G(u)(y)`` from the values of ``u`` at m sensors and query points y.
Two dataset kinds are read:

* **point data** (the DeepONet generators): ``inputs/<field>`` [N, m], ``outputs/<field>``
  [N, Q] (one per output channel), ``coords/sensors`` [m] (or [m, d_s]) and
  ``coords/query`` [Q, d] — every function labelled at the same Q points;
* **grid data** (Burgers ``inputs/u0`` [N, 1, s], Darcy ``inputs/coeff`` [N, 1, s, s]):
  the sensors are the input grid — flattened to [N, C·s…] for a vector branch, or kept as
  the image [N, C, s, s] for a CNN branch (``branch="image"``) — and the query points are
  the output grid points [s^d, d] built from ``coords/x`` (, ``y``, ``z``) in C order, so
  label ``s[n, q, c]`` = ``outputs[n, c].ravel()[q]``.

Batches (dicts of tensors in physical units; the LightningModule normalises):

* aligned (Cartesian product): ``{"u": [B, m] or [B, C, H, W], "y": [P, d], "s": [B, P, C_out]}``
  — every function of the batch at the same points;
* unaligned (pointwise): ``{"u", "y": [B, P, d], "s": [B, P, C_out]}`` — each function at
  its own points;
* plus ``"idx"`` ([P] or [B, P], int64) = the indices of the points in the dataset's query
  set whenever P is a subset (``points_per_batch``): pointwise normalizers and POD bases
  are indexed by it;
* plus ``"labelled"`` (bool [B]) in training batches when some train functions have no
  labels (``data.labels``, ``data.unlabelled_dir``): their ``s`` rows are zeros.

Speed. DeepONets are tiny, so the data path must cost next to nothing per step: the splits
are held as tensors on the training device, and training batches are built by indexing
(no per-sample ``__getitem__``, no collate, no DataLoader workers) by :class:`PointBatches`,
a plain sized iterable that Lightning accepts as a dataloader. A full batch (``batch_size:
null``, ``points_per_batch: null``, aligned) is built once and handed out every step.
``steps_per_epoch`` groups iterations into Lightning epochs (validation, checkpoints and
epoch logs happen once per epoch), so a 50,000-iteration full-batch run is 50 epochs of
1,000 steps rather than 50,000 one-step epochs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet.data import h5
from opnet.data.base import OperatorDataModule, check_positive_or_null
from opnet.data.h5 import DatasetError
from opnet.data.point_files import (  # re-exported: they lived here
    PointSplit,
    grid_points,
    read_point_inputs,
    read_point_split,
)

__all__ = ["BRANCHES", "LAYOUTS", "EvalBatches", "PointBatches", "PointDataModule",
           "PointSplit", "auto_group", "grid_points", "read_point_inputs", "read_point_split"]

LAYOUTS = ("aligned", "unaligned")
BRANCHES = ("vector", "image")


# --------------------------------------------------------------------------------- batching
MAX_AUTO_GROUP = 50


def auto_group(iterations: int, cap: int = MAX_AUTO_GROUP) -> int:
    """Batches per Lightning step when ``data.batches_per_step`` is null: the largest divisor
    of the epoch's ``iterations`` up to ``cap`` (Lightning's per-step cost, ~0.3 ms, is then
    spread over up to 50 iterations of a tiny network)."""
    return max(k for k in range(1, min(cap, iterations) + 1) if iterations % k == 0)


class PointBatches:
    """Training batches of one epoch, built on the data's device by indexing.

    ``batch_size`` functions per batch (None: all), taken from consecutive random
    permutations (wrapping around, so every batch is full, as DeepXDE's ``Triple``);
    ``points_per_batch`` query points per function (None: all): aligned → one random subset
    without replacement shared by the batch (DeepXDE ``TripleCartesianProd`` with
    ``(b1, b2)``), unaligned → each function its own points drawn with replacement (the
    reference's random triples). ``steps``: iterations per epoch; ``group`` > 1 hands
    Lightning lists of ``group`` batches (one optimizer iteration each), so ``len`` is
    ``steps / group``; ``group=None``: :func:`auto_group`.
    """

    def __init__(self, split: PointSplit, query: Tensor, layout: str = "aligned",
                 batch_size: int | None = None, points_per_batch: int | None = None,
                 steps: int | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1, group: int | None = 1) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"data.layout='{layout}': expected one of {LAYOUTS}")
        self.split, self.query, self.layout = split, query, layout
        n, q = len(split), len(query)
        # DDP: each rank trains on its own share of the functions
        self.functions = torch.arange(rank, n, world_size, device=split.u.device)
        n_local = len(self.functions)
        self.batch_size = n_local if batch_size is None else min(int(batch_size), n_local)
        every = points_per_batch is None or (layout == "aligned" and int(points_per_batch) >= q)
        self.points = None if every else int(points_per_batch)
        iterations = int(steps) if steps else math.ceil(n_local / self.batch_size)
        self.group = auto_group(iterations) if group is None else int(group)
        if iterations % self.group:
            raise ValueError(f"data.steps_per_epoch={iterations} is not a multiple of "
                             f"data.batches_per_step={self.group}")
        self.steps = iterations // self.group
        self.generator = torch.Generator(device=split.u.device)
        self.generator.manual_seed(int(seed) + 1_000_003 * int(rank))
        self.rank = int(rank)
        self._perm, self._pos = self.functions, n_local
        self._full = self.batch_size == n_local and self.points is None
        self._fixed: dict[str, Tensor] | None = None

    def __len__(self) -> int:
        return self.steps

    def state_dict(self) -> dict[str, Any]:
        """The sampler's position (generator state, current permutation): saved in Lightning
        checkpoints, so a resumed run draws the batches the uninterrupted one would."""
        return {"generator": self.generator.get_state(), "perm": self._perm.cpu(),
                "pos": int(self._pos), "rank": self.rank}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position (sampler generator, permutation, batches served)."""
        if int(state.get("rank", 0)) != self.rank:  # DDP: checkpoints hold rank 0's sampler
            return  # this rank keeps its own seeded stream (its functions differ)
        self.generator.set_state(state["generator"])
        self._perm, self._pos = state["perm"].to(self.functions.device), int(state["pos"])

    def __iter__(self) -> Iterator[dict[str, Tensor] | list[dict[str, Tensor]]]:
        for _ in range(self.steps):
            if self.group == 1:
                yield self.next_batch()
            else:
                yield [self.next_batch() for _ in range(self.group)]

    def _functions(self) -> Tensor:
        if self.batch_size == len(self.functions):
            return self.functions
        need, parts = self.batch_size, []
        while need:
            if self._pos >= len(self._perm):
                order = torch.randperm(len(self.functions), generator=self.generator,
                                       device=self.functions.device)
                self._perm, self._pos = self.functions[order], 0
            take = self._perm[self._pos:self._pos + need]
            self._pos += len(take)
            need -= len(take)
            parts.append(take)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def next_batch(self) -> dict[str, Tensor]:
        """The next minibatch: ``u [B, m]``, ``y [P, d]`` (or ``[B, P, d]``), ``s [B, P,
        C_out]``."""
        if self._full and self._fixed is not None:
            return self._fixed
        f = self._functions()
        whole = len(f) == len(self.split)
        u = self.split.u if whole else self.split.u[f]
        s = self.split.s if whole else self.split.s[f]
        mask = self.split.labelled
        extra = {} if mask is None else {"labelled": mask if whole else mask[f]}
        q, device = len(self.query), self.query.device
        if self.points is None:
            y = self.query if self.layout == "aligned" else \
                self.query.expand(len(u), *self.query.shape)
            batch = {"u": u, "y": y, "s": s, **extra}
        elif self.layout == "aligned":
            idx = torch.randperm(q, generator=self.generator, device=device)[:self.points]
            batch = {"u": u, "y": self.query[idx], "s": s[:, idx], "idx": idx, **extra}
        else:
            idx = torch.randint(0, q, (len(u), self.points), generator=self.generator,
                                device=device)
            s = torch.gather(s, 1, idx[..., None].expand(-1, -1, s.shape[2]))
            batch = {"u": u, "y": self.query[idx], "s": s, "idx": idx, **extra}
        if self._full:
            self._fixed = batch
        return batch


class EvalBatches:
    """Aligned batches of ``batch_size`` functions (None: all) at every query point, in
    order (validation and test). A sized iterable, not a list: Lightning would read a list
    as several dataloaders."""

    def __init__(self, split: PointSplit, query: Tensor, batch_size: int | None) -> None:
        n = len(split)
        b = n if batch_size is None else max(1, int(batch_size))
        self.batches = [{"u": split.u[i:i + b], "y": query, "s": split.s[i:i + b]}
                        for i in range(0, n, b)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return iter(self.batches)


# ------------------------------------------------------------------------------- datamodule
class PointDataModule(OperatorDataModule):
    """Train/val/test splits of a dataset folder served as DeepONet batches.

    data_dir, n_train/n_val/n_test, generate, name, missing_hint: as
    :class:`~opnet.data.base.OperatorDataModule`.
    input_field: the ``inputs`` field (one); output_fields: ``outputs`` fields → C_out.
    branch: ``"vector"`` (sensor values [B, m]; grid inputs are flattened) or ``"image"``
    (grid inputs [B, C, *grid] for a CNN branch).
    layout: ``"aligned"`` or ``"unaligned"`` training batches (see module docstring);
    batch_size: functions per batch (null: all = full batch); points_per_batch: query
    points per function and batch (null: all); steps_per_epoch: optimizer iterations per
    Lightning epoch (null: one pass over the functions); batches_per_step: batches handed to
    one Lightning training step as a list (the DeepONetModule runs one iteration per batch;
    > 1 spares Lightning's per-step overhead, which dominates for tiny networks; null: the
    largest divisor of the epoch's iterations up to 50, :func:`auto_group`);
    eval_batch_size: functions per validation/test
    batch (null: all).
    sensor_stride / query_stride: keep every k-th sensor / query point (grid data: every
    k-th node along each axis).
    seed: of the batch sampler (per rank).
    labels / unlabelled_dir: few labels (see :class:`~opnet.data.base.OperatorDataModule`);
    when any train function is unlabelled the train batches carry ``"labelled"`` [B] and
    ``s`` zeros for those functions; :meth:`train_arrays` gives the labelled outputs only.
    """

    workers_refused = ("point batches are built on the training device by indexing; worker "
                       "processes cannot help")

    def __init__(self, data_dir: str, input_field: str = "u",
                 output_fields: Sequence[str] = ("s",), branch: str = "vector",
                 layout: str = "aligned", batch_size: int | None = None,
                 points_per_batch: int | None = None, steps_per_epoch: int | None = None,
                 batches_per_step: int | None = None, eval_batch_size: int | None = None,
                 sensor_stride: int = 1, query_stride: int = 1, n_train: int | None = None,
                 n_val: int | None = None, n_test: int | None = None,
                 generate: Mapping | None = None, name: str | None = None,
                 missing_hint: str | None = None, seed: int = 0, num_workers: int = 0,
                 labels: int | None = None, unlabelled_dir: str | None = None) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"data.layout='{layout}': expected one of {LAYOUTS}")
        if branch not in BRANCHES:
            raise ValueError(f"data.branch='{branch}': expected one of {BRANCHES}")
        check_positive_or_null(sensor_stride=sensor_stride, query_stride=query_stride,
                               batch_size=batch_size, points_per_batch=points_per_batch,
                               steps_per_epoch=steps_per_epoch,
                               batches_per_step=batches_per_step,
                               eval_batch_size=eval_batch_size)
        super().__init__(data_dir, n_train=n_train, n_val=n_val, n_test=n_test,
                         generate=generate, name=name, missing_hint=missing_hint, seed=seed,
                         num_workers=num_workers, labels=labels, unlabelled_dir=unlabelled_dir)
        self.input_field, self.output_fields = input_field, list(output_fields)
        self.branch, self.layout = branch, layout
        self.batch_size, self.points_per_batch = batch_size, points_per_batch
        self.steps_per_epoch, self.eval_batch_size = steps_per_epoch, eval_batch_size
        self.batches_per_step = None if batches_per_step is None else int(batches_per_step)
        self.sensor_stride, self.query_stride = int(sensor_stride), int(query_stride)
        self.splits: dict[str, PointSplit] = {}
        self.geometry: dict[str, Any] = {}
        self._device_splits: dict[tuple[str, str], PointSplit] = {}
        self.extra: Tensor | None = None  # unlabelled_dir's train inputs

    # -- files -------------------------------------------------------------------------
    def load_split(self, split: str) -> PointSplit:
        """One split as point data; every split must share the train split's sensors and
        query points (the train split's geometry is kept in ``geometry``)."""
        path = h5.split_path(self.data_dir, split)
        data, geo = read_point_split(path, self.input_field, self.output_fields, self.branch,
                                     self.sensor_stride, self.query_stride, self.limits[split])
        if split == "train":
            self.geometry = geo
            self.n_labelled(len(data))  # labels <= n_train
            if self.unlabelled_dir is not None:
                self.extra = self._unlabelled_inputs(data)
                self.n_extra = len(self.extra)
        else:
            self._check_like_train(path, data, geo)
        return data

    def _unlabelled_inputs(self, train: PointSplit) -> Tensor:
        """The train inputs of ``unlabelled_dir``, checked against the train split's input
        field, per-function shape and sensors."""
        path = self.unlabelled_path()
        try:
            u, geo = read_point_inputs(path, self.input_field, self.branch, self.sensor_stride)
        except DatasetError as err:
            raise self.unlabelled_error(str(err)) from None
        if tuple(u.shape[1:]) != tuple(train.u.shape[1:]):
            raise self.unlabelled_error(
                f"inputs/{self.input_field} has per-function shape {list(u.shape[1:])} after "
                f"sensor_stride {self.sensor_stride}, train.h5 of data_dir has "
                f"{list(train.u.shape[1:])}")
        ref = self.geometry["sensors"]
        if geo["sensors"].shape != ref.shape or not np.allclose(geo["sensors"], ref):
            raise self.unlabelled_error("its sensors (coords/sensors or the input grid) differ "
                                        "from data_dir's")
        return torch.from_numpy(u)

    def training_split(self) -> PointSplit:
        """The functions the train batches draw from: the train split, or (when any is
        unlabelled) :meth:`PointSplit.partly_labelled` with ``unlabelled_dir``'s inputs."""
        train = self.require("train")
        if not self.n_unlabelled(len(train)):
            return train
        return train.partly_labelled(self.n_labelled(len(train)), self.extra)

    def _check_like_train(self, path: Path, data: PointSplit, geo: Mapping[str, Any]) -> None:
        train, ref = self.splits["train"], self.geometry
        for what, a, b in (("inputs", data.u.shape[1:], train.u.shape[1:]),
                           ("outputs", data.s.shape[1:], train.s.shape[1:])):
            if a != b:
                raise DatasetError(f"{path}: {what} have per-function shape {list(a)}, "
                                   f"train.h5 has {list(b)}")
        for key in ("sensors", "query"):
            if geo[key].shape != ref[key].shape or not np.allclose(geo[key], ref[key]):
                raise DatasetError(f"{path}: coords ({key}) differ from train.h5's; a DeepONet "
                                   "dataset's splits must share sensors and query points")

    # -- what the LightningModule needs ------------------------------------------------
    def io_spec(self) -> dict[str, Any]:
        """Plain description of the data (shapes, fields, provenance; the coordinates are
        in :meth:`coordinates`, stored by the module as buffers)."""
        train, geo = self.require("train"), self.geometry
        return {
            "kind": "points", "input_field": self.input_field,
            "input_fields": [self.input_field], "output_fields": self.output_fields,
            "branch": self.branch, "input_shape": geo["input_shape"],
            "n_sensors": int(np.prod(geo["input_shape"])),
            "sensor_points": int(len(geo["sensors"])), "sensor_dim": int(geo["sensors"].shape[1]),
            "n_query": int(len(geo["query"])), "query_dim": int(geo["query"].shape[1]),
            "out_channels": int(train.s.shape[2]),
            "input_grid": geo["input_grid"], "output_grid": geo["output_grid"],
            "layout": self.layout,
            "dataset": self.provenance(sensor_stride=self.sensor_stride,
                                       query_stride=self.query_stride),
            **self.label_spec(),
        }

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """``(sensors [m, d_s], query [Q, d])`` of the training data (float64)."""
        self.require("train")
        return self.geometry["sensors"], self.geometry["query"]

    def train_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs [N (+ M of ``unlabelled_dir``), ...] and the labels of the labelled
        functions only [labels, Q, C_out] (possibly none), for fitting normalizers/POD."""
        train = self.require("train")
        if self.labels is None and self.extra is None:
            return train.u.numpy(), train.s.numpy()
        u = train.u if self.extra is None else torch.cat([train.u, self.extra])
        return u.numpy(), train.s[:self.n_labelled(len(train))].numpy()

    # -- loaders -----------------------------------------------------------------------
    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _on_device(self, split: str) -> tuple[PointSplit, Tensor]:
        self.require(split)
        device = self._device()
        key = (split, str(device))
        if key not in self._device_splits:
            data = self.training_split() if split == "train" else self.splits[split]
            self._device_splits[key] = data.to(device)
        query = torch.as_tensor(self.geometry["query"], dtype=torch.float32, device=device)
        return self._device_splits[key], query

    def train_dataloader(self) -> PointBatches:
        """The train batches (``batches_per_step`` DeepONet iterations per Lightning step)."""
        data, query = self._on_device("train")
        rank, world = self.rank_and_world()
        return PointBatches(data, query, self.layout, self.batch_size, self.points_per_batch,
                            self.steps_per_epoch, self.seed, rank, world, self.batches_per_step)

    def val_dataloader(self) -> EvalBatches:
        """The val split, whole or in batches of functions."""
        return EvalBatches(*self._on_device("val"), self.eval_batch_size)

    def test_dataloader(self) -> EvalBatches:
        """The test split, whole or in batches of functions."""
        return EvalBatches(*self._on_device("test"), self.eval_batch_size)
