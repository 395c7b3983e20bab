"""A run folder of its own for every ``python train.py``: ``${run_id:}`` in ``hydra.run.dir``.

``${now:...}`` alone gives runs started in the same second (a parallel sweep, a SLURM array,
two terminals) one folder, one ``last.ckpt`` and one ``metrics.json``. ``run_id`` adds six
random hex digits, drawn once per process (every resolution of ``hydra.run.dir`` in one
process agrees), so two processes collide with probability 2**-24 per pair and second.

``${temporary_dir:}`` (``debug=fdr``): a fresh temporary folder removed when the process
exits, so a debugging run leaves nothing behind. :func:`link_latest` points
``outputs/<task>/latest`` at a run folder.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

_RUN_ID: str | None = None
LATEST = "latest"  # as opnet.checkpoint.LATEST (which reads the link); kept free of torch here


def run_id() -> str:
    """Six random hex digits, the same for the whole process."""
    global _RUN_ID
    if _RUN_ID is None:
        _RUN_ID = secrets.token_hex(3)
    return _RUN_ID


def register_resolvers() -> None:
    """Register ``${run_id:}`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("run_id"):
        # use_cache: the value is kept in the config's resolver cache, which Hydra copies
        # into every job of a sweep (also to submitit/joblib processes), as for ${now:}
        OmegaConf.register_new_resolver("run_id", run_id, use_cache=True)
    if not OmegaConf.has_resolver("temporary_dir"):
        OmegaConf.register_new_resolver("temporary_dir", temporary_dir, use_cache=True)


def temporary_dir() -> str:
    """A new folder under the system's temporary directory, removed (with its contents)
    when the process exits."""
    path = tempfile.mkdtemp(prefix="opnet-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def link_latest(run_dir: str | os.PathLike, home: str | os.PathLike | None = None) -> Path:
    """Point ``home/latest`` (default: the run folder's parent, ``outputs/<task>/``) at
    ``run_dir``: a relative symlink, swapped in atomically (a temporary link, then
    ``os.replace``), so a reader sees the old run or the new one. Where symlinks are
    impossible, ``latest`` is a small text file holding that relative path. Returns the link."""
    run_dir = Path(run_dir).resolve()
    home = Path(home).resolve() if home is not None else run_dir.parent
    link = home / LATEST
    target = os.path.relpath(run_dir, home)
    tmp = home / f".{LATEST}.{os.getpid()}-{secrets.token_hex(3)}.tmp"
    try:
        os.symlink(target, tmp, target_is_directory=True)
    except (OSError, NotImplementedError):  # e.g. Windows without the privilege, some FUSE
        tmp.write_text(target + "\n")
    try:
        os.replace(tmp, link)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
    return link
