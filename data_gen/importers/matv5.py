"""A streaming reader of MATLAB v5/v6/v7 MAT-file headers: variables, shapes, offsets
(the data stay on disk; :mod:`.sources` memory-maps or inflates them)."""

from __future__ import annotations

import dataclasses
import math
import struct
import zlib

import numpy as np

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


