"""Errors by resolution of trained grid operators under the nested protocol (issue 19).

For each checkpoint (e.g. ``outputs/fno_darcy_superres_cpu/latest``,
``outputs/mgno_darcy_superres_cpu/latest``): ``opnet.resolution.resolution_evaluations`` at
``--resolutions`` (one fine test set, every s-th node; solver and interpolation floors) for

* ``native``: the model as trained (a resolution-aware model: its multigrid cycles / Fourier
  transforms on the training grid);
* ``grid_units``: the same weights with ``core_grid`` cleared (the paper's MgNO / the plain
  FNO: every layer on the input's grid; the weights are those a run with
  ``model.resolution_aware=false`` trains, bit for bit, since the option changes nothing on
  the training grid);
* ``resample``: ``predict(a, resample=True)`` (to the training grid and back).

One JSON line per (checkpoint, variant, resolution), printed and appended to ``--out``:

    OMP_NUM_THREADS=1 python benchmarks/super_resolution.py CKPT [CKPT ...] \\
        [--resolutions 65 129 257] [--n 100] [--threads 1]
        [--out benchmarks/results/super_resolution_<date>.jsonl]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from opnet import load_operator
from opnet.resolution import resolution_evaluations


def variants(op) -> dict[str, dict]:
    """The variants this operator has: name -> keyword arguments / model changes."""
    out = {"native": {}}
    if getattr(op.operator.model, "core_grid", None) is not None:
        out["grid_units"] = {"core_grid": None}
    out["resample"] = {"resample": True}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[65, 129, 257])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=f"benchmarks/results/super_resolution_"
                                         f"{datetime.date.today()}.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    for ckpt in args.checkpoints:
        for name, change in variants(load_operator(ckpt)).items():
            op = load_operator(ckpt)
            if "core_grid" in change:
                op.operator.model.core_grid = change["core_grid"]
            t0 = time.perf_counter()
            rows = [e.row for e in resolution_evaluations(
                op, args.resolutions, args.n, args.seed, args.data_root,
                resample=bool(change.get("resample")))]
            seconds = time.perf_counter() - t0
            for row in rows:
                line = {"benchmark": "super_resolution", "checkpoint": str(ckpt),
                        "model": op.operator.model.__class__.__name__, "variant": name,
                        "grid": row["grid"], "rel_l2": row["rel_l2"], "h1": row.get("h1"),
                        "floor_rel_l2": row.get("floor_rel_l2"),
                        "interp_floor_rel_l2": row.get("interp_floor_rel_l2"),
                        "protocol": row.get("protocol"), "samples": row["samples"],
                        "eval_seconds_all_resolutions": round(seconds, 1),
                        "threads": args.threads, "machine": platform.processor() or
                        platform.machine(), "commit": commit,
                        "date": str(datetime.date.today())}
                print(json.dumps(line), flush=True)
                with Path(args.out).open("a") as f:
                    f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
