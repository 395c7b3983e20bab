"""One optimiser and schedule vocabulary for every family (MgNO/FNO, DeepONet, PROSE).

``module.optimizer``: ``adam`` (weight decay added to the gradient, L2-coupled) | ``adamw``
(decoupled weight decay), with ``lr``, ``weight_decay``, ``betas``, ``eps`` and ``fused``
(``true``/``false``: torch's fused kernel or not; ``null``: the fastest implementation the
parameters allow — :class:`~opnet.training.flat_adam.FlatAdam` for a family that prefers
it (DeepONet: small networks), else torch's fused kernel unless the Trainer clips the
gradients under mixed precision, which Lightning cannot do for a fused optimizer).

``module.scheduler``: a name (``module.scheduler=cosine``) or ``{name: ..., options}``:

========================  ===================================================================
``none``                  constant ``lr``
``onecycle``              ``div_factor``, ``final_div_factor``, ``pct_start`` (torch's OneCycleLR;
                          a run of >= 3 steps warms up for >= 2: pct_start >= 2/total)
``cosine``                ``min_lr``: cosine from ``lr`` to ``min_lr`` over the run
``inverse_time``          ``decay_steps``, ``decay_rate``: ``lr / (1 + rate·step/decay_steps)``
                          (DeepXDE's ``("inverse time", ...)``)
``step``                  ``step_size`` (required), ``gamma``: ``lr·gamma^⌊step/step_size⌋``
``inverse_sqrt``          ``warmup_steps``, ``warmup_init_lr``: linear warm-up then
                          ``lr·√(warmup_steps/step)`` (PROSE's ``adam_inverse_sqrt``)
========================  ===================================================================

Every schedule also takes ``interval`` (``step`` | ``epoch``: what one schedule step is).
Options of the other schedules are ignored (so switching is one override); unknown ones are
an error naming them. A family gives its own defaults (:class:`Recipe`: the MgNO one-cycle
stepped per epoch, PROSE's warm-up length), never another meaning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

OPTIMIZERS = ("adam", "adamw")
INTERVALS = ("step", "epoch")
#: schedule name -> its options and their defaults (None: required where used)
SCHEDULES: dict[str, dict[str, Any]] = {
    "none": {},
    "onecycle": {"div_factor": 25.0, "final_div_factor": 1e4, "pct_start": 0.3},
    "cosine": {"min_lr": 0.0},
    "inverse_time": {"decay_steps": 1.0, "decay_rate": 0.0},
    "step": {"step_size": None, "gamma": 0.5},
    "inverse_sqrt": {"warmup_steps": 20_000, "warmup_init_lr": 1e-7},
}
_OPTIONS = {k for options in SCHEDULES.values() for k in options} | {"name", "interval"}


@dataclass(frozen=True)
class Recipe:
    """A family's defaults: its schedule when none is named, the interval, option defaults
    per schedule (``{"onecycle": {"div_factor": 2.0}}``) and whether FlatAdam is its fastest
    optimiser for ``fused=null``."""

    scheduler: str = "none"
    interval: str = "step"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prefer_flat: bool = False


def scheduler_spec(scheduler: str | Mapping[str, Any] | None,
                   recipe: Recipe = Recipe()) -> dict[str, Any]:
    """``module.scheduler`` (a name, a dict or None) -> ``{"name", "interval", **options}``
    with the recipe's and the schedule's defaults filled in; a ValueError naming the key for
    an unknown name, option or interval."""
    if scheduler is None:
        given: dict[str, Any] = {}
    elif isinstance(scheduler, str):
        given = {"name": scheduler}
    elif isinstance(scheduler, Mapping):
        given = {k: v for k, v in scheduler.items() if v is not None}
    else:
        raise ValueError(f"module.scheduler={scheduler!r}: expected a schedule name "
                         f"({', '.join(SCHEDULES)}) or a mapping with 'name'")
    name = given.pop("name", recipe.scheduler)
    if name not in SCHEDULES:
        raise ValueError(f"module.scheduler.name={name!r}: expected one of "
                         f"{', '.join(SCHEDULES)}")
    unknown = sorted(set(given) - _OPTIONS)
    if unknown:
        raise ValueError(f"module.scheduler: unknown option(s) {unknown}; the schedules take "
                         f"{ {k: sorted(v) for k, v in SCHEDULES.items() if v} } and interval")
    interval = given.pop("interval", recipe.interval)
    if interval not in INTERVALS:
        raise ValueError(f"module.scheduler.interval={interval!r}: expected one of "
                         f"{', '.join(INTERVALS)}")
    options = {**SCHEDULES[name], **recipe.options.get(name, {})}
    options.update({k: v for k, v in given.items() if k in options})
    return {"name": name, "interval": interval, **options}


def check_optimizer(optimizer: str, betas: Iterable[float], eps: float) -> None:
    """A ValueError naming ``module.optimizer``/``betas``/``eps`` when they are not usable."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"module.optimizer={optimizer!r}: expected one of "
                         f"{', '.join(OPTIMIZERS)}")
    if len(list(betas)) != 2:
        raise ValueError(f"module.betas={list(betas)}: expected two numbers")
    if not float(eps) > 0:
        raise ValueError(f"module.eps={eps}: expected a number > 0")


