"""benchmarks/gpu_check.sh runs (reduced, on the CPU): a throughput line for every model
family and precision, no errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_reduced_on_the_cpu(tmp_path):
    env = dict(os.environ, DEVICE="cpu", STEPS="2", DATA_ROOT=str(tmp_path),
               OMP_NUM_THREADS="1", PYTHON=sys.executable)
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert not [r for r in rows if "error" in r], rows
    assert {(r["model"], r["precision"]) for r in rows} == {
        (m, p) for m in ("mgno", "deeponet", "prose") for p in ("32-true", "bf16-mixed")}
    for r in rows:
        assert r["samples_per_s"] > 0 and r["peak_mem_mib"] > 0 and r["steps"] > 0


@pytest.mark.slow
def test_threads_default_runs_reduced():
    """benchmarks/threads_default.py, 1 epoch, quiet, new and 1-thread defaults: one timed
    line each, with the thread count the job reported."""
    done = subprocess.run([sys.executable, "benchmarks/threads_default.py", "--epochs", "1",
                           "--loads", "quiet", "--defaults", "new", "one"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["load"], r["defaults"]) for r in rows] == [("quiet", "new"), ("quiet", "one")]
    assert all(r["seconds"] > 0 and r["threads"] >= 1 for r in rows), rows
    assert rows[1]["threads"] == 1
