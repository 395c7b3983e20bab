"""The opnet HDF5 dataset schema (version 1): the one place that writes and checks it.

One file per split (``train.h5``, ``val.h5``, ``test.h5``) in a dataset folder::

    /inputs/<field>    float32 [N, C, *grid]
    /outputs/<field>   float32 [N, C, *grid]
    /coords/<axis>     float64 grid coordinates
    /params/<name>     [N] per-sample scalars (or [N, k] small per-sample vectors)
    /symbols/<name>    utf-8 strings [N] (PROSE: the expression in prefix notation)
    /meta/global_index int64 [N] index of each sample within its split (its seed stream)
    attrs: schema_version, pde, split, generator_config (YAML), seed, seed_scheme,
           n_samples, opnet_version, created_utc, (shards: n_shards, shard),
           (inputs only: labelled = False, and no /outputs group)

Large splits are written as shards ``train-00000.h5`` ... and stitched by a virtual
``train.h5`` so readers always open one file. Writers go to a temporary name unique to the
process (``<name>.<pid>-<random>.tmp``) and rename when complete: a file with the final
name is always whole. Readers check that cheaply (:func:`open_split`): every per-sample
dataset has ``n_samples`` rows and ``meta/global_index`` is consecutive; chunked fields carry
HDF5 Fletcher-32 checksums, checked on every read.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from opnet.files import DeferredErrorFile, unique_tmp

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = unique_tmp(self.path)
        self.n = n
        self.raw = DeferredErrorFile(self.tmp)
        self.file = h5py.File(self.raw, "w")
        for key, (shape, dtype) in specs.items():
            text = is_string(dtype)
            chunked = bool(shape) and n > 0 and not text
            self.file.create_dataset(key, shape=(n, *shape), dtype=STRING if text else dtype,
                                     chunks=(1, *shape) if chunked else None,
                                     fletcher32=chunked)
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
        """Close the file and rename it to :attr:`path`. A failed write (disk full, quota,
        file-size limit) raises ``OSError`` naming the temporary file, which is removed."""
        self._close()
        os.replace(self.tmp, self.path)
        return self.path

    def _close(self) -> None:
        try:
            if self.file.id.valid:
                self.file.close()
            self.raw.finish()
        except BaseException:
            self.raw.close()
            self.tmp.unlink(missing_ok=True)
            raise

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file.id.valid or not self.raw.closed:
            try:
                self._close()
            except OSError:
                if exc_type is None:
                    raise
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)


def is_string(dtype: object) -> bool:
    """A numpy or h5py string dtype (stored as variable-length utf-8)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "USO" or h5py.check_string_dtype(dtype) is not None


