"""A NaN/Inf training loss stops the run with a message naming the step, or skips that step.

``FiniteLossGuard(policy="stop")`` (default callback ``nonfinite``) raises
:class:`NonFiniteLossError` at the first non-finite training loss, before any checkpoint
holds the weights it produced (the previous ``last.ckpt`` is intact for a resume with a
lower learning rate). ``policy="skip"`` drops the optimizer update of a step whose gradients
are not finite (the parameters and optimizer state stay as they were) and counts it as
``train/skipped_steps``; ``max_skips`` consecutive skips stop the run. Skipping needs
Lightning's automatic optimization (MgNO/FNO, PROSE); DeepONet's manual iterations stop.

A finite loss can still be followed by an update that blows the weights up (a too large
learning rate): :class:`FiniteModelCheckpoint` (every checkpoint callback of ``conf/callbacks``)
never writes weights or a monitored metric that are not finite, as best or as ``last``. It
stops the run instead, naming the epoch, step and the last good checkpoint. (Lightning's own
ModelCheckpoint writes a first epoch whose metric is NaN/Inf as the best, score inf.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

POLICIES = ("stop", "skip")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class FiniteLossGuard(L.Callback):
    """Stop (or skip) on a non-finite training loss; see the module docstring."""

    def __init__(self, policy: str = "stop", max_skips: int = 100) -> None:
        if policy not in POLICIES:
            raise ValueError(f"callbacks.nonfinite.policy={policy!r}: expected one of {POLICIES}")
        self.policy, self.max_skips = policy, int(max_skips)
        self.skipped = 0
        self._consecutive = 0

    @staticmethod
    def _loss(outputs: Any) -> Tensor | None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        return loss if isinstance(loss, Tensor) else None

    def _error(self, trainer: L.Trainer, batch_idx: int, what: str) -> NonFiniteLossError:
        hint = ("lower module.lr, check the data for NaN/Inf "
                "(python -m opnet.evaluate on the training split shows bad samples), "
                "or set callbacks.nonfinite.policy=skip")
        return NonFiniteLossError(
            f"{what} at global step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {batch_idx}); training stopped before checkpointing these weights: {hint}")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self.policy != "skip":
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads or bool(torch.stack([g.isfinite().all() for g in grads]).all()):
            self._consecutive = 0
            return
        for group in optimizer.param_groups:  # no gradient: torch optimizers leave p alone
            for p in group["params"]:
                p.grad = None
        self.skipped += 1
        self._consecutive += 1
        pl_module.log("train/skipped_steps", float(self.skipped), on_step=True,
                      on_epoch=False)
        if self._consecutive > self.max_skips:
            raise self._error(trainer, trainer.fit_loop.epoch_loop.batch_idx,
                              f"{self._consecutive} consecutive non-finite gradients")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = self._loss(outputs)
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        if self.policy == "skip" and pl_module.automatic_optimization:
            return  # its update was dropped in on_before_optimizer_step
        raise self._error(trainer, batch_idx, f"training loss {float(loss):g}")

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))


def non_finite_tensors(state: Mapping[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN/Inf."""
    return [k for k, v in state.items()
            if isinstance(v, Tensor) and v.is_floating_point() and not bool(v.isfinite().all())]


class FiniteModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that refuses to write non-finite weights or a non-finite
    monitored metric (its own or, for ``last.ckpt``, any checkpoint callback's): it raises
    :class:`NonFiniteLossError` before the file is touched, so ``last.ckpt`` and the best
    checkpoint keep the last finite state."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        bad = non_finite_tensors(trainer.lightning_module.state_dict())
        what = ""
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            what = f"the weights hold NaN/Inf ({', '.join(bad[:3])}{more})"
        else:  # this callback's metric, and those the others monitor (for last.ckpt)
            monitors = dict.fromkeys([self.monitor] + [getattr(cb, "monitor", None)
                                                       for cb in trainer.checkpoint_callbacks])
            for name in filter(None, monitors):
                score = trainer.callback_metrics.get(name)
                if score is not None and not bool(torch.isfinite(torch.as_tensor(score)).all()):
                    what = f"{name} is {float(score):g}"
                    break
        if what:
            written = [cb._last_checkpoint_saved for cb in trainer.checkpoint_callbacks
                       if getattr(cb, "_last_checkpoint_saved", None)]
            kept = written[-1] if written else "none (nothing was written before)"
            raise NonFiniteLossError(
                f"{what} at global step {trainer.global_step} (epoch {trainer.current_epoch}): "
                f"not checkpointed, training stopped; the last good checkpoint is {kept}: "
                "resume from it with a lower module.lr (resume.extend=true), or check the "
                "data for NaN/Inf")
        super()._save_checkpoint(trainer, filepath)
