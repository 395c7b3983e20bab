"""The opnet HDF5 dataset schema (version 1): the one place that writes and checks it.

One file per split (``train.h5``, ``val.h5``, ``test.h5``) in a dataset folder::

    /inputs/<field>    float32 [N, C, *grid]
    /outputs/<field>   float32 [N, C, *grid]
    /coords/<axis>     float64 grid coordinates
    /params/<name>     [N] per-sample scalars (or [N, k] small per-sample vectors)
    /symbols/<name>    utf-8 strings [N] (PROSE: the expression in prefix notation)
    /meta/global_index int64 [N] index of each sample within its split (its seed stream)
    attrs: schema_version, pde, split, generator_config (YAML), seed, seed_scheme,
           n_samples, opnet_version, created_utc, (shards: n_shards, shard)

Large splits are written as shards ``train-00000.h5`` ... and stitched by a virtual
``train.h5`` so readers always open one file. Writers go to ``<name>.tmp`` and rename
when complete: a file with the final name is always whole.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
GROUPS = ("inputs", "outputs", "params", "symbols")
STRING = h5py.string_dtype("utf-8")  # variable-length utf-8: /symbols/<name>


class DatasetError(ValueError):
    """A dataset file or folder is missing, malformed, or not what the caller expects."""


def _version() -> str:
    from opnet import __version__

    return __version__


def split_path(folder: str | os.PathLike, split: str) -> Path:
    """``<folder>/<split>.h5``."""
    return Path(folder) / f"{split}.h5"


class SplitWriter:
    """Writes one split file (or shard) atomically; datasets are preallocated.

    ``specs`` maps ``"inputs/coeff"`` -> (per-sample shape, dtype). A numpy string dtype
    (``<U``/``S``/object) is stored as variable-length utf-8. Use as a context manager: the
    temporary file is renamed to ``path`` only by :meth:`commit`.
    """

    def __init__(self, path: str | os.PathLike, n: int, specs: Mapping[str, tuple],
                 coords: Mapping[str, np.ndarray], attrs: Mapping[str, object]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n = n
        self.file = h5py.File(self.tmp, "w")
        for key, (shape, dtype) in specs.items():
            text = is_string(dtype)
            self.file.create_dataset(key, shape=(n, *shape), dtype=STRING if text else dtype,
                                     chunks=(1, *shape) if shape and n > 0 and not text
                                     else None)
        for axis, values in coords.items():
            self.file.create_dataset(f"coords/{axis}", data=np.asarray(values, np.float64))
        self.file.create_dataset("meta/global_index", shape=(n,), dtype=np.int64)
        self.file.attrs.update(base_attrs(attrs, n))

    def write(self, start: int, arrays: Mapping[str, np.ndarray], global_index: np.ndarray) -> None:
        """Write samples ``start .. start+len`` (``arrays`` keyed like ``specs``)."""
        stop = start + len(global_index)
        for key, value in arrays.items():
            if is_string(np.asarray(value).dtype):
                value = np.asarray(value).astype(str).astype(object)
            self.file[key][start:stop] = value
        self.file["meta/global_index"][start:stop] = global_index

    def commit(self) -> Path:
        self.file.close()
        os.replace(self.tmp, self.path)
        return self.path

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file.id.valid:
            self.file.close()
        if exc_type is not None and self.tmp.exists():
            self.tmp.unlink()


def is_string(dtype: object) -> bool:
    """A numpy or h5py string dtype (stored as variable-length utf-8)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "USO" or h5py.check_string_dtype(dtype) is not None


