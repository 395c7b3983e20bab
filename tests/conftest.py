"""Shared fixtures: a tiny Darcy dataset and Hydra-composed training configs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# A small but learnable problem: 16x16 Darcy, a 3-level MgNO with few channels.
TINY_DATA = {"n_train": 64, "n_val": 16, "n_test": 16, "seed": 0}
TINY_MODEL = ["model.width=8", "model.layers=2", "model.smoothing=[[1,0],[1,0],[1,0]]"]


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


def compose_train(*overrides: str) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, as ``python train.py`` would."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


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


class CrashAtEpoch(L.Callback):
    """Simulates a killed run: raises when epoch ``epoch`` starts (after the previous
    epoch's checkpoints were written)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")
