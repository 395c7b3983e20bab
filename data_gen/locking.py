"""Generations that run at the same time: folder and shard locks, storage errors, workers
that die with their parent.

A dataset folder is written under an exclusive lock (``filelock``: ``flock`` on POSIX,
works on local disks and on NFS with lock support): ``<out>/.lock`` for a whole generation
and for merging shards, ``<out>/.lock-shard0000k`` for shard ``k`` of ``num_shards``, so
machines writing different shards into one folder never wait for each other. A second
process asking for a held lock prints one line and waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

FOLDER_LOCK = ".lock"
# errors that mean "this folder cannot take the data", not a bug: said in one line
STORAGE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EFBIG: "the file-size limit was reached",
                  errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
ACCESS_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


class GenerationError(RuntimeError):
    """The requested generation conflicts with what is already on disk, or the disk
    cannot take it."""


def shard_lock_name(shard: int) -> str:
    return f".lock-shard{int(shard):05d}"


def prepare_folder(out: Path) -> None:
    """Create the dataset folder ``out``, or raise a one-line :class:`GenerationError` when
    it is an existing file or cannot be created."""
    if out.exists() and not out.is_dir():
        raise GenerationError(f"out={out}: is an existing file, expected a dataset folder "
                              "(a directory, created when missing); choose another out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(out, err, "cannot create the dataset folder") from err


def storage_error(out: Path, err: OSError, doing: str = "cannot write") -> GenerationError:
    """One line naming the folder, the file and the cause of a failed write, and saying
    that rerunning the same command resumes."""
    cause = STORAGE_ERRNOS.get(err.errno or 0, err.strerror or str(err))
    name = ""
    if err.filename and Path(err.filename) != out:  # the file, not its temporary name
        path = Path(err.filename)
        path = path.relative_to(out) if path.is_relative_to(out) else path
        name = " " + re.sub(r"\.\d+-[0-9a-f]+\.tmp$", "", str(path))
    fix = ("make it writable or choose another out" if err.errno in ACCESS_ERRNOS else
           "free space (or choose another out)")
    return GenerationError(f"{out}: {doing}{name}: {cause} (errno {err.errno}); {fix} and "
                           "rerun the same command: it resumes from the chunks already saved")


def is_storage_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


@contextlib.contextmanager
def locked(out: Path, name: str = FOLDER_LOCK, what: str = "") -> Iterator[None]:
    """Hold the lock file ``out/name`` (exclusive, released when the process dies); when
    another process holds it, print one line and wait for it."""
    lock = FileLock(out / name)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(f"waiting for {out}{what} (locked by another generation)", file=sys.stderr,
                  flush=True)
            lock.acquire()
    except OSError as err:
        if err.errno in ACCESS_ERRNOS:
            raise storage_error(out, err, "cannot create the lock file") from err
        raise GenerationError(f"{out}: cannot lock the dataset folder: {err.strerror} (errno "
                              f"{err.errno}); use a folder on a file system with file locks "
                              "(a local disk, or NFS with locking)") from err
    try:
        yield
    finally:
        lock.release()


def worker_init(parent: int) -> None:
    """Pool initializer: this worker dies with ``parent``, the process that started it
    (Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; elsewhere, and as a fallback, a daemon
    thread that exits the worker once its parent process changed)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True,
                     name="exit-with-parent").start()


def _exit_with(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)