def build_optimizer(params: Iterable[Tensor], optimizer: str = "adam", lr: float = 1e-3,
                    weight_decay: float = 0.0, betas: Iterable[float] = (0.9, 0.999),
                    eps: float = 1e-8, fused: bool | None = None, prefer_flat: bool = False,
                    clip_under_mixed_precision: bool = False) -> torch.optim.Optimizer:
    """Adam or AdamW over ``params`` (see the module docstring for ``fused``)."""
    from opnet.training.flat_adam import FlatAdam

    check_optimizer(optimizer, betas, eps)
    params = list(params)
    adamw, betas = optimizer == "adamw", tuple(float(b) for b in betas)
    if fused is None and prefer_flat and len({(p.dtype, p.device) for p in params}) == 1:
        # one flat buffer: a few vector ops per step instead of per-tensor kernels
        return FlatAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=adamw)
    can_fuse = all(p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
                   and p.device.type in ("cpu", "cuda") for p in params)
    if fused and clip_under_mixed_precision:
        raise ValueError("module.fused=true with mixed precision and trainer.gradient_clip_val: "
                         "Lightning cannot clip the gradients of a fused optimizer under mixed "
                         "precision; use module.fused=null")
    use_fused = can_fuse and (bool(fused) if fused is not None
                              else not clip_under_mixed_precision)
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
               fused=use_fused)


def inverse_sqrt_lr(step: int, lr: float, warmup_steps: int, warmup_init_lr: float) -> float:
    """The reference's ``adam_inverse_sqrt``: linear from ``warmup_init_lr`` (step 0) to
    ``lr`` (step ``warmup_steps``), then ``lr · √(warmup_steps / step)``."""
    if step < warmup_steps:
        return warmup_init_lr + (lr - warmup_init_lr) * step / warmup_steps
    return lr * math.sqrt(warmup_steps / max(step, 1))


def build_scheduler(opt: torch.optim.Optimizer, spec: Mapping[str, Any], lr: float,
                    total_steps: Callable[[str], int]
                    ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The schedule of ``spec`` (:func:`scheduler_spec`) on ``opt``, or None for ``none``.
    ``total_steps(interval)``: the run's length in schedule steps (asked only by the
    schedules that need it: onecycle, cosine)."""
    sched = torch.optim.lr_scheduler
    name = spec["name"]
    if name == "none":
        return None
    if name == "inverse_time":
        steps, rate = float(spec["decay_steps"]), float(spec["decay_rate"])
        if steps <= 0:
            raise ValueError(f"module.scheduler.decay_steps={steps}: expected > 0")
        return sched.LambdaLR(opt, lambda step: 1.0 / (1.0 + rate * step / steps))
    if name == "step":
        if spec.get("step_size") is None:
            raise ValueError("module.scheduler (step) needs step_size (schedule steps)")
        return sched.StepLR(opt, step_size=int(spec["step_size"]), gamma=float(spec["gamma"]))
    if name == "inverse_sqrt":
        warmup, init = int(spec["warmup_steps"]), float(spec["warmup_init_lr"])
        if warmup < 1:
            raise ValueError(f"module.scheduler.warmup_steps={warmup}: expected an integer >= 1")
        return sched.LambdaLR(opt, lambda step: inverse_sqrt_lr(step, lr, warmup, init) / lr)
    total = int(total_steps(spec["interval"]))
    if total < 1:
        raise ValueError(f"module.scheduler={name} needs a run of >= 1 {spec['interval']}s "
                         "(trainer.max_epochs / trainer.max_steps)")
    if name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=total, eta_min=float(spec["min_lr"]))
    # torch divides by the warm-up's length in steps, pct_start·total − 1 (5 epochs x 0.2:
    # zero, a ZeroDivisionError at the first step): make it at least one step
    pct_start = float(spec["pct_start"])
    if total >= 3:
        pct_start = max(pct_start, 2.0 / total)
    return sched.OneCycleLR(opt, max_lr=lr, total_steps=total,
                            div_factor=float(spec["div_factor"]),
                            final_div_factor=float(spec["final_div_factor"]),
                            pct_start=pct_start)
