"""Import data people already have (FNO ``.mat`` files, PDEBench HDF5) into the opnet schema.

The result is a dataset folder (``train.h5``, ``val.h5``, ``test.h5``) written through
:mod:`opnet.data.h5`, exactly what :class:`opnet.data.datamodule.GridDataModule` reads::

    python -m data_gen.importers FORMAT [SOURCE] --out FOLDER [--train A:B] [--val A:B]
        [--test A:B] [--train-file F] [--val-file F] [--test-file F] [--stride R]
        [--time-stride R] [--initial-steps K] [--field ROLE=NAME] [--keys K ...] [--overwrite]

Formats (source keys -> opnet fields; arrays are indexed ``[..., i, j]`` <-> ``(x_i, y_j)``):

``fno-darcy``       ``coeff``, ``sol`` [N, s, s]  ->  inputs/coeff, outputs/sol [N, 1, s, s];
                    x, y = linspace(0, 1, s) (nodes).
``fno-burgers``     ``a``, ``u`` [N, s]  ->  inputs/u0, outputs/u [N, 1, s];
                    x = linspace(0, 1, s+1)[:-1] (periodic), t = [1.0].
``fno-ns``          ``a`` [N, s, s], ``u`` [N, s, s, T] (time LAST in the FNO files)
                    ->  inputs/w0 [N, 1, s, s], outputs/w [N, T, s, s] (time right after N);
                    with ``--initial-steps K`` (FNO's ``T_in``; ``a`` is then not needed):
                    inputs/w = the first K records [N, K, s, s], outputs/w = the rest.
                    x, y periodic; t = the file's ``t`` when present, else 1, 2, ..., T.
``pdebench``        ``tensor`` [N, T, X(, Y(, Z))] (or the ``--keys`` given, e.g. the CFD
                    files' ``density Vx pressure``)  ->  inputs/u = the first
                    ``--initial-steps`` frames (default 10, PDEBench's ``initial_step``),
                    outputs/u = the remaining frames (those PDEBench scores). ``tensor`` is
                    named ``u``; other keys keep their name.
``pdebench-darcy``  ``nu`` [N, X, Y], ``tensor`` [N, 1, X, Y]  ->  inputs/coeff,
                    outputs/sol [N, 1, X, Y] (the names of our Darcy, so the Darcy configs
                    train on it unchanged).

PDEBench coordinates come from ``x-coordinate``, ``y-coordinate``, ``z-coordinate`` and
``t-coordinate`` (cell centres (i+1/2)/X when absent). PDEBench writes T+1 entries in
``t-coordinate`` for T snapshots; the first T are the snapshot times. Time-series sets store
``coords/t_in`` (times of the input frames) and ``coords/t`` (times of the output frames).

Splits: ``--train/--val/--test`` take Python slice syntax over the samples of the file
(``0:1000``, ``1000:``, ``:100``, ``-100:``); a split with no range and no file is written
empty (0 samples). By default every split reads SOURCE; ``--test-file F`` (etc.) makes that
split read F instead (all of F unless a range is given) -- FNO ships Darcy train and test in
two files. Ranges of the same file may not overlap (``--allow-overlap`` to permit it).
``--stride R`` keeps every R-th grid point on each space axis (FNO's ``::r``);
``--time-stride`` does the same on the time axis, before the input/output split.
``--field ROLE=NAME`` renames a field (roles: the source keys listed above).

Files: MATLAB v5/v6/v7 MAT-files (small variables through ``scipy.io.loadmat``, large ones
memory-mapped, or streamed through zlib when compressed), MATLAB v7.3 MAT-files (HDF5 with
every array stored transposed: a dataset with a ``MATLAB_class`` attribute has its axes
reversed back to MATLAB's order) and plain HDF5 (PDEBench). Samples are copied in blocks of
about ``--block-mb`` MiB of memory; values are stored as float32 and ``meta/global_index`` is
each sample's index in its source file. In MAT-files the sample axis varies fastest, so each
block of a large variable reads strided through all of it (a compressed v5 variable is
inflated once per block): a larger ``--block-mb`` means fewer passes.

Provenance: the attribute ``generator_config`` of every split file (and ``import.yaml`` in the
folder) is a YAML description of the import -- importer, source files, their sha256, keys,
shapes, index ranges, options -- with no ``seed`` attribute, so ``data_gen.generate`` never
takes an imported folder for one of its own (and refuses to overwrite it without
``overwrite``). The folder is written atomically: splits are staged in ``.import-tmp/`` and
moved in at the end; an existing dataset folder is replaced only with ``--overwrite``.

Examples::

    python -m data_gen.importers fno-darcy piececonst_r421_N1024_smooth1.mat --train 0:1000 \\
        --val 1000:1024 --test-file piececonst_r421_N1024_smooth2.mat --test 0:100 \\
        --stride 5 --out data/fno_darcy85
    python -m data_gen.importers fno-burgers burgers_data_R10.mat --train 0:1000 \\
        --val 1000:1100 --test 1100:1200 --stride 8 --out data/fno_burgers1024
    python -m data_gen.importers fno-ns NavierStokes_V1e-3_N5000_T50.mat --train 0:1000 \\
        --test 1000:1200 --initial-steps 10 --out data/fno_ns_1e-3
    python -m data_gen.importers pdebench 1D_Advection_Sols_beta0.1.hdf5 --train 0:9000 \\
        --val 9000:9500 --test 9500: --initial-steps 10 --stride 4 --out data/pdebench_adv
    python -m data_gen.importers pdebench-darcy 2D_DarcyFlow_beta1.0_Train.hdf5 \\
        --train 0:9000 --val 9000:9500 --test 9500: --out data/pdebench_darcy_beta1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import itertools
import math
import os
import re
import shutil
import struct
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import yaml

from opnet.data import h5

F32 = np.float32
STAGING = ".import-tmp"
SIDECAR = "import.yaml"


class ImporterError(h5.DatasetError):
    """A source file, key, shape, range or option that cannot be imported."""


# ----------------------------------------------------------------------------- source files


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# MAT v5 data types (storage of the real part) and array classes.
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
              12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_CLASSES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double",
               7: "single", 8: "int8", 9: "uint8", 10: "int16", 11: "uint16", 12: "int32",
               13: "uint32", 14: "int64", 15: "uint64"}
_MX_NUMERIC = set(range(6, 16))
_MATLAB_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                   "int64", "uint64", "logical"}


@dataclasses.dataclass
class _MatVar:
    """One top-level variable of a MAT v5 file (``shape`` in MATLAB's index order)."""

    name: str
    shape: tuple[int, ...]
    mxclass: int
    complex: bool
    dtype: np.dtype | None = None  # storage type of the real part (None: not numeric/inline)
    offset: int = -1  # data start: in the file, or in the decompressed stream
    compressed: tuple[int, int] | None = None  # (file offset, length) of the zlib stream


class _FileStream:
    def __init__(self, f) -> None:
        self.f = f

    @property
    def pos(self) -> int:
        return self.f.tell()

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise EOFError
        return data


class _Inflate:
    """Reads a zlib stream of a file piece by piece (bounded memory)."""

    PIECE = 1 << 22

    def __init__(self, f, start: int, length: int) -> None:
        self.f, self.next, self.left = f, start, length
        self.z = zlib.decompressobj()
        self.buf = bytearray()
        self.pos = 0

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.z.unconsumed_tail:
                chunk = self.z.decompress(self.z.unconsumed_tail, self.PIECE)
            elif self.left > 0:
                self.f.seek(self.next)
                raw = self.f.read(min(self.left, 1 << 20))
                if not raw:
                    break
                self.next += len(raw)
                self.left -= len(raw)
                chunk = self.z.decompress(raw, self.PIECE)
            else:
                break
            self.buf += chunk
        if len(self.buf) < n:
            raise EOFError
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        while n > 0:
            n -= len(self.read(min(n, self.PIECE)))


def _tag(stream, endian: str) -> tuple[int, int, bytes | None]:
    """A data-element tag: (type, byte count, inline data of a small element or None)."""
    w0, w1 = struct.unpack(endian + "II", stream.read(8))
    if w0 >> 16:  # small data element: count and type in 4 bytes, data in the next 4
        n = w0 >> 16
        return w0 & 0xFFFF, n, struct.pack(endian + "I", w1)[:n]
    return w0, w1, None


def _element(stream, endian: str) -> tuple[int, bytes]:
    mdtype, n, inline = _tag(stream, endian)
    if inline is not None:
        return mdtype, inline
    data = stream.read(n)
    if n % 8:
        stream.read(8 - n % 8)
    return mdtype, data


def _parse_matrix(stream, endian: str) -> _MatVar:
    """The header of a miMATRIX element (its tag already read), up to its real data."""
    _, flags = _element(stream, endian)
    word = struct.unpack(endian + "I", flags[:4])[0]
    mxclass, cplx = word & 0xFF, bool(word & 0x800)
    _, dims = _element(stream, endian)
    shape = tuple(int(d) for d in np.frombuffer(dims, endian + "i4"))
    _, name = _element(stream, endian)
    var = _MatVar(name.decode("latin-1"), shape, mxclass, cplx)
    if mxclass in _MX_NUMERIC:
        mdtype, n, inline = _tag(stream, endian)
        if inline is None and mdtype in _MI_DTYPES:
            dtype = np.dtype(endian + _MI_DTYPES[mdtype])
            if n == math.prod(shape) * dtype.itemsize:
                var.dtype, var.offset = dtype, stream.pos
    return var


class Source:
    """An array file opened for reading, whatever its format.

    ``shape(key)`` and ``read(key, start, stop, index)`` use the logical axis order (MATLAB's
    index order for MAT-files: what ``scipy.io.loadmat`` returns), samples first. ``index``
    holds slices for the other axes. Values come back in the stored dtype.
    """

    def __init__(self, path: str | os.PathLike, block_bytes: int = 256 << 20) -> None:
        self.path = Path(path)
        self.block_bytes = block_bytes
        self._sha256: str | None = None
        self._loaded: dict[str, np.ndarray] = {}
        if not self.path.is_file():
            raise ImporterError(f"{self.path}: no such file")
        try:
            with open(self.path, "rb") as f:
                head = f.read(128)
        except OSError as err:
            raise ImporterError(f"{self.path}: cannot read the file ({err})") from err
        if head.startswith(_HDF5_SIGNATURE) or h5py.is_hdf5(self.path):
            self._open_hdf5()
        elif len(head) == 128 and head[126:128] in (b"IM", b"MI"):
            self._open_mat5(head)
        elif head[:6] == b"MATLAB":
            raise ImporterError(f"{self.path}: a MAT-file of an unsupported version "
                                f"({head[:19]!r}); re-save it with `save -v7.3`")
        else:
            raise ImporterError(
                f"{self.path}: unknown format: not a MATLAB v5/v7.3 MAT-file nor an HDF5 "
                f"file (first bytes {head[:16]!r})")

    # -- opening ----------------------------------------------------------------------
    def _open_hdf5(self) -> None:
        try:
            self.h5 = h5py.File(self.path, "r", rdcc_nbytes=64 << 20)
        except OSError as err:
            raise ImporterError(f"{self.path}: not a readable HDF5 file ({err})") from err
        self.vars: dict[str, _MatVar] | None = None
        matlab = any("MATLAB_class" in obj.attrs
                     for obj in itertools.islice(self.h5.values(), 100))
        self.kind = "MATLAB v7.3 MAT-file (HDF5)" if matlab else "HDF5"

    def _open_mat5(self, head: bytes) -> None:
        self.h5 = None
        endian = "<" if head[126:128] == b"IM" else ">"
        version = struct.unpack(endian + "H", head[124:126])[0]
        if version != 0x0100:
            what = ("a MATLAB v7.3 header but no readable HDF5 data" if version == 0x0200
                    else f"unknown MAT-file version 0x{version:04x} in the header")
            raise ImporterError(f"{self.path}: {what}")
        self.kind = "MATLAB v5 MAT-file"
        self.vars = {}
        size = self.path.stat().st_size
        try:
            with open(self.path, "rb") as f:
                pos = 128
                while pos + 8 <= size:
                    f.seek(pos)
                    mdtype, nbytes = struct.unpack(endian + "II", f.read(8))
                    if mdtype == _MI_COMPRESSED:
                        z = _Inflate(f, pos + 8, nbytes)
                        inner, inner_n, _ = _tag(z, endian)
                        if inner == _MI_MATRIX and inner_n:
                            var = _parse_matrix(z, endian)
                            var.compressed = (pos + 8, nbytes)
                            self.vars.setdefault(var.name, var)
                    elif mdtype == _MI_MATRIX and nbytes:
                        var = _parse_matrix(_FileStream(f), endian)
                        self.vars.setdefault(var.name, var)
                    pos += 8 + nbytes
        except (EOFError, zlib.error, struct.error) as err:
            raise ImporterError(f"{self.path}: truncated or corrupt MAT-file "
                                f"({type(err).__name__} at byte {pos})") from err
        self.vars.pop("", None)  # MATLAB's subsystem data

    # -- queries -----------------------------------------------------------------------
    def keys(self) -> list[str]:
        return sorted(self.vars) if self.h5 is None else sorted(self.h5.keys())

    def has(self, key: str) -> bool:
        return key in (self.vars if self.h5 is None else self.h5)

    def _missing(self, key: str, why: str = "") -> ImporterError:
        return ImporterError(f"{self.path}: no key '{key}'{why}; keys present: {self.keys()}")

    def _dataset(self, key: str) -> h5py.Dataset:
        if key not in self.h5:
            raise self._missing(key)
        ds = self.h5[key]
        if not isinstance(ds, h5py.Dataset):
            raise ImporterError(f"{self.path}: '{key}' is an HDF5 group, expected an array "
                                f"(its members: {sorted(ds.keys())[:10]})")
        cls = ds.attrs.get("MATLAB_class")
        cls = cls.decode() if isinstance(cls, bytes) else cls
        if (cls is not None and cls not in _MATLAB_NUMERIC) or ds.dtype.kind not in "fiub":
            raise ImporterError(f"{self.path}: '{key}' is not a real numeric array "
                                f"(dtype {ds.dtype}, MATLAB class {cls})")
        return ds

    def _var(self, key: str) -> _MatVar:
        if key not in self.vars:
            raise self._missing(key)
        var = self.vars[key]
        if var.mxclass not in _MX_NUMERIC or var.complex:
            kind = "complex" if var.complex else _MX_CLASSES.get(var.mxclass, var.mxclass)
            raise ImporterError(f"{self.path}: '{key}' is a MATLAB {kind} array, expected a "
                                "real numeric array")
        return var

    def transposed(self, key: str) -> bool:
        """Stored with reversed axes (a MATLAB v7.3 variable)."""
        return self.h5 is not None and "MATLAB_class" in self._dataset(key).attrs

    def shape(self, key: str) -> tuple[int, ...]:
        if self.h5 is None:
            return self._var(key).shape
        ds = self._dataset(key)
        return ds.shape[::-1] if "MATLAB_class" in ds.attrs else ds.shape

    def read(self, key: str, start: int, stop: int,
             index: Sequence[slice] = ()) -> np.ndarray:
        """Samples ``start:stop`` of ``key``, other axes selected by ``index``."""
        shape = self.shape(key)
        index = tuple(index) + (slice(None),) * (len(shape) - 1 - len(index))
        full = (slice(start, stop), *index)
        if self.h5 is not None:
            ds = self._dataset(key)
            if "MATLAB_class" in ds.attrs:
                return ds[full[::-1]].transpose()
            return ds[full]
        var = self._var(key)
        nbytes = math.prod(var.shape) * np.dtype(var.dtype or "f8").itemsize
        if var.dtype is None or nbytes <= self.block_bytes:
            if key not in self._loaded:
                from scipy.io import loadmat

                self._loaded[key] = loadmat(self.path, variable_names=[key])[key]
            return self._loaded[key][full]
        if var.compressed is None:
            mm = np.memmap(self.path, var.dtype, "r", var.offset, var.shape, order="F")
            return np.array(mm[full])
        return self._inflate(var, start, stop, index)

    def _inflate(self, var: _MatVar, start: int, stop: int, index) -> np.ndarray:
        """One pass through a compressed variable, keeping samples ``start:stop``: its data
        is in Fortran order (the sample index varies fastest), a column per grid point."""
        n, rest = var.shape[0], var.shape[1:]
        masks = []
        for size, sl in zip(rest, index, strict=True):
            m = np.zeros(size, bool)
            m[sl] = True
            masks.append(m)
        flat = (functools.reduce(np.logical_and.outer, masks[::-1]).ravel() if masks
                else np.ones(1, bool))
        out = np.empty((stop - start, int(flat.sum())), var.dtype)
        col = n * var.dtype.itemsize
        per_piece = max(1, _Inflate.PIECE // col)
        last = int(np.flatnonzero(flat)[-1]) + 1 if flat.any() else 0
        with open(self.path, "rb") as f:
            z = _Inflate(f, *var.compressed)
            z.skip(var.offset)
            c = k = 0
            while c < last:
                m = min(per_piece, last - c)
                piece = np.frombuffer(z.read(m * col), var.dtype).reshape(m, n)
                chosen = piece[flat[c:c + m], start:stop]
                out[:, k:k + len(chosen)] = chosen.T
                k, c = k + len(chosen), c + m
        kept = tuple(int(m.sum()) for m in masks)
        return out.reshape(stop - start, *kept[::-1]).transpose(0, *range(len(rest), 0, -1))

    def read_vector(self, key: str) -> np.ndarray:
        """A small array (coordinates) as a flat float64 vector."""
        shape = self.shape(key)
        if math.prod(shape) > 10**7:
            raise ImporterError(f"{self.path}: '{key}' has shape {shape}, expected a vector")
        if self.h5 is not None:
            return np.asarray(self._dataset(key)[()], np.float64).ravel()
        return np.asarray(self.read(key, 0, shape[0]), np.float64).ravel(order="F")

    def sha256(self) -> str:
        if self._sha256 is None:
            digest = hashlib.sha256()
            with open(self.path, "rb") as f:
                for piece in iter(lambda: f.read(1 << 22), b""):
                    digest.update(piece)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
        self._loaded.clear()


# ----------------------------------------------------------------------------- formats


@dataclasses.dataclass(frozen=True)
class Options:
    """How to import: grid/time subsampling, the input/output split in time, field names."""

    stride: int = 1
    time_stride: int = 1
    initial_steps: int | None = None
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)  # role -> field name
    keys: Sequence[str] | None = None  # pdebench: the arrays to import


@dataclasses.dataclass
class Layout:
    """What one source file contributes: the reads, the opnet fields they make, coords."""

    n: int  # samples in the file
    reads: dict[str, tuple[slice, ...]]  # source key -> selection of the non-sample axes
    specs: dict[str, tuple[tuple[int, ...], type]]  # "inputs/coeff" -> (per-sample shape, dtype)
    make: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    coords: dict[str, np.ndarray]
    shapes: dict[str, list[int]]  # source key -> its shape (for the provenance YAML)


def _kept(size: int, step: int) -> int:
    return len(range(0, size, step))


def _array(src: Source, fmt: str, key: str, rank: int, what: str) -> tuple[int, ...]:
    if not src.has(key):
        raise src._missing(key, f" (the {fmt} format needs it: {what})")
    shape = src.shape(key)
    if len(shape) != rank or min(shape, default=0) < 1:
        note = "; a MATLAB v7.3 array, axes reversed" if src.transposed(key) else ""
        raise ImporterError(f"{src.path}: '{key}' has shape {list(shape)}, expected {what} "
                            f"({fmt}{note})")
    return shape


def _agree(src: Source, key: str, shape, expected, what: str) -> None:
    if tuple(shape) != tuple(expected):
        raise ImporterError(f"{src.path}: '{key}' has shape {list(shape)}, expected {what} = "
                            f"{list(expected)}")


def _name(opt: Options, role: str, default: str) -> str:
    return opt.fields.get(role, default)


def _grid_index(rank: int, stride: int) -> tuple[slice, ...]:
    return (slice(None, None, stride),) * rank


def _fno_darcy(src: Source, opt: Options) -> Layout:
    c = _array(src, "fno-darcy", "coeff", 3, "[N, s, s]")
    s = _array(src, "fno-darcy", "sol", 3, "[N, s, s]")
    _agree(src, "sol", s, c, "the shape of 'coeff'")
    r = opt.stride
    grid = (_kept(c[1], r), _kept(c[2], r))
    fin, fout = f"inputs/{_name(opt, 'coeff', 'coeff')}", f"outputs/{_name(opt, 'sol', 'sol')}"
    return Layout(
        n=c[0], reads={"coeff": _grid_index(2, r), "sol": _grid_index(2, r)},
        specs={fin: ((1, *grid), F32), fout: ((1, *grid), F32)},
        make=lambda a: {fin: a["coeff"][:, None], fout: a["sol"][:, None]},
        coords={"x": np.linspace(0, 1, c[1])[::r], "y": np.linspace(0, 1, c[2])[::r]},
        shapes={"coeff": list(c), "sol": list(s)})


def _periodic(s: int) -> np.ndarray:
    return np.linspace(0, 1, s + 1)[:-1]


def _fno_burgers(src: Source, opt: Options) -> Layout:
    a = _array(src, "fno-burgers", "a", 2, "[N, s]")
    u = _array(src, "fno-burgers", "u", 2, "[N, s]")
    _agree(src, "u", u, a, "the shape of 'a'")
    r = opt.stride
    grid = (_kept(a[1], r),)
    fin, fout = f"inputs/{_name(opt, 'a', 'u0')}", f"outputs/{_name(opt, 'u', 'u')}"
    return Layout(
        n=a[0], reads={"a": _grid_index(1, r), "u": _grid_index(1, r)},
        specs={fin: ((1, *grid), F32), fout: ((1, *grid), F32)},
        make=lambda d: {fin: d["a"][:, None], fout: d["u"][:, None]},
        coords={"x": _periodic(a[1])[::r], "t": np.array([1.0])},
        shapes={"a": list(a), "u": list(u)})


def _times(t: np.ndarray, k: int, ts: int) -> dict[str, np.ndarray]:
    t = t[::ts]
    return {"t_in": t[:k], "t": t[k:]} if k else {"t": t}


def _split_time(k: int, t_total: int, ts: int, src: Source, key: str, flag: str) -> None:
    frames = _kept(t_total, ts)
    if not 1 <= k < frames:
        raise ImporterError(f"{src.path}: {flag}={k} but '{key}' has {frames} time frames "
                            f"(time_stride={ts}); expected 1 <= {flag} < {frames}")


def _fno_ns(src: Source, opt: Options) -> Layout:
    k = opt.initial_steps or 0
    u = _array(src, "fno-ns", "u", 4, "[N, s, s, T] (time last)")
    r, ts = opt.stride, opt.time_stride
    grid = (_kept(u[1], r), _kept(u[2], r))
    index = (*_grid_index(2, r), slice(None, None, ts))
    frames = _kept(u[3], ts)
    t = np.arange(1.0, u[3] + 1)
    if src.has("t"):
        t = src.read_vector("t")
        if len(t) != u[3]:
            raise ImporterError(f"{src.path}: 't' has {len(t)} entries but 'u' has T = {u[3]} "
                                "records")
    coords = {"x": _periodic(u[1])[::r], "y": _periodic(u[2])[::r], **_times(t, k, ts)}
    name = _name(opt, "u", "w")
    if k:
        _split_time(k, u[3], ts, src, "u", "initial_steps")
        fin, fout = f"inputs/{name}", f"outputs/{name}"
        return Layout(
            n=u[0], reads={"u": index},
            specs={fin: ((k, *grid), F32), fout: ((frames - k, *grid), F32)},
            make=lambda d: {fin: np.moveaxis(d["u"][..., :k], -1, 1),
                            fout: np.moveaxis(d["u"][..., k:], -1, 1)},
            coords=coords, shapes={"u": list(u)})
    a = _array(src, "fno-ns", "a", 3, "[N, s, s] (or pass --initial-steps to use 'u' only)")
    _agree(src, "a", a, u[:3], "[N, s, s] of 'u'")
    fin, fout = f"inputs/{_name(opt, 'a', 'w0')}", f"outputs/{name}"
    return Layout(
        n=u[0], reads={"a": _grid_index(2, r), "u": index},
        specs={fin: ((1, *grid), F32), fout: ((frames, *grid), F32)},
        make=lambda d: {fin: d["a"][:, None], fout: np.moveaxis(d["u"], -1, 1)},
        coords=coords, shapes={"a": list(a), "u": list(u)})


_AXES = ("x", "y", "z")


def _pdebench_space(src: Source, dims: Sequence[int], r: int) -> dict[str, np.ndarray]:
    coords = {}
    for axis, size in zip(_AXES, dims, strict=False):
        key = f"{axis}-coordinate"
        if src.has(key):
            values = src.read_vector(key)
            if len(values) != size:
                raise ImporterError(f"{src.path}: '{key}' has {len(values)} entries, expected "
                                    f"{size} (the {axis} size of the data)")
        else:
            values = (np.arange(size) + 0.5) / size
        coords[axis] = values[::r]
    return coords


def _pdebench(src: Source, opt: Options) -> Layout:
    keys = list(opt.keys or ["tensor"])
    k = 10 if opt.initial_steps is None else opt.initial_steps
    first: str | None = None
    shapes = {}
    for key in keys:
        if not src.has(key):
            raise src._missing(key, " (the pdebench format reads --keys, default 'tensor')")
        shape = src.shape(key)
        if not 3 <= len(shape) <= 5:
            raise ImporterError(f"{src.path}: '{key}' has shape {list(shape)}, expected "
                                "[N, T, X(, Y(, Z))] (pdebench)")
        if first is not None:
            _agree(src, key, shape, shapes[first], f"the shape of '{first}'")
        first = first or key
        shapes[key] = list(shape)
    n, t_total, *space = shapes[first]
    r, ts = opt.stride, opt.time_stride
    _split_time(k, t_total, ts, src, first, "initial_steps")
    frames = _kept(t_total, ts)
    grid = tuple(_kept(s, r) for s in space)
    if src.has("t-coordinate"):
        t = src.read_vector("t-coordinate")
        if len(t) not in (t_total, t_total + 1):
            raise ImporterError(f"{src.path}: 't-coordinate' has {len(t)} entries, expected "
                                f"{t_total} or {t_total + 1} (T = {t_total} snapshots)")
        t = t[:t_total]  # PDEBench writes T+1 times for T snapshots
    else:
        t = np.arange(t_total, dtype=np.float64)
    index = (slice(None, None, ts), *_grid_index(len(space), r))
    names = {key: _name(opt, key, "u" if key == "tensor" else key) for key in keys}
    specs = {}
    for key in keys:
        specs[f"inputs/{names[key]}"] = ((k, *grid), F32)
        specs[f"outputs/{names[key]}"] = ((frames - k, *grid), F32)

    def make(d):
        out = {}
        for key in keys:
            out[f"inputs/{names[key]}"] = d[key][:, :k]
            out[f"outputs/{names[key]}"] = d[key][:, k:]
        return out

    return Layout(n=n, reads={key: index for key in keys}, specs=specs, make=make,
                  coords={**_pdebench_space(src, space, r), **_times(t, k, ts)}, shapes=shapes)


def _pdebench_darcy(src: Source, opt: Options) -> Layout:
    nu = _array(src, "pdebench-darcy", "nu", 3, "[N, X, Y]")
    u = _array(src, "pdebench-darcy", "tensor", 4, "[N, 1, X, Y]")
    _agree(src, "tensor", u, (nu[0], 1, *nu[1:]), "[N, 1, X, Y] with 'nu' [N, X, Y]")
    r = opt.stride
    grid = (_kept(nu[1], r), _kept(nu[2], r))
    fin = f"inputs/{_name(opt, 'nu', 'coeff')}"
    fout = f"outputs/{_name(opt, 'tensor', 'sol')}"
    return Layout(
        n=nu[0], reads={"nu": _grid_index(2, r), "tensor": (slice(None), *_grid_index(2, r))},
        specs={fin: ((1, *grid), F32), fout: ((1, *grid), F32)},
        make=lambda d: {fin: d["nu"][:, None], fout: d["tensor"]},
        coords=_pdebench_space(src, nu[1:], r), shapes={"nu": list(nu), "tensor": list(u)})


@dataclasses.dataclass(frozen=True)
class Format:
    build: Callable[[Source, Options], Layout]
    pde: str | None  # the ``pde`` attribute (None: from the file name)
    roles: tuple[str, ...] | None  # keys that --field may rename (None: any --keys)
    time: bool  # has a time axis (--time-stride, --initial-steps apply)


FORMATS: dict[str, Format] = {
    "fno-darcy": Format(_fno_darcy, "darcy", ("coeff", "sol"), False),
    "fno-burgers": Format(_fno_burgers, "burgers", ("a", "u"), False),
    "fno-ns": Format(_fno_ns, "navier_stokes", ("a", "u"), True),
    "pdebench": Format(_pdebench, None, None, True),
    "pdebench-darcy": Format(_pdebench_darcy, "darcy", ("nu", "tensor"), False),
}


# ----------------------------------------------------------------------------- splits


def parse_range(spec: str | slice | Sequence[int] | None, n: int, where: str,
                flag: str) -> tuple[int, int]:
    """``"a:b"`` (Python slice syntax, no step; negative = from the end) -> (start, stop)
    within ``n`` samples; ``None`` means all of them. Out-of-range is an error, not a clip."""
    if spec is None:
        return 0, n
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) != 2:
            raise ImporterError(f"{flag} {spec!r}: expected START:STOP (Python slice syntax, "
                                "e.g. 0:1000, 1000:, -100:), without a step")
        try:
            spec = slice(*(int(p) if p.strip() else None for p in parts))
        except ValueError as err:
            raise ImporterError(f"{flag} {spec!r}: START and STOP must be integers") from err
    if not isinstance(spec, slice):
        spec = slice(*spec)
    if spec.step not in (None, 1):
        raise ImporterError(f"{flag}: a step ({spec.step}) is not supported")
    start = 0 if spec.start is None else spec.start + (n if spec.start < 0 else 0)
    stop = n if spec.stop is None else spec.stop + (n if spec.stop < 0 else 0)
    text = f"{'' if spec.start is None else spec.start}:{'' if spec.stop is None else spec.stop}"
    if not (0 <= start <= n and 0 <= stop <= n):
        raise ImporterError(f"{where}: {flag} {text} is outside the file's {n} samples "
                            f"(valid: 0 <= START < STOP <= {n})")
    if start >= stop:
        raise ImporterError(f"{where}: {flag} {text} selects no samples (of {n}); omit the "
                            "split to write it empty")
    return start, stop


