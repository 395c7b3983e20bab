"""Runs started together never share a folder, and never corrupt the data they generate.

Two ``python train.py`` processes started at once, in the same second (the timestamp of the
run folder pinned, as in a SLURM array or a parallel sweep), both generating the missing
dataset into one folder: each gets its own run folder, checkpoint and metrics; the dataset
equals a solo generation's arrays (before: one shared folder, one last.ckpt, and 40-70 % of
the samples zeros).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT, TINY_MODEL

from opnet.data import h5

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LEAN = ["logger=none", "~callbacks.val_figures", "~callbacks.progress_bar",
        "~callbacks.model_summary", "test=false"]
GENERATE = {"resolution": 16, "n_train": 32, "n_val": 8, "n_test": 8}


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for split in h5.SPLITS:
        with h5py.File(h5.split_path(folder, split), "r") as f:
            f.visititems(lambda name, obj, s=split: out.__setitem__(f"{s}/{name}", obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
    return out


def test_default_run_folder_has_a_unique_part():
    text = (ROOT / "conf" / "train.yaml").read_text()
    assert "${now:%Y-%m-%d_%H-%M-%S}_${run_id:}" in text


@pytest.mark.slow
def test_two_train_runs_in_the_same_second_get_their_own_folders_and_clean_data(tmp_path):
    data = tmp_path / "data" / "darcy16"
    args = [sys.executable, str(ROOT / "train.py"), f"data.data_dir={data}",
            "data.generate.pde.resolution=16",
            *(f"data.generate.{k}={v}" for k, v in GENERATE.items() if k != "resolution"),
            "data.batch_size=8", *TINY_MODEL, "trainer.max_epochs=1", *LEAN,
            f"paths.output_root={tmp_path / 'outputs'}",
            # the default run folder with the time pinned: both start "in the same second"
            "hydra.run.dir=${paths.output_root}/${task_name}/2026-01-01_00-00-00_${run_id:}"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=CHILD_ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]

    task = tmp_path / "outputs" / "mgno_darcy32"
    runs = sorted(p for p in task.iterdir() if p.name != "latest")
    assert len(runs) == 2 and all(r.name.startswith("2026-01-01_00-00-00_") for r in runs)
    assert (task / "latest").resolve() in runs  # whichever wrote its first checkpoint last
    for run in runs:
        summary = json.loads((run / "metrics.json").read_text())
        assert summary["output_dir"] == str(run)
        assert Path(summary["last_checkpoint"]) == run / "checkpoints" / "last.ckpt"
        assert (run / "checkpoints" / "last.ckpt").is_file()

    from data_gen import generate

    solo = tmp_path / "solo"
    generate("darcy", out=solo, progress=False, seed=0, **GENERATE)
    got, want = _arrays(data), _arrays(solo)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp") or
                p.name.startswith(".partial")]
