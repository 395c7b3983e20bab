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
stepped every iteration (``none`` | ``inverse_time`` = DeepXDE ``("inverse time", decay_steps,
decay_rate)`` | ``cosine`` | ``onecycle`` | ``step``).

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
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from opnet import __version__
from opnet.data.normalizers import PointNormalizer
from opnet.metrics import point_metrics
from opnet.training.adam_state import adapt_adam_state
from opnet.training.deeponet_fastpath import MLPDeepONetStep, unsupported_reason
from opnet.training.flat_adam import FlatAdam
from opnet.training.module import OPERATOR_FORMAT, ConfigError, build_model

LOSSES = ("mse", "rel_l2")
OPTIMIZERS = ("adam", "adamw")
SCHEDULE_KEYS = {"none": (), "inverse_time": ("decay_steps", "decay_rate"), "cosine": ("min_lr",),
                 "onecycle": ("div_factor", "final_div_factor", "pct_start"),
                 "step": ("step_size", "gamma")}
SCHEDULES = tuple(SCHEDULE_KEYS)


def point_loss(name: str, pred: Tensor, s: Tensor) -> Tensor:
    """``mse``: mean squared error over every entry; ``rel_l2``: mean over functions of
    ‖pred − s‖₂ / ‖s‖₂ over their points and outputs."""
    if name == "mse":
        return F.mse_loss(pred, s)
    return ((pred - s).flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1)).mean()


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


