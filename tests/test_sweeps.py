"""Hydra multirun sweeps write one output folder per job; the SLURM launcher config
composes (submitit plugin, the ``cluster`` extra)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF, TINY_MODEL
from hydra import compose, initialize_config_dir

from opnet.run_dir import register_resolvers

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_multirun_sweep_writes_separate_outputs(darcy16, tmp_path):
    """``-m model.width=4,8``: two jobs, each its own folder with a checkpoint and
    metrics.json; the parameter counts show each job got its own width."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    overrides = [f"data.data_dir={darcy16}", "data.generate=null", *TINY_MODEL,
                 "trainer.max_epochs=1", "logger=none", "~callbacks.progress_bar",
                 "~callbacks.model_summary", f"hydra.sweep.dir={tmp_path}"]
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *overrides,
                           "model.width=4,8"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [json.loads((tmp_path / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert runs[0]["output_dir"] == str(tmp_path / "0")
    assert runs[0]["params"] < runs[1]["params"]
    assert all((tmp_path / str(i) / "checkpoints" / "last.ckpt").is_file() for i in (0, 1))


def test_slurm_launcher_config_composes():
    """``hydra/launcher=slurm``: submitit's SLURM launcher, one task per GPU, job folders
    under the sweep folder."""
    register_resolvers()  # ${run_id:} in the sweep folder (train.py registers it on import)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm",
                                          "hydra.launcher.gpus_per_node=4"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4 and launcher.nodes == 1
    assert launcher.submitit_folder.endswith(".submitit/%j")
