"""DeepONetModule: the LightningModule that trains a DeepONet or POD-DeepONet on point data.

Batches come from :class:`opnet.data.points.PointDataModule`: ``u`` (sensor values or an
image), ``y`` (query points, aligned [P, d] or unaligned [B, P, d]), ``s`` [B, P, C_out]
(physical units) and, for point subsets, ``idx`` (their indices in the training query set).

The module owns the network, the sensor/label normalizers (:class:`PointNormalizer`:
``none`` | ``scalar`` | ``pointwise`` — the CMAME scripts' per-point standard scaler), the
sensor and query coordinates (buffers, so the checkpoint knows where the operator was
trained), the POD basis of a :class:`~opnet.models.deeponet.PODDeepONet` (fitted on the
training labels before training, stored in the model's buffers), the loss (``mse``: the
reference's, in the output normalizer's units as the references' scaled outputs, or
``rel_l2`` on physical outputs), and Adam/AdamW with a learning-rate schedule
(:mod:`opnet.training.optim`'s vocabulary, e.g. ``inverse_time`` = DeepXDE ``("inverse time",
decay_steps, decay_rate)``) stepped every iteration.

Per-step cost is kept near the bare PyTorch loop: nothing is logged per step; the step
losses are summed on the device and logged once per epoch as ``train/loss`` (their mean),
with ``train/loss_end``, the loss of the end-of-epoch weights on the epoch's last batch
(with full batches this is DeepXDE's monitored training loss: the reference protocol keeps
the checkpoint with the lowest one). Validation/test log ``{stage}/rel_l2`` (mean over
functions of the relative L2 error over all query points and outputs) and ``{stage}/mse``.

Optimisation is manual (``automatic_optimization = False``): one Lightning training step
runs one iteration per batch it receives, and the data module may hand it several
(``data.batches_per_step``). ``trainer.global_step`` and ``trainer.max_steps`` count
iterations; the loggers' step axis counts Lightning steps (``batches_per_step`` iterations
each). Gradient clipping and accumulation through the Trainer are not available.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from opnet.metrics import point_metrics
from opnet.models.operator import OperatorParts, PointOperator
from opnet.physics import build_physics, relative_residual
from opnet.training.adam_state import adapt_adam_state
from opnet.training.base import ConfigError, OperatorLightningModule
from opnet.training.deeponet_fastpath import MLPDeepONetStep, unsupported_reason
from opnet.training.flat_adam import FlatAdam
from opnet.training.losses import rel_l2
from opnet.training.optim import Recipe

LOSSES = ("mse", "rel_l2")
#: DeepXDE's default: a constant learning rate; FlatAdam for ``fused=null`` (small networks).
POINT_RECIPE = Recipe(scheduler="none", interval="step", prefer_flat=True)


def point_loss(name: str, pred: Tensor, s: Tensor) -> Tensor:
    """``mse``: mean squared error over every entry; ``rel_l2``: mean over functions of
    ‖pred − s‖₂ / ‖s‖₂ over their points and outputs."""
    if name == "mse":
        return F.mse_loss(pred, s)
    return rel_l2(pred, s).mean()


def is_pod(model: Any) -> bool:
    """Whether the model spec names a POD-DeepONet (fixed output basis)."""
    return hasattr(model, "fit_basis")


def _fill(spec: dict, key: str, have: Any, what: str) -> None:
    want = spec.get(key)
    if want is None:
        spec[key] = have
    elif want != have:
        raise ConfigError(f"model.{key}={want} but the data provide {have} ({what}); drop "
                          f"model.{key} (null) to take it from the data")


def deeponet_spec(model: Mapping[str, Any], io: Mapping[str, Any]) -> dict[str, Any]:
    """Plain model dict with the data-dependent sizes filled in (or checked): the branch
    input (m sensor values, or a CNN's in_channels/input_size), the trunk input (query
    dimension d), num_outputs (C_out) and a POD model's n_points (Q)."""
    spec = dict(model)
    name = f"data '{io['dataset']['name']}' ({io['dataset']['path']})"
    image = io["branch"] == "image"
    pod = str(spec.get("_target_", "")).endswith("PODDeepONet")
    branch = spec.get("branch")
    if isinstance(branch, Mapping):
        branch = dict(branch)
        grid = io.get("input_grid")
        if grid is None:
            raise ConfigError(f"model.branch is a CNN but {name} has point inputs "
                              f"{io['input_shape']} (sensor values), not a grid")
        channels = io["input_shape"][0] if image else io["n_sensors"] // math.prod(grid)
        for key, have in (("in_channels", channels), ("input_size", list(grid))):
            want = branch.get(key)
            if want is None:
                branch[key] = have
            elif (list(want) if key == "input_size" else want) != have:
                raise ConfigError(f"model.branch.{key}={want} but {name} provides {have}; drop "
                                  f"model.branch.{key} (null) to take it from the data")
        spec["branch"] = branch
    elif isinstance(branch, (list, tuple)):
        if image:
            raise ConfigError(f"model.branch={list(branch)} is an MLP but data.branch='image' "
                              f"serves images {io['input_shape']}; use data.branch=vector "
                              "(flattened grid) or a CNN branch")
        branch = list(branch)
        if branch and branch[0] is None:
            branch[0] = io["n_sensors"]
        elif branch and branch[0] != io["n_sensors"]:
            raise ConfigError(f"model.branch[0]={branch[0]} but {name} has {io['n_sensors']} "
                              "sensor values per function; set it to null to take it from "
                              "the data")
        spec["branch"] = branch
    else:
        raise ConfigError(f"model.branch={branch!r}: expected a list of layer sizes or a CNN dict")
    trunk = spec.get("trunk")
    if trunk is not None:
        trunk = list(trunk)
        if trunk and trunk[0] is None:
            trunk[0] = io["query_dim"]
        elif trunk and trunk[0] != io["query_dim"]:
            raise ConfigError(f"model.trunk[0]={trunk[0]} but the query points of {name} are "
                              f"{io['query_dim']}-dimensional; set it to null")
        spec["trunk"] = trunk
    if pod:
        if io["out_channels"] != 1:
            raise ConfigError(f"PODDeepONet predicts one output but {name} has "
                              f"{io['out_channels']} ({io['output_fields']})")
        _fill(spec, "n_points", io["n_query"], f"query points of {name}")
    else:
        _fill(spec, "num_outputs", io["out_channels"], f"outputs {io['output_fields']} of {name}")
    return spec


