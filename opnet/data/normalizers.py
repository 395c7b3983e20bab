"""Gaussian normalizers as modules: statistics live in registered buffers so they travel
with every checkpoint (and into :func:`opnet.load_operator`).

kinds: ``"none"``; ``"scalar"`` (one mean/std per channel, resolution-free);
``"pointwise"`` (mean/std per channel and grid point, as the FNO/MgNO Darcy-smooth input;
ties the model to the training grid). :class:`GaussianNormalizer` serves grid fields
``[B, C, *grid]``, :class:`PointNormalizer` DeepONet sensor values and labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

KINDS = ("none", "scalar", "pointwise")


def stats_shape(kind: str, channels: int, grid: Sequence[int]) -> tuple[int, ...]:
    """Buffer shape ``[1, C, 1...]`` (scalar/none) or ``[1, C, *grid]`` (pointwise)."""
    if kind not in KINDS:
        raise ValueError(f"normalizer kind '{kind}': expected one of {KINDS}")
    return (1, channels, *(grid if kind == "pointwise" else [1] * len(grid)))


def reduced_dims(kind: str, ndim: int) -> list[int]:
    """The axes of ``[N, C, *grid]`` data that one statistic spans: samples, and the grid
    points unless ``pointwise``."""
    return [0] if kind == "pointwise" else [0, *range(2, ndim)]


def gaussian_stats(data: np.ndarray | Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``data [N, C, *grid]`` as :meth:`GaussianNormalizer.fit`
    computes them: float64, over :func:`reduced_dims`, the std with Bessel's correction
    (divided by n - 1); shapes ``[1, C, 1...]`` or ``[1, C, *grid]`` (pointwise)."""
    x = torch.as_tensor(np.asarray(data), dtype=torch.float64)
    dims = reduced_dims(kind, x.ndim)
    return x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)


class RunningMoments:
    """:func:`gaussian_stats` of data fed chunk by chunk (``update([n, C, *grid])``), so a
    split larger than memory can be measured: each chunk's float64 mean and sum of squared
    deviations, combined pairwise (Chan, Golub & LeVeque 1979), which is exact up to
    rounding (~1e-15 relative) whatever the chunking."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"normalizer kind '{kind}': expected one of {KINDS}")
        self.kind, self.n = kind, 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None  # sum of squared deviations from the mean

    def update(self, chunk: np.ndarray | Tensor) -> RunningMoments:
        """Add a chunk of samples ``[n, ...]`` (any float dtype) to the running sums (float64)."""
        x = torch.as_tensor(np.asarray(chunk), dtype=torch.float64)
        if len(x) == 0:
            return self
        dims = reduced_dims(self.kind, x.ndim)
        mean = x.mean(dim=dims, keepdim=True)
        deviation = x - mean
        m2 = (deviation * deviation).sum(dim=dims, keepdim=True)
        n = x.numel() // mean.numel()
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return self
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * n / total)
        self.n = total
        return self

    def result(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` as :func:`gaussian_stats` on all the chunks at once."""
        if self.mean is None or self.m2 is None:
            raise ValueError("normalizer statistics of an empty training split")
        return self.mean, torch.sqrt(self.m2 / (self.n - 1))


class GaussianNormalizer(nn.Module):
    """``encode(x) = (x - mean) / (std + eps)``, ``decode`` its inverse. x: [B, C, *grid]."""

    def __init__(self, kind: str = "scalar", channels: int = 1, grid: Sequence[int] = (1, 1),
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.kind, self.eps = kind, eps
        shape = stats_shape(kind, channels, grid)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, data: np.ndarray | Tensor) -> GaussianNormalizer:
        """Statistics over samples (and grid points unless pointwise), in float64."""
        if self.kind == "none":
            return self
        return self.set_stats(*gaussian_stats(data, self.kind))

    @torch.no_grad()
    def set_stats(self, mean: np.ndarray | Tensor, std: np.ndarray | Tensor) -> GaussianNormalizer:
        """Take precomputed statistics (e.g. :class:`RunningMoments` streamed over a split too
        large for memory), cast to the buffers' dtype; shapes as the buffers (or broadcast to
        them)."""
        for name, value in (("mean", mean), ("std", std)):
            buffer, value = getattr(self, name), torch.as_tensor(value)
            try:
                buffer.copy_(value.to(buffer.dtype))
            except RuntimeError as err:
                raise ValueError(f"normalizer {name} of shape {list(value.shape)}, expected "
                                 f"{list(buffer.shape)} ({self.kind})") from err
        return self

    def encode(self, x: Tensor) -> Tensor:
        """Physical ``x [B, C, *grid]`` -> normalised, same shape."""
        if self.kind == "none":
            return x
        return (x - self.mean) / (self.std + self.eps)

    def decode(self, x: Tensor) -> Tensor:
        """Normalised ``x [B, C, *grid]`` -> physical units, same shape."""
        if self.kind == "none":
            return x
        return x * (self.std + self.eps) + self.mean

    def extra_repr(self) -> str:
        return f"kind={self.kind}, shape={tuple(self.mean.shape)}"


