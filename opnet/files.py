"""Small file helpers: writes that never leave a half-written file behind."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path


def unique_tmp(path: str | os.PathLike, hidden: bool = False) -> Path:
    """A temporary name beside ``path`` that no other process (on any machine sharing the
    folder) uses: ``<name>.<pid>-<random>.tmp`` (``.<name>...`` when ``hidden``)."""
    path = Path(path)
    return path.with_name(f"{'.' if hidden else ''}{path.name}.{os.getpid()}-"
                          f"{secrets.token_hex(3)}.tmp")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an
    atomic rename: readers see the old file or the new one, never a part."""
    path = Path(path)
    tmp = unique_tmp(path, hidden=True)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class DeferredErrorFile(io.RawIOBase):
    """A new file (created or truncated) for a C library that cannot survive a failed write.

    HDF5 crashes the process (SIGSEGV) when a write fails (disk full, quota, file-size
    limit) and the file is then closed. Given this object instead of a path (h5py's
    ``fileobj`` driver), every write appears to succeed; the first ``OSError`` is kept in
    :attr:`error` and later writes are dropped. After the library closed the file, call
    :meth:`finish`: it raises that error (naming the file) or makes the bytes durable.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self.pos = 0
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos}.get(whence)
        self.pos = (os.fstat(self.fd).st_size if base is None else base) + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        data = os.pread(self.fd, len(buffer), self.pos)
        memoryview(buffer).cast("B")[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def write(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += os.pwrite(self.fd, view[done:], self.pos + done)
            except OSError as err:
                self.error = err
        self.pos += len(view)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as err:
                self.error = err
        return size

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()

    def finish(self) -> None:
        """Raise the first write error (as ``OSError(errno, strerror, path)``), else fsync
        and close, so a rename that follows publishes complete bytes."""
        if self.error is None and not self.closed:
            try:
                os.fsync(self.fd)
            except OSError as err:
                self.error = err
        self.close()
        if self.error is not None:
            raise OSError(self.error.errno, self.error.strerror, str(self.path))
