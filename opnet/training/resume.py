"""Resume that continues the configured run exactly, extends it explicitly, or refuses.

Every checkpoint written by ``train(cfg)`` holds the run's resolved configuration under
``RUN_CONFIG_KEY`` (:class:`RecordRunConfig`). ``ckpt_path=...`` compares it with the command's
configuration, key by key:

* **runtime keys** (where outputs go, logging, callbacks, devices, loader workers, the data
  folder's location, testing): may change freely; they do not change the training itself.
* **schedule keys** (``trainer.max_epochs``/``max_steps``, ``module.*`` such as ``lr``, ``loss``,
  ``scheduler``; ``data.batch_size``, ``trainer.precision``, ...): a plain resume refuses a
  change (Lightning would restore the old optimiser/schedule and silently ignore it, or crash
  stepping a OneCycle past its end). ``resume.extend=true`` honours them: training goes on
  from the checkpoint's weights with a new optimiser and schedule built from this command's
  settings, over the epochs (steps) from the checkpoint's to ``trainer.max_epochs``
  (``max_steps``): a warm restart, in a new run folder.
* **everything else** (``model.*``, the family ``module._target_``, the dataset's fields,
  stride, normalizers and sizes, ``seed``): defines the network or the data; a change is
  refused in both modes, naming the key and both values.

Checkpoints of older opnet versions (no stored configuration) are checked against their
``operator`` block: the network's class and keyword arguments, and the family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from opnet.training.module import ConfigError

RUN_CONFIG_KEY = "opnet_run_config"

RUNTIME = ("ckpt_path", "resume", "paths", "logger", "callbacks", "task_name", "test", "train",
           "extra_tests", "compile", "debug", "threads",
           "data.num_workers", "data.in_memory", "data.data_dir", "data.name",
           "data.generate.workers", "data.generate.progress", "data.generate.chunk_size",
           "data.generate.overwrite",
           "trainer.devices", "trainer.accelerator", "trainer.num_nodes", "trainer.strategy",
           "trainer.default_root_dir", "trainer.log_every_n_steps", "trainer.enable_progress_bar",
           "trainer.enable_model_summary", "trainer.enable_checkpointing",
           "trainer.check_val_every_n_epoch", "trainer.val_check_interval",
           "trainer.num_sanity_val_steps", "trainer.limit_val_batches",
           "trainer.limit_test_batches", "trainer.fast_dev_run", "trainer.profiler",
           "trainer.use_distributed_sampler", "trainer.deterministic", "trainer.benchmark",
           "trainer.sync_batchnorm")
IDENTITY = ("module._target_",)  # the family: a schedule key's prefix, but never changes
SCHEDULE = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "module",
            "data.batch_size", "data.batches_per_step", "data.steps_per_epoch",
            "trainer.precision", "trainer.accumulate_grad_batches",
            "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm")
MISSING = "<absent>"


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def kind_of(key: str) -> str:
    """``"runtime"``, ``"schedule"`` or ``"identity"`` for a dotted config key."""
    if _under(key, IDENTITY):
        return "identity"
    if _under(key, RUNTIME):
        return "runtime"
    if _under(key, SCHEDULE):
        return "schedule"
    return "identity"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    if not isinstance(tree, Mapping) or (prefix and not tree):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain types (what checkpoints store)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


#: Keys added since checkpoints were first written, at the value that keeps the old behaviour
#: (a checkpoint without them resumes under a config that has them at these values).
ADDED_DEFAULTS: dict[str, Any] = {"module.rollout.steps": 1, "module.rollout.noise": 0.0,
                                  "data.unroll": 1}


def _off(key: str, value: Any) -> bool:
    """Absent, null, false or an added key's old-behaviour value: a key that was added since
    and is left off."""
    return (value is MISSING or value is None or value is False
            or (key in ADDED_DEFAULTS and value == ADDED_DEFAULTS[key]))


def changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint's value, this command's value)`` for every key that differs and is
    not a runtime key, sorted by key."""
    old, new = flatten(saved), flatten(current)
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, MISSING), new.get(key, MISSING)
        if _off(key, a) and _off(key, b):  # a key added since, left null (or an opt-in left false)
            continue
        if a != b and kind_of(key) != "runtime":
            found.append((key, a, b))
    return found


def _listing(found: list[tuple[str, Any, Any]]) -> str:
    """The changes, the family and the network first (the likely mistake), at most four."""
    found = sorted(found, key=lambda c: (not c[0].endswith("_target_"),
                                         not c[0].startswith("model."), c[0]))
    shown = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, a, b in found[:4])
    return shown + (f"; and {len(found) - 4} more" if len(found) > 4 else "")


