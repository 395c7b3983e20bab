"""Plugins (issue 17): a user's generator, model and configs used through config alone.

The user package is ``examples/plugins/mypkg`` (examples/06_plugins.py): ``mypkg.heat``, the
1-D heat equation u_t = nu u_xx on the periodic [0, 1) from a random Fourier series (exact
solution: mode k decays by exp(-nu (2 pi k)^2 T)); ``mypkg.TinyNet``, a periodic 1-D conv
net; ``mypkg/conf/{data/heat1d,model/tiny_net}.yaml``, found through
``hydra.searchpath=[pkg://mypkg.conf]``. Everything runs in-process on one thread, in tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from hydra.errors import InstantiationException
from hydra.utils import instantiate

import data_gen
from opnet.checkpoint import CheckpointError
from opnet.config import CONF, train_config
from opnet.data.build import instantiate_datamodule

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "examples" / "plugins"
SEARCHPATH = "hydra.searchpath=[pkg://mypkg.conf]"
PDE = {"_target_": "mypkg.heat", "resolution": 32, "n_modes": 6, "nu": 0.01, "T": 0.1}
SIZES = {"n_train": 128, "n_val": 32, "n_test": 32}
QUIET = ["logger=none", "~callbacks.val_figures", "~callbacks.model_summary",
         "callbacks.progress_bar.mode=lines", "threads=1"]


@pytest.fixture(scope="module", autouse=True)
def mypkg() -> Iterator[None]:
    """``mypkg`` importable, as ``PYTHONPATH=examples/plugins`` makes it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGINS))
        yield
    for name in [n for n in sys.modules if n == "mypkg" or n.startswith("mypkg.")]:
        del sys.modules[name]


def heat_config(data_dir: Path, *overrides: str, output_dir: Path | None = None):
    """``data=heat1d model=tiny_net`` from mypkg's own configs, at the test's size."""
    return train_config(SEARCHPATH, "data=heat1d", "model=tiny_net", "module.loss=rel_l2",
                        f"data.data_dir={data_dir}", "task_name=heat1d",
                        *(f"++data.generate.pde.{k}={v}" for k, v in PDE.items()
                          if k != "_target_"),
                        *(f"data.generate.{k}={v}" for k, v in SIZES.items()),
                        *QUIET, *overrides, output_dir=output_dir)


def fourier_solution(u0: np.ndarray, nu: float, t: float) -> np.ndarray:
    """u(t) of the periodic heat equation from samples u0 [..., s] on j / s: every discrete
    Fourier mode k decays by exp(-nu (2 pi k)^2 t) (exact for band-limited u0)."""
    k = np.fft.fftfreq(u0.shape[-1], d=1.0 / u0.shape[-1])
    return np.fft.ifft(np.fft.fft(u0) * np.exp(-nu * (2 * np.pi * k) ** 2 * t)).real


