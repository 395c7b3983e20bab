"""DeepONets (and POD-DeepONets) as surrogates in physical units."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet.models.operator import OperatorParts, PointOperator
from opnet.surrogate.common import (
    NonFinite,
    OperatorSurrogate,
    as_tensor,
    check_count,
    check_nonfinite,
    memory_guard,
)
from opnet.surrogate.uncertainty import Calibrated, with_coverage


class DeepONetSurrogate(Calibrated, OperatorParts, OperatorSurrogate):
    """A trained DeepONet (or POD-DeepONet) in physical units (see :meth:`predict`).

    A pointwise output normalizer or a POD basis ties the operator to its training query
    points: other points are refused with a message saying so.
    """

    def __init__(self, operator: PointOperator, metadata: Mapping[str, Any]) -> None:
        super().__init__(metadata)
        self.operator = operator.eval()
        self._sensors = operator.sensors.double().cpu().clone()
        self._query = operator.query.double().cpu().clone()
        self.pod = operator.pod

    @staticmethod
    def build(block: Mapping[str, Any]) -> PointOperator:
        kinds = block.get("normalizers", {})
        return PointOperator.from_spec(block["model"], block["io"], kinds.get("in", "none"),
                                       kinds.get("out", "none"))

    @property
    def sensors(self) -> np.ndarray:
        """Sensor locations ``[m, d_s]`` the branch input is sampled at (training data)."""
        return self._sensors.numpy()

    @property
    def query(self) -> np.ndarray:
        """The training query points ``[Q, d]``."""
        return self._query.numpy()

    def _modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.operator,)

    def _as_inputs(self, u: np.ndarray | Tensor) -> tuple[Tensor, bool]:
        u = as_tensor(u).float()
        shape = tuple(self.io["input_shape"])
        flat = int(np.prod(shape))
        if len(shape) == 1:
            expected = f"[{shape[0]}] or [B, {shape[0]}]"
            if u.ndim in (1, 2) and u.shape[-1] == shape[0]:
                return (u[None], True) if u.ndim == 1 else (u, False)
        else:
            c, grid = shape[0], shape[1:]
            expected = (f"[{', '.join(map(str, shape))}], [B, {', '.join(map(str, shape))}] or "
                        f"[B, {flat}]" + (f" (or [{', '.join(map(str, grid))}] / [B, ...] with "
                                           "one channel)" if c == 1 else ""))
            if tuple(u.shape[-len(shape):]) == shape and u.ndim in (len(shape), len(shape) + 1):
                return (u[None], True) if u.ndim == len(shape) else (u, False)
            if c == 1 and tuple(u.shape[-len(grid):]) == grid and u.ndim in (len(grid),
                                                                            len(grid) + 1):
                u = u.unsqueeze(-len(grid) - 1)
                return (u[None], True) if u.ndim == len(shape) else (u, False)
            if u.ndim == 2 and u.shape[1] == flat:
                return u.reshape(len(u), *shape), False
        raise ValueError(f"predict: u has shape {tuple(u.shape)}; the operator takes {expected} "
                         f"(values at the {len(self._sensors)} training sensor locations, "
                         f"input '{self.io['input_field']}')")

    def _as_query(self, y: np.ndarray | Tensor | None, batch: int) -> tuple[Tensor, bool]:
        """-> (y [Q, d] or [B, Q, d], at the training points?)"""
        if y is None:
            return self._query.float(), True
        y = as_tensor(y)
        d = self.io["query_dim"]
        if y.ndim == 1 and d == 1:
            y = y[:, None]
        if y.ndim not in (2, 3) or y.shape[-1] != d:
            raise ValueError(f"predict: query points y have shape {tuple(y.shape)}; expected "
                             f"[Q, {d}] (the same points for every function), [B, Q, {d}] "
                             f"(one set per function)" + (" or [Q]" if d == 1 else "")
                             + f": the operator's query points are {d}-dimensional")
        if y.ndim == 3 and y.shape[0] != batch:
            raise ValueError(f"predict: y has shape {tuple(y.shape)} (unaligned: one point set "
                             f"per function) but u holds {batch} function(s); give y as "
                             f"[{batch}, Q, {d}] or [Q, {d}]")
        same = y.shape[-2] == len(self._query) and bool(
            torch.allclose(y.double(), self._query.expand_as(y), rtol=0, atol=1e-6))
        return y.float(), same

    @with_coverage
    @torch.inference_mode()
    def predict(self, u: np.ndarray | Tensor, y: np.ndarray | Tensor | None = None,
                batch_size: int = 256, point_batch: int = 1 << 16,
                nonfinite: NonFinite = "raise") -> np.ndarray:
        """The output functions at the query points, physical units (those of the training
        data; normalisation is applied inside).

        u: input functions at the training sensors (:attr:`sensors`): ``[m]`` (one function)
            or ``[B, m]``; for a CNN branch images ``[C, H, W]`` / ``[B, C, H, W]`` (``[H, W]``
            / ``[B, H, W]`` when C = 1) or flattened ``[B, C·H·W]``. B = 0 gives an empty
            result.
        y: query points (coordinates in the units of the training grid) ``[Q, d]`` shared by
            every function (``[Q]`` when d = 1), ``[B, Q, d]`` one set per function, or None:
            the training query points (:attr:`query`).
        batch_size: functions per forward pass; point_batch: query points per pass (both
            >= 1; lower them when out of memory).
        nonfinite: NaN/Inf in ``u`` or ``y``: ``"raise"`` (ValueError naming the function
            or point), ``"warn"`` or ``"ignore"``.
        Returns numpy float32 ``[B, Q]`` (``[B, Q, C_out]`` with several outputs; without
        the B axis for a single function).
        """
        batch_size = check_count("batch_size", batch_size)
        point_batch = check_count("point_batch", point_batch)
        u, single = self._as_inputs(u)
        y, training_points = self._as_query(y, len(u))
        check_nonfinite("u", u, nonfinite, "function")
        check_nonfinite("y", y, nonfinite, "point" if y.ndim == 2 else "function")
        if not training_points and (self.pod or self.out_norm.kind == "pointwise"):
            why = "a POD basis" if self.pod else "a pointwise output normalizer"
            raise ValueError(f"predict: {why} ties this operator to its {len(self._query)} "
                             "training query points (operator.query); these points differ. "
                             "Retrain with module.out_normalizer=scalar (and a DeepONet, not a "
                             "POD-DeepONet) to evaluate anywhere")
        outs = []
        with memory_guard(batch_size, len(u), self.device, also=" or point_batch"):
            for start in range(0, len(u), batch_size):
                ub = u[start:start + batch_size].to(self.device)
                yb = y if y.ndim == 2 else y[start:start + batch_size]
                if self.pod:  # its basis lives on the training points: no point batches
                    z = self.operator.encoded(ub, yb)
                else:
                    z = torch.cat([self.operator.encoded(ub, yc.to(self.device))
                                   for yc in torch.split(yb, point_batch, dim=-2)], dim=1)
                outs.append(self.out_norm.decode(z).float().cpu())
        if not outs:  # no function: an empty batch of the right shape
            n_points = len(self._query) if self.pod else y.shape[-2]
            outs = [torch.empty(0, n_points, int(self.io["out_channels"]))]
        out = torch.cat(outs).numpy()
        if out.shape[-1] == 1:
            out = out[..., 0]
        return out[0] if single else out

    def describe(self) -> str:
        io = self.io
        return (f"{io['input_field']} at {len(self._sensors)} sensors -> {io['output_fields']} "
                f"at {io['query_dim']}-D points")
