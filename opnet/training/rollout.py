"""Rollout training of one-step (time-stepping) operators (issue 20): the loss of k
autoregressive steps instead of one.

``module.rollout`` (``conf/module/default.yaml``):

* ``steps`` k: the model is applied k times from frame t, each prediction the next input, and
  the loss is the mean over the k steps of the per-step loss against frames t+1..t+k
  (backpropagation through the whole unroll). k = 1 is teacher forcing, the one-step training
  of the reference code and the default. The data serve windows of ``data.unroll + 1`` frames
  (:class:`~opnet.data.trajectory.TrajectoryDataModule`); k may not exceed ``data.unroll``.
* ``curriculum``: ``[[epoch, k], ...]``: k from that epoch on (e.g. ``[[0, 1], [4, 2],
  [8, 4]]`` grows the unroll as training proceeds; PDEArena-style).
* ``pushforward``: each batch unrolls j steps, j drawn uniformly from 1..k; the first j − 1
  run without gradient and the loss is that of step j only (the pushforward trick,
  Brandstetter, Worrall & Welling, ICLR 2022, whose code draws the unrolled steps the same
  way): the model learns to correct its own input distribution at the cost of one step's
  backward, and j = 1 keeps the one-step loss in the mix (always unrolling k − 1 steps
  without gradient never trains the one-step map itself: measured on NS, 65 % one-step error).
* ``noise``: Gaussian noise of that standard deviation, relative to each input frame's own
  standard deviation, added to the input frame (the other stability trick of the same paper).
* ``checkpoint``: recompute each step's activations in the backward pass
  (``torch.utils.checkpoint``): memory of one step instead of k, for one more forward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as recompute

__all__ = ["RolloutTraining", "unrolled_loss"]

KEYS = ("steps", "curriculum", "pushforward", "noise", "checkpoint")


@dataclass(frozen=True)
class RolloutTraining:
    """The validated ``module.rollout`` options (see the module docstring)."""

    steps: int = 1
    curriculum: tuple[tuple[int, int], ...] = ()
    pushforward: bool = False
    noise: float = 0.0
    checkpoint: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None,
                     unroll: int | None = None) -> RolloutTraining:
        """From the config mapping (None: defaults); ``unroll``: the frames the data serve
        per window (k and the curriculum's k may not exceed it). One-line ValueErrors
        naming ``module.rollout.<key>``."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(KEYS))
        if unknown:
            raise ValueError(f"module.rollout.{unknown[0]}: unknown key; expected one of "
                             f"{', '.join(KEYS)}")

        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"module.rollout.{key}={options[key]!r}: expected {expected}")

        steps = options.get("steps", 1)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise bad("steps", "an integer >= 1")
        stages: list[tuple[int, int]] = []
        for stage in options.get("curriculum") or ():
            pair = list(stage) if isinstance(stage, list | tuple) else []
            if (len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                          for v in pair) or pair[0] < 0 or pair[1] < 1
                    or pair[1] > steps or (stages and pair[0] <= stages[-1][0])):
                raise bad("curriculum", f"[[epoch, k], ...] with increasing epochs >= 0 and "
                                        f"1 <= k <= module.rollout.steps={steps}")
            stages.append((pair[0], pair[1]))
        for key in ("pushforward", "checkpoint"):
            if not isinstance(options.get(key, False), bool):
                raise bad(key, "true or false")
        noise = options.get("noise", 0.0)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
            raise bad("noise", "a number >= 0 (relative to each frame's standard deviation)")
        if unroll is not None and steps > unroll:
            raise ValueError(f"module.rollout.steps={steps} needs windows of {steps + 1} frames "
                             f"but the data serve {unroll + 1}: set data.unroll={steps}")
        return cls(steps, tuple(stages), bool(options.get("pushforward", False)), float(noise),
                   bool(options.get("checkpoint", False)))

    def steps_for_batch(self, epoch: int) -> int:
        """The steps one batch unrolls: :meth:`steps_at` ``epoch``, or with ``pushforward`` a
        uniform draw from 1..that (torch's global generator, seeded by the run's seed)."""
        k = self.steps_at(epoch)
        return int(torch.randint(1, k + 1, ())) if self.pushforward and k > 1 else k

    def steps_at(self, epoch: int) -> int:
        """k at ``epoch``: the last curriculum stage started by then, else ``steps``."""
        if not self.curriculum:
            return self.steps
        started = [k for first, k in self.curriculum if first <= epoch]
        return started[-1] if started else self.curriculum[0][1]

    @property
    def active(self) -> bool:
        """Whether training differs from plain one-step teacher forcing."""
        return self.steps > 1 or self.noise > 0 or bool(self.curriculum)


def unrolled_loss(step: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, k: int,
                  loss: Callable[[Tensor, Tensor], Tensor], pushforward: bool = False,
                  noise: float = 0.0, checkpoint: bool = False) -> Tensor:
    """The k-step loss of a one-step operator ``step`` (physical units, ``[B, C, *grid] ->
    [B, C, *grid]``) from ``x [B, C, *grid]`` against the frames ``y [B, >= k·C, *grid]``:
    mean over the steps of ``loss(prediction_i, y_i)`` (``pushforward``: the last step's
    only, the k − 1 before it without gradient). ``noise``: relative Gaussian input noise."""
    c = x.shape[1]
    if y.shape[1] < k * c:
        raise ValueError(f"unrolled_loss: {k} steps of {c} channel(s) need {k * c} target "
                         f"frames, y has {y.shape[1]}")
    u = x
    if noise > 0:
        scale = x.flatten(1).std(dim=1).view(-1, *[1] * (x.dim() - 1))
        u = x + noise * scale * torch.randn_like(x)
    losses = []
    for i in range(k):
        if pushforward and i < k - 1:
            with torch.no_grad():
                u = step(u)
            continue
        u = recompute(step, u, use_reentrant=False) if checkpoint and torch.is_grad_enabled() \
            else step(u)
        losses.append(loss(u, y[:, i * c:(i + 1) * c]))
    return torch.stack(losses).mean()