def rel_l2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-sample ||pred - true|| / ||true|| [N]."""
    pred, true = pred.reshape(len(true), -1), true.reshape(len(true), -1)
    return np.linalg.norm(pred - true, axis=1) / np.linalg.norm(true, axis=1)


def read_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(data_dir / f"{split}.h5", "r") as f:
        return f["inputs/u0"][()], f["outputs/u"][()]


# -- the generator ------------------------------------------------------------------------


def test_heat_generator_matches_the_fourier_solution(tmp_path):
    """``pde._target_=mypkg.heat``: u0 is the sample's own Fourier series (a_k, b_k from
    SeedSequence([seed, split, i]), / k), and the stored u(T) equals the spectral solution
    computed from u0 alone, to float32 rounding."""
    out = tmp_path / "heat"
    data_gen.generate(PDE, out=out, n_train=6, n_val=0, n_test=3, seed=3, progress=False)
    x = np.arange(32) / 32
    k = np.arange(1, 7)
    for split, split_id, n in (("train", 0, 6), ("test", 2, 3)):
        u0, u = read_split(out, split)
        assert u0.shape == u.shape == (n, 1, 32) and u0.dtype == np.float32
        for i in range(n):
            a, b = np.random.default_rng(np.random.SeedSequence([3, split_id, i])
                                         ).standard_normal((2, 6)) / k
            series = a @ np.cos(2 * np.pi * np.outer(k, x)) + b @ np.sin(2 * np.pi * np.outer(k, x))
            np.testing.assert_allclose(u0[i, 0], series, rtol=0, atol=1e-6)
        np.testing.assert_allclose(u[:, 0], fourier_solution(u0[:, 0].astype(np.float64),
                                                             0.01, 0.1), rtol=0, atol=2e-6)
        with h5py.File(out / f"{split}.h5", "r") as f:
            assert yaml.safe_load(f.attrs["generator_config"])["_target_"] == "mypkg.heat"


# -- the data config -------------------------------------------------------------------------


def test_data_config_passes_the_generator_block_to_data_gen(tmp_path):
    """Hydra's recursive instantiate calls ``generate.pde._target_`` (a module: refused);
    :func:`instantiate_datamodule` hands that block to the datamodule as a plain dict, and
    ``prepare_data`` generates the plugin's data with it."""
    cfg = heat_config(tmp_path / "heat1d")
    with pytest.raises(InstantiationException, match=r"data\.generate\.pde"):
        instantiate(cfg.data, _convert_="all")
    dm = instantiate_datamodule(cfg.data)
    assert type(dm.generate["pde"]) is dict and dm.generate["pde"] == PDE
    dm.prepare_data()
    u0, u = read_split(tmp_path / "heat1d", "val")
    assert u0.shape == (SIZES["n_val"], 1, 32)
    np.testing.assert_allclose(u[:, 0], fourier_solution(u0[:, 0].astype(np.float64), 0.01, 0.1),
                               rtol=0, atol=2e-6)


def test_every_shipped_data_config_builds_as_before():
    """Each ``conf/data`` config (none nests a ``_target_`` Hydra should build) gives the same
    datamodule through :func:`instantiate_datamodule` as through Hydra's recursive
    instantiate: same class, same attributes."""
    names = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
    assert len(names) >= 10
    for name in names:
        cfg = train_config(f"data={name}", output_dir="unused")
        before, after = instantiate(cfg.data, _convert_="all"), instantiate_datamodule(cfg.data)
        assert type(after) is type(before), name
        public = [{k: v for k, v in vars(dm).items() if not k.startswith("_")}
                  for dm in (before, after)]
        assert repr(public[0]) == repr(public[1]), name


# -- training, loading, predicting ------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """TinyNet trained 15 epochs on data generated beforehand (``data.generate=null``: works
    with or without the datamodule wiring); the untrained network's validation error too."""
    from opnet.training import train
    from opnet.training.module import OperatorModule

    tmp = tmp_path_factory.mktemp("plugins")
    data_dir = tmp / "heat1d"
    data_gen.generate(PDE, out=data_dir, seed=0, progress=False, **SIZES)
    cfg = heat_config(data_dir, "data.generate=null", "trainer.max_epochs=15",
                      f"paths.output_root={tmp}", output_dir=tmp / "run")
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(0)
        untrained = OperatorModule.from_data({"_target_": "mypkg.TinyNet", "width": 16},
                                             instantiate_datamodule(cfg.data), loss="rel_l2")
        x_val, y_val = read_split(data_dir, "val")
        with torch.no_grad():
            pred = untrained(torch.from_numpy(x_val)).numpy()
        metrics = train(cfg)
    finally:
        torch.set_num_threads(threads)
    return {"run": tmp / "run", "data_dir": data_dir, "metrics": metrics,
            "untrained_val_rel_l2": float(rel_l2(pred, y_val).mean())}


def test_training_lowers_the_validation_error(trained):
    """The trained TinyNet's validation error is under 3 % and a tenth of the untrained
    network's (the heat operator is a circular convolution: a conv net represents it)."""
    from opnet import load_operator

    op = load_operator(trained["run"], trusted_targets=("mypkg.",))
    x_val, y_val = read_split(trained["data_dir"], "val")
    after = float(rel_l2(op.predict(x_val), y_val).mean())
    assert after < 0.03 and after < trained["untrained_val_rel_l2"] / 10
    assert trained["metrics"]["test/rel_l2"] < 0.03


