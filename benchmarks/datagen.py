"""End-to-end generation speed of every generator through ``data_gen.generate`` (HDF5 files
included), at each problem's reference size, with 1 and 2 worker processes.

Prints one JSON line per (case, workers)::

    {"benchmark": "generate", "case": "darcy421", "pde": "darcy", "params": {...},
     "workers": w, "samples": n, "seconds": t, "samples_per_second": n / t,
     "speedup_vs_1_worker": ...}

    python benchmarks/datagen.py [--cases darcy421 burgers ...] [--workers 1 2] [--scale 0.5]

``--scale`` multiplies the sample counts (quick looks). Navier–Stokes at the paper size
(256² solver, dt = 1e-4) is run for one time unit (T = 1): multiply by T (50/30/20) for the
paper's trajectories.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from data_gen import generate

# case -> (pde, parameters, samples, chunk_size)
CASES: dict[str, tuple[str, dict, int, int]] = {
    "darcy64": ("darcy", {"resolution": 64}, 256, 16),
    "darcy256": ("darcy", {"resolution": 256}, 64, 8),
    "darcy421": ("darcy", {"resolution": 421}, 32, 8),
    "darcy256_direct": ("darcy", {"resolution": 256, "solver": "direct"}, 32, 8),
    "darcy421_direct": ("darcy", {"resolution": 421, "solver": "direct"}, 16, 8),
    "darcy_multiscale256": ("darcy", {"resolution": 256, "coefficient": "multiscale"}, 64, 8),
    "burgers8192": ("burgers", {}, 64, 16),
    "navier_stokes256_T1": ("navier_stokes", {"T": 1.0}, 8, 4),
    "navier_stokes_cpu": ("navier_stokes", {"viscosity": 1e-5, "T": 11.0,
                                            "solver_resolution": 64, "dt": 2e-2,
                                            "scheme": "rk4", "dtype": "float32"}, 32, 8),
    "helmholtz101": ("helmholtz", {}, 128, 16),
    "antiderivative": ("antiderivative", {}, 1000, 100),
    "nonlinear_ode": ("nonlinear_ode", {}, 1000, 100),
    "pendulum": ("pendulum", {}, 1000, 100),
    "diffusion_reaction": ("diffusion_reaction", {}, 256, 64),
    "advection": ("advection", {}, 256, 64),
}


def run_case(pde: str, params: dict, n: int, chunk: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(pde, out=tmp, n_train=n, n_val=0, n_test=0, workers=workers,
                 chunk_size=chunk, progress=False, **params)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    for case in args.cases:
        pde, params, n, chunk = CASES[case]
        n = max(1, round(n * args.scale))
        chunk = max(1, min(chunk, n // 2))
        first = None
        for workers in args.workers:
            seconds = run_case(pde, params, n, chunk, workers)
            first = first or seconds
            print(json.dumps({"benchmark": "generate", "case": case, "pde": pde,
                              "params": params, "workers": workers, "samples": n,
                              "seconds": round(seconds, 3),
                              "samples_per_second": round(n / seconds, 3),
                              "speedup_vs_1_worker": round(first / seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
