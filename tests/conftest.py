"""Shared fixtures: a tiny Darcy dataset and Hydra-composed training configs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
from omegaconf import DictConfig

from opnet.config import CONF, train_config  # noqa: F401  (CONF: for the tests)

ROOT = Path(__file__).resolve().parents[1]

# A small but learnable problem: 16x16 Darcy, a 3-level MgNO with few channels.
TINY_DATA = {"n_train": 64, "n_val": 16, "n_test": 16, "seed": 0}
TINY_MODEL = ["model.width=8", "model.layers=2", "model.smoothing=[[1,0],[1,0],[1,0]]"]

# The working tree's run and dataset folders: the suite must leave them as it found them
# (tests write under tmp_path; subprocesses start there or pin hydra.run.dir).
WATCHED = ("outputs", "data")


def tree_listing(root: Path = ROOT, folders: tuple[str, ...] = WATCHED,
                 depth: int = 3) -> set[str]:
    """Paths under ``root/<folder>`` down to ``depth`` levels (``outputs/<task>/<run>``)."""
    found: set[str] = set()
    for folder in folders:
        base = root / folder
        for here, dirs, files in os.walk(base):
            level = len(Path(here).relative_to(base).parts)
            found.update(str(Path(here, n).relative_to(root)) for n in (*dirs, *files))
            if level + 1 >= depth:
                dirs.clear()
    return found


@pytest.fixture(scope="session", autouse=True)
def no_stray_outputs():
    """Fails the session when a test left anything new under the repo's outputs/ or data/."""
    before = tree_listing()
    yield
    stray = sorted(tree_listing() - before)
    if stray:
        pytest.fail(f"the tests wrote into the working tree: {', '.join(stray[:10])}"
                    + (f" (+{len(stray) - 10} more)" if len(stray) > 10 else ""),
                    pytrace=False)


@pytest.fixture
def one_thread():
    """Small models: one intra-op thread avoids OpenMP barrier stalls on a busy CPU (use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def darcy16(tmp_path_factory) -> Path:
    """16x16 Darcy train/val/test files (64/16/16 samples)."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("data") / "darcy16"
    generate("darcy", out=out, resolution=16, progress=False, **TINY_DATA)
    return out


@pytest.fixture(scope="session")
def darcy64_tiny(tmp_path_factory) -> Path:
    """64x64 Darcy with 8/4/4 samples: paper-size networks fit it (6 levels)."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("data64") / "darcy64"
    generate("darcy", out=out, resolution=64, n_train=8, n_val=4, n_test=4, progress=False)
    return out


def write_trajectories(folder: Path, n: int = 6, frames: int = 5, s: int = 8, decay: float = 0.9,
                       seed: int = 0) -> Path:
    """Synthetic trajectory splits like the Navier-Stokes generator's (inputs/w0 [n,1,s,s],
    outputs/w [n,frames,s,s]) with w_t = decay**t * w_0: every one-step map is exact."""
    import numpy as np

    from opnet.data import h5

    rng = np.random.default_rng(seed)
    for split in h5.SPLITS:
        w0 = rng.standard_normal((n, 1, s, s)).astype(np.float32)
        w = np.concatenate([decay**t * w0 for t in range(1, frames + 1)], axis=1)
        specs = {"inputs/w0": ((1, s, s), np.float32), "outputs/w": ((frames, s, s), np.float32)}
        with h5.SplitWriter(h5.split_path(folder, split), n, specs,
                            {"x": np.arange(s) / s, "y": np.arange(s) / s},
                            {"pde": "synthetic", "split": split}) as writer:
            writer.write(0, {"inputs/w0": w0, "outputs/w": w}, np.arange(n))
            writer.commit()
    return folder


def compose_train(*overrides: str) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, as ``python train.py`` would."""
    return train_config(*overrides)


@pytest.fixture(scope="session")
def tiny_overrides(darcy16):
    """Overrides for a tiny CPU run on the 16x16 dataset (add paths.output_dir)."""
    return [f"data.data_dir={darcy16}", "data.generate=null", "data.batch_size=8", *TINY_MODEL,
            "trainer.log_every_n_steps=1", "~callbacks.progress_bar", "~callbacks.model_summary"]


@pytest.fixture
def tiny_cfg(tiny_overrides, tmp_path):
    """Builds a tiny CPU training config writing into ``tmp_path/run``."""

    def make(*overrides: str) -> DictConfig:
        return compose_train(*tiny_overrides, "trainer.max_epochs=2",
                             f"paths.output_dir={tmp_path / 'run'}", *overrides)

    return make


class CrashAtStep(L.Callback):
    """Simulates a killed run inside an epoch: raises when global step ``step`` starts."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


class CrashAtEpoch(L.Callback):
    """Simulates a killed run: raises when epoch ``epoch`` starts (after the previous
    epoch's checkpoints were written)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")


class KillAtStep(L.Callback):
    """Simulates ``kill -9``: the process SIGKILLs itself (no exception, no cleanup) when
    training step ``step`` starts, i.e. after the checkpoints of the steps before it."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="session")
def antiderivative_small(tmp_path_factory) -> Path:
    """DeepONet antiderivative data: 100/20/100 GRF functions, m = 100 sensors, Q = 100
    points, exact labels (the integral of the cubic spline through the GRF)."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("points") / "antiderivative"
    generate("antiderivative", out=out, n_train=100, n_val=20, n_test=100, chunk_size=100,
             progress=False)
    return out
