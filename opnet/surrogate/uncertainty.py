"""Uncertainty of trained operators: deep ensembles and split conformal prediction.

* :class:`Ensemble` -- the mean (and spread) of several surrogates of one family trained on
  the same data with different seeds (Lakshminarayanan et al., deep ensembles);
  :func:`opnet.load_operator` returns one for a list of checkpoints or a sweep folder.
* :func:`calibrate` / ``op.calibrate(data)`` -- split conformal prediction (Vovk; Angelopoulos
  & Bates, "A gentle introduction to conformal prediction"): nonconformity scores on a held-out
  split, then ``op.predict(a, coverage=0.9)`` returns :class:`Bands` that hold the *whole*
  output field of a new sample with probability >= ``coverage`` (exchangeable data).

The score of a sample is ``max over points |y - ŷ| / σ(x)`` (:func:`band_scale`): σ = 1 for a
single surrogate; for an :class:`Ensemble` by default the sample's mean ensemble std
(``scale="sample"``: one width per sample, wider where the members disagree), or the std at
each point plus that mean (``"pointwise"``), or 1 (``"none"``). The bands are ``ŷ ± q σ`` with
q the ``ceil((n + 1) coverage)``-th smallest of the n scores (:func:`conformal_quantile`):
simultaneous over the field, valid for finite n whatever σ is; σ only decides how the width
is spread. Pointwise σ with no floor made Darcy bands 16x wider than constant ones: where the
members agree (the u = 0 boundary) a small error divided by a near-zero std set q.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from opnet.surrogate.common import resolve_device

__all__ = ["SCALES", "Bands", "Calibrated", "Calibration", "Ensemble", "Nonconformity",
           "band_scale", "calibrate", "check_sensors", "conformal_index", "conformal_quantile",
           "nonconformity", "read_split", "run_folders", "with_coverage"]

SCALES: tuple[str, ...] = ("sample", "pointwise", "none")
"""How an ensemble's bands are scaled (:func:`band_scale`); single surrogates: "none"."""


class Bands(NamedTuple):
    """``predict(a, coverage=...)``: the prediction and its conformal band, each shaped as
    ``predict(a)`` (numpy float32); ``lower <= y <= upper`` at every point of a new sample's
    field with probability >= coverage."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _check_coverage(coverage: Any) -> Fraction:
    if (isinstance(coverage, bool) or not isinstance(coverage, (int, float, np.floating))
            or not 0 < float(coverage) < 1):
        raise ValueError(f"coverage={coverage!r}, expected a number in (0, 1) (e.g. 0.9)")
    return Fraction(repr(float(coverage)))  # 0.07 is 7/100 here: ceil((n + 1)·c) is exact


def conformal_index(n: int, coverage: float) -> int:
    """k = ceil((n + 1) · coverage): the rank (1-based) of the score that is the conformal
    quantile of ``n`` calibration scores; a ValueError when k > n (too few scores)."""
    c = _check_coverage(coverage)
    k = math.ceil((n + 1) * c)
    if k > n:
        need = math.ceil(c / (1 - c))
        raise ValueError(f"coverage={float(coverage)}: the calibration set has {n} samples, too "
                         f"small for that coverage (needs >= {need}); calibrate on a larger "
                         "split or ask for a lower coverage")
    return k


def conformal_quantile(scores: Sequence[float] | np.ndarray, coverage: float) -> float:
    """The finite-sample conformal quantile of ``scores`` [n]: the
    ``ceil((n + 1) coverage)``-th smallest (:func:`conformal_index`)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    return float(s[conformal_index(len(s), coverage) - 1])


def band_scale(std: np.ndarray, scale: str = "sample") -> np.ndarray:
    """σ of an ensemble's std ``[B, ...]`` (float64, same shape): ``"sample"``: each sample's
    mean std at every point; ``"pointwise"``: ``std`` + that mean; ``"none"``: 1. The
    smallest normal float32 is added, so members that agree exactly do not divide by 0."""
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}, expected one of {SCALES}")
    std = np.asarray(std, dtype=np.float64)
    if scale == "none":
        return np.ones_like(std)
    mean = std.reshape(len(std), -1).mean(axis=1) if std.size else np.zeros(len(std))
    mean = np.broadcast_to(mean.reshape(-1, *([1] * (std.ndim - 1))), std.shape)
    return (std + mean if scale == "pointwise" else mean) + float(np.finfo(np.float32).tiny)


