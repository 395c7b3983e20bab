"""ValidationFigures: a figure of a few validation samples in TensorBoard, next to the scalars.

Every ``every_n_epochs`` validation epochs (not during the sanity check, rank 0 only) the
first validation batch's first ``n_samples`` samples are drawn by
:func:`opnet.plot.sample_figure` from what the LightningModule's
``figure_data(batch, n)`` returns (input, truth, prediction, error; trajectories with the
decoded equations), and logged as the image ``val/samples`` by every logger whose
experiment has ``add_figure`` (TensorBoard), at the step of the epoch's scalars.

Nothing runs per training step. Plotting never stops training: without matplotlib
(``pip install 'opnet[plot]'``), a module without ``figure_data``, or a figure that fails,
it warns once and draws no more figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.pytorch.loggers.logger import DummyLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from opnet import plot


class ValidationFigures(L.Callback):
    """Logs ``tag`` (a figure of ``n_samples`` validation samples) every ``every_n_epochs``
    validation epochs."""

    def __init__(self, every_n_epochs: int = 1, n_samples: int = 4,
                 tag: str = "val/samples") -> None:
        if int(every_n_epochs) < 1 or int(n_samples) < 1:
            raise ValueError(f"ValidationFigures(every_n_epochs={every_n_epochs}, n_samples="
                             f"{n_samples}): both must be integers >= 1")
        self.every_n_epochs = int(every_n_epochs)
        self.n_samples = int(n_samples)
        self.tag = tag
        self._batch: Mapping[str, Any] | None = None
        self._off = False  # set after the first failure: warned once, no more figures

    def _writers(self, trainer: L.Trainer) -> list[Any]:
        """The experiments that take figures (TensorBoard's SummaryWriter)."""
        return [lg.experiment for lg in trainer.loggers if not isinstance(lg, DummyLogger)
                and hasattr(lg.experiment, "add_figure")]

    def _due(self, trainer: L.Trainer) -> bool:
        return (not self._off and not trainer.sanity_checking and trainer.is_global_zero
                and (trainer.current_epoch + 1) % self.every_n_epochs == 0
                and bool(self._writers(trainer)))

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and isinstance(batch, Mapping) \
                and self._due(trainer):
            self._batch = apply_to_collection(dict(batch), Tensor,
                                              lambda t: t.detach().cpu())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule
                                ) -> None:
        batch, self._batch = self._batch, None
        if batch is None or not self._due(trainer):
            return
        try:
            plot.require_matplotlib()
        except ImportError as err:
            return self._give_up(f"no validation figures: {err}")
        if not hasattr(pl_module, "figure_data"):
            return self._give_up(f"no validation figures: {type(pl_module).__name__} has no "
                                 "figure_data(batch, n) method")
        # the step of the epoch's scalars (Lightning's logger step; for a DeepONet
        # trainer.global_step counts iterations instead)
        step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped",
                       trainer.global_step)
        fig = None
        try:
            with trainer.precision_plugin.val_step_context():  # as in validation_step
                data = pl_module.figure_data(batch, self.n_samples)
            fig = _figure_function(pl_module)(**data, max_samples=self.n_samples)
            for writer in self._writers(trainer):
                writer.add_figure(self.tag, fig, global_step=step, close=False)
        except Exception as err:  # noqa: BLE001 - a figure must never stop training
            self._give_up(f"no more validation figures: drawing or logging one failed with "
                          f"{type(err).__name__}: {err}")
        finally:
            if fig is not None:
                plot.close_figure(fig)

    def _give_up(self, message: str) -> None:
        self._off = True
        rank_zero_warn(message)


def _figure_function(pl_module: L.LightningModule) -> Any:
    """The figure function of the module's family (:mod:`opnet.families`), else
    :func:`opnet.plot.sample_figure`."""
    from opnet.families import FAMILIES, load_object

    family = FAMILIES.get(getattr(pl_module, "kind", ""))
    return load_object(family.figure, "family figure") if family else plot.sample_figure
