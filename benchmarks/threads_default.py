"""Wall time of the default job (``python train.py``: MgNO small on 32x32 Darcy) with the old
and the new thread defaults, on a quiet machine and beside competing CPU jobs.

Prints JSON lines::

    {"benchmark": "threads_default", "load": "quiet" | "1x2" | "2x2", "defaults": "old" |
     "new" | "one", "threads": n, "epochs": e, "seconds": t, "load_before": [1, 5, 15 min],
     "cores": c}

``old``: what opnet did before opnet/threads.py: every core of the machine (``threads=<cpu
count>``) and OpenMP's spinning wait (libgomp's documented default ``GOMP_SPINCOUNT=300000``,
Intel's ``KMP_BLOCKTIME=200``: set explicitly, so the new passive policy stays off). ``new``:
no setting at all (automatic). ``one``: ``threads=1``, the reference. ``load``: ``quiet``,
``1x2`` beside one competing job (a torch matmul loop with 2 threads, same priority), ``2x2``
beside two. Competitors start ``--warm`` seconds before the first timed run of their level,
so the 1-minute load average that the new default reads has seen them (as a job started on
a busy machine would).

    python benchmarks/threads_default.py [--epochs 3] [--loads quiet 1x2 2x2]
                                         [--defaults old new one] [--repeat 1] [--warm 45]

The data (the default 1000/100/100 samples) are generated once into a temporary folder first
(not timed); ``test=false logger=none``. Run it on a machine nobody else uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opnet.threads import _intel_openmp  # noqa: E402  (the repository, not an install)

LOADS = {"quiet": 0, "1x2": 1, "2x2": 2}
COMPETITOR = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(256, 256)\n"
              "while True:\n    a @ a\n")
WAIT_VARS = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")


def _env(defaults: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    if defaults == "old":
        env.update({"KMP_BLOCKTIME": "200"} if _intel_openmp() else {"GOMP_SPINCOUNT": "300000"})
    return env


def _overrides(defaults: str) -> list[str]:
    return {"old": [f"threads={os.cpu_count() or 1}"], "new": [], "one": ["threads=1"]}[defaults]


@contextmanager
def competitors(n: int, warm: float):
    """``n`` competing 2-thread CPU jobs for the duration (started ``warm`` s early)."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    procs = [subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env) for _ in range(n)]
    try:
        if n:
            time.sleep(warm)  # the load average must see them, as for a job started later
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def train_once(root: Path, defaults: str, epochs: int) -> dict:
    load = os.getloadavg()
    cmd = [sys.executable, str(ROOT / "train.py"), f"trainer.max_epochs={epochs}", "test=false",
           "logger=none", f"paths.output_root={root / 'outputs'}",
           f"paths.data_dir={root / 'data'}", *_overrides(defaults)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=_env(defaults), capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - t0
    if done.returncode:
        return {"defaults": defaults, "error": done.stderr.strip().splitlines()[-1:]}
    found = re.search(r"threads: (\d+)", done.stdout + done.stderr)
    return {"defaults": defaults, "threads": int(found.group(1)) if found else None,
            "epochs": epochs, "seconds": round(seconds, 2),
            "load_before": [round(x, 2) for x in load]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    parser.add_argument("--defaults", nargs="+", default=["old", "new", "one"],
                        choices=["old", "new", "one"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warm", type=float, default=45.0,
                        help="seconds competitors run before the first timed run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([sys.executable, "-m", "data_gen", "pde=darcy", "resolution=32",
                        "n_train=1000", "n_val=100", "n_test=100", "seed=0", "progress=false",
                        f"out={root / 'data' / 'darcy32'}"], cwd=root, check=True,
                       capture_output=True)
        for load in args.loads:
            with competitors(LOADS[load], args.warm):
                for _ in range(args.repeat):
                    for defaults in args.defaults:
                        row = {"benchmark": "threads_default", "load": load,
                               **train_once(root, defaults, args.epochs),
                               "cores": os.cpu_count()}
                        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
