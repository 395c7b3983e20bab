"""Expected errors of a command-line entry point as one line: ``error: <message>``, exit 2.

    from opnet.cli import run_reporting_errors

    @hydra.main(version_base="1.3", config_path="conf", config_name="train")
    def main(cfg: DictConfig) -> None:
        run_reporting_errors(train, cfg)

Expected errors are bad input: opnet's and data_gen's own errors (``ConfigError``,
``DatasetError``, ``CheckpointError``, ``GenerationError``, ``NonFiniteLossError``), OmegaConf's
errors for bad values or unknown keys, ``ValueError``/``KeyError``, a path that cannot be
used (``FileNotFoundError``, ``PermissionError``, ...; a full disk, a read-only file system), and
Hydra's ``InstantiationException`` caused by one of these or by a constructor argument
(``TypeError``). Anything else keeps its traceback (a bug to report). With
``HYDRA_FULL_ERROR=1`` in the environment every error keeps its traceback.

Light on purpose (no torch import): data_gen's entry point can use it too. opnet's error
classes are recognised by name (and their subclasses through the MRO), so this module
imports none of them.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["error_line", "is_expected", "run_reporting_errors"]

T = TypeVar("T")

EXIT_CODE = 2
# (top-level package, class name): the error classes of bad input raised by opnet/data_gen
OWN_ERRORS = {("opnet", "ConfigError"), ("opnet", "DatasetError"),
              ("opnet", "CheckpointError"), ("opnet", "NonFiniteLossError"),
              ("data_gen", "GenerationError")}
# plain errors raised for bad values (and OmegaConf's ValidationError, ConfigKeyError,
# InterpolationResolutionError, which derive from them) or paths that cannot be used
PLAIN_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, PermissionError,
                IsADirectoryError, NotADirectoryError)
# a full disk or read-only file system: the operator's to fix, not a bug
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def _is_own(err: BaseException) -> bool:
    return any((cls.__module__.partition(".")[0], cls.__name__) in OWN_ERRORS
               for cls in type(err).__mro__)


def _is_omegaconf(err: BaseException) -> bool:
    return any(cls.__module__.startswith("omegaconf") for cls in type(err).__mro__)


def _is_instantiation(err: BaseException) -> bool:
    return type(err).__name__ == "InstantiationException" and \
        type(err).__module__.startswith("hydra")


def is_expected(err: BaseException) -> bool:
    """Whether ``err`` is bad input (reported in one line) rather than a bug (a traceback)."""
    if _is_own(err) or _is_omegaconf(err) or isinstance(err, PLAIN_ERRORS):
        return True
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        return True
    if _is_instantiation(err):
        cause = err.__cause__
        if cause is None:  # Hydra's own refusal of a config (e.g. no _target_)
            return True
        return isinstance(cause, (TypeError, ImportError)) or is_expected(cause)
    return False


def _collapse(text: str) -> str:
    """Every run of whitespace (newlines included) as one space: one line."""
    return " ".join(text.split())


def error_line(err: BaseException) -> str:
    """``err``'s message as one line (no ``error:`` prefix), naming the key where the
    error knows it (OmegaConf's ``full_key``, Hydra's ``full_key``/target)."""
    if _is_instantiation(err):
        text = str(err)
        key = re.search(r"full_key: (\S+)", text)
        target = re.search(r"target '([^']+)'", text)
        cause = err.__cause__
        if cause is None:
            return _collapse(text)
        message = error_line(cause)
        if _is_own(cause):  # opnet's errors name their key or file themselves
            return message
        where = key.group(1) if key else (target.group(1) if target else "")
        if not where or message.startswith(where):  # the message names its key already
            return message
        what = f" ({target.group(1)})" if key and target else ""
        return f"{where}{what}: {message}"
    if _is_omegaconf(err):
        message = str(getattr(err, "msg", None) or err).splitlines()[0].strip()
        key = getattr(err, "full_key", None)
        return _collapse(f"{key}: {message}" if key and str(key) not in message else message)
    if isinstance(err, KeyError) and err.args:
        return _collapse(str(err.args[0]))
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return _collapse(f"{err.filename}: {err.strerror}")
    return _collapse(str(err)) or type(err).__name__


def run_reporting_errors(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; an expected error (:func:`is_expected`) is printed as
    ``error: <one line>`` on stderr and exits with code 2, unless ``HYDRA_FULL_ERROR=1``
    is set (then it propagates with its traceback, as every unexpected error does)."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or not is_expected(err):
            raise
        sys.stdout.flush()
        print(f"error: {error_line(err)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CODE)