@dataclass
class Calibration:
    """What :func:`calibrate` stores on the operator (``op.calibration``): the sorted
    nonconformity scores [n] (float64), where they came from, and the band's scale
    (:data:`SCALES`; ``"none"`` for a single surrogate)."""

    scores: np.ndarray
    data: str
    split: str
    scale: str

    def quantile(self, coverage: float) -> float:
        """The conformal quantile q for ``coverage`` (:func:`conformal_quantile`)."""
        return conformal_quantile(self.scores, coverage)


def _bands(op: Any, mean: np.ndarray, std: np.ndarray | None, coverage: float) -> Bands:
    cal = getattr(op, "calibration", None)
    if cal is None:
        raise ValueError(f"predict: coverage={coverage!r} needs calibration scores; call "
                         "op.calibrate(data=<dataset folder>, split='val') first")
    q = cal.quantile(coverage)
    half = q * (band_scale(std, cal.scale) if std is not None
                else np.ones_like(mean, dtype=np.float64))
    return Bands(mean, (mean - half).astype(np.float32), (mean + half).astype(np.float32))


def with_coverage(predict: Callable[..., np.ndarray]) -> Callable[..., Any]:
    """Decorate a surrogate's ``predict``: with ``coverage=c`` it returns :class:`Bands`
    (``ŷ ± q``, q the conformal quantile of :func:`calibrate`'s scores), without it the
    prediction as before."""

    @functools.wraps(predict)
    def wrapper(self: Any, *args: Any, coverage: float | None = None, **kwargs: Any) -> Any:
        if coverage is not None:
            _check_coverage(coverage)
        mean = predict(self, *args, **kwargs)
        return mean if coverage is None else _bands(self, mean, None, coverage)

    sig = inspect.signature(predict)
    extra = inspect.Parameter("coverage", inspect.Parameter.KEYWORD_ONLY, default=None)
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])
    wrapper.__doc__ = (predict.__doc__ or "") + (
        "\n        coverage: with calibration scores (:meth:`calibrate`), return\n"
        "            :class:`~opnet.surrogate.uncertainty.Bands` (mean, lower, upper) holding a\n"
        "            new sample's whole field with probability >= coverage.\n")
    return wrapper


class Calibrated:
    """Mixin of the surrogates: :meth:`calibrate` and the scores it stores."""

    calibration: Calibration | None = None

    def calibrate(self, data: str | os.PathLike, split: str = "val",
                  batch_size: int | None = None, scale: str | None = None) -> Any:
        """Split conformal calibration on ``data/<split>.h5`` (:func:`calibrate`); returns
        the operator, so ``op.calibrate(data).predict(a, coverage=0.9)`` chains."""
        return calibrate(self, data, split, batch_size, scale)


def _kind(op: Any) -> str:
    return str(op.io.get("kind", "grid"))


def check_sensors(op: Any, sensors: np.ndarray, where: str) -> None:
    """One ``DatasetError`` line naming ``where`` unless
    ``sensors`` [m, d] are the sensor locations the DeepONet ``op`` (or an ensemble of them)
    was trained with."""
    from opnet.data import h5

    trained = np.asarray(op.sensors)
    if sensors.shape != trained.shape or not np.allclose(sensors, trained):
        raise h5.DatasetError(f"{where}: its sensors ({len(sensors)} points) are not the "
                              f"{len(trained)} sensor locations the operator was trained with")


def read_split(op: Any, data: str | os.PathLike, split: str) -> tuple[tuple, np.ndarray]:
    """``data/<split>.h5`` as ``op`` reads it: the ``predict`` arguments (grid: the input
    fields at the file's grid; DeepONet: the inputs at the operator's sensors and the file's
    query points) and the true outputs, as :mod:`opnet.evaluate` reads them."""
    from opnet.data import h5

    kind, path, io = _kind(op), h5.split_path(data, split), op.io
    if kind == "grid":
        if io["dataset"].get("trajectory_field") or io.get("rollout_steps"):
            raise ValueError("calibrate: a time-stepping operator (trained on trajectories) is "
                             "not supported; calibrate an operator of input -> output fields")
        x = h5.read_fields(path, "inputs", io["input_fields"])
        return (x,), h5.read_fields(path, "outputs", io["output_fields"])
    if kind == "points":
        from opnet.data.point_files import read_point_split

        points, geo = read_point_split(path, io["input_field"], io["output_fields"],
                                       io["branch"], io["dataset"].get("sensor_stride", 1))
        check_sensors(op, geo["sensors"], str(path))
        return (points.u.numpy(), geo["query"]), points.s.numpy()
    raise ValueError(f"calibrate: operators of data kind '{kind}' are not supported "
                     "(grid and points are)")