class DeepONetModule(L.LightningModule):
    """Trains ``model`` (DeepONet / PODDeepONet) on point batches.

    model: plain dict with ``_target_`` and the network's keyword arguments (sizes filled
        from the data by :meth:`from_data`).
    io: :meth:`PointDataModule.io_spec` (shapes, fields, provenance).
    loss: ``"mse"`` (reference; in the output normalizer's units) or ``"rel_l2"`` (physical).
    lr, weight_decay, optimizer (``adam`` | ``adamw``), scheduler ``{"name": ..., ...}``:
        ``inverse_time`` (decay_steps, decay_rate: lr / (1 + rate·step/decay_steps)),
        ``cosine`` (min_lr; over all training steps), ``onecycle`` (div_factor,
        final_div_factor, pct_start), ``step`` (step_size, gamma); every one per iteration.
    in_normalizer / out_normalizer: ``none`` | ``scalar`` | ``pointwise``.
    fused: None (default): :class:`~opnet.training.flat_adam.FlatAdam` (all parameters as
        one flat buffer: the fastest for small networks); True/False: torch's Adam/AdamW
        with/without its fused kernel.
    fast_path: with FlatAdam, full precision on one device, an MLP DeepONet and the MSE:
        iterations with hand-derived gradients (:mod:`~opnet.training.deeponet_fastpath`,
        the autograd gradient ~2x faster); False: always autograd.
    """

    def __init__(self, model: Mapping[str, Any], io: Mapping[str, Any], loss: str = "mse",
                 lr: float = 1e-3, weight_decay: float = 0.0, optimizer: str = "adam",
                 scheduler: Mapping[str, Any] | None = None, in_normalizer: str = "none",
                 out_normalizer: str = "none", fused: bool | None = None,
                 fast_path: bool = True) -> None:
        super().__init__()
        for key, value, allowed in (("loss", loss, LOSSES), ("optimizer", optimizer, OPTIMIZERS),
                                    ("scheduler.name", (scheduler or {}).get("name", "none"),
                                     SCHEDULES)):
            if value not in allowed:
                raise ValueError(f"module.{key}='{value}': expected one of {allowed}")
        self.save_hyperparameters()
        self.model = build_model(model)
        self.pod = is_pod(self.model)
        shape = list(io["input_shape"])
        self.in_norm = PointNormalizer(in_normalizer, shape, 0 if len(shape) > 1 else None)
        self.out_norm = PointNormalizer(out_normalizer, [io["n_query"], io["out_channels"]], 1)
        self.register_buffer("sensors", torch.zeros(io["sensor_points"], io["sensor_dim"],
                                                    dtype=torch.float64))
        self.register_buffer("query", torch.zeros(io["n_query"], io["query_dim"],
                                                  dtype=torch.float64))
        self.loss_name = loss
        self.scheduler_cfg = dict(scheduler or {"name": "none"})
        self._prepared = False
        self._loss_sum: Tensor | None = None
        self._loss_count = 0
        self._last_batch: dict[str, Tensor] | None = None
        self._direct: Any = None  # see _direct_steps
        self._fast: Any = None  # see _fast_path
        self.automatic_optimization = False  # per-iteration loop in training_step

    # -- construction from data (the protocol train(cfg) uses for every module) ---------
    @classmethod
    def from_data(cls, model: Mapping[str, Any], datamodule: Any,
                  **kwargs: Any) -> DeepONetModule:
        """The module for ``datamodule``'s data: sizes filled into ``model``, coordinates,
        normalizers and (POD) basis fitted on the train split."""
        io = datamodule.io_spec()
        if io.get("kind") != "points":
            raise ConfigError(f"DeepONetModule needs point data (data._target_: "
                              f"opnet.data.points.PointDataModule), got {type(datamodule)}")
        module = cls(model=deeponet_spec(model, io), io=io, **kwargs)
        module.prepare(datamodule)
        return module

    def prepare(self, datamodule: Any) -> None:
        """Copy the coordinates and fit normalizers (and a POD basis) on the train split."""
        sensors, query = datamodule.coordinates()
        self.sensors.copy_(torch.as_tensor(sensors, dtype=torch.float64))
        self.query.copy_(torch.as_tensor(query, dtype=torch.float64))
        u, s = datamodule.train_arrays()
        self.in_norm.fit(u)
        self.out_norm.fit(s)
        if self.pod:
            target = self.out_norm.encode(torch.as_tensor(s).to(self.out_norm.mean))
            self.pod_variance = self.model.fit_basis(target[..., 0])
        self._prepared = True

    def on_fit_start(self) -> None:
        # a new fit (another Trainer, another optimizer): the cached step counter and fast
        # path belong to the previous one
        self._direct = self._fast = None
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self._prepared and self.trainer.ckpt_path is None and datamodule is not None:
            self.prepare(datamodule)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from opnet.checkpoint import loading_path, operator_block, verify_digest

        where = loading_path(self)
        operator_block(where, checkpoint)  # refuses newer/older formats by name
        verify_digest(checkpoint, where)  # a damaged file is named, never trained on
        self._prepared = True  # the buffers come from the checkpoint
        states = checkpoint.get("optimizer_states")
        if states and len(states) == 1:  # FlatAdam <-> torch Adam when module.fused changed
            states[0] = adapt_adam_state(states[0], list(self.parameters()),
                                         self._uses_flat_adam(), self.hparams.fused)

    # -- the operator in physical units -------------------------------------------------
    def forward(self, u: Tensor, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """Physical ``u``, query points ``y`` -> physical ``s`` [B, P, C_out]. ``idx``: the
        indices of ``y`` in the training query set (needed by pointwise output statistics
        and POD models when y is a subset of it)."""
        return self.out_norm.decode(self.encoded(u, y, idx), idx)

    def encoded(self, u: Tensor, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """The network's output [B, P, C_out] in the output normalizer's units."""
        u = self.in_norm.encode(u)
        if self.pod:
            z = self.model(u, self.query.to(u.dtype) if self.model.trunk is not None else None)
            if idx is not None:
                z = z[:, idx] if idx.dim() == 1 else torch.gather(
                    z, 1, idx[..., None].expand(-1, -1, z.shape[2]))
        else:
            z = self.model(u, y)
        return z

    def training_loss(self, batch: Mapping[str, Tensor]) -> Tensor:
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
            if sched is not None:
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
            usable = (self.hparams.fast_path and isinstance(opt, FlatAdam)
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
        if not self._loss_count:
            return
        batch = self._last_batch
        with torch.no_grad():
            end = self.training_loss(batch)
        self.log_dict({"train/loss": self._loss_sum / self._loss_count, "train/loss_end": end},
                      on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        pred, s = self(batch["u"], batch["y"]).float(), batch["s"].float()
        err = pred - s
        rel = err.flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1)
        self.log_dict({f"{stage}/rel_l2": rel.mean(), f"{stage}/mse": err.square().mean()},
                      on_step=False, on_epoch=True, prog_bar=stage == "val", sync_dist=True,
                      batch_size=len(pred))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

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
    def configure_optimizers(self):
        adamw = self.hparams.optimizer == "adamw"
        params = list(self.parameters())
        fused = self.hparams.fused
        if self._uses_flat_adam():
            # one flat buffer: a few vector ops per step instead of per-tensor kernels
            opt = FlatAdam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                           decoupled_weight_decay=adamw)
        else:
            cls = torch.optim.AdamW if adamw else torch.optim.Adam
            opt = cls(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                      fused=bool(fused) and all(p.device.type in ("cpu", "cuda")
                                                for p in params))
        cfg = {k: v for k, v in self.scheduler_cfg.items() if v is not None}
        name = cfg.pop("name", "none")
        unknown = sorted(set(cfg) - {k for keys in SCHEDULE_KEYS.values() for k in keys})
        if unknown:  # keys of the other schedules are ignored, so switching is one override
            raise ValueError(f"module.scheduler: unknown option(s) {unknown}; the schedules "
                             f"take {SCHEDULE_KEYS}")
        if name == "none":
            return opt
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": self._schedule(opt, name, cfg),
                                 "interval": "step", "frequency": 1}}

    def _uses_flat_adam(self) -> bool:
        """FlatAdam (``fused`` None and one dtype/device) rather than torch's Adam/AdamW."""
        params = list(self.parameters())
        return self.hparams.fused is None and len({(p.dtype, p.device) for p in params}) == 1

    def _schedule(self, opt: torch.optim.Optimizer, name: str, cfg: dict[str, Any]):
        sched = torch.optim.lr_scheduler
        if name == "inverse_time":
            steps = float(cfg.get("decay_steps", 1))
            rate = float(cfg.get("decay_rate", 0.0))
            if steps <= 0:
                raise ValueError(f"module.scheduler.decay_steps={steps}: expected > 0")
            return sched.LambdaLR(opt, lambda step: 1.0 / (1.0 + rate * step / steps))
        if name == "step":
            if "step_size" not in cfg:
                raise ValueError("module.scheduler (step) needs step_size (iterations)")
            return sched.StepLR(opt, step_size=int(cfg["step_size"]),
                                gamma=float(cfg.get("gamma", 0.5)))
        total = self.total_iterations()
        if name == "cosine":
            return sched.CosineAnnealingLR(opt, T_max=total, eta_min=float(cfg.get("min_lr", 0)))
        return sched.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=total,
                                div_factor=float(cfg.get("div_factor", 25.0)),
                                final_div_factor=float(cfg.get("final_div_factor", 1e4)),
                                pct_start=float(cfg.get("pct_start", 0.3)))

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
    def operator_block(self) -> dict[str, Any]:
        """What :func:`opnet.load_operator` needs (plain types only)."""
        return {"format_version": OPERATOR_FORMAT, "module": "DeepONetModule",
                "model": dict(self.hparams.model), "io": dict(self.hparams.io),
                "sensors": self.sensors.cpu().tolist(), "query": self.query.cpu().tolist(),
                "normalizers": {"in": self.in_norm.kind, "out": self.out_norm.kind},
                "loss": self.loss_name, "opnet_version": __version__,
                "torch_version": str(torch.__version__)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from opnet.checkpoint import write_operator

        write_operator(checkpoint, self.operator_block())  # + digest, checked by every load


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
