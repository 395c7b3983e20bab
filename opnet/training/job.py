"""``train(cfg)``: the training job behind ``python train.py ...`` (Hydra-composed cfg).

Builds the datamodule (generating its data if missing), the LightningModule named by
``module._target_`` (unset: the family of the data, :mod:`opnet.families`) through its
``from_data(model, datamodule, **options)``, the Lightning Trainer with callbacks
and loggers; fits (resuming from ``ckpt_path`` when given), tests the best checkpoint, writes
``metrics.json`` and prints where everything is.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from opnet.data.build import instantiate_datamodule
from opnet.families import family_of
from opnet.files import write_text_atomic
from opnet.threads import configure_threads, train_work
from opnet.training.compile import maybe_compile
from opnet.training.latest import LatestRunLink, link_home
from opnet.training.module import ConfigError, fill_channels
from opnet.training.resume import (
    RUN_CONFIG_KEY,
    ExtendSchedule,
    RecordRunConfig,
    changes,
    check_remaining,
    check_resume,
    plain_config,
)

__all__ = ["ConfigError", "build_module", "check_config", "model_spec", "train"]

def model_spec(cfg: DictConfig, io: dict[str, Any]) -> dict[str, Any]:
    """Plain model dict with in/out channels taken from the data (or checked against it)."""
    return fill_channels(OmegaConf.to_container(cfg.model, resolve=True), io)


def module_class(target: str) -> type[L.LightningModule]:
    """``module._target_`` -> the LightningModule class (it must offer ``from_data``)."""
    module_name, _, cls_name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"module._target_={target!r} cannot be imported ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)
            and hasattr(cls, "from_data")):
        raise ConfigError(f"module._target_={target!r} is not a LightningModule class with a "
                          "from_data(model, datamodule, **options) constructor")
    return cls


def build_module(cfg: DictConfig, datamodule: Any) -> L.LightningModule:
    """The LightningModule named by ``module._target_`` (none named: the family of the
    data's kind, :mod:`opnet.families`), made from the model config and the datamodule
    (sizes and normalizers from the train split)."""
    options = OmegaConf.to_container(cfg.module, resolve=True) if cfg.get("module") else {}
    target = options.pop("_target_", None)
    if target is None:
        try:
            target = family_of(datamodule.io_spec()).module
        except ValueError as err:
            raise ConfigError(f"module._target_ is not set and {err}") from err
        check_arguments("module", module_class(target).__init__, options, skip=("model", "io"))
    cls = module_class(target)
    return cls.from_data(OmegaConf.to_container(cfg.model, resolve=True), datamodule, **options)


def _import(target: str, key: str) -> Any:
    module_name, _, name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{key}._target_={target!r} cannot be imported ({err})") from err


def _number_expected(param: inspect.Parameter) -> bool:
    """Whether ``param`` takes a number (int/float) and no string (its default or type)."""
    if isinstance(param.default, bool) or isinstance(param.default, str):
        return False
    if isinstance(param.default, int | float):
        return True
    if param.annotation is inspect.Parameter.empty:
        return False
    words = set(re.findall(r"\w+", str(param.annotation)))  # a scalar: int | float | None
    return bool(words & {"int", "float"}) and words <= {"int", "float", "None", "NoneType",
                                                        "Optional", "Union", "typing"}


def check_arguments(key: str, target: Any, options: dict[str, Any],
                    skip: tuple[str, ...] = ()) -> None:
    """Raise a :class:`ConfigError` naming ``key.<name>`` for an option the constructor of
    ``target`` does not take (a typo added with ``+``) or a string given for a number."""
    params = dict(inspect.signature(target).parameters)
    what = getattr(target, "__qualname__", str(target)).removesuffix(".__init__")
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = sorted(n for n, p in params.items() if n not in ("self", *skip)
                      and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    for name, value in options.items():
        if name == "_target_" or name in skip:
            continue
        if name not in params:
            if not takes_any:
                raise ConfigError(f"{key}.{name}: {what} has no such argument (a typo?); "
                                  f"it takes {accepted}")
            continue
        if isinstance(value, str) and _number_expected(params[name]):
            raise ConfigError(f"{key}.{name}={value!r}: expected a number ({what}.{name})")


def check_config(cfg: DictConfig) -> None:
    """Catch what Hydra's strict mode lets through before anything runs: options added with
    ``+`` that the model, module, data or trainer class does not take, strings given for
    numbers, a non-integer seed (each :class:`ConfigError` names the key)."""
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed <= 2**32 - 1):
        raise ConfigError(f"seed={seed!r}: expected an integer in [0, 2**32-1] (numpy's seeds)")
    for key, skip in (("model", ()), ("data", ()), ("trainer", ("callbacks", "logger"))):
        group = cfg.get(key)
        if group is None or "_target_" not in group:
            continue
        options = OmegaConf.to_container(group, resolve=True)
        check_arguments(key, _import(options["_target_"], key), options, skip)
    if cfg.get("module") is not None and cfg.module.get("_target_"):
        options = OmegaConf.to_container(cfg.module, resolve=True)
        cls = module_class(options["_target_"])
        check_arguments("module", cls.__init__, options, skip=("model", "io"))


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(c, _convert_="all") for c in group.values() if c and "_target_" in c]


# Lightning notices that do not apply to opnet runs (one-cycle per epoch is the MgNO recipe).
_QUIET = [r".*OneCycleLR. scheduler is using 'interval': 'epoch'.*",
          r".*isinstance\(treespec, LeafSpec\).*", r".*does not have many workers.*",
          r".*smaller than the logging interval.*",
          # a DeepONet step checkpoint holds the weights after the step: what resuming needs
          r".*ModelCheckpoint with manual optimization and every_n_train_steps.*"]


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Tip:" in message or "already configured with model summary" in message)


_DROP_TIPS = _DropTips()


def _quiet_lightning() -> None:
    """Idempotent: one filter object, which ``addFilter`` adds only once per logger."""
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DROP_TIPS)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run the job described by ``cfg``; returns the final test metrics."""
    t0 = time.perf_counter()
    check_config(cfg)
    configure_threads(cfg.get("threads"), "train", work=train_work(cfg))
    run_config = plain_config(cfg)  # stored in every checkpoint, compared on resume
    checkpoint, extend = _resume_checkpoint(cfg, run_config)
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    datamodule = instantiate_datamodule(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    maybe_compile(module.model, bool(cfg.get("compile", False)),
                  "cpu" if accelerator == "cpu" else "cuda")

    callbacks = _instantiate_all(cfg.get("callbacks"))
    callbacks.append(RecordRunConfig(run_config))
    paths = cfg.get("paths") or {}  # outputs/<task>/latest -> this run, at its first checkpoint
    callbacks.append(LatestRunLink(out, link_home(out, paths.get("output_root"),
                                                  cfg.get("task_name"))))
    if extend:
        callbacks.insert(0, ExtendSchedule())
    loggers = _instantiate_all(cfg.get("logger"))
    if not loggers:  # nothing to log the learning rate to (Lightning would refuse to start)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     _convert_="all")

    del checkpoint  # (memory-mapped) Lightning reads it again
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    metrics: dict[str, float] = {}
    best = _best_checkpoint(trainer)
    last = _last_checkpoint(trainer)  # before testing: it restores the callbacks' states
    if cfg.get("test", True):
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None,
                               verbose=False)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        metrics.update(_extra_tests(cfg, trainer, module, best))
    summary = {"test": metrics, "best_checkpoint": best or None,
               "last_checkpoint": last,
               "output_dir": str(out), "seconds": round(time.perf_counter() - t0, 1),
               "epochs": trainer.current_epoch, "steps": trainer.global_step,
               "params": sum(p.numel() for p in module.model.parameters())}
    if trainer.is_global_zero:
        write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2))
        _print_summary(summary, loggers)
    return metrics