@dataclass
class Nonconformity:
    """:func:`nonconformity` of a split: per-sample ``scores`` [N] (in file order), the
    prediction ``mean`` and the band scale ``sigma`` (float64, both shaped as ``y``), the true
    outputs ``y`` and the ``scale`` used."""

    scores: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray
    y: np.ndarray
    scale: str


def nonconformity(op: Any, data: str | os.PathLike, split: str = "val",
                  batch_size: int | None = None, scale: str | None = None) -> Nonconformity:
    """The scores ``max over points |y - ŷ| / σ(x)`` of every sample of ``data/<split>.h5``
    (σ: :func:`band_scale` of the ensemble's std with ``scale``, default ``"sample"``, for an
    :class:`Ensemble`; 1 for a single surrogate, which takes only ``scale="none"``)."""
    ensemble = isinstance(op, Ensemble)
    scale = scale or ("sample" if ensemble else "none")
    if scale not in SCALES or (scale != "none" and not ensemble):
        allowed = SCALES if ensemble else ("none",)
        raise ValueError(f"calibrate: scale={scale!r}, expected one of {allowed} (an ensemble's "
                         "std scales the bands; a single surrogate has none)")
    args, y = read_split(op, data, split)
    if not len(y):
        from opnet.data import h5

        raise ValueError(f"calibrate: {h5.split_path(data, split)} holds no samples")
    batch = {} if batch_size is None else {"batch_size": int(batch_size)}
    out = op.predict(*args, **batch, **({"return_std": True} if ensemble else {}))
    pred, std = out if ensemble else (out, None)
    y = y.astype(np.float64)
    mean = np.asarray(pred, np.float64).reshape(y.shape)
    sigma = (band_scale(np.asarray(std).reshape(y.shape), scale) if std is not None
             else np.ones_like(y))
    scores = (np.abs(y - mean) / sigma).reshape(len(y), -1).max(axis=1)
    return Nonconformity(scores, mean, sigma, y, scale)


def calibrate(op: Any, data: str | os.PathLike, split: str = "val",
              batch_size: int | None = None, scale: str | None = None) -> Any:
    """Compute and store (``op.calibration``) the sorted :func:`nonconformity` scores of
    ``op`` on ``data/<split>.h5`` (:func:`read_split`). Use data the operator was not trained
    on. Returns ``op``."""
    found = nonconformity(op, data, split, batch_size, scale)
    op.calibration = Calibration(np.sort(found.scores), str(data), split, found.scale)
    return op


