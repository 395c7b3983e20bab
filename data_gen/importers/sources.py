"""One source file (MAT v5, MAT v7.3 or plain HDF5): keys, shapes, blockwise reads."""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from .errors import ImporterError
from .matv5 import (
    _HDF5_SIGNATURE,
    _MATLAB_NUMERIC,
    _MI_COMPRESSED,
    _MI_MATRIX,
    _MX_CLASSES,
    _MX_NUMERIC,
    _FileStream,
    _Inflate,
    _MatVar,
    _parse_matrix,
    _tag,
)


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


