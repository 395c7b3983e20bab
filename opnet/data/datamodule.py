"""Grid datasets from opnet HDF5 files, and the LightningDataModule that serves them.

Batches are dicts ``{"x": [B, C_in, *grid], "y": [B, C_out, *grid]}`` in physical units;
the LightningModule owns normalisation. A split is held in memory (:class:`GridDataset`) or
read one sample at a time from its file (:class:`LazyGridDataset`, for data larger than
memory): ``GridDataModule(in_memory=...)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from opnet.data import h5
from opnet.data.base import OperatorDataModule, ensure_dataset
from opnet.data.h5 import DatasetError
from opnet.data.loaders import EpochShuffle, ResumableLoader
from opnet.data.normalizers import RunningMoments, gaussian_stats
from opnet.memory import available_memory

__all__ = ["AUTO_MEMORY_FRACTION", "AUTO_MEMORY_UNKNOWN", "STATS_CHUNK", "STATS_CHUNK_BYTES",
           "EpochShuffle", "GridDataModule", "GridDataset", "LazyGridDataset", "LazySplit",
           "ResumableLoader", "available_memory", "check_finite", "chunk_size",
           "ensure_dataset"]  # EpochShuffle, ResumableLoader, available_memory, ensure_dataset:
# re-exported from their homes (opnet.data.loaders, opnet.memory, opnet.data.base)

# in_memory=None: a split is loaded whole when its inputs + outputs (float32, after stride)
# take at most this fraction of the memory available to the process (available_memory()).
AUTO_MEMORY_FRACTION = 0.25
AUTO_MEMORY_UNKNOWN = 8 << 30  # bytes assumed available where the system does not say
STATS_CHUNK = 64  # samples per read when streaming normalizer statistics over a lazy split
STATS_CHUNK_BYTES = 32 << 20  # ... and at most this many bytes of float32 per read


class GridDataset(Dataset):
    """In-memory pairs ``x [N, C_in, *grid]``, ``y [N, C_out, *grid]`` (float32)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise DatasetError(f"inputs have {len(x)} samples but outputs {len(y)}")
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    @classmethod
    def from_file(cls, path: str | Path, input_fields: Sequence[str],
                  output_fields: Sequence[str], stride: int = 1,
                  limit: int | None = None) -> GridDataset:
        """The pairs of a split file: ``input_fields``/``output_fields`` concatenated on the
        channel axis, every grid axis subsampled by ``stride``, the first ``limit`` samples."""
        return cls(h5.read_fields(path, "inputs", input_fields, stride, limit),
                   h5.read_fields(path, "outputs", output_fields, stride, limit))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}

    @property
    def sample_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Per-sample shapes ``(C_in, *grid)``, ``(C_out, *grid)``."""
        return tuple(self.x.shape[1:]), tuple(self.y.shape[1:])


def check_finite(path: Path, what: str, values: np.ndarray, first: int, batched: bool) -> None:
    """Raise a :class:`DatasetError` naming the first sample of ``values`` (one sample, or
    ``[n, ...]`` samples from ``first`` on when ``batched``) that holds NaN/Inf."""
    if np.isfinite(values).all():
        return
    rows = values.reshape(len(values) if batched else 1, -1)
    sample = first + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
    raise DatasetError(f"{path}: {what} hold NaN/Inf in sample {sample}, expected finite "
                       "values: the file is corrupt (or not made by opnet's generators); "
                       f"{h5.REGENERATE}")


class LazySplit:
    """A split file read on demand: it holds the path, never an open handle. Each process
    opens the file at its first read and keeps the handle with its pid, so a DataLoader
    worker (forked, or spawned: the object pickles without the handle, h5py handles cannot
    be pickled, PyTorch #11929) opens its own."""

    def __init__(self, path: str | Path, keys: Sequence[str]) -> None:
        self.path, self.keys = Path(path), list(keys)
        self._handle: tuple[int, h5py.File, dict[str, h5py.Dataset]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}

    def _datasets(self) -> dict[str, h5py.Dataset]:
        pid = os.getpid()
        if self._handle is None or self._handle[0] != pid:  # first read in this process
            f = h5.open_split(self.path)
            self._handle = (pid, f, {key: f[key] for key in self.keys})
        return self._handle[2]

    def close(self) -> None:
        """Close this process's handle (the next read opens the file again)."""
        if self._handle is not None and self._handle[0] == os.getpid():
            self._handle[1].close()
        self._handle = None

    def _get(self, key: str, index: tuple) -> np.ndarray:
        """``key[index]`` as float32 (HDF5's errors on a damaged file named as such)."""
        try:
            return np.asarray(self._datasets()[key][index], dtype=np.float32)
        except (OSError, RuntimeError, KeyError) as err:
            raise h5.corrupt_error(self.path, err) from err


class LazyGridDataset(LazySplit, Dataset):
    """The pairs of one split file read one sample per item (``in_memory=False``): the same
    values, float32 ``x [C_in, *grid]`` / ``y [C_out, *grid]``, as :class:`GridDataset` of
    :func:`h5.read_fields` (fields concatenated on the channel axis, ``::stride`` on every
    grid axis, the first ``limit`` samples), without ever reading the whole file: only the
    shapes (and one sample, for the dtype check) are read in ``__init__``; see
    :class:`LazySplit` for worker processes.
    """

    def __init__(self, path: str | Path, input_fields: Sequence[str],
                 output_fields: Sequence[str], stride: int = 1, limit: int | None = None) -> None:
        # no output fields: the inputs alone (unlabelled data; y_shape None, read inputs only)
        self.fields = {"inputs": list(input_fields), "outputs": list(output_fields)}
        if not output_fields:
            del self.fields["outputs"]
        super().__init__(path, [f"{g}/{n}" for g, names in self.fields.items() for n in names])
        self.stride = int(stride)
        shapes, sizes = {}, {}
        with h5.open_split(self.path) as f:
            for group, names in self.fields.items():
                channels, grid = 0, None
                for name in names:
                    ds = h5.grid_field(f, self.path, group, name)
                    if len(ds):  # dtype check (and a first sample) as read_fields does
                        h5.read_float32(self.path, ds, self._index(ds.ndim, slice(0, 1)))
                    sizes[f"{group}/{name}"] = len(range(*slice(0, limit).indices(len(ds))))
                    here = tuple(len(range(0, n, self.stride)) for n in ds.shape[2:])
                    if grid is not None and here != grid:
                        raise DatasetError(f"{self.path}: field '{group}/{name}' has grid "
                                           f"{here} after stride {self.stride}, the other "
                                           f"{group} fields {grid}")
                    channels, grid = channels + ds.shape[1], here
                shapes[group] = (channels, *grid)
            self._ndim = {key: f[key].ndim for key in self.keys}
        if len(set(sizes.values())) > 1:
            raise DatasetError(f"{self.path}: fields hold different numbers of samples {sizes}")
        self.n = next(iter(sizes.values()))
        self.x_shape, self.y_shape = shapes["inputs"], shapes.get("outputs")

    def _index(self, ndim: int, rows: int | slice) -> tuple:
        return (rows, slice(None)) + (slice(None, None, self.stride),) * (ndim - 2)

    def read(self, group: str, rows: int | slice) -> np.ndarray:
        """``"inputs"`` or ``"outputs"`` of one sample ``[C, *grid]`` or of a slice of
        consecutive samples ``[n, C, *grid]`` (float32, finite, stride applied)."""
        keys = [f"{group}/{name}" for name in self.fields[group]]
        parts = [self._get(key, self._index(self._ndim[key], rows)) for key in keys]
        batched = isinstance(rows, slice)
        values = np.concatenate(parts, axis=int(batched)) if len(parts) > 1 else parts[0]
        check_finite(self.path, f"{group} {self.fields[group]}", values,
                     rows.start or 0 if isinstance(rows, slice) else rows, batched)
        return values

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"sample {i} of a split with {self.n} samples ({self.path})")
        i %= self.n
        return {"x": torch.from_numpy(self.read("inputs", i)),
                "y": torch.from_numpy(self.read("outputs", i))}

    @property
    def sample_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Per-sample shapes ``(C_in, *grid)``, ``(C_out, *grid)``."""
        return self.x_shape, self.y_shape

    @property
    def nbytes(self) -> int:
        """Bytes of the split's inputs + outputs in memory (float32)."""
        y = 0 if self.y_shape is None else int(np.prod(self.y_shape))
        return 4 * self.n * (int(np.prod(self.x_shape)) + y)

    def chunks(self, group: str, size: int | None = None,
               stop: int | None = None) -> Iterator[np.ndarray]:
        """``group`` (``"inputs"``/``"outputs"``) of ``size`` (default ``STATS_CHUNK``)
        consecutive samples at a time (fewer where that would exceed ``STATS_CHUNK_BYTES``),
        float32 ``[n, C, *grid]``; the first ``stop`` samples (None: all)."""
        shape = self.x_shape if group == "inputs" else self.y_shape
        size, stop = chunk_size(shape, size), self.n if stop is None else min(stop, self.n)
        for start in range(0, stop, size):
            yield self.read(group, slice(start, min(start + size, stop)))