def base_attrs(attrs: Mapping[str, object], n: int) -> dict[str, object]:
    out = {"schema_version": SCHEMA_VERSION, "n_samples": n, "opnet_version": _version(),
           "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    out.update({k: v for k, v in attrs.items() if v is not None})
    return out


def write_virtual(path: str | os.PathLike, shards: Sequence[Path],
                  attrs: Mapping[str, object]) -> Path:
    """Stitch shard files into one virtual file at ``path`` (atomic). Shards keep their
    relative names, so the dataset folder can be moved as a whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    sizes = []
    with h5py.File(shards[0], "r") as first:
        keys = [k for k in _dataset_keys(first) if not k.startswith("coords/")]
        layouts = {k: (first[k].shape[1:], first[k].dtype) for k in keys}
        coords = {k: first[k][()] for k in _dataset_keys(first) if k.startswith("coords/")}
    for shard in shards:
        with h5py.File(shard, "r") as f:
            sizes.append(f.attrs["n_samples"])
    n = int(sum(sizes))
    with h5py.File(tmp, "w", libver="latest") as f:
        for key, (shape, dtype) in layouts.items():
            layout = h5py.VirtualLayout(shape=(n, *shape), dtype=dtype)
            start = 0
            for shard, size in zip(shards, sizes, strict=True):
                if size == 0:
                    continue
                layout[start:start + size] = h5py.VirtualSource(
                    f"./{shard.name}", key, shape=(int(size), *shape))
                start += size
            f.create_virtual_dataset(key, layout)
        for key, value in coords.items():
            f.create_dataset(key, data=value)
        f.attrs.update(base_attrs(attrs, n))
        f.attrs["n_shards"] = len(shards)
    os.replace(tmp, path)
    return path


def _dataset_keys(f: h5py.Group) -> list[str]:
    keys: list[str] = []
    f.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
    return keys


def open_split(path: str | os.PathLike) -> h5py.File:
    """Open a split file read-only after checking that it is an opnet schema-v1 file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({err})") from err
    version = f.attrs.get("schema_version")
    if version is None or int(version) != SCHEMA_VERSION:
        f.close()
        raise DatasetError(
            f"{path}: schema_version is {version if version is None else int(version)}, "
            f"expected {SCHEMA_VERSION} (opnet HDF5 schema); regenerate the dataset with "
            "`python -m data_gen ...`")
    return f


def field_names(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{"inputs": [...], "outputs": [...], "params": [...]}`` present in a split file."""
    with open_split(path) as f:
        return {g: sorted(f[g].keys()) if g in f else [] for g in GROUPS}


def read_fields(path: str | os.PathLike, group: str, names: Iterable[str], stride: int = 1,
                limit: int | None = None) -> np.ndarray:
    """Read ``group/<name>`` fields, concatenated on the channel axis, subsampled by
    ``stride`` on every grid axis: float32 ``[N, sum C, *grid/stride]``."""
    names = list(names)
    with open_split(path) as f:
        arrays = []
        for name in names:
            key = f"{group}/{name}"
            if key not in f:
                have = sorted(f[group].keys()) if group in f else []
                raise DatasetError(f"{path}: has no field '{key}' (it has {group}: {have})")
            ds = f[key]
            if ds.ndim < 3:
                raise DatasetError(f"{path}: field '{key}' has shape {ds.shape}, expected "
                                   "[N, C, *grid]")
            index = (slice(0, limit), slice(None)) + (slice(None, None, stride),) * (ds.ndim - 2)
            arrays.append(np.asarray(ds[index], dtype=np.float32))
    return np.concatenate(arrays, axis=1)


def read_symbols(path: str | os.PathLike, name: str, limit: int | None = None) -> np.ndarray:
    """``symbols/<name>`` as a numpy array of str ``[N]``."""
    with open_split(path) as f:
        key = f"symbols/{name}"
        if key not in f:
            have = sorted(f["symbols"].keys()) if "symbols" in f else []
            raise DatasetError(f"{path}: has no field '{key}' (it has symbols: {have})")
        return np.asarray(f[key].asstr()[slice(0, limit)], dtype=str)


SPACE_AXES = ("x", "y", "z")


def read_coords(path: str | os.PathLike, stride: int = 1) -> dict[str, np.ndarray]:
    """Coordinates of a split; the spatial axes (x, y, z) subsampled by ``stride`` as the
    fields are, the others (t, sensors, query, ...) as stored."""
    with open_split(path) as f:
        if "coords" not in f:
            return {}
        return {k: f["coords"][k][::stride] if k in SPACE_AXES else f["coords"][k][()]
                for k in f["coords"]}


def read_attrs(path: str | os.PathLike) -> dict[str, object]:
    with open_split(path) as f:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
