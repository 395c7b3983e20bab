"""``train(cfg)``: the training job behind ``python train.py ...`` (Hydra-composed cfg).

Builds the datamodule (generating its data if missing), the OperatorModule around the
configured network, the Lightning Trainer with callbacks and loggers; fits (resuming from
``ckpt_path`` when given), tests the best checkpoint, writes ``metrics.json`` and prints
where everything is.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from opnet.training.module import OperatorModule


class ConfigError(ValueError):
    """The composed configuration is inconsistent (named key, expected value)."""


def model_spec(cfg: DictConfig, io: dict[str, Any]) -> dict[str, Any]:
    """Plain model dict with in/out channels taken from the data (or checked against it)."""
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    for key, have in (("in_channels", io["in_channels"]), ("out_channels", io["out_channels"])):
        want = spec.get(key)
        if want is None:
            spec[key] = have
        elif int(want) != have:
            fields = io["input_fields" if key == "in_channels" else "output_fields"]
            raise ConfigError(
                f"model.{key}={want} but data '{io['dataset']['name']}' ({io['dataset']['path']}) "
                f"provides {have} channel(s) from fields {fields}; drop model.{key} to take it "
                "from the data")
    return spec


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(c, _convert_="all") for c in group.values() if c and "_target_" in c]


# Lightning notices that do not apply to opnet runs (one-cycle per epoch is the MgNO recipe).
_QUIET = [r".*OneCycleLR. scheduler is using 'interval': 'epoch'.*",
          r".*isinstance\(treespec, LeafSpec\).*", r".*does not have many workers.*",
          r".*smaller than the logging interval.*"]


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
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    io = datamodule.io_spec()
    module = OperatorModule(model=model_spec(cfg, io), io=io,
                            **OmegaConf.to_container(cfg.module, resolve=True))
    module.fit_normalizers(*datamodule.train_arrays())

    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     _convert_="all")

    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file to resume from")
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    metrics: dict[str, float] = {}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None,
                               verbose=False)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    summary = {"test": metrics, "best_checkpoint": best or None,
               "last_checkpoint": _last_checkpoint(trainer),
               "output_dir": str(out), "seconds": round(time.perf_counter() - t0, 1),
               "epochs": trainer.current_epoch,
               "params": sum(p.numel() for p in module.model.parameters())}
    if trainer.is_global_zero:
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
        _print_summary(summary, loggers)
    return metrics


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
    table.add_row("wall time", f"{summary['seconds']:.0f} s ({summary['epochs']} epochs)")
    console = Console()
    console.print(table)
    lines = [f"best checkpoint: {summary['best_checkpoint']}",
             f"last checkpoint: {summary['last_checkpoint']}",
             f"metrics:         {Path(summary['output_dir']) / 'metrics.json'}"]
    lines += [f"tensorboard:     tensorboard --logdir {logger.log_dir}"
              for logger in loggers if hasattr(logger, "log_dir")]
    console.print("\n".join(lines), soft_wrap=True, highlight=False)