def base_attrs(attrs: Mapping[str, object], n: int) -> dict[str, object]:
    """The schema's file attributes (version, sample count, opnet version, creation time) plus
    ``attrs`` (None values dropped)."""
    out = {"schema_version": SCHEMA_VERSION, "n_samples": n, "opnet_version": _version(),
           "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    out.update({k: v for k, v in attrs.items() if v is not None})
    return out


def write_virtual(path: str | os.PathLike, shards: Sequence[Path],
                  attrs: Mapping[str, object]) -> Path:
    """Stitch shard files into one virtual file at ``path`` (atomic). Shards keep their
    relative names, so the dataset folder can be moved as a whole."""
    path = Path(path)
    tmp = unique_tmp(path)
    sizes = []
    with h5py.File(shards[0], "r") as first:
        keys = [k for k in _dataset_keys(first) if not k.startswith("coords/")]
        layouts = {k: (first[k].shape[1:], first[k].dtype) for k in keys}
        coords = {k: first[k][()] for k in _dataset_keys(first) if k.startswith("coords/")}
    for shard in shards:
        with h5py.File(shard, "r") as f:
            sizes.append(f.attrs["n_samples"])
    n = int(sum(sizes))
    raw = DeferredErrorFile(tmp)
    try:
        with h5py.File(raw, "w", libver="latest") as f:
            _write_virtual(f, layouts, shards, sizes, coords, attrs, n)
        raw.finish()
        os.replace(tmp, path)
    finally:
        raw.close()
        tmp.unlink(missing_ok=True)
    return path


def _write_virtual(f: h5py.File, layouts: Mapping[str, tuple], shards: Sequence[Path],
                   sizes: Sequence[int], coords: Mapping[str, np.ndarray],
                   attrs: Mapping[str, object], n: int) -> None:
    """Fill the open (new) file ``f``: one virtual dataset per field over the shards."""
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


def _dataset_keys(f: h5py.Group) -> list[str]:
    keys: list[str] = []
    f.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
    return keys


REGENERATE = ("regenerate it (the `python -m data_gen ...` command that made it, with "
              "overwrite=true; or `python -m data_gen.importers ...`) or restore it from a copy")


def corrupt_error(path: str | os.PathLike, err: BaseException) -> DatasetError:
    """The error for a file HDF5 cannot read: truncated or corrupt (names it, says what to do)."""
    return DatasetError(f"{path}: not a readable HDF5 file: truncated or corrupt "
                        f"({type(err).__name__}: {err}); {REGENERATE}")


def _raised_by_h5py(err: BaseException) -> bool:
    """An HDF5 failure on a damaged file (not a missing name: that is the caller's to say;
    not running out of memory while reading: that is no fault of the file)."""
    if isinstance(err, MemoryError) or "doesn't exist" in str(err) or "does not exist" in str(err):
        return False
    tb, files = err.__traceback__, []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return bool(files) and any(f"{os.sep}h5py{os.sep}" in f or f.startswith("h5py")
                               for f in files[-2:])


class SplitFile(h5py.File):
    """A split file open for reading (from :func:`open_split`): an error HDF5 raises while it
    is open in a ``with`` block (a corrupt object header, B-tree or chunk) becomes a
    :class:`DatasetError` naming the file."""

    split_path: Path

    def __exit__(self, exc_type, exc, tb) -> None:
        super().__exit__(exc_type, exc, tb)
        if exc is not None and not isinstance(exc, DatasetError) and _raised_by_h5py(exc):
            raise corrupt_error(self.split_path, exc) from exc


def open_split(path: str | os.PathLike) -> SplitFile:
    """Open a split file read-only after checking that it is an opnet schema-v1 file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        f = SplitFile(path, "r")
    except OSError as err:
        raise corrupt_error(path, err) from err
    f.split_path = path
    version = f.attrs.get("schema_version")
    try:
        shown = None if version is None else int(version)
    except (TypeError, ValueError):  # e.g. a string attribute
        shown = repr(version.decode() if isinstance(version, bytes) else version)
    if shown != SCHEMA_VERSION:
        f.close()
        raise DatasetError(
            f"{path}: schema_version is {shown}, expected {SCHEMA_VERSION} (an integer: the "
            "opnet HDF5 schema); regenerate the dataset with `python -m data_gen ...`")
    try:
        stat = path.stat()
        _check_whole(f, path, (str(path.resolve()), stat.st_ino, stat.st_size,
                               stat.st_mtime_ns))
    except BaseException as err:
        f.close()
        if isinstance(err, DatasetError) or not _raised_by_h5py(err):
            raise
        raise corrupt_error(path, err) from err
    return f


_WHOLE: dict[tuple, bool] = {}  # files already checked: (path, inode, size, mtime) -> True


def _check_whole(f: h5py.File, path: Path, key: tuple) -> None:
    """Raise a :class:`DatasetError` when the open split ``f`` is damaged or incomplete: a
    per-sample dataset without ``n_samples`` rows, or a ``meta/global_index`` that is not the
    consecutive range the writer stores (``shard_start`` .. for a shard, 0 .. for a file the
    generators made, the source range for an import). Reads N int64; remembered per file."""
    if key in _WHOLE:
        return
    n = f.attrs.get("n_samples")
    if n is not None:
        for name in (*GROUPS, "meta"):
            for k, ds in (f[name].items() if name in f else ()):
                if isinstance(ds, h5py.Dataset) and ds.shape[:1] != (int(n),):
                    raise DatasetError(
                        f"{path}: damaged or incomplete: '{name}/{k}' has shape {ds.shape}, "
                        f"expected {int(n)} samples (attribute n_samples); {REGENERATE}")
    if "meta/global_index" in f:
        index = np.asarray(f["meta/global_index"][()], np.int64)
        start = f.attrs.get("shard_start", 0 if "seed" in f.attrs or not len(index)
                            else index[0])
        bad = np.flatnonzero(index != int(start) + np.arange(len(index)))
        if len(bad):
            i = int(bad[0])
            raise DatasetError(
                f"{path}: damaged or incomplete: meta/global_index should be the consecutive "
                f"range {int(start)}..{int(start) + len(index) - 1} but sample {i} holds "
                f"{int(index[i])} ({len(bad)} of {len(index)} samples differ); it was "
                f"written by two processes at once or cut short; {REGENERATE}")
    if len(_WHOLE) > 4096:
        _WHOLE.clear()
    _WHOLE[key] = True


def field_names(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{"inputs": [...], "outputs": [...], "params": [...]}`` present in a split file."""
    with open_split(path) as f:
        return {g: sorted(f[g].keys()) if g in f else [] for g in GROUPS}


def grid_field(f: h5py.File, path: str | os.PathLike, group: str,
               name: str) -> h5py.Dataset:
    """``group/name`` of an open split, checked to exist and to be ``[N, C, *grid]``."""
    key = f"{group}/{name}"
    if key not in f:
        raise missing_field(f, path, group, name)
    ds = f[key]
    if ds.ndim < 3:
        raise DatasetError(f"{path}: field '{key}' has shape {ds.shape}, expected [N, C, *grid]")
    return ds


def is_labelled(f: h5py.File) -> bool:
    """Whether an open split holds outputs (False: made with ``solve=false``, inputs only)."""
    return bool(f.attrs.get("labelled", True))


def missing_field(f: h5py.File, path: str | os.PathLike, group: str, name: str
                  ) -> DatasetError:
    """The error for a field ``group/name`` that the open split ``f`` lacks (naming the
    fields it has; for the outputs of an inputs-only split, saying so)."""
    if group == "outputs" and not is_labelled(f):
        return DatasetError(f"{path}: has no outputs (made with solve=false: inputs only); "
                            "use its folder as data.unlabelled_dir, or generate it with "
                            "solve=true")
    have = sorted(f[group].keys()) if group in f else []
    return DatasetError(f"{path}: has no field '{group}/{name}' (it has {group}: {have})")


def read_fields(path: str | os.PathLike, group: str, names: Iterable[str], stride: int = 1,
                limit: int | None = None) -> np.ndarray:
    """Read ``group/<name>`` fields, concatenated on the channel axis, subsampled by
    ``stride`` on every grid axis: float32 ``[N, sum C, *grid/stride]``."""
    names = list(names)
    with open_split(path) as f:
        arrays = []
        for name in names:
            ds = grid_field(f, path, group, name)
            index = (slice(0, limit), slice(None)) + (slice(None, None, stride),) * (ds.ndim - 2)
            arrays.append(read_float32(path, ds, index))
    return np.concatenate(arrays, axis=1)


def read_float32(path: str | os.PathLike, ds: h5py.Dataset, index: tuple = ()) -> np.ndarray:
    """``ds[index]`` as float32 after checking the schema's promise: a real floating-point
    field (not integer, complex or text) with finite values (NaN/Inf: a corrupt file, since
    the generators never write them). Errors name the file and the field."""
    key = ds.name.lstrip("/")
    if ds.dtype.kind != "f":
        kind = {"i": "integer", "u": "unsigned integer", "c": "complex", "b": "boolean",
                "S": "byte-string", "O": "string", "U": "string"}.get(ds.dtype.kind, "non-float")
        raise DatasetError(f"{path}: field '{key}' has {kind} dtype {ds.dtype}, expected real "
                           "floating point (float32 in the opnet HDF5 schema); convert it "
                           "(e.g. the importers in data_gen/importers/ write float32) or "
                           f"{REGENERATE}")
    try:
        values = np.asarray(ds[index], dtype=np.float32)
    except OSError as err:
        if "filter returned failure" not in str(err) or not ds.fletcher32:
            raise
        rows = [i for i in range(ds.shape[0]) if not _readable(ds, i)]
        raise DatasetError(f"{path}: field '{key}' fails its Fletcher-32 checksum in "
                           f"{len(rows)} sample(s) (first: {rows[:5]}): the file is corrupt; "
                           f"{REGENERATE}") from err
    bad = (~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
           if values.ndim and values.size else [])
    if np.any(bad):
        rows = np.flatnonzero(bad)
        raise DatasetError(f"{path}: field '{key}' holds NaN/Inf in {len(rows)} sample(s) "
                           f"(first: {rows[:5].tolist()}), expected finite values: the file "
                           f"is corrupt (or not made by opnet's generators); {REGENERATE}")
    return values


def _readable(ds: h5py.Dataset, i: int) -> bool:
    try:
        ds[i]
    except OSError:
        return False
    return True


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
    """The attributes of a split file as plain Python values."""
    with open_split(path) as f:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
