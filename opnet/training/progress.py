"""Progress you can read anywhere: a Rich bar in a terminal, one plain line per epoch elsewhere.

``python train.py`` under ``nohup``, SLURM, a pipe or a log file gets one line per epoch
(shown here on two)::

    epoch 3/25  step 24/200  train/loss 6.004  val/rel_l2 0.624  97 steps/s  elapsed 0:00:02
      eta 0:00:15

and a terminal gets Rich's bar. Either way the run folder's ``train.log`` (Hydra's job log
file) holds the same epoch lines, Lightning's notices and the final summary.

* :func:`progress_callback` (``callbacks.progress_bar._target_``): :class:`IterationBar` in a
  terminal (or Jupyter), :class:`EpochLines` otherwise; ``mode=bar|lines`` forces one.
* Counting: ``trainer.global_step`` with the module's unit: ``pl_module.progress_unit``
  (``"iteration"`` for DeepONet, whose Lightning steps run ``iterations_per_step`` optimizer
  iterations each and whose ``global_step`` counts iterations), ``"step"`` otherwise.
* :class:`ModelTable` (``callbacks.model_summary._target_``): the layer table without the
  FLOPs column and "Total FLOPs: 0" when nothing measured them (no ``example_input_array``).
* :func:`report` prints a line on stdout and in ``train.log``; :func:`log_to_file` writes
  to ``train.log`` only (for what Rich already showed on the terminal).

The per-epoch callbacks do no per-step work of their own (the DeepONet fast path's cost per
iteration is unchanged).
"""

from __future__ import annotations

import io
import logging
import math
import sys
import time
from datetime import timedelta
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, ProgressBar, RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import RichProgressBarTheme
from lightning.pytorch.utilities.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)

__all__ = ["EpochLines", "IterationBar", "ModelTable", "epoch_line", "is_terminal",
           "log_to_file", "progress_callback", "report"]

LOG = logging.getLogger("opnet.train")
# Lightning's own loggers: without handlers on the root logger when Lightning was imported,
# they print through their own handler and do not propagate (Hydra's file never sees them)
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


# ------------------------------------------------------------------ where lines go
class _Stdout(logging.StreamHandler):
    """Plain ``%(message)s`` on the current ``sys.stdout`` (looked up at each line, so a
    redirected or captured stdout is honoured)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it
        pass


def _run_files() -> list[logging.Handler]:
    """The root logger's file handlers: Hydra's ``<run>/train.log`` under ``python train.py``."""
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def _share_files(logger: logging.Logger) -> None:
    """Make ``logger`` (which does not propagate) write to the root's current file handlers,
    dropping those of an earlier run (Hydra replaces them per job)."""
    files = _run_files()
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler) and handler not in files:
            logger.removeHandler(handler)
    for handler in files:
        if handler not in logger.handlers:
            logger.addHandler(handler)


def _train_logger() -> logging.Logger:
    """``opnet.train``: plain lines on stdout plus the run's log file, never twice on stdout
    (it does not propagate to the root, whose console handler would repeat them)."""
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    if not any(isinstance(h, _Stdout) for h in LOG.handlers):
        LOG.addHandler(_Stdout())
    _share_files(LOG)
    return LOG


def report(text: str) -> None:
    """Print ``text`` on stdout and write it to the run's ``train.log`` (if any), one
    record per line."""
    logger = _train_logger()
    for line in text.splitlines():
        logger.info(line.rstrip())


def log_to_file(text: str) -> None:
    """Write ``text`` to the run's ``train.log`` only (what the terminal already shows)."""
    files = _run_files()
    for line in text.splitlines():
        record = LOG.makeRecord(LOG.name, logging.INFO, __file__, 0, line.rstrip(), None, None)
        for handler in files:
            if record.levelno >= handler.level:
                handler.handle(record)