@dataclasses.dataclass
class ImportSummary:
    """What :func:`import_dataset` wrote."""

    out: Path
    fmt: str
    files: dict[str, Path]
    samples: dict[str, int]
    shapes: dict[str, dict[str, tuple[int, ...]]]
    sources: dict[str, str]
    seconds: float

    def table(self) -> str:
        lines = [f"imported {self.fmt} -> {self.out}  ({self.seconds:.1f} s)"]
        for split, path in self.files.items():
            fields = "  ".join(f"{k} {list(v)}" for k, v in self.shapes[split].items())
            lines.append(f"  {split:<5} {self.samples[split]:>7} samples  {path}  {fields}"
                         + (f"  <- {self.sources[split]}" if self.sources.get(split) else ""))
        return "\n".join(lines)


def _existing(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    pattern = re.compile(rf"({'|'.join(h5.SPLITS)})(-\d{{5}})?\.h5(\.tmp)?")
    found = sorted(p for p in out.iterdir() if pattern.fullmatch(p.name))
    found += [p for p in (out / ".partial", out / "config.yaml", out / SIDECAR) if p.exists()]
    return found


def import_dataset(fmt: str, out: str | os.PathLike, source: str | os.PathLike | None = None, *,
                   train=None, val=None, test=None,
                   train_file: str | os.PathLike | None = None,
                   val_file: str | os.PathLike | None = None,
                   test_file: str | os.PathLike | None = None,
                   stride: int = 1, time_stride: int = 1, initial_steps: int | None = None,
                   fields: Mapping[str, str] | None = None, keys: Sequence[str] | None = None,
                   pde: str | None = None, overwrite: bool = False, allow_overlap: bool = False,
                   block_mb: float = 256.0, progress: bool = False) -> ImportSummary:
    """Import ``source`` (or per-split files) in format ``fmt`` into the folder ``out``.

    ``train``/``val``/``test`` are sample ranges (``"0:1000"``, a slice or ``(start, stop)``);
    a split with neither a range nor a file is written empty. See the module docstring for
    the formats, fields and coordinates. Returns an :class:`ImportSummary`.
    """
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ImporterError(f"unknown format '{fmt}'; choose one of {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    opt = _options(fmt, spec, stride, time_stride, initial_steps, fields, keys)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ImporterError(f"{out}: exists and is not a folder; --out names a dataset folder")
    existing = _existing(out)
    if existing and not overwrite:
        raise ImporterError(f"{out}: already holds a dataset ({', '.join(p.name for p in existing)}"
                            "); pass --overwrite (overwrite=True) to replace it, or choose "
                            "another --out")
    ranges = {"train": train, "val": val, "test": test}
    files = {"train": train_file, "val": val_file, "test": test_file}
    block_bytes = max(1, int(block_mb * (1 << 20)))
    sources: dict[Path, Source] = {}
    try:
        plan = _plan(fmt, spec, opt, source, ranges, files, sources, block_bytes, allow_overlap)
        for path in existing:
            if path.resolve() in sources:
                raise ImporterError(f"{path}: is a source of this import and would be replaced; "
                                    "write to another --out")
        return _write(fmt, spec, opt, out, plan, pde, existing, block_bytes, progress, t0)
    finally:
        for src in sources.values():
            src.close()


def _options(fmt, spec, stride, time_stride, initial_steps, fields, keys) -> Options:
    for flag, value in (("stride", stride), ("time_stride", time_stride)):
        if int(value) != value or value < 1:
            raise ImporterError(f"{flag}={value}: expected a positive integer")
    if not spec.time and (time_stride != 1 or initial_steps is not None):
        raise ImporterError(f"{fmt}: time_stride and initial_steps apply to the time-series "
                            "formats (fno-ns, pdebench) only")
    if keys is not None and fmt != "pdebench":
        raise ImporterError(f"{fmt}: --keys applies to the pdebench format only")
    fields = dict(fields or {})
    roles = spec.roles if spec.roles is not None else tuple(keys or ["tensor"])
    unknown = sorted(set(fields) - set(roles))
    if unknown:
        raise ImporterError(f"{fmt}: --field {unknown} names no source key; roles: {list(roles)}")
    if spec.time and initial_steps is None:
        initial_steps = 10 if fmt == "pdebench" else 0  # PDEBench's initial_step; FNO a -> w0
    return Options(int(stride), int(time_stride), initial_steps, fields,
                   list(keys) if keys is not None else None)


@dataclasses.dataclass
class _Split:
    src: Source
    layout: Layout
    start: int
    stop: int


def _plan(fmt, spec, opt, source, ranges, files, sources, block_bytes, allow_overlap):
    """Open every source, check keys, shapes and ranges before anything is written."""
    plan: dict[str, _Split | None] = {}
    for split in h5.SPLITS:
        path = files[split] if files[split] is not None else source
        if ranges[split] is None and files[split] is None:
            plan[split] = None
            continue
        if path is None:
            raise ImporterError(f"--{split} {ranges[split]}: no file to read; give SOURCE or "
                                f"--{split}-file")
        path = Path(path).resolve()
        if path not in sources:
            sources[path] = Source(path, block_bytes)
        src = sources[path]
        layout = spec.build(src, opt)
        start, stop = parse_range(ranges[split], layout.n, str(src.path), f"--{split}")
        plan[split] = _Split(src, layout, start, stop)
    chosen = {s: p for s, p in plan.items() if p is not None}
    if not chosen:
        raise ImporterError(f"{fmt}: no split selected; give --train/--val/--test ranges "
                            "(and SOURCE) or --train-file/--val-file/--test-file")
    first_split, first = next(iter(chosen.items()))
    order = list(chosen)
    for split, p in chosen.items():
        if p.layout.specs != first.layout.specs:
            raise ImporterError(
                f"{p.src.path}: the {split} split would have fields "
                f"{_fmt_specs(p.layout.specs)} but {first_split} ({first.src.path}) has "
                f"{_fmt_specs(first.layout.specs)}; use files of one resolution")
        for other in order[:order.index(split)]:
            q = chosen[other]
            if (q.src is p.src and not allow_overlap
                    and max(p.start, q.start) < min(p.stop, q.stop)):
                raise ImporterError(
                    f"{p.src.path}: --{other} {q.start}:{q.stop} and --{split} "
                    f"{p.start}:{p.stop} overlap; pass --allow-overlap if that is intended")
    return plan


def _fmt_specs(specs) -> str:
    return ", ".join(f"{k} {list(shape)}" for k, (shape, _) in specs.items())


def _describe(fmt, pde, opt, plan) -> str:
    splits = {}
    for split, p in plan.items():
        if p is None:
            splits[split] = {"samples": 0}
            continue
        splits[split] = {"file": str(p.src.path), "format": p.src.kind, "sha256": p.src.sha256(),
                         "keys": sorted(p.layout.reads), "shapes": p.layout.shapes,
                         "range": [p.start, p.stop], "samples": p.stop - p.start}
    options = {"stride": opt.stride, "time_stride": opt.time_stride,
               "initial_steps": opt.initial_steps, "fields": dict(opt.fields)}
    if opt.keys is not None:
        options["keys"] = list(opt.keys)
    return yaml.safe_dump({"importer": fmt, "pde": pde, "options": options, "splits": splits},
                          sort_keys=False, default_flow_style=None)


def _write(fmt, spec, opt, out, plan, pde, existing, block_bytes, progress, t0):
    first = next(p for p in plan.values() if p is not None)
    if pde is None:
        pde = spec.pde or f"pdebench:{first.src.path.stem}"
    config = _describe(fmt, pde, opt, plan)
    specs, coords = first.layout.specs, first.layout.coords
    staging = out / STAGING
    created = not out.exists()
    shutil.rmtree(staging, ignore_errors=True)
    written: dict[str, Path] = {}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress)
    try:
        with bar:
            for split, p in plan.items():
                n = 0 if p is None else p.stop - p.start
                attrs = {"pde": pde, "split": split, "generator_config": config,
                         "importer": fmt, "source": None if p is None else str(p.src.path)}
                task = bar.add_task(f"{fmt} {split}", total=n)
                with h5.SplitWriter(staging / f"{split}.h5", n, specs, coords, attrs) as writer:
                    if p is not None:
                        _copy(p, writer, block_bytes, functools.partial(bar.advance, task))
                    written[split] = writer.commit()
        for path in existing:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        for split, path in written.items():
            os.replace(path, h5.split_path(out, split))
        (out / SIDECAR).write_text(config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    shapes = {split: {k: (0 if p is None else p.stop - p.start, *shape)
                      for k, (shape, _) in specs.items()} for split, p in plan.items()}
    return ImportSummary(
        out, fmt, {s: h5.split_path(out, s) for s in written},
        {s: (0 if p is None else p.stop - p.start) for s, p in plan.items()}, shapes,
        {s: f"{p.src.path.name}[{p.start}:{p.stop}]" for s, p in plan.items() if p},
        time.perf_counter() - t0)


def _copy(p: _Split, writer: h5.SplitWriter, block_bytes: int, advance) -> None:
    """Copy samples ``p.start:p.stop`` in blocks of about ``block_bytes`` of memory (each
    value read, up to 8 bytes, plus its float32 copy)."""
    per_sample = sum(12 * math.prod(shape) for shape, _ in p.layout.specs.values())
    block = max(1, block_bytes // max(per_sample, 1))
    for a in range(p.start, p.stop, block):
        b = min(p.stop, a + block)
        arrays = {}
        for key, index in p.layout.reads.items():
            try:
                arrays[key] = p.src.read(key, a, b, index)
            except (OSError, EOFError, zlib.error) as err:
                raise ImporterError(f"{p.src.path}: reading '{key}' samples {a}:{b} failed "
                                    f"({type(err).__name__}: {err})") from err
        for key, arr in arrays.items():
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
            if bad.any():
                raise ImporterError(f"{p.src.path}: '{key}' sample {a + int(np.argmax(bad))} "
                                    "holds NaN or Inf; choose a range without it")
        made = {k: np.ascontiguousarray(v, dtype=F32) for k, v in p.layout.make(arrays).items()}
        writer.write(a - p.start, made, np.arange(a, b, dtype=np.int64))
        advance(b - a)


# ----------------------------------------------------------------------------- CLI


def _field(text: str) -> tuple[str, str]:
    role, sep, name = text.partition("=")
    if not sep or not role or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROLE=NAME, e.g. coeff=a")
    return role, name


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="python -m data_gen.importers",
        description=doc.split("\n\n")[0] + "\n\n" + doc[doc.index("Formats"):doc.index(
            "Provenance")], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc[doc.index("Examples::"):].replace("Examples::", "examples:"))
    parser.add_argument("format", choices=sorted(FORMATS), help="layout of the source file(s)")
    parser.add_argument("source", nargs="?", help="file read by every split without its own "
                        "--<split>-file")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    for split in h5.SPLITS:
        parser.add_argument(f"--{split}", metavar="START:STOP",
                            help=f"samples of the {split} split (Python slice syntax)")
        parser.add_argument(f"--{split}-file", metavar="FILE",
                            help=f"read the {split} split from FILE (all of it unless --{split})")
    parser.add_argument("--stride", type=int, default=1, metavar="R",
                        help="keep every R-th grid point on each space axis")
    parser.add_argument("--time-stride", type=int, default=1, metavar="R",
                        help="keep every R-th time frame (fno-ns, pdebench)")
    parser.add_argument("--initial-steps", type=int, default=None, metavar="K",
                        help="frames given as input (pdebench default 10; fno-ns default 0: "
                        "a -> w0)")
    parser.add_argument("--field", type=_field, action="append", default=[],
                        metavar="ROLE=NAME", help="rename a field, e.g. --field coeff=a")
    parser.add_argument("--keys", nargs="+", help="pdebench: the arrays to import "
                        "(default: tensor)")
    parser.add_argument("--pde", help="the 'pde' attribute (default from the format)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset in --out")
    parser.add_argument("--allow-overlap", action="store_true",
                        help="allow overlapping ranges of one file")
    parser.add_argument("--block-mb", type=float, default=256.0,
                        help="samples are copied in blocks of about this many MiB")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> ImportSummary:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = import_dataset(
            args.format, args.out, args.source, train=args.train, val=args.val,
            test=args.test, train_file=args.train_file, val_file=args.val_file,
            test_file=args.test_file, stride=args.stride, time_stride=args.time_stride,
            initial_steps=args.initial_steps, fields=dict(args.field), keys=args.keys,
            pde=args.pde, overwrite=args.overwrite, allow_overlap=args.allow_overlap,
            block_mb=args.block_mb, progress=not args.no_progress and sys.stderr.isatty())
    except ImporterError as err:
        parser.exit(2, f"error: {err}\n")
    print(summary.table())
    return summary


if __name__ == "__main__":
    main()
