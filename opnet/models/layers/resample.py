"""Resampling of node fields between grids (both including the boundary nodes, x_i = i/(n-1)).

Multilinear with ``align_corners=True``: node maps to node, so on nested grids (coarse nodes
are fine nodes, e.g. 65 ⊂ 129 ⊂ 257) restriction is injection and prolongation is exact at
the shared nodes. Used by ``Surrogate.predict(resample=True)`` and the resolution-aware MgNO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["resample_nodes"]

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resample_nodes(x: Tensor, grid: Sequence[int]) -> Tensor:
    """``x [B, C, *grid_in]`` -> ``[B, C, *grid]`` (1-3 grid axes), multilinear node to node;
    ``x`` itself when the grids agree."""
    grid = tuple(int(n) for n in grid)
    if tuple(x.shape[2:]) == grid:
        return x
    if len(grid) not in _MODES or x.dim() != len(grid) + 2:
        raise ValueError(f"resample_nodes: x {tuple(x.shape)} and grid {grid}: expected "
                         "[B, C, *grid_in] with 1-3 grid axes, as many as grid has")
    return F.interpolate(x, size=grid, mode=_MODES[len(grid)], align_corners=True)


def nested(grid: Sequence[int], core: Sequence[int]) -> bool:
    """Whether, per axis, every node of the node grid ``core`` is a node of ``grid`` or the
    other way round: ``n - 1`` a multiple or a divisor of ``c - 1`` (grids that include both
    ends, ``x_i = i/(n-1)``). A resolution-aware model runs whole on its core grid where not
    (its grid-bound parts would mix features shifted by a fraction of a cell)."""
    return all((n - 1) % (c - 1) == 0 or (c - 1) % (n - 1) == 0
               for n, c in zip(grid, core, strict=True))


def on_grid(fn: Callable[[Tensor], Tensor], x: Tensor, grid: Sequence[int]) -> Tensor:
    """``fn`` applied on the node grid ``grid``: ``x [B, C, *S]`` interpolated there, the
    result interpolated back to ``S`` (no-ops where the grids agree)."""
    return resample_nodes(fn(resample_nodes(x, grid)), x.shape[2:])
