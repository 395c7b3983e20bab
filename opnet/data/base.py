"""What every operator datamodule shares: the dataset folder, generating it when missing,
the splits a stage needs, the provenance recorded in checkpoints, and the argument checks.

:class:`OperatorDataModule` is the base of :class:`~opnet.data.datamodule.GridDataModule`
(and :class:`~opnet.data.trajectory.TrajectoryDataModule`),
:class:`~opnet.data.points.PointDataModule` and :class:`~opnet.data.prose.ProseDataModule`;
a subclass reads one split (:meth:`~OperatorDataModule.load_split`), describes its data
(:meth:`~OperatorDataModule.io_spec`, with :meth:`~OperatorDataModule.provenance` as its
``"dataset"`` block) and serves the batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from opnet.data import h5
from opnet.data.h5 import DatasetError

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("train", "val"),
                "test": ("train", "test"), "predict": ("train", "test")}
"""The splits each Lightning stage reads (any other stage: all of them)."""

PROVENANCE_KEYS = ("name", "path", "n_train", "pde", "generator_config", "seed")
"""The keys every datamodule's ``io_spec()["dataset"]`` holds (:meth:`provenance`)."""


def ensure_dataset(data_dir: Path, generate: Mapping | None, missing_hint: str | None) -> None:
    """Generate the dataset folder from ``generate`` (the arguments of
    :func:`data_gen.generate`, which holds the folder lock while it writes; a no-op when the
    files already match them), or raise a :class:`DatasetError` naming the missing files and
    how to make them."""
    if generate:
        from data_gen import GenerationError  # data_gen depends on opnet.data
        from data_gen import generate as run_generator

        try:
            summary = run_generator(out=data_dir, **generate)
        except GenerationError as err:
            what = str(err).split("; pass overwrite=true")[0]
            if what == str(err):  # not a conflict with existing files (a full disk, ...)
                raise DatasetError(f"{err} (while making data.generate)") from err
            raise DatasetError(
                f"{what} (from data.generate). To train on the files as they are, "
                f"set data.generate=null; or point data.data_dir to another folder; or set "
                f"data.generate.overwrite=true, which DELETES the files in {data_dir} and "
                "generates them anew") from err
        if len(summary.skipped_splits) < len(h5.SPLITS):
            print(summary.table())
        return
    missing = [s for s in h5.SPLITS if not h5.split_path(data_dir, s).is_file()]
    if missing:
        raise DatasetError(
            f"{data_dir}: dataset folder lacks {', '.join(s + '.h5' for s in missing)} "
            "and the data config has no 'generate' block to make it; create it with "
            f"`python -m data_gen pde=<name> out={data_dir}`, import existing files "
            f"with `python -m data_gen.importers <format> <file> --out {data_dir}`, "
            "or set data.data_dir"
            + (f". {missing_hint}" if missing_hint else ""))


def stage_splits(stage: str | None) -> list[str]:
    """The splits ``stage`` needs, train first (it fixes shapes, normalizers, vocabulary)."""
    need = STAGE_SPLITS.get(stage or "", h5.SPLITS)
    return ["train", *[s for s in need if s != "train"]]


def check_labels(labels: object) -> int | None:
    """``data.labels`` as an int >= 0 or None (a ValueError naming the key otherwise)."""
    if labels is None:
        return None
    if isinstance(labels, bool) or not isinstance(labels, int) or labels < 0:
        raise ValueError(f"data.labels={labels!r}: expected an integer >= 0 (the labelled "
                         "train samples) or null (all)")
    return int(labels)


def check_positive_or_null(**values: int | None) -> None:
    """A ValueError naming the first ``data.<key>`` that is set but below 1."""
    for key, value in values.items():
        if value is not None and int(value) < 1:
            raise ValueError(f"data.{key}={value}: expected a positive integer or null")


