"""OperatorModule: the LightningModule that trains a grid operator (MgNO, FNO, ...).

It holds the normalised operator (:class:`~opnet.models.operator.NormalisedOperator`:
input/output normalisers fitted on the train split + the network) and the loss; metrics,
optimiser/schedule and the checkpoint's ``operator`` block are the shared ones of
:class:`~opnet.training.base.OperatorLightningModule`. Its hyper-parameters are plain dicts,
so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from opnet.checkpoint import OPERATOR_FORMAT
from opnet.metrics import correlation_time, rollout_correlation, rollout_errors
from opnet.models import build_model
from opnet.models.operator import NormalisedOperator, OperatorParts
from opnet.physics import build_physics, relative_residual
from opnet.training.base import ConfigError, OperatorLightningModule
from opnet.training.losses import get_loss, h1, reduce, rel_l2
from opnet.training.optim import Recipe
from opnet.training.rollout import RolloutTraining, unrolled_loss

__all__ = ["OPERATOR_FORMAT", "ConfigError", "OperatorModule", "build_model", "fill_channels"]

#: The MgNO Darcy recipe: one-cycle (lr/2 -> lr at 20 % -> lr/200) stepped once per epoch.
GRID_RECIPE = Recipe(scheduler="onecycle", interval="epoch", options={
    "onecycle": {"div_factor": 2.0, "final_div_factor": 100.0, "pct_start": 0.2}})


def fill_channels(model: Mapping[str, Any], io: Mapping[str, Any]) -> dict[str, Any]:
    """Plain model dict with in/out channels taken from the data (or checked against it) and,
    for a ``resolution_aware`` model without a ``core_grid``, the data's grid as its core."""
    spec = dict(model)
    if spec.get("resolution_aware") and spec.get("core_grid") is None:
        spec["core_grid"] = [int(n) for n in io["grid"]]
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


