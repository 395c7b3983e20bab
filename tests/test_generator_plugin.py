"""A generator from the user's own package is used by config alone (``pde._target_``).

The plugin is a 1-D heat equation u_t = u_xx on [0, 1], u = 0 at both ends, with an exact
solution: u0 = sum_k a_k sin(k pi x)  ->  u(T) = sum_k a_k exp(-k^2 pi^2 T) sin(k pi x).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from data_gen import generate
from data_gen.pdes import get_pde, make_config

ROOT = Path(__file__).resolve().parents[1]

HEAT = textwrap.dedent('''
    """1-D heat equation with an exact sine-series solution (a user's plugin)."""
    from dataclasses import dataclass

    import numpy as np

    @dataclass(frozen=True)
    class Config:
        resolution: int = 17   # nodes on [0, 1], ends included
        n_modes: int = 3       # sine modes k = 1..n_modes, a_k ~ N(0, 1) / k
        T: float = 0.02        # final time

    def coords(cfg):
        return {"x": np.linspace(0.0, 1.0, cfg.resolution)}

    def sample(cfg, rngs):
        k = np.arange(1, cfg.n_modes + 1)
        a = np.stack([rng.standard_normal(cfg.n_modes) for rng in rngs]) / k   # [n, K]
        modes = np.sin(np.pi * k[:, None] * coords(cfg)["x"][None])           # [K, s]
        u0 = a @ modes
        u = (a * np.exp(-(k * np.pi) ** 2 * cfg.T)) @ modes
        return {"inputs": {"u0": u0[:, None].astype(np.float32)},
                "outputs": {"u": u[:, None].astype(np.float32)}}
''')


def exact(seed: int, split_id: int, n: int, resolution: int = 17, n_modes: int = 3,
          T: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """u0, u(T) [n, 1, resolution] from each sample's own stream SeedSequence([seed, s, i])."""
    k = np.arange(1, n_modes + 1)
    a = np.stack([np.random.default_rng(np.random.SeedSequence([seed, split_id, i]))
                  .standard_normal(n_modes) for i in range(n)]) / k
    modes = np.sin(np.pi * k[:, None] * np.linspace(0.0, 1.0, resolution)[None])
    return (a @ modes)[:, None], ((a * np.exp(-(k * np.pi) ** 2 * T)) @ modes)[:, None]


@pytest.fixture
def myheat(tmp_path, monkeypatch) -> Path:
    """The module ``myheat`` written into ``tmp_path/plugins``, importable from there."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "myheat.py").write_text(HEAT)
    monkeypatch.syspath_prepend(str(plugins))
    yield plugins
    sys.modules.pop("myheat", None)


def check_heat(out: Path, seed: int, n_train: int, n_test: int, T: float = 0.02) -> None:
    """Both splits hold the exact solution of their seeds; the stored config rebuilds it."""
    for split, sid, n in (("train", 0, n_train), ("test", 2, n_test)):
        with h5py.File(out / f"{split}.h5", "r") as f:
            u0, u = exact(seed, sid, n, T=T)
            np.testing.assert_allclose(f["inputs/u0"][()], u0, rtol=0, atol=1e-6)
            np.testing.assert_allclose(f["outputs/u"][()], u, rtol=0, atol=1e-6)
            stored = yaml.safe_load(f.attrs["generator_config"])
    assert stored == {"_target_": "myheat", "name": "myheat", "resolution": 17,
                      "n_modes": 3, "T": T}


def test_target_module_generates_the_exact_heat_solution(myheat, tmp_path):
    """``generate({"_target_": "myheat", ...})`` writes u0 and u(T) equal (to float32
    rounding) to the sine series, and a rerun is a no-op (every split already complete)."""
    out = tmp_path / "heat"
    generate({"_target_": "myheat", "T": 0.05}, out=out, n_train=5, n_val=0, n_test=3, seed=4,
             progress=False)
    check_heat(out, 4, 5, 3, T=0.05)
    mtime = (out / "train.h5").stat().st_mtime_ns
    again = generate({"_target_": "myheat", "T": 0.05}, out=out, n_train=5, n_val=0,
                     n_test=3, seed=4, progress=False)
    assert set(again.skipped_splits) == {"train", "val", "test"}
    assert (out / "train.h5").stat().st_mtime_ns == mtime


def test_stored_config_rebuilds_the_generator(myheat, tmp_path):
    """The dataset's recorded ``pde`` mapping (as evaluation reuses it) regenerates the same
    dataset: the rerun with it is a no-op, and it builds the plugin's Config."""
    out = tmp_path / "heat"
    generate({"_target_": "myheat"}, out=out, n_train=2, n_val=0, n_test=0, progress=False)
    pde = yaml.safe_load((out / "config.yaml").read_text())["pde"]
    again = generate(pde, out=out, n_train=2, n_val=0, n_test=0, progress=False)
    assert "train" in again.skipped_splits
    assert make_config(pde["_target_"], {"T": 1}).T == 1.0  # coerced like a registered one
    assert get_pde("myheat").__name__ == "myheat"


def test_cli_target_with_pythonpath(myheat, tmp_path):
    """``python -m data_gen pde=custom pde._target_=myheat +pde.T=0.02`` in a subprocess
    (the plugin found through PYTHONPATH) writes the same exact solution; rerun: no-op."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(myheat), str(ROOT)]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "data_gen", "pde=custom", "pde._target_=myheat",
           "+pde.T=0.02", "n_train=4", "n_val=0", "n_test=2", "seed=7", "out=heat",
           "progress=false"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    check_heat(tmp_path / "heat", 7, 4, 2)
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("(already complete)") == 3


def test_unimportable_target_is_one_line_naming_the_key(tmp_path):
    """A ``_target_`` that cannot be imported: a KeyError naming ``pde._target_`` (the CLI
    prints it as one line, exit 2)."""
    with pytest.raises(KeyError, match=r"pde\._target_='nopkg_xyz\.heat'.*No module named"):
        generate({"_target_": "nopkg_xyz.heat"}, out=tmp_path / "x", progress=False)
    proc = subprocess.run([sys.executable, "-m", "data_gen", "pde=custom",
                           "pde._target_=nopkg_xyz.heat", "out=x"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pde._target_=" in lines[0]


def test_target_without_the_contract_is_named(tmp_path):
    """A module that is importable but is no generator: the missing names are listed."""
    with pytest.raises(KeyError, match=r"pde\._target_='json': lacks \['Config', 'sample', "
                                       r"'coords'\]"):
        get_pde("json")