def test_load_operator_imports_the_user_model_only_when_trusted(trained):
    """Without ``trusted_targets`` the checkpoint is refused in one line naming
    ``model._target_='mypkg.TinyNet'`` and the argument to pass; with it, the user's class
    is built."""
    from opnet import load_operator

    with pytest.raises(CheckpointError) as info:
        load_operator(trained["run"])
    message = str(info.value)
    assert "\n" not in message
    assert "model._target_='mypkg.TinyNet'" in message and "trusted_targets=('mypkg.',)" in message
    op = load_operator(trained["run"], trusted_targets=("mypkg.",))
    assert type(op.model).__module__ == "mypkg.nets" and type(op.model).__name__ == "TinyNet"
    assert op.metadata["model"]["_target_"] == "mypkg.TinyNet"


def test_predictions_round_trip(trained):
    """The surrogate reproduces the training run's test error (same checkpoint, same split);
    the layouts [N, 1, s], [N, s] and [s] give the same numbers; fresh initial states from
    other seeds are predicted within 3 % of the exact solution."""
    from mypkg import heat

    from opnet import load_operator

    op = load_operator(trained["run"], trusted_targets=("mypkg.",))
    x, y = read_split(trained["data_dir"], "test")
    pred = op.predict(x)
    assert pred.shape == x.shape
    assert float(rel_l2(pred, y).mean()) == pytest.approx(trained["metrics"]["test/rel_l2"],
                                                          rel=1e-4)
    np.testing.assert_allclose(op.predict(x[:, 0]), pred[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(op.predict(x[0, 0]), pred[0, 0], rtol=0, atol=1e-6)
    cfg = heat.Config(**{k: v for k, v in PDE.items() if k != "_target_"})
    ab = heat.coefficients(cfg, [np.random.default_rng([123, i]) for i in range(16)])
    fresh = op.predict(heat.solution(cfg, ab, 0.0).astype(np.float32))
    assert float(rel_l2(fresh, heat.solution(cfg, ab, cfg.T)).mean()) < 0.03


# -- needs opnet/training/job.py to build the datamodule with instantiate_datamodule ----------


def test_train_generates_missing_data_with_the_plugin_generator(tmp_path):
    """NEEDS THE job.py WIRING (``train`` building ``cfg.data`` with
    :func:`opnet.data.build.instantiate_datamodule`): ``data=heat1d`` with its files missing
    generates them with ``mypkg.heat`` (the exact solution, its ``_target_`` recorded) and
    trains on them."""
    from opnet.training import train

    data_dir = tmp_path / "heat1d"
    cfg = heat_config(data_dir, "trainer.max_epochs=2", f"paths.output_root={tmp_path}",
                      output_dir=tmp_path / "run")
    threads = torch.get_num_threads()
    try:
        metrics = train(cfg)
    finally:
        torch.set_num_threads(threads)
    u0, u = read_split(data_dir, "train")
    assert u0.shape == (SIZES["n_train"], 1, 32)
    np.testing.assert_allclose(u[:, 0], fourier_solution(u0[:, 0].astype(np.float64), 0.01, 0.1),
                               rtol=0, atol=2e-6)
    recorded = yaml.safe_load((data_dir / "config.yaml").read_text())["pde"]
    assert recorded["_target_"] == "mypkg.heat"
    assert np.isfinite(metrics["test/rel_l2"]) and metrics["test/rel_l2"] < 1.0


@pytest.mark.slow
def test_example_runs_end_to_end(tmp_path):
    """NEEDS THE job.py WIRING. ``examples/06_plugins.py --out DIR`` on one thread: exact data,
    TinyNet under 3 % on test and fresh cases (u0 itself is ~30 % off), the untrusted load
    refused, everything written under DIR."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "06_plugins.py"), "--out",
                           str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["data_max_error"] < 1e-6
    assert s["test_rel_l2"] < 0.03 and s["fresh_rel_l2"] < 0.03 < s["identity_rel_l2"] / 5
    assert s["test_rel_l2_surrogate"] == pytest.approx(s["test_rel_l2"], rel=1e-4)
    assert "trusted_targets=('mypkg.',)" in s["refused_untrusted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
