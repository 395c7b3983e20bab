"""Checks of generation arguments before anything is allocated or written: integers named by
their key, and grids too large for the memory."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping

import numpy as np

from data_gen.pdes import get_pde, make_config
from opnet.memory import available_memory, physical_memory

# memory of a solve per stored grid value of one sample (float64 fields + solver work arrays):
# a lower bound used to refuse absurd resolutions before anything is allocated
BYTES_PER_GRID_POINT = 80
UNCHECKED_BYTES = 1 << 30  # below this estimate the available memory is not even looked up


def integer(key: str, value: object, least: int | None = None) -> int:
    """``value`` as an int (>= ``least`` when given; an integral float such as 32.0 counts),
    else a ValueError naming ``key`` and what was expected."""
    ok = isinstance(value, int | np.integer) or (isinstance(value, float | np.floating)
                                                 and float(value).is_integer())
    if isinstance(value, bool) or not ok or (least is not None and int(value) < least):
        bound = "" if least is None else f" >= {least}"
        raise ValueError(f"{key}={value!r}: expected an integer{bound}")
    return int(value)


def checked_config(pde: str, params: Mapping[str, object]):
    """The generator's config, its integer parameters checked (``pde.<name>=abc`` or ``1.5``
    named here, not by a crash inside the solver)."""
    cfg = make_config(pde, params)
    hints = typing.get_type_hints(type(cfg))
    fixed = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if hints.get(field.name) is int or (hints.get(field.name) == int | None
                                            and value is not None):
            fixed[field.name] = integer(f"pde.{field.name}", value)
    return dataclasses.replace(cfg, **fixed)


def check_memory(pde: str, cfg, chunk: int) -> None:
    """Refuse a ``resolution`` whose grid cannot fit in memory, before allocating: one chunk
    of ``chunk`` samples needs at least BYTES_PER_GRID_POINT bytes per stored grid point
    (the generator's x/y/z coordinates give the grid)."""
    resolution = getattr(cfg, "resolution", None)
    if not isinstance(resolution, int):
        return
    if resolution < 2:
        raise ValueError(f"resolution={resolution}: expected an integer >= 2 (grid points "
                         "per side)")
    axes = get_pde(pde).coords(cfg)  # 1-D axes for the generators with a resolution
    grid = [len(axes[a]) for a in ("x", "y", "z") if a in axes]
    need = chunk * math.prod(grid) * BYTES_PER_GRID_POINT
    if need <= UNCHECKED_BYTES:
        return
    have = physical_memory()
    if need <= have:  # may fit: ask what is available now
        have = available_memory() or have
    if need > have:
        raise ValueError(
            f"resolution={resolution}: one chunk of {pde} ({chunk} samples on a "
            f"{'x'.join(map(str, grid))} grid) needs at least {_gib(need)} of memory, more "
            f"than the {_gib(have)} available; choose a smaller resolution (or chunk_size)")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):,.1f} GiB"

