"""DeepONet point data read from opnet HDF5 split files: sensor values, query points and
labels as :class:`PointSplit` tensors (see :mod:`opnet.data.points` for the dataset kinds and
the batches built from them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet.data import h5
from opnet.data.h5 import DatasetError


def _read(path: Path, group: str, name: str, limit: int | None) -> np.ndarray:
    with h5.open_split(path) as f:
        key = f"{group}/{name}"
        if key not in f:
            raise h5.missing_field(f, path, group, name)
        return h5.read_float32(path, f[key], (slice(0, limit),))


def grid_points(axes: Sequence[np.ndarray]) -> np.ndarray:
    """Points of the tensor grid ``axes[0] × axes[1] × …`` in C order: [∏ n_i, d] float64."""
    mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in axes], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _point_coords(path: Path, coords: Mapping[str, np.ndarray], key: str, field: str,
                  n: int) -> np.ndarray:
    """``coords/<key>`` as float64 [n, d] for the point field ``field`` ([N, n] values)."""
    if key not in coords:
        raise DatasetError(f"{path}: point field {field} [N, {n}] needs coords/{key} [{n}, d] "
                           f"(the {'sensor locations' if key == 'sensors' else 'query points'})")
    points = np.asarray(coords[key], dtype=np.float64)
    points = points[:, None] if points.ndim == 1 else points
    if len(points) != n:
        raise DatasetError(f"{path}: {field} has {n} values per function but coords/{key} "
                           f"holds {len(points)} points")
    return points


def _grid_axes(path: Path, coords: Mapping[str, np.ndarray], shape: Sequence[int],
               stride: int, what: str) -> list[np.ndarray]:
    """Coordinate vectors of a grid field of per-channel shape ``shape`` (before stride)."""
    if len(shape) > len(h5.SPACE_AXES):
        raise DatasetError(f"{path}: {what} has a {len(shape)}-D grid {list(shape)}; point data "
                           f"supports grids of up to {len(h5.SPACE_AXES)} dimensions")
    axes = []
    for name, n in zip(h5.SPACE_AXES, shape, strict=False):
        if name not in coords or len(coords[name]) != n:
            have = {k: list(np.shape(v)) for k, v in coords.items()}
            raise DatasetError(f"{path}: {what} is a {len(shape)}-D grid {list(shape)} and needs "
                               f"coords/{name} of length {n} for its points (coords: {have})")
        axes.append(np.asarray(coords[name], dtype=np.float64)[::stride])
    return axes


class PointSplit:
    """One split in memory: ``u`` [N, m] or [N, C, *grid], ``s`` [N, Q, C_out] (float32);
    ``labelled`` bool [N] where some functions have no labels (their ``s`` rows are zeros),
    else None (every function labelled)."""

    def __init__(self, u: np.ndarray | Tensor, s: np.ndarray | Tensor,
                 labelled: Tensor | None = None) -> None:
        if len(u) != len(s):
            raise DatasetError(f"inputs have {len(u)} functions but outputs {len(s)}")
        self.u, self.s = torch.as_tensor(u), torch.as_tensor(s)
        self.labelled = labelled

    def __len__(self) -> int:
        return len(self.u)

    def to(self, device: torch.device) -> PointSplit:
        """This split's tensors on ``device`` (a new object)."""
        mask = None if self.labelled is None else self.labelled.to(device)
        return PointSplit(self.u.to(device), self.s.to(device), mask)

    def partly_labelled(self, labels: int, extra: Tensor | None = None) -> PointSplit:
        """This split trained with few labels: the outputs of its first ``labels`` functions
        kept, those of the others and of the appended inputs ``extra`` [M, ...] zeros, with
        the ``labelled`` mask [N + M]."""
        u = self.u if extra is None or not len(extra) else torch.cat([self.u, extra])
        s = torch.zeros((len(u), *self.s.shape[1:]), dtype=self.s.dtype)
        s[:labels] = self.s[:labels]
        return PointSplit(u, s, torch.arange(len(u)) < labels)


