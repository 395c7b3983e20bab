"""Darcy solver speed: seconds per sample, direct sparse LU vs batched multigrid-PCG.

Default mode prints one JSON line per (resolution, solver), then the speed-up:
``{"benchmark": "darcy_solver", "resolution": s, "solver": "direct"|"multigrid",
"seconds_per_sample": t, ...}`` and ``{"benchmark": "darcy_solver_speedup", "resolution": s,
"speedup": t_direct / t_multigrid, ...}``. Each solver gets the same chunks of ``--chunk``
coefficients (threshold GRF, or ``--coefficient multiscale``) in one process, as one runner
chunk would; the coefficient generation is timed separately (``grf_seconds_per_sample``, the
same for both). One warm-up solve per resolution comes first. Wall time is the headline;
``cpu_seconds_per_sample`` (process time, all threads) is less sensitive to other jobs.
``--device cuda`` times the multigrid solver alone on the GPU and reports samples/second.
Torch runs one thread by default (``--threads``): SuperLU is single-threaded, runner workers
are too, and on an oversubscribed machine OpenMP's spin-waiting makes multi-threaded small
tensor ops stall (seen here: 30× slower at load 5 on 2 cores; ``OMP_WAIT_POLICY=passive``
avoids it).

``--methods`` keeps the older comparison of the direct orderings: "nd" is ``darcy.sample``
itself, timed end to end; "mmd" and "spsolve" run the same pipeline with
``solve(..., method=...)``, one sample per call.

    python benchmarks/darcy_solver.py [--resolutions 64 128 256 421] [--chunk 16]
    python benchmarks/darcy_solver.py --device cuda --chunk 64 --resolutions 256 421 1023
    python benchmarks/darcy_solver.py --methods [--compare]
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
CHUNKS = {64: 4, 128: 2}  # chunks per resolution and solver (default 1)


def coefficients(s: int, n: int, start: int, kind: str) -> np.ndarray:
    rngs = [np.random.default_rng(start + i) for i in range(n)]
    if kind == "multiscale":
        return darcy.multiscale_coefficient(rngs, s, 6)
    psi = cosine_grf_2d(rngs, s, 2.0, 3.0, grid="nodes")
    return np.where(psi >= 0.0, 12.0, 3.0)


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def compare_solvers(args) -> None:
    import torch

    from data_gen.pdes import darcy_multigrid as mg

    device = torch.device(args.device)
    solvers = ["multigrid"] if device.type != "cpu" else ["direct", "multigrid"]
    for s in args.resolutions:
        n_chunks = args.chunks or CHUNKS.get(s, 1)
        chunks, grf = [], 0.0
        for k in range(n_chunks):
            coeff, wall, _ = _timed(lambda s=s, k=k: coefficients(s, args.chunk, 1000 * k,
                                                                   args.coefficient))
            chunks.append(coeff)
            grf += wall
        times = {}
        for solver in solvers:
            if solver == "direct":
                def run(a):
                    return darcy.solve(a), None
            else:
                def run(a):
                    res = mg.solve_with_info(a, device=device)
                    return res.u.cpu(), res.iterations  # .cpu() waits for the device
            first = chunks[0][:2]
            (_, _), setup, _ = _timed(lambda run=run, first=first: run(first))  # warm-up
            wall = cpu = 0.0
            iterations = []
            for coeff in chunks:
                (_, its), w, c = _timed(lambda coeff=coeff: run(coeff))
                wall, cpu = wall + w, cpu + c
                if its is not None:
                    iterations += its.tolist()
            n = n_chunks * args.chunk
            times[solver] = wall / n
            line = {"benchmark": "darcy_solver", "resolution": s, "solver": solver,
                    "coefficient": args.coefficient, "chunk": args.chunk, "samples": n,
                    "seconds_per_sample": round(wall / n, 5),
                    "samples_per_second": round(n / wall, 2),
                    "cpu_seconds_per_sample": round(cpu / n, 5),
                    "grf_seconds_per_sample": round(grf / n, 5),
                    "warmup_seconds": round(setup, 3), "device": str(device),
                    "torch_threads": torch.get_num_threads(),
                    "loadavg_1min": round(os.getloadavg()[0], 2)}
            if iterations:
                line["iterations_mean"] = round(float(np.mean(iterations)), 2)
                line["iterations_max"] = int(np.max(iterations))
            print(json.dumps(line), flush=True)
        if len(times) == 2:
            print(json.dumps({"benchmark": "darcy_solver_speedup", "resolution": s,
                              "speedup": round(times["direct"] / times["multigrid"], 2),
                              "coefficient": args.coefficient, "chunk": args.chunk}),
                  flush=True)


def pipeline(cfg: darcy.DarcyConfig, rngs: list[np.random.Generator], method: str) -> None:
    if method == "nd":
        darcy.sample(cfg, rngs)
        return
    psi = cosine_grf_2d(rngs, cfg.resolution, cfg.alpha, cfg.tau, grid="nodes")
    coeff = np.where(psi >= cfg.threshold, cfg.high, cfg.low)
    darcy.solve(coeff, cfg.forcing, method=method)  # type: ignore[arg-type]


def compare_methods(args) -> None:
    methods = ["nd", "mmd", "spsolve"] if args.compare else ["nd"]
    for s in args.resolutions:
        cfg = darcy.DarcyConfig(resolution=s, solver="direct")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256, 421])
    parser.add_argument("--chunk", type=int, default=16, help="samples per solve call")
    parser.add_argument("--chunks", type=int, default=None, help="chunks per resolution")
    parser.add_argument("--coefficient", choices=["threshold", "multiscale"],
                        default="threshold")
    parser.add_argument("--device", default="cpu", help="multigrid device (cuda: GPU only)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, like the single-threaded direct solve "
                             "and the runner's workers; 0: leave torch's default)")
    parser.add_argument("--methods", action="store_true",
                        help="time the direct orderings (darcy.sample per sample) instead")
    parser.add_argument("--compare", action="store_true", help="--methods: also 'mmd', 'spsolve'")
    parser.add_argument("--samples", type=int, default=None, help="--methods: samples per size")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.methods:
        compare_methods(args)
    else:
        compare_solvers(args)


if __name__ == "__main__":
    main()