class DeepONetModule(OperatorParts, OperatorLightningModule):
    """Trains ``model`` (DeepONet / PODDeepONet) on point batches.

    model: plain dict with ``_target_`` and the network's keyword arguments (sizes filled
        from the data by :meth:`from_data`).
    io: :meth:`PointDataModule.io_spec` (shapes, fields, provenance).
    loss: ``"mse"`` (reference; in the output normalizer's units) or ``"rel_l2"`` (physical).
    optimizer (``adam`` | ``adamw``), lr, weight_decay, betas, eps, scheduler (a name or
        ``{"name": ..., ...}``, stepped per iteration unless ``interval: epoch``):
        :mod:`opnet.training.optim`.
    in_normalizer / out_normalizer: ``none`` | ``scalar`` | ``pointwise``.
    fused: None (default): :class:`~opnet.training.flat_adam.FlatAdam` (all parameters as
        one flat buffer: the fastest for small networks); True/False: torch's Adam/AdamW
        with/without its fused kernel.
    fast_path: with FlatAdam, full precision on one device, an MLP DeepONet and the MSE:
        iterations with hand-derived gradients (:mod:`~opnet.training.deeponet_fastpath`,
        the autograd gradient ~2x faster); False: always autograd.
    """

    kind: ClassVar[str] = "points"
    recipe: ClassVar[Recipe] = POINT_RECIPE

    def __init__(self, model: Mapping[str, Any], io: Mapping[str, Any], loss: str = "mse",
                 lr: float = 1e-3, weight_decay: float = 0.0, optimizer: str = "adam",
                 scheduler: str | Mapping[str, Any] | None = None, in_normalizer: str = "none",
                 out_normalizer: str = "none", fused: bool | None = None,
                 fast_path: bool = True, betas: tuple[float, float] | list[float] = (0.9, 0.999),
                 eps: float = 1e-8, physics: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"module.loss='{loss}': expected one of {LOSSES}")
        self.save_hyperparameters()
        self.check_options()  # a bad optimiser/schedule fails now, not at the first step
        self.operator = PointOperator.from_spec(model, io, in_normalizer, out_normalizer)
        self.physics = build_physics(physics, io)
        if self.physics is not None and self.operator.pod:
            raise ConfigError("module.physics with a POD-DeepONet: its outputs live on the "
                              "training query points (a fixed basis), so they have no "
                              "derivatives in y; use model=deeponet")
        self.loss_name = loss
        self._prepared = False
        self._loss_sum: Tensor | None = None
        self._loss_count = 0
        self._last_batch: dict[str, Tensor] | None = None
        self._direct: Any = None  # see _direct_steps
        self._fast: Any = None  # see _fast_path
        self.automatic_optimization = False  # per-iteration loop in training_step

    # -- the normalised operator's parts ---------------------------------------------------
    @property
    def sensors(self) -> Tensor:
        """Training sensor coordinates ``[m, d_s]`` (float64)."""
        return self.operator.sensors

    @property
    def query(self) -> Tensor:
        """Training query coordinates ``[Q, d]`` (float64)."""
        return self.operator.query

    @property
    def pod(self) -> bool:
        """Whether the network is a POD-DeepONet (fixed output basis)."""
        return self.operator.pod

    # -- construction from data (the protocol train(cfg) uses for every module) ---------
    @classmethod
    def model_spec(cls, model: Mapping[str, Any], io: Mapping[str, Any],
                   options: Mapping[str, Any]) -> dict[str, Any]:
        return deeponet_spec(model, io)

    def prepare(self, datamodule: Any) -> None:
        """Copy the coordinates and fit normalizers (and a POD basis) on the train split."""
        self.operator.set_coordinates(*datamodule.coordinates())
        variance = self.operator.fit_normalizers(*datamodule.train_arrays())
        if variance is not None:
            self.pod_variance = variance
        self._prepared = True

    def on_fit_start(self) -> None:
        # a new fit (another Trainer, another optimizer): the cached step counter and fast
        # path belong to the previous one
        self._direct = self._fast = None
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self._prepared and self.trainer.ckpt_path is None and datamodule is not None:
            self.prepare(datamodule)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)  # format, digest, older layouts
        self._prepared = True  # the buffers come from the checkpoint
        states = checkpoint.get("optimizer_states")
        if states and len(states) == 1:  # FlatAdam <-> torch Adam when module.fused changed
            states[0] = adapt_adam_state(states[0], list(self.parameters()),
                                         self.uses_flat_adam(), self.hparams.fused)

    # -- the operator in physical units -------------------------------------------------
    def forward(self, u: Tensor, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """Physical ``u``, query points ``y`` -> physical ``s`` [B, P, C_out]. ``idx``: the
        indices of ``y`` in the training query set (needed by pointwise output statistics
        and POD models when y is a subset of it)."""
        return self.operator(u, y, idx)

    def encoded(self, u: Tensor, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """The network's output [B, P, C_out] in the output normalizer's units."""
        return self.operator.encoded(u, y, idx)

    def training_loss(self, batch: Mapping[str, Tensor], update: bool = True) -> Tensor:
        """The data loss of the batch's labelled functions, plus the physics terms at
        :meth:`collocation` points when ``module.physics`` is on (``update``: let an
        adaptive balance learn from this step)."""
        labelled = batch.get("labelled")
        if labelled is None:
            data = self.data_loss(batch)
        elif bool(labelled.any()):
            data = self.data_loss(_rows(batch, labelled))
        else:
            data = None  # no labelled function here: the physics alone
        if self.physics is None:
            return data
        u = batch["u"]
        terms = self.physics.terms(u, self.sensors.to(u.dtype), self.collocation(u),
                                   lambda y: self.operator(u, y))
        if update:
            self.log_dict({f"train/physics_{k}": v for k, v in terms.items()},
                          on_step=False, on_epoch=True, batch_size=len(u))
        return self.physics.combine(data, terms, train=update)

    def collocation(self, u: Tensor) -> Tensor:
        """``module.physics.points`` collocation points ``[P, d]`` of this iteration (seeded
        by the iteration: a resumed run draws the same ones)."""
        step = self.trainer.global_step if self._trainer is not None else 0
        gen = torch.Generator().manual_seed(int(step))
        points = self.physics.residual.collocation(int(self.physics.options["points"]), gen)
        return points.to(device=u.device, dtype=u.dtype)

    def data_loss(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``mse`` in the output normalizer's units (as the references train on scaled
        outputs: with small physical values, e.g. Darcy's ~1e-2, a physical MSE ~1e-6 gives
        gradients below Adam's eps and training stalls); ``rel_l2`` (scale-free) on
        physical outputs."""
        idx = batch.get("idx")
        if self.loss_name == "mse":
            z = self.encoded(batch["u"], batch["y"], idx)
            return F.mse_loss(z, self.out_norm.encode(batch["s"], idx).to(z.dtype))
        return point_loss(self.loss_name, self(batch["u"], batch["y"], idx), batch["s"])

    # -- steps ---------------------------------------------------------------------------
    progress_unit = "iteration"  # what trainer.global_step counts (opnet.training.progress)

    @property
    def iterations_per_step(self) -> int:
        """Optimizer iterations per Lightning training step (``data.batches_per_step``; 1
        before the train data are set up)."""
        return int(getattr(self.trainer.train_dataloader, "group", 1) or 1)

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_count, self._last_batch = None, 0, None

    def training_step(self, batch: dict[str, Tensor] | list[dict[str, Tensor]],
                      batch_idx: int) -> Tensor | None:
        """One optimizer iteration per batch (a list of batches: one after the other; the
        data module groups ``batches_per_step`` of them to spare Lightning's per-step cost).
        The schedule is stepped after every iteration. Returns the sum of the iterations'
        losses (detached; for the non-finite-loss guard)."""
        group: Tensor | None = None
        direct = self._direct_steps()
        opt = self.optimizers(use_pl_optimizer=not direct)
        sched = self.lr_schedulers()
        per_iteration = self.schedule_interval == "step"
        fast = self._fast_path(opt) if direct else None
        last = self.trainer.max_steps
        for b in batch if isinstance(batch, list) else (batch,):
            if 0 <= last <= self.trainer.global_step:
                break  # max_steps counts iterations: stop inside a group of batches
            loss = fast(b) if fast is not None else None
            if loss is None:
                loss = self.training_loss(b)
                opt.zero_grad(set_to_none=True)
                if direct:
                    loss.backward()
                    opt.step()
                else:
                    self.manual_backward(loss)
                    opt.step()
            if direct:  # what LightningOptimizer.step does: count it (trainer.global_step)
                direct.increment_ready()
                direct.increment_completed()
            if sched is not None and per_iteration:
                sched.step()
            value = loss.detach()
            self._loss_sum = value if self._loss_sum is None else self._loss_sum + value
            group = value if group is None else group + value
            self._loss_count += 1
            self._last_batch = b
        return group

    def _fast_path(self, opt: Any) -> MLPDeepONetStep | None:
        """The hand-derived-gradient iteration (:mod:`~opnet.training.deeponet_fastpath`)
        when ``fast_path`` is on, the optimizer is FlatAdam and the model is an MLP
        DeepONet trained with MSE; else None (autograd)."""
        if self._fast is None:
            io = self.hparams.io
            usable = (self.hparams.fast_path and isinstance(opt, FlatAdam)
                      and self.physics is None and not io.get("unlabelled")
                      and io.get("labels") is None
                      and unsupported_reason(self.model, self.loss_name) is None)
            self._fast = MLPDeepONetStep(self, opt) if usable else False
        return self._fast or None

    def _direct_steps(self) -> Any:
        """Full precision on one device: backward and optimizer step without Lightning's
        wrappers (precision plugin, strategy, per-call hooks), which cost about as much as
        a whole iteration of a small DeepONet. Mixed precision and distributed strategies
        keep them (scaling, gradient synchronisation). Returns the loop's step counter
        (:func:`lightning_step_counter`, which ``trainer.global_step`` reads) or False."""
        if self._direct is None:
            trainer = self.trainer
            progress = lightning_step_counter(trainer)
            fast = (type(trainer.strategy).__name__ == "SingleDeviceStrategy"
                    and str(trainer.precision) in ("32-true", "64-true", "32", "64")
                    and progress is not None)
            self._direct = progress if fast else False
        return self._direct

    def on_train_epoch_end(self) -> None:
        sched = self.lr_schedulers()
        if sched is not None and self.schedule_interval == "epoch":
            sched.step()
        if not self._loss_count:
            return
        batch = self._last_batch
        with torch.no_grad():
            end = self.training_loss(batch, update=False)
        self.log_dict({"train/loss": self._loss_sum / self._loss_count, "train/loss_end": end},
                      on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)

    def evaluate_batch(self, batch: dict[str, Tensor], stage: str) -> None:
        pred, s = self(batch["u"], batch["y"]).float(), batch["s"].float()
        metrics = {"rel_l2": rel_l2(pred, s).mean(), "mse": (pred - s).square().mean()}
        if self.physics is not None:
            u = batch["u"]
            with torch.enable_grad():  # forward-mode derivatives in y
                metrics["residual"] = relative_residual(
                    self.physics.residual, u, self.sensors.to(u.dtype), self.collocation(u),
                    lambda y: self.operator(u, y)).mean().detach()
        self.log_metrics(stage, metrics, len(pred))

    @torch.no_grad()
    def figure_data(self, batch: Mapping[str, Tensor], n: int = 4) -> dict[str, Any]:
        """The first ``n`` functions of ``batch`` for :func:`opnet.plot.sample_figure`
        (kind ``points``): the input's first channel at the sensors (an image for a CNN
        branch), the first output at the query points and its prediction; physical units,
        numpy."""
        u, s, y = batch["u"][:n].to(self.device), batch["s"][:n], batch["y"]
        y = (y if y.dim() == 2 else y[:n]).to(self.device)
        idx = batch.get("idx")
        if idx is not None:
            idx = (idx if idx.dim() == 1 else idx[:n]).to(self.device)
        pred = self(u, y, idx)
        m = len(self.sensors)
        inputs = u[:, 0] if u.dim() > 2 else u[:, :m]  # channel 0 comes first when flattened
        return {"kind": "points", "inputs": inputs.float().cpu().numpy(),
                "truth": s[..., 0].float().cpu().numpy(),
                "pred": pred[..., 0].float().cpu().numpy(),
                "coords": {"in": None if u.dim() > 2 else self.sensors.cpu().numpy(),
                           "out": y.double().cpu().numpy()},
                "equations": None}

    # -- optimiser -------------------------------------------------------------------------
    def total_steps(self, interval: str) -> int:
        """Schedule steps of the run: optimizer iterations (not Lightning steps), or epochs."""
        return self.total_iterations() if interval == "step" else super().total_steps(interval)

    def total_iterations(self) -> int:
        """Optimizer iterations of the whole run (max_steps, or epochs x iterations per
        epoch), for schedules that need their length."""
        trainer = self.trainer
        estimate = trainer.estimated_stepping_batches  # also sets the train data up
        per_batch = self.iterations_per_step
        bounds = []
        if trainer.max_steps not in (None, -1):  # training_step stops at max_steps exactly
            bounds.append(int(trainer.max_steps))
        if trainer.max_epochs not in (None, -1):
            bounds.append(int(trainer.num_training_batches) * per_batch * int(trainer.max_epochs))
        if not bounds or not math.isfinite(float(estimate)):
            raise ValueError("module.scheduler needs a finite run: set trainer.max_steps or "
                             "trainer.max_epochs")
        return min(bounds)

    # -- checkpoint ------------------------------------------------------------------------
    def operator_extras(self) -> dict[str, Any]:
        return {"sensors": self.sensors.cpu().tolist(), "query": self.query.cpu().tolist(),
                "normalizers": {"in": self.in_norm.kind, "out": self.out_norm.kind},
                "loss": self.loss_name}


def _rows(batch: Mapping[str, Tensor], keep: Tensor) -> dict[str, Tensor]:
    """The functions of ``batch`` where ``keep`` [B] is true (shared points stay shared)."""
    rows = {}
    for key, value in batch.items():
        per_function = key in ("u", "s", "labelled") or (key in ("y", "idx") and value.dim() > (
            2 if key == "y" else 1))
        rows[key] = value[keep] if per_function else value
    return rows


def lightning_step_counter(trainer: L.Trainer) -> Any | None:
    """The only use of Lightning's private loop state: the manual-optimization step counter
    (``fit_loop.epoch_loop.manual_optimization.optim_step_progress``, whose
    ``total.completed`` is ``trainer.global_step`` for a module with manual optimization;
    tested with Lightning 2.6). None when a Lightning version lays its loops out otherwise
    (then the direct iterations are off; ``tests/test_review_bugs.py`` fails loudly)."""
    loop = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "manual_optimization", None)
    progress = getattr(loop, "optim_step_progress", None)
    ok = all(hasattr(progress, a) for a in ("increment_ready", "increment_completed", "total"))
    return progress if ok else None


def exact_metrics(pred: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """Test metrics of the reference (float64): MSE, MSE without the largest 0.1 % of the
    squared errors, mean relative L2 over functions. pred, s: [N, Q(, C)]; computed by
    :func:`opnet.metrics.point_metrics`."""
    if s.ndim == 2:
        pred, s = pred[..., None], s[..., None]
    m = point_metrics(pred, s)
    return {k: m[k] for k in ("mse", "mse_wo_outliers", "rel_l2")}
