"""Darcy generator speed: seconds per sample (GRF + assembly + sparse solve), single process.

Prints one JSON line per (resolution, method):
``{"benchmark": "darcy_solve", "resolution": s, "seconds_per_sample": t, "method": m, ...}``.
Method "nd" is ``darcy.sample`` itself, timed end to end; "mmd" and "spsolve" run the same
pipeline with ``solve(..., method=...)``. One warm-up sample per resolution builds the cached
sparsity pattern first (a one-off cost, reported as ``setup_seconds``). Wall time is the headline;
``cpu_seconds_per_sample`` (process time) is less sensitive to other jobs on a shared machine.

    python benchmarks/darcy_solver.py [--resolutions 64 128 256 421] [--compare]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from data_gen.grf import cosine_grf_2d
from data_gen.pdes import darcy

SAMPLES = {64: 50, 128: 20, 256: 6, 421: 3}


def pipeline(cfg: darcy.DarcyConfig, rngs: list[np.random.Generator], method: str) -> None:
    if method == "nd":
        darcy.sample(cfg, rngs)
        return
    psi = cosine_grf_2d(rngs, cfg.resolution, cfg.alpha, cfg.tau, grid="nodes")
    coeff = np.where(psi >= cfg.threshold, cfg.high, cfg.low)
    darcy.solve(coeff, cfg.forcing, method=method)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256, 421])
    parser.add_argument("--compare", action="store_true", help="also time 'mmd' and 'spsolve'")
    parser.add_argument("--samples", type=int, default=None, help="samples per resolution")
    args = parser.parse_args()
    methods = ["nd", "mmd", "spsolve"] if args.compare else ["nd"]
    for s in args.resolutions:
        cfg = darcy.DarcyConfig(resolution=s)
        n = args.samples or SAMPLES.get(s, max(2, int(50 * (64 / s) ** 3)))
        for method in methods:
            t0 = time.perf_counter()
            pipeline(cfg, [np.random.default_rng(10_000)], method)  # warm-up: builds the pattern
            setup = time.perf_counter() - t0
            times, cpu = [], []
            for i in range(n):  # one sample per call, as a runner with chunk size 1 would
                t0, c0 = time.perf_counter(), time.process_time()
                pipeline(cfg, [np.random.default_rng(i)], method)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            print(json.dumps({
                "benchmark": "darcy_solve", "resolution": s,
                "seconds_per_sample": round(float(np.mean(times)), 5),
                "min_seconds": round(float(np.min(times)), 5),
                "cpu_seconds_per_sample": round(float(np.mean(cpu)), 5), "samples": n,
                "method": method, "setup_seconds": round(setup, 4),
                "loadavg_1min": round(os.getloadavg()[0], 2),
            }), flush=True)


if __name__ == "__main__":
    main()