def _resume_checkpoint(cfg: DictConfig,
                       run_config: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The checkpoint of ``ckpt_path`` (memory-mapped), checked to be readable, in a format
    this opnet writes, and resumable with this configuration (see opnet.training.resume);
    and whether the resume extends the run with changed settings."""
    extend = bool((cfg.get("resume") or {}).get("extend", False))
    path = cfg.get("ckpt_path")
    if not path:
        if extend:
            raise ConfigError("resume.extend=true needs ckpt_path=<checkpoint to extend>")
        return None, False
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path={path}: no such checkpoint file to resume from")
    from opnet.checkpoint import operator_block, read_checkpoint

    checkpoint = read_checkpoint(path, mmap=True)
    operator_block(path, checkpoint)
    check_resume(str(path), checkpoint, cfg, extend, run_config)
    extend = extend and bool(changes(checkpoint.get(RUN_CONFIG_KEY) or {}, run_config))
    if extend:
        check_remaining(str(path), checkpoint, cfg)
    return checkpoint, extend


def _extra_tests(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule,
                 best: str) -> dict[str, float]:
    """Test the same checkpoint on each dataset of ``extra_tests`` (name -> data config,
    e.g. out-of-distribution inputs); metrics as ``<name>/test/...``."""
    metrics: dict[str, float] = {}
    for name, data_cfg in (cfg.get("extra_tests") or {}).items():
        datamodule = instantiate_datamodule(data_cfg)
        datamodule.prepare_data()
        datamodule.setup("test")
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None,
                               verbose=False)
        found = results[0] if results else {}
        metrics.update({f"{name}/{k}": float(v) for k, v in found.items()})
    return metrics


def _best_checkpoint(trainer: L.Trainer) -> str:
    """The best checkpoint of the first callback that monitors a metric ("" if none)."""
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "monitor", None) and getattr(cb, "best_model_path", ""):
            return cb.best_model_path
    return ""


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    """The newest checkpoint written by a callback with no monitor (``last.ckpt``)."""
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "monitor", "") is None and getattr(cb, "best_model_path", ""):
            return cb.best_model_path
    return None


def _print_summary(summary: dict[str, Any], loggers: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="opnet run", show_header=False)
    for key, value in summary["test"].items():
        table.add_row(key, f"{value:.4g}")
    table.add_row("parameters", f"{summary['params']:,}")
    table.add_row("wall time", f"{summary['seconds']:.0f} s ({summary['epochs']} epochs, "
                               f"{summary['steps']} steps)")
    console = Console()
    console.print(table)
    lines = [f"best checkpoint: {summary['best_checkpoint']}",
             f"last checkpoint: {summary['last_checkpoint']}",
             f"metrics:         {Path(summary['output_dir']) / 'metrics.json'}"]
    lines += [f"tensorboard:     tensorboard --logdir {logger.log_dir}"
              for logger in loggers if hasattr(logger, "log_dir")]
    console.print("\n".join(lines), soft_wrap=True, highlight=False)
    from opnet.training.progress import log_to_file  # the run's train.log keeps them too
    log_to_file("\n".join([*(f"{k}: {v:.4g}" for k, v in summary["test"].items()), *lines]))