def read_point_inputs(path: str | Path, input_field: str, branch: str = "vector",
                      sensor_stride: int = 1, limit: int | None = None
                      ) -> tuple[np.ndarray, dict[str, Any]]:
    """The input functions of one split file: ``u`` float32 [N, m] (or [N, C, *grid] for
    ``branch="image"``) and their geometry ``{"sensors": [m, d_s], "input_shape": [...],
    "input_grid": [...] | None, "output_grid": None}`` (a file without outputs reads too)."""
    path = Path(path)
    coords = h5.read_coords(path)
    u = _read(path, "inputs", input_field, limit)
    geo: dict[str, Any] = {"input_grid": None, "output_grid": None}
    if u.ndim == 2:  # point data [N, m]
        if branch == "image":
            raise DatasetError(f"{path}: inputs/{input_field} has shape {list(u.shape)} (sensor "
                               "values [N, m]); branch='image' needs a grid field [N, C, *grid]")
        sensors = _point_coords(path, coords, "sensors", f"inputs/{input_field}", u.shape[1])
        u, sensors = u[:, ::sensor_stride], sensors[::sensor_stride]
    elif u.ndim >= 3:  # grid [N, C, *grid]
        axes = _grid_axes(path, coords, u.shape[2:], sensor_stride, f"inputs/{input_field}")
        index = (slice(None), slice(None)) + (slice(None, None, sensor_stride),) * (u.ndim - 2)
        u = u[index]
        geo["input_grid"] = [int(n) for n in u.shape[2:]]
        sensors = grid_points(axes)
        if branch == "vector":
            u = u.reshape(len(u), -1)
    else:
        raise DatasetError(f"{path}: inputs/{input_field} has shape {list(u.shape)}, expected "
                           "[N, m] (sensor values) or [N, C, *grid]")
    geo["sensors"], geo["input_shape"] = sensors, [int(n) for n in u.shape[1:]]
    return np.ascontiguousarray(u), geo


def read_point_split(path: str | Path, input_field: str, output_fields: Sequence[str],
                     branch: str = "vector", sensor_stride: int = 1, query_stride: int = 1,
                     limit: int | None = None) -> tuple[PointSplit, dict[str, Any]]:
    """Read one split file as DeepONet point data.

    Returns the split and its geometry ``{"sensors": [m, d_s], "query": [Q, d],
    "input_shape": [...], "input_grid": [...] | None, "output_grid": [...] | None}``
    (numpy float64 coordinates).
    """
    path = Path(path)
    u, geo = read_point_inputs(path, input_field, branch, sensor_stride, limit)
    coords = h5.read_coords(path)
    labels, query = [], None
    for name in output_fields:
        s = _read(path, "outputs", name, limit)
        if s.ndim == 2:  # [N, Q] at coords/query
            q = _point_coords(path, coords, "query", f"outputs/{name}", s.shape[1])
            labels.append(s[:, ::query_stride, None])
            q = q[::query_stride]
        elif s.ndim >= 3:  # [N, C, *grid]
            axes = _grid_axes(path, coords, s.shape[2:], query_stride, f"outputs/{name}")
            index = (slice(None), slice(None)) + (slice(None, None, query_stride),) * (s.ndim - 2)
            s = s[index]
            geo["output_grid"] = [int(n) for n in s.shape[2:]]
            labels.append(s.reshape(len(s), s.shape[1], -1).transpose(0, 2, 1))
            q = grid_points(axes)
        else:
            raise DatasetError(f"{path}: outputs/{name} has shape {list(s.shape)}, expected "
                               "[N, Q] (values at coords/query) or [N, C, *grid]")
        if query is not None and (q.shape != query.shape or not np.allclose(q, query)):
            raise DatasetError(f"{path}: outputs/{name} lives on other query points than "
                               f"outputs/{output_fields[0]}; output fields must share them")
        query = q
    if not labels:
        raise DatasetError(f"{path}: no output fields requested (data.output_fields is empty)")
    geo["query"] = query
    s = np.ascontiguousarray(np.concatenate(labels, axis=2), dtype=np.float32)
    return PointSplit(u, s), geo
