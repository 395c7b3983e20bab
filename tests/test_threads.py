"""Torch threads: the cores a job may use (affinity, cgroup quota, SLURM), the model's size and
the machine's load choose the count; ``threads=N`` overrides it in train, evaluate, data_gen
and ``load_operator``; a passive OpenMP wait policy is in the environment before torch loads
on a busy machine."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from opnet import threads as th

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A fake 8-core machine: affinity {0..7}, no cgroup quota (an empty cgroup folder), no
    SLURM, idle (load 0, this process adds nothing)."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setattr(th, "CGROUP_ROOT", cgroup)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(th, "_own_load", lambda: 0.0)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return cgroup


@pytest.fixture
def restore_threads(monkeypatch):
    """Tests that set torch's threads put them back (and forget what was configured)."""
    before = torch.get_num_threads()
    monkeypatch.setattr(th, "_configured", None)
    yield
    torch.set_num_threads(before)


def test_affinity_limits_the_cores(machine, monkeypatch):
    """3 CPUs in the affinity mask of an 8-CPU machine: 3 cores (torch alone would take 8)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1, 4, 6})
    assert th.available_cores() == 3
    assert th.default_threads() == 3


def test_cgroup_v2_quota_limits_the_cores(machine):
    """cpu.max "150000 100000" = 1.5 CPUs: ceil -> 2 of the 8; "max" is no limit."""
    (machine / "cpu.max").write_text("150000 100000\n")
    assert th.available_cores() == 2
    (machine / "cpu.max").write_text("max 100000\n")
    assert th.available_cores() == 8


def test_cgroup_v1_quota_limits_the_cores(machine):
    """cfs_quota_us / cfs_period_us = 300000 / 100000 -> 3 CPUs; quota -1 is no limit."""
    (machine / "cpu").mkdir()
    (machine / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert th.available_cores() == 3
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert th.available_cores() == 8


def test_slurm_cpus_per_task_limits_the_cores(machine, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert th.available_cores() == 2
    assert th.default_threads("evaluate") == 2


@pytest.mark.parametrize(("load", "expected"), [(0.0, 8), (5.2, 3), (7.0, 1), (30.0, 1)])
def test_a_busy_machine_gets_only_its_idle_cores(machine, monkeypatch, load, expected):
    """1-minute load average L on 8 cores: round(8 - L) idle cores, at least 1; under heavy
    load (the 7x slowdown of the issue) 1 thread."""
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert th.default_threads("train") == expected


def test_this_process_does_not_count_as_load(machine, monkeypatch):
    """Load 8 of which 6 are this process's own threads: 6 idle cores -> 6 threads."""
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    monkeypatch.setattr(th, "_own_load", lambda: 6.0)
    assert th.machine_load() == pytest.approx(2.0)
    assert th.default_threads("train") == 6


def test_small_work_gets_one_thread(machine):
    """MgNO small on 32x32 Darcy, batch 8 (measured: a 2nd thread gains <= 1.2x): 1 thread;
    64x64 (1.5x): 2; 256x256: all 8 cores; unknown work: the cores."""
    assert th.default_threads("train", th.grid_work(8, 32, 16)) == 1
    assert th.default_threads("train", th.grid_work(8, 64, 16)) == 2
    assert th.default_threads("train", th.grid_work(8, 256, 16)) == 8
    assert th.default_threads("train", None) == 8


def test_train_work_reads_the_config():
    """darcy32 + mgno_small: batch 8 x 32^2 x width 16; a config that does not say: None."""
    from tests.conftest import compose_train

    assert th.train_work(compose_train()) == 8 * 32 * 32 * 16
    assert th.train_work(compose_train("data.stride=2")) == 8 * 16 * 16 * 16
    assert th.train_work({"data": {"batch_size": 8}, "model": {"width": 16}}) is None