class Ensemble(Calibrated):
    """A deep ensemble: the mean and std (over members, population std) of the predictions
    of several surrogates of one family trained on the same data (same fields, grid or
    sensors and query points), e.g. seeds of one experiment.

    Train the members with one command, a Hydra multirun (one run folder per seed, under
    ``outputs/<task>/multirun_<time>_<id>/<0, 1, ...>``)::

        python train.py -m experiment=<name> seed=0,1,2,3,4

    then ``opnet.load_operator("outputs/<task>/multirun_<...>")`` (the sweep folder, or a
    list of checkpoints/run folders) returns this ensemble. ``predict`` takes what a
    member's takes (keywords forwarded) and returns the mean, ``(mean, std)`` with
    ``return_std=True``, or :class:`Bands` with ``coverage=`` after :meth:`calibrate`.
    """

    def __init__(self, members: Sequence[Any], sources: Sequence[str] | None = None) -> None:
        members = list(members)
        if len(members) < 1:
            raise ValueError("Ensemble: members is empty, expected at least one surrogate")
        if sources is None:
            sources = [str(getattr(m, "source", None) or f"member {i}")
                       for i, m in enumerate(members)]
        _check_members(members, list(sources))
        self.members, self.sources = members, [str(s) for s in sources]
        self.device = members[0].device

    @property
    def io(self) -> dict[str, Any]:
        """The members' data description (the first member's)."""
        return self.members[0].io

    @property
    def metadata(self) -> dict[str, Any]:
        return self.members[0].metadata

    @property
    def sensors(self) -> np.ndarray:
        """DeepONet members: their (shared) training sensor locations [m, d]."""
        return self.members[0].sensors

    @property
    def query(self) -> np.ndarray:
        """DeepONet members: their (shared) training query points [Q, d]."""
        return self.members[0].query

    def __len__(self) -> int:
        return len(self.members)

    def to(self, device: str | torch.device) -> Ensemble:
        """Move every member to ``device``; calibration scores stay. Returns the ensemble."""
        self.device = resolve_device(device)
        for m in self.members:
            m.to(self.device)
        return self

    def optimize(self, channels_last: bool = True, compile: bool = False) -> Ensemble:
        """Every member's fast inference path (grid members: their ``optimize``); returns
        the ensemble."""
        if not all(callable(getattr(m, "optimize", None)) for m in self.members):
            raise ValueError(f"optimize: only grid operators have the optimised path; these "
                             f"members are {type(self.members[0]).__name__}s")
        for m in self.members:
            m.optimize(channels_last=channels_last, compile=compile)
        return self

    def predict(self, *args: Any, return_std: bool = False, coverage: float | None = None,
                **kwargs: Any) -> Any:
        """The members' mean prediction, shaped as a member's ``predict(*args, **kwargs)``
        (grid: ``predict(a, ...)``, DeepONet: ``predict(u, y=None, ...)``), numpy float32.
        return_std: also the std over members (population, ``ddof=0``): ``(mean, std)``.
        coverage: :class:`Bands` ``mean ± q σ`` (σ: :func:`band_scale` of the std with the
        calibration's scale; q of :meth:`calibrate`), which hold a new sample's whole
        field with probability >= coverage."""
        if coverage is not None:
            _check_coverage(coverage)
            if return_std:
                raise ValueError("predict: pass return_std=True or coverage=, not both (the "
                                 "bands are mean ± q·std)")
        preds = np.stack([np.asarray(m.predict(*args, **kwargs)) for m in self.members])
        mean = preds.mean(axis=0, dtype=np.float64).astype(np.float32)
        if not return_std and coverage is None:
            return mean
        std = preds.std(axis=0, dtype=np.float64).astype(np.float32)
        return (mean, std) if coverage is None else _bands(self, mean, std, coverage)

    def __repr__(self) -> str:
        return f"Ensemble({len(self)} x {self.members[0]!r})"


def _signature(op: Any) -> dict[str, Any]:
    """What members of one ensemble must share."""
    io = op.io
    keys = ("kind", "input_fields", "output_fields", "in_channels", "out_channels", "grid",
            "input_field", "branch", "input_shape", "query_dim")
    sig: dict[str, Any] = {"class": type(op).__name__}
    sig.update({k: io.get(k) for k in keys})
    for name in ("sensors", "query"):
        if hasattr(op, name) and not callable(getattr(op, name)):
            sig[name] = np.asarray(getattr(op, name))
    return sig


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.shape == b.shape and bool(np.allclose(a, b)))
    return a == b


def _shown(v: Any) -> str:
    return f"array {list(np.shape(v))}" if isinstance(v, np.ndarray) else repr(v)


def _check_members(members: list[Any], sources: list[str]) -> None:
    first = _signature(members[0])
    if first["kind"] not in (None, "grid", "points"):
        raise ValueError(f"Ensemble: {sources[0]} is a '{first['kind']}' operator; ensembles "
                         "take grid operators or DeepONets")
    for i, member in enumerate(members[1:], start=1):
        sig = _signature(member)
        for key, value in first.items():
            other = sig.get(key)
            if not _same(value, other):
                raise ValueError(f"Ensemble: member {sources[i]} has {key}={_shown(other)}, "
                                 f"member {sources[0]} {_shown(value)}; members must be the "
                                 "same family trained on the same data")


def _is_run_folder(path: Path) -> bool:
    return any((path / name).exists() for name in ("checkpoints", "metrics.json", ".hydra"))


def run_folders(path: str | os.PathLike) -> list[Path] | None:
    """The run folders of a folder of runs (a Hydra sweep folder ``.../multirun_<...>/`` whose
    numbered subfolders are runs), in numeric then name order; None when ``path`` is no such
    folder (a file, a run folder, ``latest``). Hidden folders and ``latest`` are skipped."""
    path = Path(path)
    if path.name == "latest" or not path.is_dir() or _is_run_folder(path):
        return None
    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
            and p.name != "latest" and _is_run_folder(p)]
    if not subs:
        return None
    return sorted(subs, key=lambda p: (not p.name.isdigit(),
                                       int(p.name) if p.name.isdigit() else 0, p.name))