def inputs_at(source: GridDataset | LazyGridDataset | Tensor, i: int) -> Tensor:
    """The inputs ``[C_in, *grid]`` of sample ``i`` of a split (or of an inputs tensor)."""
    if isinstance(source, Tensor):
        return source[i]
    if isinstance(source, GridDataset):
        return source.x[i]
    return torch.from_numpy(source.read("inputs", i))


class PartlyLabelled(Dataset):
    """A train split trained with few labels: items ``{"x", "y", "labelled"}``; sample
    ``i < labels`` of ``data`` as it is (``labelled`` True), the rest of ``data`` and then the
    inputs ``extra`` (``[M, C_in, *grid]`` or an inputs-only lazy split) with ``y`` zeros
    (``labelled`` False). ``len = len(data) + M``."""

    def __init__(self, data: GridDataset | LazyGridDataset, labels: int,
                 extra: Tensor | LazyGridDataset | None = None) -> None:
        self.data, self.labels, self.extra = data, int(labels), extra
        self.n_own = len(data)
        self.n = self.n_own + (0 if extra is None else len(extra))
        self.zeros = torch.zeros(data.sample_shapes[1])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"sample {i} of a train split with {self.n} samples")
        i %= self.n
        if i < self.labels:
            return {**self.data[i], "labelled": torch.tensor(True)}
        x = inputs_at(self.data, i) if i < self.n_own else inputs_at(self.extra, i - self.n_own)
        return {"x": x, "y": self.zeros, "labelled": torch.tensor(False)}


