"""PROSE ODE-systems generation speed through ``data_gen.generate`` (HDF5 files included).

Prints JSON lines::

    {"benchmark": "ode_systems", "workers": w, "samples": n, "chunk_size": c,
     "seconds": t, "trajectories_per_second": n / t, "extrapolated_512000_s": ...,
     "load_before": [1, 5, 15 min], "load_after": [...]}
    {"benchmark": "ode_systems_accept", "system": "fabrikant", "accept_rate": ..., ...}
    {"benchmark": "ode_systems_full", "samples": 512000, "seconds": ..., ...}   (--full)

    python benchmarks/ode_systems.py [--samples 76800] [--chunk 9600] [--workers 1 2]
                                     [--types ode_3d] [--full] [--out data/ode_3d]

The accept rate of a system is (its samples) / (initial conditions drawn for them), from
``params/ic_draws``. ``--full`` generates the paper's train split (512,000 trajectories,
workers = the largest of ``--workers``) into ``--out`` (default: a temporary folder) and
reports the wall time of the whole call (solve + HDF5 assembly). The machine's load
average is reported: on a shared machine the numbers are only as good as its quietness.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from data_gen import generate
from opnet.data import h5


def run(n: int, chunk: int, workers: int, types: str, out: Path) -> dict:
    load = os.getloadavg()
    t0 = time.perf_counter()
    generate("ode_systems", out=out, n_train=n, n_val=0, n_test=0, workers=workers,
             chunk_size=chunk, progress=False, types=types, overwrite=True)
    seconds = time.perf_counter() - t0
    return {"benchmark": "ode_systems", "types": types, "workers": workers, "samples": n,
            "chunk_size": chunk, "seconds": round(seconds, 2),
            "trajectories_per_second": round(n / seconds, 1),
            "extrapolated_512000_s": round(512000 * seconds / n, 1),
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def accept_rates(path: Path) -> list[dict]:
    names = h5.read_symbols(path, "system")
    with h5.open_split(path) as f:
        draws = f["params/ic_draws"][()]
    rows = []
    for name in dict.fromkeys(names.tolist()):
        sel = names == name
        rows.append({"benchmark": "ode_systems_accept", "system": name,
                     "samples": int(sel.sum()), "draws": int(draws[sel].sum()),
                     "accept_rate": round(float(sel.sum() / draws[sel].sum()), 4),
                     "max_draws": int(draws[sel].max())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=76800)
    parser.add_argument("--chunk", type=int, default=9600)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--types", default="ode_3d")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--full-chunk", type=int, default=19200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            print(json.dumps(run(args.samples, args.chunk, w, args.types, Path(tmp) / "b")),
                  flush=True)
        for row in accept_rates(Path(tmp) / "b" / "train.h5"):
            print(json.dumps(row), flush=True)
        if args.full:
            out = args.out or Path(tmp) / "full"
            row = run(512000, args.full_chunk, max(args.workers), args.types, out)
            row["benchmark"] = "ode_systems_full"
            row["file_gb"] = round(sum(p.stat().st_size for p in Path(out).glob("*.h5"))
                                   / 1e9, 3)
            print(json.dumps(row), flush=True)
            for r in accept_rates(Path(out) / "train.h5"):
                print(json.dumps({**r, "benchmark": "ode_systems_full_accept"}), flush=True)
    np.seterr(all="warn")


if __name__ == "__main__":
    main()