def test_threads_override_and_env(machine, monkeypatch, restore_threads):
    """threads=3 wins over everything; None: OMP_NUM_THREADS when the user set it, else the
    automatic count; a bad value is one line naming the key."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert th.configure_threads(3, "train") == 3 and torch.get_num_threads() == 3
    assert th.configure_threads(None, "train") == 2 and torch.get_num_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 7.5, 7.5))
    assert th.configure_threads(None, "evaluate") == 1 and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match=r"^threads=0: expected an integer >= 1, or null"):
        th.configure_threads(0)
    with pytest.raises(ValueError, match=r"threads='2': expected an integer"):
        th.configure_threads("2")


def test_keep_leaves_an_earlier_choice(machine, restore_threads):
    """``load_operator`` inside ``evaluate threads=3`` (keep=True, threads=None) keeps 3."""
    th.configure_threads(3, "evaluate")
    assert th.configure_threads(None, "predict", keep=True) == 3
    assert torch.get_num_threads() == 3
    assert th.configure_threads(1, "predict", keep=True) == 1


# Runs an entry point's module code with a fake load average and records OMP_WAIT_POLICY at
# the moment torch starts loading (an import hook), then what torch itself read.
_PROBE = textwrap.dedent("""
    import importlib.abc, json, os, runpy, sys
    os.getloadavg = lambda: ({load}, {load}, {load})
    seen = {{}}
    class Probe(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and "at_import" not in seen:
                seen["at_import"] = os.environ.get("OMP_WAIT_POLICY")
            return None
    sys.meta_path.insert(0, Probe())
    {run}
    import torch
    seen["torch_env"] = os.environ.get("OMP_WAIT_POLICY")
    print(json.dumps(seen))
""")
_ENTRIES = {"train.py": f"runpy.run_path({str(ROOT / 'train.py')!r}, run_name='probe')",
            "data_gen": "runpy.run_module('data_gen.__main__', run_name='probe')",
            "evaluate": "import opnet.evaluate"}


def _probe(entry: str, load: float, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME",
                                                           "GOMP_SPINCOUNT")}
    code = _PROBE.format(load=load, run=_ENTRIES[entry])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", list(_ENTRIES))
def test_busy_machine_sets_passive_wait_before_torch_loads(entry):
    """Load 50 on this machine: OMP_WAIT_POLICY=PASSIVE is in the environment when the entry
    point's imports start loading torch (OpenMP reads it then)."""
    seen = _probe(entry, 50.0)
    assert seen == {"at_import": "PASSIVE", "torch_env": "PASSIVE"}


def test_quiet_machine_and_the_users_setting_are_left_alone():
    """Quiet: the spinning default stays (PASSIVE made a quiet 2-thread step 2-3x slower);
    a user's own OMP_WAIT_POLICY is never replaced."""
    assert _probe("train.py", 0.0) == {"at_import": None, "torch_env": None}
    assert _probe("train.py", 50.0, OMP_WAIT_POLICY="ACTIVE")["at_import"] == "ACTIVE"


def test_openmp_settings_after_torch_loaded_is_nothing(machine, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    assert "torch" in sys.modules and th.openmp_settings() == {}


# --- the entry points honour threads=1 -------------------------------------------------------


def test_train_honours_threads(tiny_cfg, restore_threads, caplog):
    """``python train.py threads=1`` on a process that had 2 threads: training runs with 1
    and says so in one line."""
    from opnet.training import train

    torch.set_num_threads(2)
    with caplog.at_level(logging.INFO, logger="opnet.threads"):
        train(tiny_cfg("threads=1", "trainer.max_epochs=1", "test=false"))
    assert torch.get_num_threads() == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "opnet.threads"]
    assert len(lines) == 1 and lines[0].startswith("threads: 1 ("), lines
    assert "cores available, load" in lines[0]


def test_train_rejects_a_bad_threads_value(tiny_cfg, restore_threads):
    from opnet.training import train

    with pytest.raises(ValueError, match=r"^threads=-1: expected an integer >= 1"):
        train(tiny_cfg("threads=-1"))


def test_data_gen_honours_threads(tmp_path, restore_threads):
    """``python -m data_gen ... threads=1`` (one worker: the generation runs in-process)."""
    from hydra import compose, initialize_config_dir

    from data_gen.__main__ import run

    torch.set_num_threads(2)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("datagen", overrides=["pde=darcy", "resolution=8", "n_train=2", "n_val=1",
                                            "n_test=1", f"out={tmp_path / 'd'}", "threads=1",
                                            "progress=false"])
    run(cfg)
    assert torch.get_num_threads() == 1


def test_evaluate_and_load_operator_honour_threads(tiny_cfg, tmp_path, restore_threads):
    """``load_operator(path, threads=3)`` sets 3; ``python -m opnet.evaluate threads=1`` runs
    with 1 although OMP_NUM_THREADS=2 is set."""
    from opnet.surrogate import load_operator
    from opnet.training import train

    train(tiny_cfg("trainer.max_epochs=1", "test=false", "threads=1"))
    run = tmp_path / "run"
    load_operator(run, threads=3)
    assert torch.get_num_threads() == 3
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run([sys.executable, "-m", "opnet.evaluate", f"ckpt={run}", "threads=1",
                           f"output_dir={tmp_path / 'eval'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr + "".join(
        f.read_text() for f in (tmp_path / "eval").glob("*.log"))
    assert "threads: 1 (" in log and "threads=)" in log, log[-2000:]
