"""What every generator module provides (the runner relies on nothing else).

A generator module ``data_gen.pdes.<name>`` defines

* ``Config``: a frozen dataclass of physics parameters (plain values only);
* ``sample(cfg, rngs) -> Fields``: one chunk, ``len(rngs)`` samples, one independent
  ``numpy.random.Generator`` per sample, vectorised over the chunk;
* ``coords(cfg) -> dict[str, np.ndarray]``: grid coordinates (float64), e.g. ``x``, ``y``.

Optional: ``DEFAULT_CHUNK`` (int), the samples per chunk when ``chunk_size`` is not given
(default 16, :data:`data_gen.runner.DEFAULT_CHUNK`): cheap samples want large chunks.

Optional: ``solve_inputs(cfg, inputs) -> dict[str, np.ndarray]``: the solver alone, for given
input fields (name -> float ``[n, C, *grid]``, the names of ``sample``'s ``inputs``) -> the
output fields (name -> float64 ``[n, C, *grid]``, the names of ``sample``'s ``outputs``) on the
inputs' own grid (``cfg``'s resolution is not used). Used by ``opnet.resolution`` for the
solver's discretisation floor (coarse solves of subsampled fine inputs); Darcy has one.

A generator whose samples share random draws across sample boundaries (PROSE ODE systems:
consecutive samples share one equation) declares a keyword argument ``chunk`` in
``sample(cfg, rngs, chunk=None)``; the runner then passes a :class:`Chunk` (seed, split,
global index of the first sample) so it can derive such shared streams from the seed
itself, independently of how the split is cut into chunks.
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict

import numpy as np


class Fields(TypedDict, total=False):
    """Arrays of one chunk, grouped as in the HDF5 schema (leading axis = sample).

    ``inputs``/``outputs``: name -> float32 ``[n, C, *grid]``; ``params``: name -> ``[n]``;
    ``symbols``: name -> str ``[n]`` (utf-8 strings in the file).
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    symbols: dict[str, np.ndarray]


class Chunk(NamedTuple):
    """Where a chunk sits: the dataset seed, the split id (train 0, val 1, test 2) and the
    global index of its first sample within the split."""

    seed: int
    split_id: int
    start: int
