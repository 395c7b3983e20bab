"""OperatorLightningModule: what every family's LightningModule shares, written once.

* construction from data (:meth:`~OperatorLightningModule.from_data`, the protocol
  ``train(cfg)`` uses): the data kind checked against the family's, the model's sizes filled
  from the data (:meth:`model_spec`), then :meth:`prepare` (normalisers, coordinates, bases
  fitted on the train split);
* the optimiser and schedule (:mod:`opnet.training.optim`: one vocabulary, the family's
  :class:`~opnet.training.optim.Recipe` for defaults);
* metrics logging (:meth:`log_metrics`) and the validation/test steps (:meth:`evaluate_batch`);
* the checkpoint: the ``operator`` block (:meth:`operator_block`, plus the family's
  :meth:`operator_extras`) written with its digest, and on load the format, the digest and
  older layouts (:func:`opnet.checkpoint.upgrade_state`) checked before any weight is read.

A subclass sets :attr:`kind` (its data kind, :mod:`opnet.families`), :attr:`recipe`, calls
``self.save_hyperparameters()`` with the keys ``model``, ``io``, ``optimizer``, ``lr``,
``weight_decay``, ``betas``, ``eps``, ``fused`` and ``scheduler``, and implements
:meth:`model_spec`, :meth:`evaluate_batch` and ``training_step``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor

from opnet import __version__
from opnet.checkpoint import (
    OPERATOR_FORMAT,
    loading_path,
    operator_block,
    upgrade_state,
    verify_digest,
    write_operator,
)
from opnet.training.optim import (
    Recipe,
    build_optimizer,
    build_scheduler,
    check_optimizer,
    scheduler_spec,
)

__all__ = ["ConfigError", "OperatorLightningModule"]


class ConfigError(ValueError):
    """The composed configuration is inconsistent (named key, expected value)."""


class OperatorLightningModule(L.LightningModule):
    """The shared hooks of the families' LightningModules (see the module docstring)."""

    kind: ClassVar[str] = "grid"
    recipe: ClassVar[Recipe] = Recipe()

    # -- construction from data ----------------------------------------------------------
    @classmethod
    def from_data(cls, model: Mapping[str, Any], datamodule: Any,
                  **options: Any) -> OperatorLightningModule:
        """The module for ``datamodule``'s data: sizes filled into ``model``
        (:meth:`model_spec`), then :meth:`prepare` on the train split."""
        io = datamodule.io_spec()
        kind = io.get("kind", "grid")
        if kind != cls.kind:
            raise ConfigError(
                f"{cls.__name__} trains {cls.kind} operators but data "
                f"'{io['dataset']['name']}' ({type(datamodule).__name__}) is {kind} data; "
                "leave module._target_ unset (module=default) to take the family of the data")
        module = cls(model=cls.model_spec(model, io, options), io=io, **options)
        module.prepare(datamodule)
        return module

    @classmethod
    def model_spec(cls, model: Mapping[str, Any], io: Mapping[str, Any],
                   options: Mapping[str, Any]) -> dict[str, Any]:
        """The plain model dict with the data-dependent sizes filled in from ``io`` (or
        checked against it, a :class:`ConfigError` naming the key); ``options``: the
        module's keyword arguments, for checks that involve them."""
        return dict(model)

    def prepare(self, datamodule: Any) -> None:
        """Fit what comes from the train split (normalisers, coordinates, bases)."""

    # -- the scheduled optimiser --------------------------------------------------------------
    def check_options(self) -> None:
        """Refuse an unknown optimiser, schedule or schedule option now (a ValueError naming
        the key), not at the first training step: call it in ``__init__``."""
        h = self.hparams
        check_optimizer(h.optimizer, h.betas, h.eps)
        self.scheduler_spec()

    def scheduler_spec(self) -> dict[str, Any]:
        """``module.scheduler`` with the defaults filled in (checked: call it in
        ``__init__`` so a bad name fails at configuration)."""
        return scheduler_spec(self.hparams.scheduler, self.recipe)

    def total_steps(self, interval: str) -> int:
        """The run's length in schedule steps: epochs (``trainer.max_epochs``) or
        optimiser steps."""
        trainer = self.trainer
        if interval == "epoch":
            if trainer.max_epochs is None or trainer.max_epochs < 1:
                raise ValueError(f"module.scheduler={self.scheduler_spec()['name']} stepped per "
                                 "epoch needs trainer.max_epochs >= 1")
            return int(trainer.max_epochs)
        return int(trainer.estimated_stepping_batches)

    def uses_flat_adam(self) -> bool:
        """FlatAdam rather than torch's Adam(W) (``fused`` null, a family that prefers it,
        one dtype and device)."""
        params = list(self.parameters())
        return (self.recipe.prefer_flat and self.hparams.fused is None
                and len({(p.dtype, p.device) for p in params}) == 1)

    def configure_optimizers(self):
        h = self.hparams
        trainer = self._trainer
        mixed_clip = "mixed" in str(getattr(trainer, "precision", "")) and bool(
            getattr(trainer, "gradient_clip_val", None))
        try:
            opt = build_optimizer(self.parameters(), h.optimizer, h.lr, h.weight_decay,
                                  h.betas, h.eps, h.fused, self.recipe.prefer_flat,
                                  mixed_clip)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        spec = self.scheduler_spec()
        self.schedule_interval = spec["interval"]  # read per step by manual optimisation
        sched = build_scheduler(opt, spec, float(h.lr), self.total_steps)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched,
                                                   "interval": spec["interval"],
                                                   "frequency": 1}}

    # -- metrics -------------------------------------------------------------------------
    def log_metrics(self, stage: str, metrics: Mapping[str, Tensor | float],
                    batch_size: int | None = None) -> None:
        """Log ``{stage}/{name}`` per epoch, reduced over ranks (``val`` ones in the
        progress bar)."""
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, on_step=False,
                      on_epoch=True, prog_bar=stage == "val", sync_dist=True,
                      batch_size=batch_size)

    def evaluate_batch(self, batch: Any, stage: str) -> None:
        """Compute and log the ``stage`` metrics of one batch."""
        raise NotImplementedError

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate_batch(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.evaluate_batch(batch, "test")

    # -- checkpoint ----------------------------------------------------------------------
    def operator_block(self) -> dict[str, Any]:
        """What :func:`opnet.load_operator` needs (plain types only): the family, model,
        data description and versions, and the family's :meth:`operator_extras`."""
        return {"format_version": OPERATOR_FORMAT, "module": type(self).__name__,
                "family": self.kind, "model": dict(self.hparams.model),
                "io": dict(self.hparams.io), **self.operator_extras(),
                "opnet_version": __version__, "torch_version": str(torch.__version__)}

    def operator_extras(self) -> dict[str, Any]:
        """The family's own entries of the ``operator`` block (plain types)."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        write_operator(checkpoint, self.operator_block())  # + digest, checked by every load

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        where = loading_path(self)
        operator_block(where, checkpoint)  # refuses newer/older formats by name
        verify_digest(checkpoint, where)  # a damaged file is named, never trained on
        upgrade_state(checkpoint)  # an older layout of the same weights