class PointNormalizer(nn.Module):
    """Standard scaler for DeepONet data, statistics in buffers fitted on the train split.

    ``feature_shape``: per-sample shape of the data (inputs ``[m]`` or ``[C, *grid]``;
    labels ``[Q, C_out]``); ``channel_dim``: the axis of ``feature_shape`` that keeps its
    own statistics under ``"scalar"`` (None: one mean/std for everything). ``"pointwise"``
    keeps one mean/std per entry of ``feature_shape`` (per sensor, or per query point and
    channel: the CMAME scripts' standard scaler). An entry that is constant over the
    training set (zero standard deviation: s(0) = 0 for every function, a Dirichlet
    boundary node) keeps std = 0: ``decode`` returns that constant exactly whatever the
    network says there, and ``encode`` maps it to 0. (scikit-learn's ``StandardScaler``
    uses 1 instead, so the network must learn to output the constant: on Darcy's boundary
    nodes, where the solution is 0 and interior values are ~5e-3, its residual error there
    would dominate the relative error.)

    ``encode(x, idx)`` / ``decode(x, idx)``: x ``[B, *feature_shape]``; for labels at a
    subset of the query points, ``idx`` ([P] or [B, P]) selects the pointwise statistics.
    """

    def __init__(self, kind: str = "none", feature_shape: Sequence[int] = (1,),
                 channel_dim: int | None = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"normalizer kind '{kind}': expected one of {KINDS}")
        self.kind, self.channel_dim = kind, channel_dim
        shape = list(feature_shape)
        if kind != "pointwise":
            shape = [n if i == channel_dim else 1 for i, n in enumerate(shape)]
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, data: np.ndarray | Tensor) -> PointNormalizer:
        """Fit the statistics on training data ``[N, *feature_shape]`` (float64 sums)."""
        if self.kind == "none":
            return self
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        if tuple(x.shape[1:]) != tuple(self.mean.shape) and self.kind == "pointwise":
            raise ValueError(f"normalizer: data of per-sample shape {list(x.shape[1:])}, "
                             f"expected {list(self.mean.shape)}")
        keep = {i + 1 for i in range(x.ndim - 1)
                if self.kind == "pointwise" or i == self.channel_dim}
        dims = [i for i in range(x.ndim) if i not in keep]
        mean = x.mean(dim=dims, keepdim=True)[0]
        std = x.std(dim=dims, keepdim=True, correction=0)[0]  # population std, as sklearn
        std = torch.where(std > 1e-12 * float(std.max().clamp_min(1e-300)), std,
                          torch.zeros_like(std))
        self.mean.copy_(mean.reshape(self.mean.shape).to(self.mean.dtype))
        self.std.copy_(std.reshape(self.std.shape).to(self.std.dtype))
        return self

    def _stats(self, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        if idx is None or self.kind != "pointwise":
            return self.mean, self.std
        return self.mean[idx], self.std[idx]

    def encode(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """Physical ``x [..., *feature_shape]`` -> normalised; ``idx``: the query-point indices
        when the statistics are pointwise and ``x`` covers a subset of the points."""
        if self.kind == "none":
            return x
        mean, std = self._stats(idx)
        return (x - mean) / std.masked_fill(std == 0, 1.0)

    def decode(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """Normalised ``x [..., *feature_shape]`` -> physical units (``idx`` as in
        :meth:`encode`)."""
        if self.kind == "none":
            return x
        mean, std = self._stats(idx)
        return x * std + mean

    def extra_repr(self) -> str:
        return f"kind={self.kind}, shape={tuple(self.mean.shape)}"
