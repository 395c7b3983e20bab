"""``outputs/<task>/latest``: the newest run folder that holds a checkpoint.

:class:`LatestRunLink` (added to every ``train(cfg)`` run) points the link at the run folder
as soon as the run's first checkpoint file exists -- checked at each training batch and
epoch start until then (a directory scan, microseconds), after the fit and when the fit
fails -- so a long run can be evaluated (``ckpt=outputs/<task>/latest``) while it trains.
A run without checkpoints (``debug=fdr``, ``callbacks=none``, ``train=false``) moves no link,
nor does a run whose folder is not inside ``<paths.output_root>/<task_name>/`` (an explicit
``paths.output_dir=...``: the caller chose and knows the folder).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L

from opnet.run_dir import link_latest

log = logging.getLogger(__name__)


def link_home(run_dir: str | os.PathLike, output_root: str | os.PathLike | None,
              task_name: str | None) -> Path | None:
    """Where ``latest`` goes: ``<output_root>/<task_name>/`` when the run folder is inside it
    (single runs and the jobs of a ``-m`` sweep), else None (no link)."""
    if output_root is None or not task_name:
        return None
    home = (Path(output_root) / str(task_name)).resolve()
    return home if home in Path(run_dir).resolve().parents else None


class LatestRunLink(L.Callback):
    """Point ``home/latest`` at ``run_dir`` once ``run_dir/checkpoints`` holds a ``.ckpt``
    (global rank zero only; ``home=None``: never; a link that cannot be written is a warning,
    not a failed run)."""

    def __init__(self, run_dir: str | os.PathLike, home: str | os.PathLike | None) -> None:
        self.run_dir = Path(run_dir)
        self.home = Path(home) if home is not None else None
        self.linked = self.home is None

    def _has_checkpoint(self) -> bool:
        try:
            with os.scandir(self.run_dir / "checkpoints") as entries:
                return any(e.name.endswith(".ckpt") and e.is_file() for e in entries)
        except OSError:  # no checkpoints folder yet
            return False

    def _update(self, trainer: L.Trainer) -> None:
        if self.linked or not trainer.is_global_zero or not self._has_checkpoint():
            return
        self.linked = True
        try:
            link_latest(self.run_dir, self.home)
        except OSError as err:
            log.warning("could not point %s at %s: %s", self.home / "latest", self.run_dir,
                        err)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._update(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._update(trainer)