class OperatorModule(OperatorParts, OperatorLightningModule):
    """Trains ``model`` on batches ``{"x": [B, C_in, *grid], "y": [B, C_out, *grid]}``.

    model: plain dict with ``_target_`` and the network's keyword arguments.
    io: the data description of :meth:`GridDataModule.io_spec` (channels, grid,
        normalizer kinds, fields, provenance).
    loss: ``"h1"``, ``"h1_abs"`` or ``"rel_l2"`` on physical (de-normalised) outputs,
        ``reduction`` ``"sum"`` over the batch as the reference code, or ``"mean"``.
    optimizer, lr, weight_decay, betas, eps, fused, scheduler: :mod:`opnet.training.optim`
        (default: Adam with L2-coupled weight decay, the MgNO one-cycle per epoch).
    physics: the residual of the data's problem as loss terms (:mod:`opnet.physics`;
        ``weight`` 0: off). Batches with a ``labelled`` mask take the data loss on their
        labelled samples only.
    rollout: time-stepping data only: train over k autoregressive steps (curriculum,
        pushforward, input noise, recomputation; :mod:`opnet.training.rollout`); default
        one step (teacher forcing).
    """

    kind: ClassVar[str] = "grid"
    recipe: ClassVar[Recipe] = GRID_RECIPE

    def __init__(self, model: Mapping[str, Any], io: Mapping[str, Any], loss: str = "h1",
                 reduction: str = "sum", optimizer: str = "adam", lr: float = 5e-4,
                 weight_decay: float = 1e-4, betas: tuple[float, float] | list[float] = (0.9,
                                                                                         0.999),
                 eps: float = 1e-8, fused: bool | None = False,
                 scheduler: str | Mapping[str, Any] | None = None,
                 physics: Mapping[str, Any] | None = None,
                 rollout: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.operator = NormalisedOperator.from_spec(model, io)
        self.physics = build_physics(physics, io)
        self._correlation_sums: dict[str, tuple[Tensor, int]] = {}  # stage -> (sum [R], n)
        stepping = bool(io.get("rollout_steps"))
        try:
            self.rollout_training = RolloutTraining.from_options(
                rollout, int(io.get("unroll") or 1) if stepping else None)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if self.rollout_training.active and (not stepping or self.physics is not None):
            raise ConfigError(
                f"module.rollout={dict(rollout or {})}: rollout training needs time-stepping "
                "(trajectory) data and no module.physics; data "
                f"'{io['dataset']['name']}' is {'physics-informed' if stepping else 'not'} "
                "time-stepping data")
        self.loss_fn = get_loss(loss)
        reduce(torch.zeros(1), reduction)  # validates the name now, not mid-training
        self.check_options()  # a bad optimiser/schedule fails now, not at the first step

    @classmethod
    def model_spec(cls, model: Mapping[str, Any], io: Mapping[str, Any],
                   options: Mapping[str, Any]) -> dict[str, Any]:
        """Channels from the data; a loss that needs 2-D data refused on other grids; no
        labelled output without physics refused."""
        loss, grid = options.get("loss", "h1"), list(io["grid"])
        if loss in ("h1", "h1_abs") and len(grid) != 2:  # at configuration, not the 1st step
            raise ConfigError(
                f"module.loss={loss} needs 2-D grid data [B, C, H, W] but data "
                f"'{io['dataset']['name']}' has a {len(grid)}-D grid {grid}; use "
                f"module.loss=rel_l2 (the loss that fits {len(grid)}-D data)")
        if io.get("labels") == 0 and not float((options.get("physics") or {}).get("weight")
                                                or 0):
            raise ConfigError(f"data.labels=0 leaves data '{io['dataset']['name']}' without "
                              "labelled outputs: train with module.physics.weight > 0")
        return fill_channels(model, io)

    def prepare(self, datamodule: Any) -> None:
        """Fit the normalisers on the train split (streamed where the split is lazy: never
        the whole split in memory)."""
        stats = getattr(datamodule, "normalizer_stats", None)
        if stats is None:
            self.fit_normalizers(*datamodule.train_arrays())
            return
        found = stats(self.in_norm.kind, self.out_norm.kind)
        for norm, mean_std in zip((self.in_norm, self.out_norm), found, strict=True):
            if mean_std is not None:
                norm.set_stats(*mean_std)

    def fit_normalizers(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the input/output statistics on the training arrays."""
        self.operator.fit_normalizers(x, y)

    def forward(self, x: Tensor) -> Tensor:
        """Physical inputs ``[B, C_in, *grid]`` -> physical outputs ``[B, C_out, *grid]``."""
        return self.operator(x)

    # -- steps ---------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        # DDP averages the ranks' gradients; a sum over the global batch needs x ranks
        ranks = self.trainer.world_size if self.hparams.reduction == "sum" else 1
        if self.hparams.io.get("rollout_steps") and self.physics is None:  # one or k steps
            return self.stepping_loss(batch["x"], batch["y"]) * ranks
        pred = self(batch["x"])
        labelled = batch.get("labelled")
        if labelled is None:
            loss = reduce(self.loss_fn(pred, batch["y"]), self.hparams.reduction)
        elif bool(labelled.any()):
            loss = reduce(self.loss_fn(pred[labelled], batch["y"][labelled]),
                          self.hparams.reduction)
        else:
            loss = None  # no labelled sample here: the physics alone
        if self.physics is not None:
            terms = self.physics.terms(batch["x"], pred)
            self.log_dict({f"train/physics_{k}": v for k, v in terms.items()}, on_step=False,
                          on_epoch=True, batch_size=len(pred))
            data = None if loss is None else loss * ranks
            loss = self.physics.combine(data, terms)
            ranks = 1
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(pred))
        return loss * ranks if ranks > 1 else loss

    def stepping_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The loss of a time-stepping window ``x [B, 1, *grid] -> y [B, unroll, *grid]``:
        k steps of the current epoch, with pushforward a draw from 1..k
        (:mod:`opnet.training.rollout`; k = 1: one step)."""
        plan = self.rollout_training
        k = plan.steps_for_batch(self.current_epoch)
        loss = unrolled_loss(self.operator, x, y, k,
                             lambda p, t: reduce(self.loss_fn(p, t), self.hparams.reduction),
                             plan.pushforward, plan.noise, plan.checkpoint)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(x))
        if plan.active:
            self.log("train/unroll_steps", float(k), on_step=False, on_epoch=True,
                     batch_size=len(x))
        return loss

    def rollout(self, x: Tensor, steps: int) -> Tensor:
        """Apply the one-step operator ``steps`` times: ``x [B, C, *grid]`` ->
        ``[B, steps·C, *grid]`` (the frames after x)."""
        return self.operator.rollout(x, steps)

    def predict_frames(self, x: Tensor) -> Tensor:
        """The prediction the targets are compared with: one application of the operator,
        or the frames of an ``io["rollout_steps"]``-step rollout."""
        steps = int(self.hparams.io.get("rollout_steps") or 1)
        return self.rollout(x, steps) if steps > 1 else self(x)

    def evaluate_batch(self, batch: dict[str, Tensor], stage: str) -> None:
        x, y = batch["x"], batch["y"]
        steps = int(self.hparams.io.get("rollout_steps") or 1)
        pred = self.predict_frames(x)
        metrics = {"rel_l2": rel_l2(pred, y).mean(),
                   "mse": torch.mean((pred.float() - y.float()) ** 2)}
        later: dict[str, Tensor] = {}  # steps 2..R: epoch means, kept out of the progress bar
        if steps > 1:  # per step; the correlation time at the epoch's end
            c = self.hparams.io["out_channels"]
            per_step = rollout_errors(pred, y, c).mean(dim=0)
            metrics["rel_l2_step1"] = per_step[0]
            later = {f"{stage}/rel_l2_step{i}": e for i, e in enumerate(per_step, 1) if i > 1}
            self._add_correlation(stage, rollout_correlation(pred, y, c))
        if pred.ndim == 4:
            metrics["h1"] = h1(pred, y).mean()
        if self.physics is not None and steps == 1:
            metrics["residual"] = relative_residual(self.physics.residual, x, pred).mean()
        self.log_metrics(stage, metrics, len(pred))
        if later:
            self.log_dict(later, on_step=False, on_epoch=True, sync_dist=True,
                          batch_size=len(pred))

    # -- rollout correlation: per-step sums over an epoch's batches -------------------------
    def _add_correlation(self, stage: str, corr: Tensor) -> None:
        """Add a batch's per-sample, per-step correlations ``[B, R]`` to ``stage``'s sums."""
        total, count = self._correlation_sums.get(stage, (0.0, 0))
        self._correlation_sums[stage] = (corr.sum(dim=0) + total, count + len(corr))

    def _log_correlation_time(self, stage: str) -> None:
        """Log ``{stage}/correlation_time`` of the epoch's mean per-step correlation (sums
        reduced over ranks) and clear the sums."""
        total, count = self._correlation_sums.pop(stage, (None, 0))
        if total is None:
            return
        stats = torch.cat([total, total.new_tensor([count])])
        stats = self.trainer.strategy.reduce(stats, reduce_op="sum")
        self.log(f"{stage}/correlation_time", correlation_time(stats[:-1] / stats[-1]),
                 on_step=False, on_epoch=True, sync_dist=True)  # the same on every rank

    def on_validation_epoch_start(self) -> None:
        self._correlation_sums.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._correlation_sums.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self._log_correlation_time("val")

    def on_test_epoch_end(self) -> None:
        self._log_correlation_time("test")

    @torch.no_grad()
    def figure_data(self, batch: Mapping[str, Tensor], n: int = 4) -> dict[str, Any]:
        """The first ``n`` samples of ``batch`` for :func:`opnet.plot.sample_figure`: first
        input channel, first target channel (the first frame of a rollout) and its
        prediction, physical units, numpy."""
        x, y = batch["x"][:n].to(self.device), batch["y"][:n]
        pred = self.predict_frames(x)
        grid = self.hparams.io.get("coords", {}).get("x")
        grid = grid if grid is not None and len(grid) == x.shape[-1] else None

        def first(t: Tensor) -> Any:
            return t[:, 0].float().cpu().numpy()

        return {"kind": "grid2d" if x.ndim == 4 else "grid1d", "inputs": first(x),
                "truth": first(y), "pred": first(pred),
                "coords": None if x.ndim == 4 else {"in": grid, "out": grid},
                "equations": None}

    def operator_extras(self) -> dict[str, Any]:
        return {"loss": self.hparams.loss}