def share_run_log(share: bool = True) -> None:
    """Lightning's notices ("`Trainer.fit` stopped", "Restoring states ...") also go to
    ``train.log`` when its loggers print through their own handler; ``share=False`` (at
    teardown) takes the file off again, so that the next job's notices (Hydra multirun in
    one process) never land in this run's log."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if logger.propagate:
            continue
        if share:
            _share_files(logger)
        else:
            for handler in _run_files():
                logger.removeHandler(handler)


def is_terminal() -> bool:
    """Whether stdout shows a live display: an interactive terminal (Rich's test: a TTY that
    is not ``TERM=dumb``; ``TTY_INTERACTIVE=0/1`` overrides) or a Jupyter notebook."""
    from rich.console import Console

    console = Console()
    return console.is_interactive or console.is_jupyter


# ------------------------------------------------------------------ counting
def progress_unit(pl_module: L.LightningModule) -> str:
    """What ``trainer.global_step`` counts for ``pl_module``: ``"iteration"`` or ``"step"``."""
    return str(getattr(pl_module, "progress_unit", "step"))


def per_step(pl_module: L.LightningModule) -> int:
    """Units of :func:`progress_unit` per Lightning training step (batch)."""
    try:
        return max(1, int(getattr(pl_module, "iterations_per_step", 1)))
    except (TypeError, ValueError, RuntimeError):
        return 1


def planned(trainer: L.Trainer, per: int) -> int | None:
    """The run's total ``global_step`` (the tighter of max_steps and max_epochs x batches per
    epoch), or None when neither bounds it."""
    bounds = []
    if trainer.max_steps not in (None, -1):
        bounds.append(int(trainer.max_steps))
    batches = trainer.num_training_batches
    if trainer.max_epochs not in (None, -1) and math.isfinite(batches):
        accumulate = 1 if per > 1 else max(1, int(trainer.accumulate_grad_batches))
        bounds.append(int(batches) * per // accumulate * int(trainer.max_epochs))
    return min(bounds) if bounds else None


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0.0))))


def _number(value: Any) -> str:
    value = float(value.item() if hasattr(value, "item") else value)
    return f"{value:.4g}"


def epoch_line(epoch: int, max_epochs: int | None, unit: str, step: int, total: int | None,
               metrics: dict[str, Any], rate: float, elapsed: float,
               eta: float | None) -> str:
    """One epoch as a plain line. ``epoch``: 1-based; ``rate``: ``unit`` per second;
    ``elapsed``/``eta``: seconds (eta None: unknown)."""
    parts = [f"epoch {epoch}" + (f"/{max_epochs}" if max_epochs else ""),
             f"{unit} {step}" + (f"/{total}" if total else "")]
    parts += [f"{name} {_number(value)}" for name, value in metrics.items()]
    per_second = "it/s" if unit == "iteration" else f"{unit}s/s"
    parts += [f"{rate:,.1f} {per_second}" if rate < 100 else f"{rate:,.0f} {per_second}",
              f"elapsed {_clock(elapsed)}", "eta " + ("-" if eta is None else _clock(eta))]
    return "  ".join(parts)


class _EpochLog(L.Callback):
    """Composes one line at the end of each training epoch (hooks only at epoch and run
    boundaries). Lightning calls a callback's ``on_train_epoch_end`` before the module's,
    where the epoch's training loss is logged: the line is completed at the next epoch's
    start or at the end of training, when the epoch's metrics are all in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._t0 = 0.0
        self._step0 = 0
        self._unit = "step"
        self._per = 1
        self._val_ran = False
        self._pending: tuple[int, int, float] | None = None  # epoch, step, time

    def _emit(self, line: str) -> None:
        raise NotImplementedError

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        share_run_log()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        share_run_log(False)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._t0, self._step0 = time.perf_counter(), trainer.global_step
        self._unit, self._per = progress_unit(pl_module), per_step(pl_module)
        self._val_ran, self._pending = False, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking:
            self._val_ran = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._pending = (trainer.current_epoch + 1, trainer.global_step, time.perf_counter())

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        super().on_train_end(trainer, pl_module)

    def _flush(self, trainer: L.Trainer) -> None:
        if self._pending is None:
            return
        epoch, step, now = self._pending
        self._pending = None
        metrics = self._metrics(trainer)
        self._val_ran = False
        if trainer.is_global_zero:
            self._emit(self._line(trainer, epoch, step, now, metrics))

    def _metrics(self, trainer: L.Trainer) -> dict[str, Any]:
        """The progress-bar metrics of the epoch: training ones first, validation ones only
        when validation ran in this epoch; ``x_epoch`` as ``x``, no ``x_step``."""
        found: dict[str, Any] = {}
        for name, value in trainer.progress_bar_metrics.items():
            if name.endswith("_step") or isinstance(value, str | dict):
                continue
            if not name.startswith("train") and not self._val_ran:
                continue
            found[name.removesuffix("_epoch")] = value
        return dict(sorted(found.items(), key=lambda item: not item[0].startswith("train")))

    def _line(self, trainer: L.Trainer, epoch: int, step: int, now: float,
              metrics: dict[str, Any]) -> str:
        elapsed = now - self._t0
        done = step - self._step0
        rate = done / elapsed if elapsed > 0 else 0.0
        total = planned(trainer, self._per)
        max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
        eta = None
        if total is not None and rate > 0:
            eta = max(total - step, 0) / rate
        elif max_epochs and epoch > 0:
            eta = elapsed / epoch * (max_epochs - epoch)
        return epoch_line(epoch, max_epochs, self._unit, step, total, metrics, rate,
                          elapsed, eta)