def check_resume(path: str, checkpoint: Mapping[str, Any], cfg: DictConfig,
                 extend: bool, current: Mapping[str, Any] | None = None) -> None:
    """Raise a one-line :class:`ConfigError` if resuming ``checkpoint`` (at ``path``) with
    ``cfg`` would ignore or misapply a changed setting (see the module docstring);
    ``current``: ``plain_config(cfg)`` when the caller has it already."""
    saved = checkpoint.get(RUN_CONFIG_KEY)
    if not isinstance(saved, Mapping):
        _check_operator_block(path, checkpoint, cfg)
        return
    found = changes(saved, plain_config(cfg) if current is None else current)
    fixed = [c for c in found if kind_of(c[0]) == "identity"]
    if fixed:
        raise ConfigError(
            f"ckpt_path={path}: this command changes what the checkpoint's network or data "
            f"are ({_listing(fixed)}); a run cannot continue with them: drop these overrides, "
            "or start a new run without ckpt_path")
    if found and not extend:
        raise ConfigError(
            f"ckpt_path={path}: this command changes the training settings "
            f"({_listing(found)}); a resume continues the checkpoint's run exactly: drop the "
            "changes, or add resume.extend=true to train on from its weights with a new "
            "optimiser and schedule from these settings")


def _check_operator_block(path: str, checkpoint: Mapping[str, Any], cfg: DictConfig) -> None:
    """Checkpoints without a stored configuration: the network's class and kwargs and the
    family must match what ``cfg`` builds."""
    block = checkpoint.get("operator") or {}
    found = []
    want_module = str((cfg.get("module") or {}).get("_target_", "")).rpartition(".")[2]
    if block.get("module") and want_module and block["module"] != want_module:
        found.append(("module._target_", block["module"], want_module))
    model = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") else {}
    for key, value in sorted(flatten(model).items()):
        have = flatten(block.get("model") or {}).get(key, MISSING)
        if value is not None and have != value:
            found.append((f"model.{key}", have, value))
    if found:
        raise ConfigError(
            f"ckpt_path={path}: this command builds another network than the checkpoint's "
            f"({_listing(found)}); drop these overrides, or start a new run without ckpt_path")


def check_remaining(path: str, checkpoint: Mapping[str, Any], cfg: DictConfig) -> None:
    """``resume.extend=true`` trains up to ``trainer.max_epochs``/``max_steps``: a
    :class:`ConfigError` when the checkpoint has reached them already."""
    progress = (checkpoint.get("loops") or {}).get("fit_loop", {}).get("epoch_progress", {})
    epochs = int(progress.get("current", {}).get("processed", checkpoint.get("epoch", 0)))
    for key, done, unit in (("max_epochs", epochs, "epochs"),
                            ("max_steps", int(checkpoint.get("global_step", 0)), "steps")):
        total = cfg.trainer.get(key)
        if total is not None and 0 <= int(total) <= done:
            raise ConfigError(f"trainer.{key}={total}: the checkpoint ({path}) has done {done} "
                              f"{unit} already; raise trainer.{key} to train on")


class RecordRunConfig(L.Callback):
    """Stores the run's resolved configuration in every checkpoint (``RUN_CONFIG_KEY``)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.config


class ExtendSchedule(L.Callback):
    """``resume.extend=true``: after Lightning restored the checkpoint (weights, counters,
    loader position, the old optimiser and schedule), build the optimiser and schedule again
    from this command's settings, over what is left of ``trainer.max_epochs``/``max_steps``
    (``configure_optimizers`` sees the remaining length), and keep the old optimiser's
    moments where the new one has the same layout (an Adam-to-Adam warm restart)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        old = list(trainer.strategy.optimizers)
        fit, epoch_loop = trainer.fit_loop, trainer.fit_loop.epoch_loop
        limits = fit.max_epochs, epoch_loop.max_steps
        if fit.max_epochs is not None and fit.max_epochs >= 0:
            fit.max_epochs = fit.max_epochs - trainer.current_epoch
        if epoch_loop.max_steps >= 0:
            epoch_loop.max_steps = epoch_loop.max_steps - trainer.global_step
        try:
            trainer.strategy.setup_optimizers(trainer)
        finally:
            fit.max_epochs, epoch_loop.max_steps = limits
        for before, new in zip(old, trainer.strategy.optimizers, strict=False):
            if type(before) is not type(new):
                continue
            state = before.state_dict()
            state["param_groups"] = new.state_dict()["param_groups"]
            try:
                new.load_state_dict(state)
            except (ValueError, KeyError, RuntimeError):
                pass  # another layout: the new optimiser starts with zero moments
