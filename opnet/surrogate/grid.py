"""Grid operators (MgNO, FNO, ...) as surrogates in physical units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet.models.layers.resample import on_grid
from opnet.models.operator import NormalisedOperator, OperatorParts
from opnet.surrogate.common import (
    NonFinite,
    OperatorSurrogate,
    as_tensor,
    check_count,
    check_nonfinite,
    memory_guard,
)
from opnet.surrogate.uncertainty import Calibrated, with_coverage


@dataclass
class Refinement:
    """What :meth:`Surrogate.refine` returns: ``values`` (the refined prediction, shaped as
    :meth:`Surrogate.predict`'s), ``history`` ``[B, steps + 1]`` (each input's relative
    residual before every step and after the last) and ``seconds`` (wall time)."""

    values: np.ndarray
    history: np.ndarray
    seconds: float


class Surrogate(Calibrated, OperatorParts, OperatorSurrogate):
    """A trained grid operator in physical units (see :meth:`predict`, :meth:`rollout`).

    Layouts are channels-first: ``[*grid]`` (one sample, one input channel), ``[B, *grid]``
    (one input channel) or ``[B, C_in, *grid]``. A grid axis of size 1 is refused, so a
    channels-last ``[*grid, 1]`` array is never misread as a batch: move its channel axis
    first (``np.moveaxis(a, -1, -len(grid) - 1)``).
    """

    def __init__(self, operator: NormalisedOperator, metadata: Mapping[str, Any]) -> None:
        super().__init__(metadata)
        self.operator = operator.eval()
        self._forward: torch.nn.Module = self.operator  # predict's path (see optimize)
        self.channels_last = False
        convs = [p for p in operator.parameters() if p.dim() == 4]
        self._native_layout = (torch.channels_last if convs and all(  # MgNO builds NHWC
            p.is_contiguous(memory_format=torch.channels_last) for p in convs)
            else torch.contiguous_format)

    def optimize(self, channels_last: bool = True, compile: bool = False) -> Surrogate:
        """The fast inference path of :meth:`predict` (it already runs in inference mode,
        batched): ``channels_last`` stores 2-D convolution weights and inputs channels-last
        (NHWC, oneDNN/cuDNN's preferred layout; MgNO builds its weights so already),
        ``compile`` runs the network through ``torch.compile`` (a one-off compilation of
        seconds to tens of seconds per input shape); ``benchmarks/surrogate_vs_solver.py``
        measures both. ``optimize(False, False)`` restores the network as loaded. Outputs
        agree with the plain path to float32 rounding. Returns the surrogate."""
        grid_2d = len(self.io["grid"]) == 2
        self.channels_last = bool(channels_last) and grid_2d
        layout = torch.channels_last if self.channels_last else self._native_layout
        self.operator.to(memory_format=layout)
        self._forward = torch.compile(self.operator) if compile else self.operator
        return self

    @staticmethod
    def build(block: Mapping[str, Any]) -> NormalisedOperator:
        return NormalisedOperator.from_spec(block["model"], block["io"])

    def _modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.operator,)

    @property
    def time_stepping(self) -> bool:
        """Trained on trajectories (one step per application), so :meth:`rollout` applies."""
        return bool(self.io.get("rollout_steps") or self.io["dataset"].get("trajectory_field"))

    def _as_batch(self, a: np.ndarray | Tensor, where: str,
                  resample: bool = False) -> tuple[Tensor, bool, bool]:
        x = as_tensor(a)
        shape = tuple(x.shape)
        dims, c_in = len(self.io["grid"]), self.io["in_channels"]
        layouts = (f"[*grid], [B, *grid] or [B, {c_in}, *grid]" if c_in == 1
                   else f"[B, {c_in}, *grid]")
        single, channel_axis = False, True
        if x.ndim == dims and c_in == 1:
            x, single, channel_axis = x[None, None], True, False
        elif x.ndim == dims + 1 and c_in == 1:
            x, channel_axis = x[:, None], False
        elif x.ndim != dims + 2:
            raise ValueError(f"{where}: input of shape {shape} does not fit {layouts} "
                             f"({dims}-D grid)")
        if x.shape[1] != c_in:
            raise ValueError(f"{where}: input has {x.shape[1]} channel(s), the operator "
                             f"expects {c_in} ({self.io['input_fields']})")
        if len(x) and min(x.shape[2:]) < 2:
            raise ValueError(
                f"{where}: input of shape {shape} reads as grid {tuple(x.shape[2:])}, which has "
                f"an axis of size 1; the operator takes channels-first {layouts} on a "
                f"{dims}-D grid (for channels-last data [..., *grid, C] pass "
                f"np.moveaxis(a, -1, {-dims - 1}))")
        trained = tuple(self.io["grid"])
        if (not resample and "pointwise" in (self.in_norm.kind, self.out_norm.kind)
                and tuple(x.shape[2:]) != trained):
            raise ValueError(f"{where}: grid {tuple(x.shape[2:])} differs from the training "
                             f"grid {trained}, and a pointwise normalizer ties this operator "
                             "to that grid")
        return x.float(), single, channel_axis

    @with_coverage
    @torch.inference_mode()
    def predict(self, a: np.ndarray | Tensor, batch_size: int = 64,
                nonfinite: NonFinite = "raise", resample: bool = False) -> np.ndarray:
        """The operator's output for the input fields ``a``, both in physical units (those of
        the training data; normalisation is applied inside).

        a: numpy array or tensor, channels first: ``[*grid]`` (one sample, one input
            channel), ``[B, *grid]`` (one input channel) or ``[B, C_in, *grid]``; any grid the
            model supports (the training grid when a normalizer is pointwise).
        batch_size: samples per forward pass (>= 1; lower it when out of memory).
        nonfinite: NaN/Inf in ``a``: ``"raise"`` (ValueError naming the sample), ``"warn"``
            or ``"ignore"``.
        resample: interpolate ``a`` to the training grid (multilinear, node grids that
            include the boundary: ``x_i = i/(n−1)``), predict there and interpolate the
            output back to ``a``'s grid: a path that works for any network and normaliser,
            with the interpolation's error (exact at nodes the two grids share).
        Returns numpy float32 ``[B, C_out, *grid]`` for ``[B, C_in, *grid]``; without the
        channel axis when the input had none and C_out = 1 (``[B, *grid]``, ``[*grid]``);
        B = 0 gives an empty array.
        """
        batch_size = check_count("batch_size", batch_size)
        x, single, channel_axis = self._as_batch(a, "predict", resample)
        check_nonfinite("a", x, nonfinite)
        grid, trained = tuple(x.shape[2:]), tuple(self.io["grid"])
        resample = resample and grid != trained
        outs = [] if len(x) else [torch.empty(0, self.io["out_channels"], *grid)]
        with memory_guard(batch_size, len(x), self.device):
            for chunk in torch.split(x, batch_size):
                chunk = chunk.to(self.device)
                if self.channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                if resample:  # to the training grid and back
                    outs.append(on_grid(self._forward, chunk, trained).float().cpu())
                else:
                    outs.append(self._forward(chunk).float().cpu().contiguous())
        y = torch.cat(outs).numpy()
        if not channel_axis and y.shape[1] == 1:
            y = y[:, 0]
        return y[0] if single else y

    @torch.inference_mode()
    def rollout(self, a: np.ndarray | Tensor, steps: int, batch_size: int = 64,
                nonfinite: NonFinite = "raise") -> np.ndarray:
        """Autoregressive prediction of a time-stepping operator (trained on trajectories):
        the ``steps`` frames after ``a``, physical units. ``[*grid]`` -> ``[steps, *grid]``,
        ``[B, *grid]`` -> ``[B, steps, *grid]``, ``[B, C, *grid]`` -> ``[B, steps·C, *grid]``
        (numpy float32). ``batch_size``/``nonfinite`` as :meth:`predict`. An operator that
        does not step in time (its data are no trajectory) is refused."""
        if not self.time_stepping:
            raise ValueError(
                f"rollout: this operator maps {self.io['input_fields']} to "
                f"{self.io['output_fields']} (data '{self.io['dataset'].get('name')}'); it was "
                "not trained on trajectories to step in time, so a rollout means nothing: use "
                "predict(a)")
        if self.io["in_channels"] != self.io["out_channels"]:
            raise ValueError(f"rollout: the operator maps {self.io['in_channels']} to "
                             f"{self.io['out_channels']} channels; a rollout needs equal ones")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"rollout: steps={steps!r}, expected an integer >= 1")
        batch_size = check_count("batch_size", batch_size, "rollout")
        x, single, _ = self._as_batch(a, "rollout")
        check_nonfinite("a", x, nonfinite, where="rollout")
        outs = [] if len(x) else [torch.empty(0, int(steps) * x.shape[1], *x.shape[2:])]
        with memory_guard(batch_size, len(x), self.device, "rollout"):
            for chunk in torch.split(x, batch_size):
                frames = [z.float().cpu() for z in self.operator.frames(chunk.to(self.device),
                                                                        int(steps))]
                outs.append(torch.cat(frames, dim=1))
        y = torch.cat(outs).numpy()
        return y[0] if single else y

    @property
    def residual(self) -> Any:
        """The residual of the training data's problem (:mod:`data_gen.physics`), or None."""
        from opnet.physics import problem_residual

        if not hasattr(self, "_residual"):
            self._residual = problem_residual(self.io)
        return self._residual

    def refine(self, a: np.ndarray | Tensor, steps: int = 100, lr: float = 1e-3,
               terms: Mapping[str, float] | None = None,
               nonfinite: NonFinite = "raise") -> Refinement:
        """Test-time refinement (PINO's instance-wise fine-tuning): for each input of ``a``
        (layouts as :meth:`predict`) a copy of the network, starting from the trained
        weights, takes ``steps`` Adam steps (``lr``) on the residual of the training data's
        problem for that input alone (its terms weighted by ``terms``, default the
        residual's ``default_weights``; the normalisers stay fixed). Returns a
        :class:`Refinement`: the refined prediction (as :meth:`predict` would return it)
        and each input's relative residual ``RMS(r_pde)/RMS(f)`` before every step and
        after the last (``history [B, steps + 1]``).
        The surrogate itself is not changed."""
        import copy
        import time

        from opnet.physics import relative_terms, term_weight

        residual = self.residual
        if residual is None:
            raise ValueError(f"refine: data '{self.io['dataset'].get('name')}' (generator "
                             f"'{self.io['dataset'].get('pde')}') has no residual "
                             "(data_gen.physics.RESIDUALS) to refine with")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"refine: steps={steps!r}, expected an integer >= 0")
        weights = {k: float(v) for k, v in (terms or {}).items()}
        unknown = sorted(set(weights) - set(residual.terms))
        if unknown:
            raise ValueError(f"refine: terms {unknown} are not terms of this residual "
                             f"({list(residual.terms)})")
        x, single, channel_axis = self._as_batch(a, "refine")
        check_nonfinite("a", x, nonfinite, where="refine")
        t0, outs, history = time.perf_counter(), [], []
        for xi in torch.split(x.to(self.device), 1):
            operator = copy.deepcopy(self.operator)
            opt = torch.optim.Adam(operator.model.parameters(), lr=lr)
            seen = []
            with torch.enable_grad():
                for step in range(steps + 1):
                    pred = operator(xi)
                    parts = relative_terms(residual(xi, pred), residual.scale(xi))
                    seen.append(float(parts["pde"].detach().sqrt()))
                    if step == steps:
                        break
                    loss = sum(term_weight(residual, weights, k) * v for k, v in parts.items())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            outs.append(pred.detach().float().cpu())
            history.append(seen)
        y = torch.cat(outs).numpy() if outs else np.zeros((0, self.io["out_channels"],
                                                           *x.shape[2:]), np.float32)
        if not channel_axis and y.shape[1] == 1:
            y = y[:, 0]
        return Refinement(y[0] if single else y, np.asarray(history, np.float64).reshape(
            len(history), steps + 1), time.perf_counter() - t0)

    def describe(self) -> str:
        io = self.io
        return f"{io['input_fields']} -> {io['output_fields']}, grid {io['grid']}"
