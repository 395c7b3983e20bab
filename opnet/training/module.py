"""OperatorModule: the LightningModule that trains a grid operator (MgNO, ...).

It owns the network, the input/output normalizers (buffers, fitted on the train split),
the loss, the metrics and the optimiser/schedule. Its hyper-parameters are plain dicts, so
checkpoints load with ``torch.load(weights_only=True)``; every checkpoint also carries an
``operator`` block that :func:`opnet.load_operator` needs without Hydra or the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from opnet import __version__
from opnet.checkpoint import (
    OPERATOR_FORMAT,
    loading_path,
    operator_block,
    verify_digest,
    write_operator,
)
from opnet.data.normalizers import GaussianNormalizer
from opnet.models import build_model
from opnet.training.losses import get_loss, h1, reduce, rel_l2

__all__ = ["OPERATOR_FORMAT", "ConfigError", "OperatorModule", "build_model", "fill_channels"]


class ConfigError(ValueError):
    """The composed configuration is inconsistent (named key, expected value)."""


def fill_channels(model: Mapping[str, Any], io: Mapping[str, Any]) -> dict[str, Any]:
    """Plain model dict with in/out channels taken from the data (or checked against it)."""
    spec = dict(model)
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


class OperatorModule(L.LightningModule):
    """Trains ``model`` on batches ``{"x": [B, C_in, *grid], "y": [B, C_out, *grid]}``.

    model: plain dict with ``_target_`` and the network's keyword arguments.
    io: the data description of :meth:`GridDataModule.io_spec` (channels, grid,
        normalizer kinds, fields, provenance).
    loss: ``"h1"`` or ``"rel_l2"`` on physical (de-normalised) outputs, ``reduction``
        ``"sum"`` over the batch as the reference code, or ``"mean"``.
    optimizer: Adam with L2-coupled ``weight_decay``; scheduler ``"onecycle"`` (the MgNO
        recipe: div_factor, final_div_factor, pct_start, stepped per ``interval``) or
        ``"none"``.
    """

    def __init__(self, model: Mapping[str, Any], io: Mapping[str, Any], loss: str = "h1",
                 reduction: str = "sum", lr: float = 5e-4, weight_decay: float = 1e-4,
                 scheduler: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model)
        self.in_norm = GaussianNormalizer(io["in_normalizer"], io["in_channels"], io["grid"])
        self.out_norm = GaussianNormalizer(io["out_normalizer"], io["out_channels"], io["grid"])
        self.loss_fn = get_loss(loss)
        reduce(torch.zeros(1), reduction)  # validates the name now, not mid-training
        self.scheduler_cfg = dict(scheduler or {"name": "none"})

    @classmethod
    def from_data(cls, model: Mapping[str, Any], datamodule: Any,
                  **kwargs: Any) -> OperatorModule:
        """The module for ``datamodule``'s data (the protocol ``train(cfg)`` uses): channels
        filled into ``model``, normalizers fitted on the train split."""
        io = datamodule.io_spec()
        if io.get("kind", "grid") != "grid":
            raise ConfigError(f"{cls.__name__} trains grid operators; data "
                              f"'{io['dataset']['name']}' is {io.get('kind')} data (use "
                              "module=deeponet for a DeepONet)")
        loss, grid = kwargs.get("loss", "h1"), list(io["grid"])
        if loss in ("h1", "h1_abs") and len(grid) != 2:  # at configuration, not the 1st step
            raise ConfigError(
                f"module.loss={loss} needs 2-D grid data [B, C, H, W] but data "
                f"'{io['dataset']['name']}' has a {len(grid)}-D grid {grid}; use "
                f"module.loss=rel_l2 (the loss that fits {len(grid)}-D data)")
        module = cls(model=fill_channels(model, io), io=io, **kwargs)
        stats = getattr(datamodule, "normalizer_stats", None)
        if stats is None:
            module.fit_normalizers(*datamodule.train_arrays())
        else:  # streamed where the split is lazy: never the whole split in memory
            found = stats(module.in_norm.kind, module.out_norm.kind)
            for norm, mean_std in zip((module.in_norm, module.out_norm), found, strict=True):
                if mean_std is not None:
                    norm.set_stats(*mean_std)
        return module

    def fit_normalizers(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the input/output statistics on the training arrays."""
        self.in_norm.fit(x)
        self.out_norm.fit(y)

    def forward(self, x: Tensor) -> Tensor:
        """Physical inputs ``[B, C_in, *grid]`` -> physical outputs ``[B, C_out, *grid]``."""
        return self.out_norm.decode(self.model(self.in_norm.encode(x)))

    # -- steps ---------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pred = self(batch["x"])
        loss = reduce(self.loss_fn(pred, batch["y"]), self.hparams.reduction)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(pred))
        if self.hparams.reduction == "sum" and self.trainer.world_size > 1:
            # DDP averages the ranks' gradients; a sum over the global batch needs x ranks
            return loss * self.trainer.world_size
        return loss

    def rollout(self, x: Tensor, steps: int) -> Tensor:
        """Apply the one-step operator ``steps`` times: ``x [B, C, *grid]`` ->
        ``[B, steps·C, *grid]`` (the frames after x)."""
        frames = []
        for _ in range(steps):
            x = self(x)
            frames.append(x)
        return torch.cat(frames, dim=1)

    def predict_frames(self, x: Tensor) -> Tensor:
        """The prediction the targets are compared with: one application of the operator,
        or the frames of an ``io["rollout_steps"]``-step rollout."""
        steps = int(self.hparams.io.get("rollout_steps") or 1)
        return self.rollout(x, steps) if steps > 1 else self(x)

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        x, y = batch["x"], batch["y"]
        steps = int(self.hparams.io.get("rollout_steps") or 1)
        pred = self.predict_frames(x)
        metrics = {f"{stage}/rel_l2": rel_l2(pred, y).mean(),
                   f"{stage}/mse": torch.mean((pred.float() - y.float()) ** 2)}
        if steps > 1:
            c = self.hparams.io["out_channels"]
            metrics[f"{stage}/rel_l2_step1"] = rel_l2(pred[:, :c], y[:, :c]).mean()
        if pred.ndim == 4:
            metrics[f"{stage}/h1"] = h1(pred, y).mean()
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val", sync_dist=True,
                      batch_size=len(pred))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

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

    # -- optimiser -------------------------------------------------------------------------
    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr,
                               weight_decay=self.hparams.weight_decay)
        cfg = dict(self.scheduler_cfg)
        name = cfg.pop("name", "none")
        if name == "none":
            return opt
        if name != "onecycle":
            raise ValueError(f"module.scheduler.name='{name}': expected 'onecycle' or 'none'")
        interval = cfg.pop("interval", "epoch")
        if interval == "epoch":
            total = self.trainer.max_epochs
            if total is None or total < 1:
                raise ValueError("the onecycle schedule stepped per epoch needs "
                                 "trainer.max_epochs >= 1")
        else:
            total = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=total,
            div_factor=cfg.pop("div_factor", 2.0),
            final_div_factor=cfg.pop("final_div_factor", 100.0),
            pct_start=cfg.pop("pct_start", 0.2), **cfg)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}

    # -- checkpoint ------------------------------------------------------------------------
    def operator_block(self) -> dict[str, Any]:
        """What :func:`opnet.load_operator` needs (plain types only)."""
        spec = dict(self.hparams.model)
        return {"format_version": OPERATOR_FORMAT, "module": "OperatorModule",
                "model": spec, "io": dict(self.hparams.io),
                "loss": self.hparams.loss, "opnet_version": __version__,
                "torch_version": str(torch.__version__)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        where = loading_path(self)
        operator_block(where, checkpoint)  # refuses newer/older formats by name
        verify_digest(checkpoint, where)  # a damaged file is named, never trained on

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        write_operator(checkpoint, self.operator_block())  # + digest, checked by every load
