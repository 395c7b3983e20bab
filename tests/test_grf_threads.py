"""GRF inputs of the DeepONet problems do not depend on the number of BLAS threads.

DESIGN.md: same config + seed => identical arrays. The RBF kernel K + 1e-13·I on 1000 points
(l = 0.2) has condition number ~1e13, so the rounding of a threaded (blocked, parallel)
Cholesky factorisation changes L by up to ~3e-3 and u = L·z by up to ~0.05 near x = 1.
Each case runs in two fresh interpreters, with 1 and with 2 BLAS threads, and compares bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import numpy as np
from threadpoolctl import threadpool_info
from data_gen.function_spaces import rbf_cholesky, sample_grf

if sys.argv[2] == "grf":
    rngs = [np.random.default_rng(np.random.SeedSequence([7, 2, i])) for i in range(4)]
    u = sample_grf(rngs, length_scale=0.2, n_points=1000)
    arrays = {"chol": np.asarray(rbf_cholesky(0.2, 1000)), "knots": u.values,
              "sensors": u(np.linspace(0.0, 1.0, 100))}
else:
    import h5py
    from data_gen import generate
    generate("antiderivative", out=sys.argv[3], n_train=0, n_val=0, n_test=6, seed=3,
             progress=False, n_query=11)
    with h5py.File(f"{sys.argv[3]}/test.h5") as f:
        arrays = {"u": f["inputs/u"][()], "s": f["outputs/s"][()]}
threads = max([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] or [1])
np.savez(sys.argv[1], threads=threads, **arrays)
"""


def run_with_threads(threads: int, out: Path, mode: str) -> dict[str, np.ndarray]:
    """Run SCRIPT in a fresh interpreter with ``threads`` BLAS/OpenMP threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    path = out / f"arrays{threads}.npz"
    subprocess.run([sys.executable, "-c", SCRIPT, str(path), mode, str(out / f"ds{threads}")],
                   cwd=out, env=env, check=True, timeout=300)
    with np.load(path) as arrays:
        return dict(arrays)


def assert_bitwise_equal(one: dict[str, np.ndarray], two: dict[str, np.ndarray]) -> None:
    if int(two["threads"]) < 2:
        pytest.skip("BLAS ran with one thread only (a single core?): nothing to compare")
    for key in one:
        if key == "threads":
            continue
        a, b = one[key], two[key]
        assert a.dtype == b.dtype and a.shape == b.shape, key
        diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        same_bytes = a.tobytes() == b.tobytes()
        assert same_bytes, f"{key}: 1 vs 2 threads differ by up to {diff:.3g}"


def test_grf_samples_do_not_depend_on_blas_threads(tmp_path):
    """L of K + 1e-13·I (l = 0.2, N = 1000), 4 GRF functions on the knots and at 100 sensors."""
    assert_bitwise_equal(run_with_threads(1, tmp_path, "grf"),
                         run_with_threads(2, tmp_path, "grf"))


@pytest.mark.slow
def test_antiderivative_dataset_does_not_depend_on_blas_threads(tmp_path):
    """generate("antiderivative"): inputs/u and outputs/s are the same bytes for 1 and 2 threads."""
    assert_bitwise_equal(run_with_threads(1, tmp_path, "dataset"),
                         run_with_threads(2, tmp_path, "dataset"))
