"""What every generator module provides (the runner relies on nothing else).

A generator module ``data_gen.pdes.<name>`` defines

* ``Config``: a frozen dataclass of physics parameters (plain values only);
* ``sample(cfg, rngs) -> Fields``: one chunk, ``len(rngs)`` samples, one independent
  ``numpy.random.Generator`` per sample, vectorised over the chunk;
* ``coords(cfg) -> dict[str, np.ndarray]``: grid coordinates (float64), e.g. ``x``, ``y``.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np


class Fields(TypedDict, total=False):
    """Arrays of one chunk, grouped as in the HDF5 schema (leading axis = sample).

    ``inputs``/``outputs``: name -> float32 ``[n, C, *grid]``; ``params``: name -> ``[n]``.
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