class EpochLines(_EpochLog, ProgressBar):
    """The progress display for logs, ``nohup``, SLURM and pipes: one plain line per epoch
    (epoch k/N, step or iteration k/N, training loss, validation metrics, rate, elapsed, ETA)
    on stdout and in ``train.log``; nothing per batch, nothing while testing. A
    :class:`~lightning.pytorch.callbacks.ProgressBar`, so Lightning adds no bar of its own."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _emit(self, line: str) -> None:
        if self._enabled:
            report(line)


class IterationBar(_EpochLog, RichProgressBar):
    """Rich's bar for a terminal, counting what ``trainer.global_step`` counts: a DeepONet's
    bar advances by ``iterations_per_step`` per Lightning step (its rate is iterations/s) and
    shows the run's position (``iteration 2000/100000``); "Epoch k/N" (1-based) only when
    max_epochs bounds the run. The epoch lines go to ``train.log``."""

    def __init__(self, refresh_rate: int = 1, leave: bool = False,
                 theme: RichProgressBarTheme | None = None, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave,
                         theme=theme or RichProgressBarTheme(metrics_format=".4g"), **kwargs)
        self._epoch_total: int | float = 0

    def _emit(self, line: str) -> None:
        log_to_file(line)

    @property
    def total_train_batches(self) -> int | float:
        """This epoch's length in units of ``global_step`` (from the epoch's start)."""
        trainer = self.trainer
        total = trainer.num_training_batches * self._per
        if trainer.max_steps not in (None, -1):
            total = min(total, max(trainer.max_steps - trainer.global_step, 0))
        self._epoch_total = total
        return total

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._per == 1:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()  # (a mid-epoch resume)
        self._update(self.train_progress_bar_id,
                     min((batch_idx + 1) * self._per, self._epoch_total))
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs not in (None, -1):
            description += f"/{self.trainer.max_epochs}"
        return f"{description:{len(self.validation_description)}}"

    def get_metrics(self, trainer: L.Trainer,
                    pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        if self._unit != "step":  # a DeepONet's position in the run, in iterations
            total = planned(trainer, self._per)
            metrics = {self._unit: f"{trainer.global_step}" + (f"/{total}" if total else ""),
                       **metrics}
        return metrics


def progress_callback(mode: Literal["auto", "bar", "lines"] = "auto",
                      **bar_options: Any) -> ProgressBar:
    """``callbacks.progress_bar``: ``auto`` gives :class:`IterationBar` (Rich) when stdout
    is a terminal or a notebook and :class:`EpochLines` otherwise; ``bar``/``lines`` force
    one. ``bar_options`` go to the Rich bar (``refresh_rate``, ``leave``, ``theme``)."""
    if mode not in ("auto", "bar", "lines"):
        raise ValueError(f"callbacks.progress_bar.mode={mode!r}: expected auto, bar or lines")
    if mode == "bar" or (mode == "auto" and is_terminal()):
        return IterationBar(**bar_options)
    return EpochLines()


# ------------------------------------------------------------------ model summary
class ModelTable(ModelSummary):
    """The layer table at the start of fit (``max_depth`` levels) and the parameter counts:
    a Rich table in a terminal, plain columns on stdout otherwise; both in ``train.log``.
    The FLOPs column and total are shown only when measured (a module with
    ``example_input_array``), never as "Total FLOPs: 0"."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int,
                  trainable_parameters: int, model_size: float,
                  total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data
                   if total_flops or name != "FLOPs"]
        totals = [f"Trainable params: {get_human_readable_count(int(trainable_parameters))}",
                  "Non-trainable params: "
                  f"{get_human_readable_count(int(total_parameters - trainable_parameters))}",
                  f"Total params: {get_human_readable_count(int(total_parameters))}",
                  f"Total estimated model params size (MB): "
                  f"{get_formatted_model_size(model_size)}",
                  f"Modules in train mode: {total_training_modes['train']}",
                  f"Modules in eval mode: {total_training_modes['eval']}"]
        if total_flops:
            totals.append(f"Total FLOPs: {get_human_readable_count(total_flops)}")

        def table(fancy: bool) -> Table:
            out = Table(header_style="bold magenta" if fancy else "",
                        box=box.HEAVY_HEAD if fancy else None)
            for name, _ in columns:  # " " (the layer's index), Name, Type, Params, Mode, ...
                out.add_column(name, style="dim" if name == " " else "", no_wrap=name == "Name",
                               justify="left" if name in ("Name", "Type", "Mode") else "right")
            for row in zip(*(values for _, values in columns), strict=True):
                out.add_row(*row)
            return out

        buffer = io.StringIO()
        Console(file=buffer, width=120, color_system=None, force_terminal=False).print(
            table(fancy=False))
        plain = "\n".join([*(line.rstrip() for line in buffer.getvalue().splitlines()),
                           *totals])
        if is_terminal():
            console = Console()
            console.print(table(fancy=True))
            console.print("\n".join(totals), highlight=False)
            log_to_file(plain)
        else:
            report(plain)
