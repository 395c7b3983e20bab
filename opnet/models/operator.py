"""The normalised operator: in-normaliser -> network -> out-normaliser, in physical units.

One ``nn.Module`` that training (the LightningModules hold it as ``operator``) and the
surrogates (:func:`opnet.load_operator`) both run, so the operator a checkpoint describes is
the one that was trained:

* :class:`NormalisedOperator` -- grid operators (MgNO, FNO): ``x [B, C_in, *grid]`` ->
  ``[B, C_out, *grid]``, and :meth:`~NormalisedOperator.rollout` for time-stepping ones;
* :class:`PointOperator` -- DeepONets: input functions ``u`` and query points ``y`` ->
  ``s [B, P, C_out]``, with the sensor and training query coordinates as buffers (a
  POD-DeepONet's basis lives on the training query points).

Built from plain data (:meth:`NormalisedOperator.from_spec`: a model dict and the data's
``io`` description), so a checkpoint's ``operator`` block rebuilds it without training code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from opnet.data.normalizers import GaussianNormalizer, PointNormalizer
from opnet.models import build_model

__all__ = ["NormalisedOperator", "OperatorParts", "PointOperator"]


class NormalisedOperator(nn.Module):
    """``out_norm.decode(model(in_norm.encode(x)))``: physical ``x [B, C_in, *grid]`` ->
    physical ``[B, C_out, *grid]``."""

    def __init__(self, model: nn.Module, in_norm: nn.Module, out_norm: nn.Module) -> None:
        super().__init__()
        self.model, self.in_norm, self.out_norm = model, in_norm, out_norm

    @classmethod
    def from_spec(cls, model: Mapping[str, Any], io: Mapping[str, Any]) -> NormalisedOperator:
        """The network of ``model`` (``{"_target_", **kwargs}``) between Gaussian normalisers
        of the kinds, channels and grid in ``io`` (unfitted: statistics come from
        :meth:`fit_normalizers` or a state dict)."""
        return cls(build_model(model),
                   GaussianNormalizer(io["in_normalizer"], io["in_channels"], io["grid"]),
                   GaussianNormalizer(io["out_normalizer"], io["out_channels"], io["grid"]))

    def fit_normalizers(self, x: Any, y: Any) -> None:
        """Fit the input/output statistics on the training inputs ``x`` and outputs ``y``
        (the labelled ones; none: the output normaliser stays the identity)."""
        self.in_norm.fit(x)
        if len(y):
            self.out_norm.fit(y)

    def encoded(self, x: Tensor) -> Tensor:
        """The network's output for physical ``x``, in the output normaliser's units."""
        return self.model(self.in_norm.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        """Physical inputs ``[B, C_in, *grid]`` -> physical outputs ``[B, C_out, *grid]``."""
        return self.out_norm.decode(self.encoded(x))

    def frames(self, x: Tensor, steps: int) -> Iterator[Tensor]:
        """The ``steps`` states after ``x`` of a one-step operator, one at a time
        (``[B, C, *grid]`` each; C_in = C_out)."""
        for _ in range(int(steps)):
            x = self(x)
            yield x

    def rollout(self, x: Tensor, steps: int) -> Tensor:
        """Apply the one-step operator ``steps`` times: ``x [B, C, *grid]`` ->
        ``[B, steps·C, *grid]`` (the frames after x)."""
        return torch.cat(list(self.frames(x, steps)), dim=1)


class PointOperator(NormalisedOperator):
    """A DeepONet in physical units: ``u`` (sensor values ``[B, m]`` or images
    ``[B, C, H, W]``) and query points ``y`` (``[P, d]`` shared, or ``[B, P, d]``) ->
    ``s [B, P, C_out]``. ``sensors [m, d_s]`` and ``query [Q, d]`` (float64 buffers) are
    where the operator was trained."""

    def __init__(self, model: nn.Module, in_norm: PointNormalizer, out_norm: PointNormalizer,
                 sensors: Tensor, query: Tensor) -> None:
        super().__init__(model, in_norm, out_norm)
        self.register_buffer("sensors", torch.as_tensor(sensors, dtype=torch.float64).clone())
        self.register_buffer("query", torch.as_tensor(query, dtype=torch.float64).clone())
        self.pod = hasattr(model, "fit_basis")  # POD-DeepONet: a fixed basis on ``query``

    @classmethod
    def from_spec(cls, model: Mapping[str, Any], io: Mapping[str, Any],
                  in_normalizer: str = "none", out_normalizer: str = "none") -> PointOperator:
        """The network of ``model`` with point normalisers of the given kinds and zero
        coordinates of the sizes in ``io`` (filled by :meth:`set_coordinates` or a state
        dict)."""
        shape = list(io["input_shape"])
        return cls(build_model(model),
                   PointNormalizer(in_normalizer, shape, 0 if len(shape) > 1 else None),
                   PointNormalizer(out_normalizer, [io["n_query"], io["out_channels"]], 1),
                   torch.zeros(io["sensor_points"], io["sensor_dim"]),
                   torch.zeros(io["n_query"], io["query_dim"]))

    def set_coordinates(self, sensors: Any, query: Any) -> None:
        """Copy the training sensor ``[m, d_s]`` and query ``[Q, d]`` coordinates."""
        self.sensors.copy_(torch.as_tensor(sensors, dtype=torch.float64))
        self.query.copy_(torch.as_tensor(query, dtype=torch.float64))

    def fit_normalizers(self, u: Any, s: Any) -> float | None:
        """Fit the statistics on the training inputs ``u`` and labels ``s [N, Q, C]``, and a
        POD-DeepONet's basis on the (normalised) labels; returns the basis' explained
        variance (None without one)."""
        self.in_norm.fit(u)
        if len(s):  # no labelled output (physics only): the output normaliser stays identity
            self.out_norm.fit(s)
        if not self.pod:
            return None
        target = self.out_norm.encode(torch.as_tensor(s).to(self.out_norm.mean))
        return self.model.fit_basis(target[..., 0])

    def encoded(self, u: Tensor, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """The network's output ``[B, P, C_out]`` in the output normaliser's units. ``idx``:
        the indices of ``y`` in the training query set (a POD model evaluates its basis
        there)."""
        u = self.in_norm.encode(u)
        if not self.pod:
            return self.model(u, y)
        z = self.model(u, self.query.to(u.dtype) if self.model.trunk is not None else None)
        if idx is not None:
            z = z[:, idx] if idx.dim() == 1 else torch.gather(
                z, 1, idx[..., None].expand(-1, -1, z.shape[2]))
        return z

    def forward(self, u: Tensor, y: Tensor, idx: Tensor | None = None) -> Tensor:
        """Physical ``u``, query points ``y`` -> physical ``s [B, P, C_out]``. ``idx``: the
        indices of ``y`` in the training query set (needed by pointwise output statistics
        and POD models when y is a subset of it)."""
        return self.out_norm.decode(self.encoded(u, y, idx), idx)

    def frames(self, x: Tensor, steps: int) -> Iterator[Tensor]:
        raise TypeError("a DeepONet maps functions to functions at query points; it has no "
                        "time step to roll out")


class OperatorParts:
    """``model``, ``in_norm`` and ``out_norm`` of the held :attr:`operator` (for the classes
    that hold one: the LightningModules and the surrogates)."""

    operator: NormalisedOperator

    @property
    def model(self) -> nn.Module:
        """The network (``operator.model``)."""
        return self.operator.model

    @property
    def in_norm(self) -> nn.Module:
        """The input normaliser (``operator.in_norm``)."""
        return self.operator.in_norm

    @property
    def out_norm(self) -> nn.Module:
        """The output normaliser (``operator.out_norm``)."""
        return self.operator.out_norm
