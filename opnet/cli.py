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

The command line is checked before Hydra runs (:func:`check_overrides`, or the
:func:`checked_overrides` decorator around a ``@hydra.main`` function): a key that is not in
the composed config, or a config group option that does not exist, is one line with the
nearest valid name, exit 2 (Hydra's own report is several lines, exit 1)::

    $ python train.py trainer.max_epoch=3
    error: trainer.max_epoch: no such key; did you mean trainer.max_epochs?

``--help`` texts (``conf/hydra/help/<app>.yaml``) list their own config groups with
``${config_groups:data,model,...}`` (:func:`config_groups`).
"""

from __future__ import annotations

import difflib
import errno
import functools
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from opnet.config import CONF  # light: imports no omegaconf/hydra

__all__ = ["check_overrides", "checked_overrides", "config_groups", "error_line", "is_expected",
           "run_reporting_errors"]

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


# ------------------------------------------------------------------ help: config groups
def config_groups(*groups: str, conf: str | os.PathLike = CONF, width: int = 0) -> str:
    """One entry per config group of ``conf`` (``group: option, option, ...``, wrapped to the
    terminal's width): the options a ``--help`` text lists, read from the folder so they
    never go stale. Registered as the resolver ``${config_groups:data,model}``."""
    width = width or min(100, shutil.get_terminal_size((100, 24)).columns)
    pad = max((len(g) for g in groups), default=0) + 4
    lines = []
    for group in groups:
        names = sorted(p.stem for p in Path(conf, group).glob("*.yaml"))
        lines += textwrap.wrap(", ".join(names) or "(none)", width=max(40, width),
                               initial_indent=f"  {group}:".ljust(pad),
                               subsequent_indent=" " * pad, break_on_hyphens=False)
    return "\n".join(lines)


def register_help_resolver() -> None:
    """``${config_groups:...}`` for the ``--help`` templates (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("config_groups"):
        OmegaConf.register_new_resolver("config_groups", lambda *groups: config_groups(*groups))


# --------------------------------------------------------- overrides: did you mean ...?
def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    """Every key path of a nested mapping (inner nodes included): ``trainer``,
    ``trainer.max_epochs``, ..."""
    keys = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            keys.append(path)
            keys += _flat_keys(value, f"{path}.")
    return keys


def _closest(word: str, options: Sequence[str], cutoff: float) -> list[str]:
    """The options nearest ``word`` (difflib's ratio >= ``cutoff``): the best one and those
    nearly as close (``modle`` -> ``module``, ``model``)."""
    scored = sorted(((difflib.SequenceMatcher(None, word, o).ratio(), o) for o in set(options)),
                    reverse=True)
    best = scored[0][0] if scored else 0.0
    return [o for r, o in scored[:3] if r >= cutoff and r >= best - 0.12]


def _nearest(key: str, keys: Sequence[str]) -> list[str]:
    """The valid keys closest to ``key``: among its siblings first (``trainer.max_epoch`` ->
    ``trainer.max_epochs``), else among the keys at its depth (``triner.max_epochs``)."""
    parent, _, leaf = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    close = _closest(leaf, siblings, 0.6)
    if close:
        return [f"{parent}.{c}" if parent else c for c in close]
    depth = key.count(".")
    return _closest(key, [k for k in keys if k.count(".") == depth], 0.75)


def _compose(config_dir: Path, config_name: str, lines: Sequence[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name, overrides=list(lines), return_hydra_config=True)


def _diagnose(err: Exception, parsed: Sequence[Any]) -> tuple[int, str] | None:
    """(index of the override that failed, what kind) for the composition errors explained
    here: an unknown key or group (``key``), a missing key to delete (``delete``), a config
    group option that does not exist (``option``); None for anything else (Hydra reports)."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    text = str(err)
    if isinstance(err, MissingConfigException):
        found = re.search(r"Could not find '([^']+)'", text)
        if not found or err.options is None:
            return None
        group, _, name = found.group(1).rpartition("/")
        for i, o in enumerate(parsed):
            if o.key_or_group == group and str(o.value()) == name:
                return i, "option"
        return None
    found = re.match(r"Could not override '([^']+)'", text)
    if found and isinstance(err.__cause__, (ConfigAttributeError, ConfigKeyError)):
        kind = "key"
    else:
        found = re.match(r"Could not delete from config\. '([^']+)' does not exist", text)
        kind = "delete"
    if not found:
        return None
    for i, o in enumerate(parsed):
        if o.key_or_group == found.group(1) and (kind == "delete") == o.is_delete():
            return i, kind
    return None


def _message(o: Any, kind: str, err: Exception, cfg: Any) -> str:
    """The one-line error for override ``o`` (``kind`` from :func:`_diagnose`), with the
    nearest valid name taken from ``cfg`` (the config composed without the bad overrides;
    None where it could not be composed)."""
    key = o.key_or_group
    if kind == "option":
        options = sorted(getattr(err, "options", None) or [])
        name = str(o.value())
        close = _closest(name, options, 0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return f"{key}={name}: no such {key} config; {hint}(options: {', '.join(options)})"
    from omegaconf import OmegaConf

    keys: list[str] = []
    if cfg is not None:
        tree = OmegaConf.to_container(cfg, resolve=False)
        keys = _flat_keys(tree)
        groups = [g for g in cfg.hydra.runtime.choices if "@" not in g]
        keys += [g for g in groups if g not in keys]
        hydra = key.startswith(("hydra.", "hydra/"))
        keys = [k for k in keys if k.startswith(("hydra.", "hydra/")) == hydra]
    close = _nearest(key, keys)
    prefix = "~" if kind == "delete" else ""
    if close:
        return f"{prefix}{key}: no such key; did you mean " \
            f"{' or '.join(prefix + c for c in close)}?"
    if kind == "delete":
        return f"~{key}: no such key to delete"
    return f"{key}: no such key (to add a new one: +{o.input_line})"


def _command_line(argv: Sequence[str] | None) -> tuple[list[str], bool, bool] | None:
    """(overrides, multirun, --cfg) of Hydra's command line, or None where nothing is checked
    (``--help``, ``--hydra-help``, ``--info``, another config, a rerun, shell completion)."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    skip = ("help", "hydra_help", "info", "shell_completion", "config_path", "config_name",
            "config_dir", "experimental_rerun")
    if any(getattr(args, name, None) for name in skip):
        return None
    return list(args.overrides or []), bool(args.multirun), bool(args.cfg)


def _fail(message: str) -> None:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_CODE)


def _check_required(cfg: Any, required: Mapping[str, str]) -> None:
    """A key still ``???`` (mandatory) after the overrides: one line before Hydra makes a run
    folder, ``<key>=<what required[key] says>: required``."""
    from omegaconf import OmegaConf

    def missing(node: Any, prefix: str = "") -> list[str]:
        found = []
        for key, value in node.items() if isinstance(node, dict) else ():
            if value == "???":
                found.append(f"{prefix}{key}")
            found += missing(value, f"{prefix}{key}.")
        return found

    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    keys = missing(tree)
    if keys:
        _fail(f"{keys[0]}={required.get(keys[0], '<value>')}: required")


def check_overrides(config_name: str, config_dir: str | os.PathLike = CONF,
                    argv: Sequence[str] | None = None,
                    required: Mapping[str, str] | None = None) -> None:
    """Compose ``config_name`` with the command line's overrides (``argv``, default
    ``sys.argv[1:]``) as Hydra will, ~0.1 s; an unknown key or group option exits with
    ``error: <key>: no such key; did you mean <nearest>?`` (code 2), a mandatory key (``???``)
    left unset with ``error: <key>=<required[key]>: required``. A sweep (``-m``) is checked
    with its first value; anything else Hydra refuses is left to Hydra's report, as is
    everything with ``HYDRA_FULL_ERROR=1``. Also registers the ``--help`` resolver."""
    register_help_resolver()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException, HydraException

    command = _command_line(argv)
    if command is None or GlobalHydra.instance().is_initialized():
        return
    overrides, multirun, show_config = command
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        lines = []
        for o in parsed:
            if o.is_sweep_override() and multirun:
                first = next(iter(o.sweep_string_iterator()))
                lines.append(f"{o.get_key_element()}={first}")
            else:
                lines.append(o.input_line)
    except (HydraException, StopIteration, TypeError, ValueError):
        return  # a syntax error, a glob or interval sweep: Hydra's own report
    config_dir = Path(config_dir)
    try:
        cfg = _compose(config_dir, config_name, lines)
    except ConfigCompositionException as err:
        found = _diagnose(err, parsed)
        if found is None:
            return
        first_error = (found, err)
    else:
        if not show_config:  # --cfg job shows a config with its ??? keys
            _check_required(cfg, required or {})
        return
    # compose without the bad overrides (one at a time) for the names to suggest
    keep = [i for i in range(len(lines)) if i != first_error[0][0]]
    cfg = None
    for _ in range(len(lines)):
        try:
            cfg = _compose(config_dir, config_name, [lines[i] for i in keep])
            break
        except ConfigCompositionException as err:
            again = _diagnose(err, [parsed[i] for i in keep])
            if again is None:
                break
            keep.pop(again[0])
    (index, kind), err = first_error
    _fail(_message(parsed[index], kind, err, cfg))


def checked_overrides(config_name: str, config_dir: str | os.PathLike = CONF,
                      required: Mapping[str, str] | None = None
                      ) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator for a ``@hydra.main`` function run from the command line: first
    :func:`check_overrides`, then Hydra::

        @checked_overrides("train")
        @hydra.main(version_base="1.3", config_path="conf", config_name="train")
        def main(cfg: DictConfig) -> None: ...
    """

    def wrap(app: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(app)
        def main(*args: Any, **kwargs: Any) -> T:
            if not args and not kwargs:  # the command line (not a config passed through)
                check_overrides(config_name, config_dir, required=required)
            return app(*args, **kwargs)

        return main

    return wrap


def run_app(name: str, required: Mapping[str, str], run: Callable[[dict], Any]) -> None:
    """``python -m opnet.<name>``: the Hydra app of ``conf/<name>/<name>.yaml`` (its own
    folder: in conf/ the group conf/data/ would claim a key "data"), torch threads from its
    ``threads=`` key, then ``run`` on the plain resolved config. A typo'd key names the
    nearest one, a missing ``required`` key says what to give; errors are one line, exit 2."""
    import hydra
    from omegaconf import OmegaConf

    from opnet.threads import configure_threads

    @checked_overrides(name, CONF / name, required=required)
    @hydra.main(version_base="1.3", config_path=str(CONF / name), config_name=name)
    def app(cfg) -> None:
        run_reporting_errors(configure_threads, cfg.get("threads"), name)
        run_reporting_errors(lambda: run(OmegaConf.to_container(cfg, resolve=True)))

    app()