def chunk_size(sample_shape: Sequence[int], size: int | None = None) -> int:
    """``size`` samples (default ``STATS_CHUNK``), fewer where they would take more than
    ``STATS_CHUNK_BYTES`` as float32."""
    size = STATS_CHUNK if size is None else size
    return max(1, min(size, STATS_CHUNK_BYTES // (4 * int(np.prod(sample_shape)) or 1)))


class GridDataModule(OperatorDataModule):
    """Train/val/test splits of a dataset folder (``train.h5``, ``val.h5``, ``test.h5``)
    served as grid batches.

    data_dir, n_train/n_val/n_test, generate, name, missing_hint, seed, num_workers: as
    :class:`~opnet.data.base.OperatorDataModule`. ``stride`` subsamples every grid axis
    (``::stride``). ``batch_size`` is per process (under DDP the global batch is
    ``batch_size`` x ranks); ``shuffle``: the training order (the sampler's ``seed`` under
    DDP).
    ``in_memory``: True loads each split whole (tensors in RAM: fastest); False reads one
    sample per item from the file (:class:`LazyGridDataset`: datasets larger than memory;
    normalizer statistics are streamed over the train split in chunks); None decides per
    split: in memory when its inputs + outputs (float32, after stride) take at most
    ``AUTO_MEMORY_FRACTION`` (25 %) of :func:`available_memory` (8 GiB assumed where it is
    unknown). Under DDP every process holds its own copy of an in-memory split. The batches
    are the same either way, and so are the normalizer statistics (streamed: to ~1e-15 in
    float64, so the float32 buffers at most one unit in the last place apart, at ties).

    ``labels``/``unlabelled_dir`` (physics-informed training, see
    :class:`~opnet.data.base.OperatorDataModule`): when any train sample is unlabelled, the
    train batches are ``{"x", "y", "labelled": bool [B]}`` with ``y`` zeros where unlabelled
    (:class:`PartlyLabelled`), and the output statistics come from the labelled samples only.
    """

    def __init__(self, data_dir: str, input_fields: Sequence[str] = ("coeff",),
                 output_fields: Sequence[str] = ("sol",), stride: int = 1, batch_size: int = 8,
                 eval_batch_size: int | None = None, num_workers: int = 0,
                 in_normalizer: str = "scalar", out_normalizer: str = "scalar",
                 n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
                 generate: Mapping | None = None, name: str | None = None,
                 missing_hint: str | None = None, shuffle: bool = True, seed: int = 0,
                 in_memory: bool | None = None, labels: int | None = None,
                 unlabelled_dir: str | None = None) -> None:
        if stride < 1:
            raise ValueError(f"data.stride={stride}: expected a positive integer")
        super().__init__(data_dir, n_train=n_train, n_val=n_val, n_test=n_test,
                         generate=generate, name=name, missing_hint=missing_hint, seed=seed,
                         num_workers=num_workers, labels=labels, unlabelled_dir=unlabelled_dir)
        self.input_fields, self.output_fields = list(input_fields), list(output_fields)
        self.stride, self.batch_size = stride, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.in_normalizer, self.out_normalizer = in_normalizer, out_normalizer
        self.shuffle = bool(shuffle)
        self.in_memory = None if in_memory is None else bool(in_memory)
        self.splits: dict[str, GridDataset | LazyGridDataset] = {}
        self.extra: Tensor | LazyGridDataset | None = None  # unlabelled_dir's train inputs

    # -- files -------------------------------------------------------------------------
    def keep_in_memory(self, nbytes: int) -> bool:
        """Whether a split of ``nbytes`` (in memory) is loaded whole: ``in_memory``, or when
        None, whether it takes at most ``AUTO_MEMORY_FRACTION`` of the available memory."""
        if self.in_memory is not None:
            return self.in_memory
        available = available_memory()
        available = AUTO_MEMORY_UNKNOWN if available is None else available
        return nbytes <= AUTO_MEMORY_FRACTION * available

    def _dataset(self, split: str) -> GridDataset | LazyGridDataset:
        """The split in memory or lazy (``in_memory``; None: by its size, see the class)."""
        path = h5.split_path(self.data_dir, split)
        if self.in_memory is not True:
            lazy = LazyGridDataset(path, self.input_fields, self.output_fields, self.stride,
                                   self.limits[split])
            if not self.keep_in_memory(lazy.nbytes):
                return lazy
        return GridDataset.from_file(path, self.input_fields, self.output_fields, self.stride,
                                     self.limits[split])

    def load_split(self, split: str) -> GridDataset | LazyGridDataset:
        """The split loaded into memory or lazily (``in_memory``); its per-sample shapes
        must be the train split's."""
        ds = self._dataset(split)
        train = ds if split == "train" else self.splits["train"]
        for a, b, what in zip(ds.sample_shapes, train.sample_shapes, ("inputs", "outputs"),
                              strict=True):
            if a != b:
                raise DatasetError(
                    f"{h5.split_path(self.data_dir, split)}: {what} have per-sample shape "
                    f"{a}, train.h5 has {b}")
        if split == "train":
            self.n_labelled(len(ds))  # labels <= n_train
            if self.unlabelled_dir is not None:
                self.extra = self._unlabelled_inputs(ds)
                self.n_extra = len(self.extra)
        return ds

    def _unlabelled_inputs(self, train: GridDataset | LazyGridDataset
                           ) -> Tensor | LazyGridDataset:
        """The train inputs of ``unlabelled_dir`` (in memory or lazy, as ``in_memory``
        decides), checked against the train split's fields, per-sample shape and grid."""
        path = self.unlabelled_path()
        try:
            lazy = LazyGridDataset(path, self.input_fields, (), self.stride)
        except DatasetError as err:
            raise self.unlabelled_error(str(err)) from None
        if lazy.x_shape != train.sample_shapes[0]:
            raise self.unlabelled_error(
                f"inputs {self.input_fields} have per-sample shape {lazy.x_shape} after "
                f"stride {self.stride}, train.h5 of data_dir has {train.sample_shapes[0]}")
        ours = h5.read_coords(h5.split_path(self.data_dir, "train"), self.stride)
        theirs = h5.read_coords(path, self.stride)
        for axis in h5.SPACE_AXES:
            if axis in ours and (axis not in theirs or theirs[axis].shape != ours[axis].shape
                                 or not np.allclose(theirs[axis], ours[axis])):
                raise self.unlabelled_error(f"coords/{axis} differ from data_dir's")
        if self.in_memory is not True and not self.keep_in_memory(lazy.nbytes):
            return lazy
        return torch.from_numpy(h5.read_fields(path, "inputs", self.input_fields, self.stride))

    def train_dataset(self) -> GridDataset | LazyGridDataset | PartlyLabelled:
        """What the train loader serves: the train split, or (when any train sample is
        unlabelled) the :class:`PartlyLabelled` split with ``unlabelled_dir``'s inputs."""
        train = self.require("train")
        if not self.n_unlabelled(len(train)):
            return train
        return PartlyLabelled(train, self.n_labelled(len(train)), self.extra)

    # -- what the LightningModule needs ------------------------------------------------
    def io_spec(self) -> dict:
        """Plain description of the data (saved in checkpoints for the surrogate)."""
        x_shape, y_shape = self.require("train").sample_shapes
        path = h5.split_path(self.data_dir, "train")
        coords = {k: v.tolist() for k, v in h5.read_coords(path, self.stride).items()}
        return {
            "input_fields": self.input_fields, "output_fields": self.output_fields,
            "in_channels": int(x_shape[0]), "out_channels": int(y_shape[0]),
            "grid": [int(n) for n in x_shape[1:]], "coords": coords,
            "in_normalizer": self.in_normalizer, "out_normalizer": self.out_normalizer,
            "dataset": self.provenance(stride=self.stride), **self.label_spec(),
        }

    def train_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs (all, ``unlabelled_dir``'s appended) and the outputs of the
        labelled samples only (the first ``labels``; possibly none), for fitting normalizers.
        A lazy split is read whole here: prefer :meth:`normalizer_stats`, which streams it."""
        train = self.require("train")
        if isinstance(train, GridDataset):
            x, y = train.x.numpy(), train.y.numpy()
        else:
            x, y = (np.concatenate(list(train.chunks(group))) for group in ("inputs", "outputs"))
        if self.labels is None and self.extra is None:
            return x, y
        if self.extra is not None:
            extra = self.extra.numpy() if isinstance(self.extra, Tensor) else \
                np.concatenate([x[:0], *self.extra.chunks("inputs")])
            x = np.concatenate([x, extra])
        return x, y[:self.n_labelled(len(train))]

    def _stat_sources(self, group: str) -> list[Tensor | tuple[LazyGridDataset, int | None]]:
        """What :meth:`normalizer_stats` measures for ``group``: tensors, or lazy splits with
        how many of their first samples to read (all inputs, the labelled outputs only)."""
        train = self.require("train")
        stop = None if group == "inputs" or self.labels is None else self.n_labelled(len(train))
        if isinstance(train, GridDataset):
            data = train.x if group == "inputs" else train.y
            sources: list = [data if stop is None else data[:stop]]
        else:
            sources = [(train, stop)]
        if group == "inputs" and self.extra is not None:
            sources.append(self.extra if isinstance(self.extra, Tensor) else (self.extra, None))
        return sources

    def normalizer_stats(self, in_kind: str | None = None, out_kind: str | None = None
                         ) -> tuple[tuple[Tensor, Tensor] | None, tuple[Tensor, Tensor] | None]:
        """``(mean, std)`` of the training inputs and outputs for normalizers of kind
        ``in_kind``/``out_kind`` (default: this data's ``in_normalizer``/``out_normalizer``;
        None for ``"none"``), float64, as :meth:`GaussianNormalizer.fit` computes them: from
        the tensors of an in-memory split (the same arithmetic), streamed over a lazy split
        ``STATS_CHUNK`` samples at a time (:class:`RunningMoments`; equal to ~1e-15)."""
        kinds = (in_kind or self.in_normalizer, out_kind or self.out_normalizer)
        stats: list[tuple[Tensor, Tensor] | None] = []
        for kind, group in zip(kinds, ("inputs", "outputs"), strict=True):
            if kind == "none" or (group == "outputs" and self.labels == 0):
                stats.append(None)  # labels=0: no outputs to fit, the normalizer is left as is
                continue
            sources = self._stat_sources(group)
            if all(isinstance(src, Tensor) for src in sources):
                stats.append(gaussian_stats(sources[0] if len(sources) == 1 else
                                            torch.cat(sources), kind))
                continue
            moments = RunningMoments(kind)
            for src in sources:
                chunks = ([src] if isinstance(src, Tensor) else src[0].chunks(group)
                          if src[1] is None else src[0].chunks(group, stop=src[1]))
                for chunk in chunks:
                    moments.update(chunk)
            stats.append(moments.result())
        return stats[0], stats[1]

    # -- loaders -----------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        """Training under DDP: this rank's share (DistributedSampler, seeded, reshuffled per
        epoch by Lightning). Validation/test: the whole split on every rank, so the ranks'
        metrics are equal and their mean is exact (the ddp configs set
        ``use_distributed_sampler: false``; Lightning's own sampler would pad uneven
        splits with repeated samples)."""
        dataset = self.train_dataset() if split == "train" else self.require(split)
        rank, world = self.rank_and_world()
        sampler = None
        if split == "train" and world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank,
                                         shuffle=shuffle, seed=self.seed)
        elif split == "train" and shuffle:  # one process: resumable, (seed, epoch)-fixed order
            sampler = EpochShuffle(dataset, self.seed)
        loader = ResumableLoader if split == "train" else DataLoader
        return loader(dataset, batch_size=batch_size,
                      shuffle=shuffle if sampler is None else False, sampler=sampler,
                      num_workers=self.num_workers, drop_last=False,
                      persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Batches ``{"x": [B, C_in, *grid], "y": [B, C_out, *grid]}`` of the train split
        (shuffled per epoch, resumable mid-epoch); plus ``"labelled"`` bool [B] when some
        train samples are unlabelled (:meth:`train_dataset`)."""
        return self._loader("train", self.shuffle, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        """Batches of the val split, in file order."""
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        """Batches of the test split, in file order."""
        return self._loader("test", False, self.eval_batch_size)
