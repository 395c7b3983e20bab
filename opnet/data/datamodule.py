"""Grid datasets from opnet HDF5 files, and the LightningDataModule that serves them.

Batches are dicts ``{"x": [B, C_in, *grid], "y": [B, C_out, *grid]}`` in physical units;
the LightningModule owns normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from opnet.data import h5
from opnet.data.h5 import DatasetError


def ensure_dataset(data_dir: Path, generate: Mapping | None, missing_hint: str | None) -> None:
    """Generate the dataset folder from ``generate`` (the arguments of
    :func:`data_gen.generate`; a no-op when the files already match them), or raise a
    :class:`DatasetError` naming the missing files and how to make them."""
    if generate:
        from data_gen import GenerationError  # data_gen depends on opnet.data
        from data_gen import generate as run_generator

        try:
            summary = run_generator(out=data_dir, **generate)
        except GenerationError as err:
            raise DatasetError(f"{err} (from data.generate; or set data.generate."
                               "overwrite=true, or point data.data_dir elsewhere)") from err
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
        return cls(h5.read_fields(path, "inputs", input_fields, stride, limit),
                   h5.read_fields(path, "outputs", output_fields, stride, limit))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class GridDataModule(L.LightningDataModule):
    """Train/val/test splits of a dataset folder (``train.h5``, ``val.h5``, ``test.h5``).

    ``stride`` subsamples every grid axis (``::stride``). ``n_train``/``n_val``/``n_test``
    use the first samples of a split. ``missing_hint`` is added to the error raised when
    the files are missing and cannot be generated. When the folder lacks its files and ``generate``
    (``{"pde": {...}, "n_train": .., "seed": .., ...}``, the arguments of
    :func:`data_gen.generate`) is given, the data is generated in :meth:`prepare_data`.
    """

    def __init__(self, data_dir: str, input_fields: Sequence[str] = ("coeff",),
                 output_fields: Sequence[str] = ("sol",), stride: int = 1, batch_size: int = 8,
                 eval_batch_size: int | None = None, num_workers: int = 0,
                 in_normalizer: str = "scalar", out_normalizer: str = "scalar",
                 n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
                 generate: Mapping | None = None, name: str | None = None,
                 missing_hint: str | None = None) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"data.stride={stride}: expected a positive integer")
        self.data_dir = Path(data_dir)
        self.name = name or self.data_dir.name
        self.input_fields, self.output_fields = list(input_fields), list(output_fields)
        self.stride, self.batch_size, self.num_workers = stride, batch_size, num_workers
        self.eval_batch_size = eval_batch_size or batch_size
        self.in_normalizer, self.out_normalizer = in_normalizer, out_normalizer
        self.limits = {"train": n_train, "val": n_val, "test": n_test}
        self.generate = dict(generate) if generate else None
        self.missing_hint = missing_hint
        self.splits: dict[str, GridDataset] = {}

    # -- files -------------------------------------------------------------------------
    def missing_splits(self) -> list[str]:
        return [s for s in h5.SPLITS if not h5.split_path(self.data_dir, s).is_file()]

    def prepare_data(self) -> None:
        """Make sure the files exist: generate them from the linked generator config (a
        no-op when they already match it; an error naming the file when they do not)."""
        ensure_dataset(self.data_dir, self.generate, self.missing_hint)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits needed for ``stage`` into memory (train always: it defines the
        normalizers and shapes)."""
        if self.missing_splits():
            self.prepare_data()  # normally done by the Trainer (rank 0) before setup
        need = {"fit": ["train", "val"], "validate": ["train", "val"],
                "test": ["train", "test"], "predict": ["train", "test"]}.get(stage or "", h5.SPLITS)
        for split in need:
            if split not in self.splits:
                self.splits[split] = GridDataset.from_file(
                    h5.split_path(self.data_dir, split), self.input_fields, self.output_fields,
                    self.stride, self.limits[split])
        train = self.splits["train"]
        for split, ds in self.splits.items():
            for a, b, what in ((ds.x, train.x, "inputs"), (ds.y, train.y, "outputs")):
                if a.shape[1:] != b.shape[1:]:
                    raise DatasetError(
                        f"{h5.split_path(self.data_dir, split)}: {what} have per-sample shape "
                        f"{tuple(a.shape[1:])}, train.h5 has {tuple(b.shape[1:])}")

    # -- what the LightningModule needs ------------------------------------------------
    def io_spec(self) -> dict:
        """Plain description of the data (saved in checkpoints for the surrogate)."""
        if "train" not in self.splits:
            self.setup("fit")
        train = self.splits["train"]
        path = h5.split_path(self.data_dir, "train")
        attrs = h5.read_attrs(path)
        coords = {k: v.tolist() for k, v in h5.read_coords(path, self.stride).items()}
        return {
            "input_fields": self.input_fields, "output_fields": self.output_fields,
            "in_channels": int(train.x.shape[1]), "out_channels": int(train.y.shape[1]),
            "grid": [int(n) for n in train.x.shape[2:]], "coords": coords,
            "in_normalizer": self.in_normalizer, "out_normalizer": self.out_normalizer,
            "dataset": {"name": self.name, "path": str(self.data_dir), "stride": self.stride,
                        "n_train": len(train), "pde": attrs.get("pde"),
                        "generator_config": attrs.get("generator_config"),
                        "seed": attrs.get("seed")},
        }

    def train_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs/outputs (for fitting normalizers)."""
        if "train" not in self.splits:
            self.setup("fit")
        return self.splits["train"].x.numpy(), self.splits["train"].y.numpy()

    # -- loaders -----------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        if split not in self.splits:
            self.setup("test" if split == "test" else "fit")
        return DataLoader(self.splits[split], batch_size=batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, drop_last=False,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)
