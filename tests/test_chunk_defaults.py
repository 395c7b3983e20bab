"""Chunk size per generator when ``chunk_size`` is not given: cheap samples (PROSE ODE systems,
the DeepONet ODEs) get large chunks, PDE solvers stay at 16; the bytes do not change."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from data_gen import generate
from data_gen.runner import DEFAULT_CHUNK, default_chunk
from opnet.data import h5

# ode_systems with 2 workers: 743 trajectories/s in chunks of 16, 6601/s in chunks of 4096
ODE = {"n_train": 40, "n_val": 8, "n_test": 8, "seed": 3, "progress": False}


def test_cheap_generators_default_to_large_chunks():
    assert default_chunk("ode_systems") >= 1024
    assert default_chunk("antiderivative") >= 256
    assert default_chunk("darcy") == DEFAULT_CHUNK == 16
    assert default_chunk("navier_stokes") == 16


def _arrays(folder) -> dict[str, np.ndarray]:
    out = {}
    for split in h5.SPLITS:
        with h5.open_split(h5.split_path(folder, split)) as f:
            for group in ("inputs", "outputs", "params", "symbols"):
                for name in f[group] if group in f else ():
                    out[f"{split}/{group}/{name}"] = f[f"{group}/{name}"][()]
    return out


def test_default_chunk_gives_the_bytes_of_chunk_16(tmp_path):
    """ode_systems without chunk_size (one 40-sample chunk) = chunk_size=16 (3 chunks)."""
    default = generate("ode_systems", out=tmp_path / "default", **ODE)
    explicit = generate("ode_systems", out=tmp_path / "c16", chunk_size=16, **ODE)
    a, b = _arrays(default.out), _arrays(explicit.out)
    assert a.keys() == b.keys() and a
    for key in a:
        if a[key].dtype == object:  # strings: compare the values, not the pointers
            assert a[key].tolist() == b[key].tolist(), key
        else:
            assert a[key].tobytes() == b[key].tobytes(), key
    recorded = yaml.safe_load((tmp_path / "default" / "config.yaml").read_text())
    assert recorded["chunk_size"] == default_chunk("ode_systems")
    assert yaml.safe_load((tmp_path / "c16" / "config.yaml").read_text())["chunk_size"] == 16


def test_bad_explicit_chunk_size_is_still_refused(tmp_path):
    with pytest.raises(ValueError, match="chunk_size"):
        generate("darcy", out=tmp_path, resolution=8, n_train=2, chunk_size=0)