class OperatorDataModule(L.LightningDataModule):
    """Train/val/test splits of a dataset folder (``train.h5``, ``val.h5``, ``test.h5``).

    ``data_dir``: the folder; ``name``: the dataset's name in checkpoints (default: the
    folder's name). ``n_train``/``n_val``/``n_test``: use the first samples of a split (null:
    all). ``generate`` (``{"pde": {...}, "n_train": .., "seed": .., ...}``, the arguments of
    :func:`data_gen.generate`): made in :meth:`prepare_data` when the files are missing.
    ``missing_hint`` is added to the error raised when they are missing and cannot be
    generated. ``seed``: the training order (and whatever else the subclass draws).
    ``num_workers``: DataLoader worker processes, refused (with ``workers_refused`` as the
    reason) by subclasses whose batches are built by indexing in the main process.

    Few labels (physics-informed training; the subclasses that support it say so):
    ``labels = N`` keeps the outputs of the first N train samples only (null: all);
    ``unlabelled_dir``: the train inputs of another dataset folder (e.g. generated with
    ``solve=false``) appended to the train split without outputs. Val/test stay labelled.

    A subclass implements :meth:`load_split` (one split, checked against the train split),
    :meth:`io_spec` and the dataloaders.
    """

    workers_refused: str | None = None
    """Why ``num_workers`` > 0 cannot help this data (None: worker processes are used)."""

    def __init__(self, data_dir: str, n_train: int | None = None, n_val: int | None = None,
                 n_test: int | None = None, generate: Mapping | None = None,
                 name: str | None = None, missing_hint: str | None = None, seed: int = 0,
                 num_workers: int = 0, labels: int | None = None,
                 unlabelled_dir: str | None = None) -> None:
        if num_workers and self.workers_refused:
            raise ValueError(f"data.num_workers={num_workers}: {self.workers_refused} "
                             "(use 0)")
        super().__init__()
        self.data_dir = Path(data_dir)
        self.name = name or self.data_dir.name
        self.limits = {"train": n_train, "val": n_val, "test": n_test}
        self.generate = dict(generate) if generate else None
        self.missing_hint = missing_hint
        self.seed, self.num_workers = int(seed), num_workers
        self.labels = check_labels(labels)
        self.unlabelled_dir = Path(unlabelled_dir) if unlabelled_dir else None
        self.n_extra = 0  # train inputs read from unlabelled_dir (set by the subclass)
        self.splits: dict[str, Any] = {}

    # -- files -------------------------------------------------------------------------
    def missing_splits(self) -> list[str]:
        """Names of the splits whose ``<split>.h5`` is not in the data folder."""
        return [s for s in h5.SPLITS if not h5.split_path(self.data_dir, s).is_file()]

    def prepare_data(self) -> None:
        """Make sure the files exist: generate them from the linked generator config (a
        no-op when they already match it; an error naming the file when they do not)."""
        ensure_dataset(self.data_dir, self.generate, self.missing_hint)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits ``stage`` needs (train first, always: it defines the shapes and
        the normalizers) with :meth:`load_split`; then :meth:`splits_loaded`."""
        if self.missing_splits():
            self.prepare_data()  # normally done by the Trainer (rank 0) before setup
        for split in stage_splits(stage):
            if split not in self.splits:
                self.splits[split] = self.load_split(split)
        self.splits_loaded()

    def load_split(self, split: str) -> Any:
        """Read ``split`` (``self.splits["train"]`` is already there for the others)."""
        raise NotImplementedError(f"{type(self).__name__} does not read splits")

    def splits_loaded(self) -> None:
        """Called at the end of every :meth:`setup` (nothing by default)."""

    def require(self, split: str) -> Any:
        """``split``, set up first when it is not loaded yet (test: stage ``"test"``, else
        ``"fit"``)."""
        if split not in self.splits:
            self.setup("test" if split == "test" else "fit")
        return self.splits[split]

    # -- labelled and unlabelled train samples ------------------------------------------
    def n_labelled(self, n_train: int) -> int:
        """How many of the ``n_train`` train samples keep their outputs: the first
        ``labels`` (all when null); a ValueError when ``labels`` exceeds ``n_train``."""
        if self.labels is None:
            return n_train
        if self.labels > n_train:
            raise ValueError(f"data.labels={self.labels}: the train split has only {n_train} "
                             f"samples ({h5.split_path(self.data_dir, 'train')}, data.n_train="
                             f"{self.limits['train']}); expected 0 <= labels <= {n_train}")
        return self.labels

    def n_unlabelled(self, n_train: int) -> int:
        """Train samples without outputs: those past ``labels`` plus ``unlabelled_dir``'s."""
        return n_train - self.n_labelled(n_train) + self.n_extra

    def unlabelled_path(self) -> Path:
        """``<unlabelled_dir>/train.h5``, checked to exist."""
        path = h5.split_path(self.unlabelled_dir, "train")
        if not path.is_file():
            raise DatasetError(
                f"data.unlabelled_dir={self.unlabelled_dir}: no {path.name} there; make the "
                f"unlabelled inputs with `python -m data_gen pde=<name> pde.solve=false "
                f"n_val=0 n_test=0 out={self.unlabelled_dir}`")
        return path

    def unlabelled_error(self, what: str) -> DatasetError:
        """A :class:`DatasetError` saying how ``unlabelled_dir``'s inputs differ from the train
        split's (``what``)."""
        return DatasetError(f"data.unlabelled_dir={self.unlabelled_dir}: {what}; its train "
                            f"inputs must match those of {self.data_dir} (same input fields, "
                            "grid/sensors and strides)")

    def label_spec(self) -> dict[str, Any]:
        """``{"labels": N or None, "unlabelled": count}`` for :meth:`io_spec` when ``labels``
        or ``unlabelled_dir`` is set, else ``{}`` (the description is then unchanged)."""
        if self.labels is None and self.unlabelled_dir is None:
            return {}
        return {"labels": self.labels,
                "unlabelled": self.n_unlabelled(len(self.require("train")))}

    # -- what the LightningModule needs ------------------------------------------------
    def io_spec(self) -> dict[str, Any]:
        """Plain description of the data (saved in checkpoints for the surrogate)."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its data")

    def provenance(self, **details: Any) -> dict[str, Any]:
        """The ``"dataset"`` block of :meth:`io_spec`: name, path, the subclass's
        ``details`` (strides, ...), the training samples used and the generator's record
        (``pde``, ``generator_config``, ``seed``: the train file's attributes)."""
        train = self.require("train")
        attrs = h5.read_attrs(h5.split_path(self.data_dir, "train"))
        return {"name": self.name, "path": str(self.data_dir), **details,
                "n_train": len(train), "pde": attrs.get("pde"),
                "generator_config": attrs.get("generator_config"), "seed": attrs.get("seed")}

    # -- loaders -----------------------------------------------------------------------
    def rank_and_world(self) -> tuple[int, int]:
        """``(global rank, world size)`` of the attached trainer, ``(0, 1)`` without one."""
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
