"""Speed against the solver, honestly (issue 21): seconds per sample of our fastest solver and
of a surrogate's batched inference, in one run, with the surrogate's error against the solver.

* **Darcy** at ``--resolutions`` (default 64 128 256 421): coefficient fields drawn from the
  checkpoint's generator settings (``--ckpt``, a trained resolution-independent Darcy operator
  such as ``outputs/mgno_darcy_superres_cpu/latest``; without one an untrained ``--model``,
  default the paper's 572,661-parameter MgNO: timing only). The solver side times both
  solvers (sparse direct LU, batched multigrid-PCG) on the same fields and keeps the faster;
  the surrogate side times ``predict`` (inference mode, batches of ``--batch-size``) as loaded,
  after ``op.optimize()`` (channels-last) and, with ``--compile``, ``op.optimize(compile=True)``
  (compile time reported apart), and keeps the fastest.
* **Navier-Stokes, one recorded step (one time unit)**: the paper set-up (pseudo-spectral at
  256², Crank-Nicolson, dt = 1e-4: 10,000 solver steps, timed over ``--ns-steps`` and scaled;
  the surrogate an untrained MgNO-NS2, 2,885,194 parameters, on 64²) and the CPU preset
  (64², RK4 at dt = 2e-2: 50 steps, timed in full; the surrogate ``--ns-ckpt``, e.g.
  ``outputs/mgno_navier_stokes_cpu/latest``, with its one-step error against the solver from
  the same test frames, or an untrained MgNO-NS).

One JSON line per case (``speedup`` = solver / surrogate seconds per sample; < 1: the solver
is faster), printed and appended to ``--out``. Both sides run with ``--threads`` torch threads
(SuperLU is single-threaded whatever the setting).

    python benchmarks/surrogate_vs_solver.py --ckpt outputs/mgno_darcy_superres_cpu/latest \\
        --ns-ckpt outputs/mgno_navier_stokes_cpu/latest [--threads 1] [--compile]
    python benchmarks/surrogate_vs_solver.py --resolutions 32 --ns-steps 2 --n 2  # CI size
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SOLVER_SAMPLES = {64: 32, 128: 16, 256: 8, 421: 4}  # per resolution (default 8)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean over samples of ||pred - ref|| / ||ref|| (axis 0 the sample)."""
    n = len(ref)
    diff = np.linalg.norm((pred - ref).reshape(n, -1), axis=1)
    return float(np.mean(diff / np.linalg.norm(ref.reshape(n, -1), axis=1)))


def untrained_surrogate(model: str, data: str):
    """A surrogate of an untrained ``model`` (a conf/model name) with the io of ``data``:
    for timing where no checkpoint is given."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from opnet.models.operator import NormalisedOperator
    from opnet.surrogate import Surrogate

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=[f"model={model}", f"data={data}"])
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    channels = {"in_channels": 1, "out_channels": 1}
    io = {"grid": [64, 64], **channels, "input_fields": ["in"], "output_fields": ["out"],
          "in_normalizer": "none", "out_normalizer": "none",
          "dataset": {"name": f"untrained {model}"}}
    network = NormalisedOperator.from_spec(spec, io)
    return Surrogate(network, {"model": spec, "io": io}), sum(
        p.numel() for p in network.parameters())


def surrogate_seconds(op, x: np.ndarray, batch_size: int, repeats: int,
                      compile_too: bool) -> tuple[float, str, dict]:
    """Seconds per sample of ``op.predict(x)`` on its fastest path, and which path: the plain
    one and channels-last timed in alternation (``repeats`` rounds, the best of each, so
    neither is favoured by going first), then, with ``compile_too``, the compiled one."""
    paths = {"eager": {"channels_last": False}, "channels_last": {"channels_last": True}}
    times: dict[str, float] = {}
    extra: dict = {}
    for options in paths.values():  # one untimed call per path (allocations, caches)
        op.optimize(**options).predict(x, batch_size=batch_size)
    for _ in range(repeats):
        for name, options in paths.items():
            op.optimize(**options)
            t0 = time.perf_counter()
            op.predict(x, batch_size=batch_size)
            times[name] = min(times.get(name, np.inf), time.perf_counter() - t0)
    if compile_too:
        t0 = time.perf_counter()
        op.optimize(channels_last=True, compile=True)
        op.predict(x[:batch_size], batch_size=batch_size)
        extra["compile_seconds"] = round(time.perf_counter() - t0, 1)
        times["compiled"] = best_seconds(lambda: op.predict(x, batch_size=batch_size),
                                         repeats)
    op.optimize(channels_last=False, compile=False)
    path = min(times, key=times.get)
    extra["seconds_per_sample_by_path"] = {k: v / len(x) for k, v in times.items()}
    return times[path] / len(x), path, extra


def darcy_rows(args, machine: dict) -> list[dict]:
    import yaml

    from data_gen.pdes import darcy, make_config
    from opnet import load_operator

    if args.ckpt:
        op, params = load_operator(args.ckpt), None
        pde = yaml.safe_load(op.io["dataset"]["generator_config"])
        pde.pop("name")
        params = sum(p.numel() for p in op.operator.model.parameters())
    else:
        op, params = untrained_surrogate(args.model, "darcy32")
        pde = {}
    rows = []
    for s in args.resolutions:
        cfg = make_config("darcy", {**pde, "resolution": s, "solver": "auto"})
        n = args.n or SOLVER_SAMPLES.get(s, 8)
        rngs = [np.random.default_rng(10_000 + i) for i in range(max(n, args.batch_size))]
        coeff = darcy.coefficients(cfg, rngs).astype(np.float64)
        solver_times, solutions = {}, {}
        for solver in ("direct", "multigrid"):
            darcy.solve_with(solver, coeff[:1], cfg.forcing)  # warm-up
            t0 = time.perf_counter()
            solutions[solver] = darcy.solve_with(solver, coeff[:n], cfg.forcing)
            solver_times[solver] = (time.perf_counter() - t0) / n
        solver = min(solver_times, key=solver_times.get)
        x = coeff.astype(np.float32)
        sur, path, extra = surrogate_seconds(op, x, args.batch_size, args.repeats,
                                             args.compile)
        row = {"benchmark": "surrogate_vs_solver", "problem": "darcy", "resolution": s,
               "solver": solver, "solver_seconds_per_sample": solver_times[solver],
               "solver_seconds_by_solver": solver_times, "solver_samples": n,
               "surrogate": args.ckpt or f"untrained {args.model}", "params": params,
               "surrogate_path": path, "surrogate_seconds_per_sample": sur,
               "surrogate_samples": len(x), "batch_size": args.batch_size,
               "speedup": solver_times[solver] / sur, **extra, **machine}
        if args.ckpt:
            row["rel_l2_vs_solver"] = rel_l2(op.predict(x[:n], batch_size=args.batch_size),
                                             solutions[solver].astype(np.float32))
        rows.append(emit(row, args.out))
    return rows


def ns_rows(args, machine: dict) -> list[dict]:
    from data_gen.grf import periodic_grf_2d
    from data_gen.pdes import navier_stokes as ns
    from opnet import load_operator

    rows = []
    # The paper set-up: 256² solver, CN, dt = 1e-4, float64; 10,000 steps per time unit.
    b, steps, dt = args.ns_batch, args.ns_steps, 1e-4
    w0 = periodic_grf_2d([np.random.default_rng(i) for i in range(b)], 256, 2.5, 7.0)
    f = ns.fno_forcing(256)
    solve = lambda: ns.solve(w0, f, 1e-5, T=steps * dt, dt=dt)  # noqa: E731
    solver_sec = best_seconds(solve, 1) / b / (steps * dt)
    op, params = untrained_surrogate("mgno_ns2", "navier_stokes_cpu")
    x = np.random.default_rng(0).standard_normal((args.batch_size, 64, 64)).astype(np.float32)
    sur, path, extra = surrogate_seconds(op, x, args.batch_size, args.repeats, args.compile)
    rows.append(emit({
        "benchmark": "surrogate_vs_solver", "problem": "navier_stokes_paper_one_time_unit",
        "resolution": 64, "solver": "pseudo-spectral 256², CN, dt 1e-4 (10,000 steps; "
        f"timed {steps}, scaled)", "solver_seconds_per_sample": solver_sec,
        "solver_samples": b, "surrogate": "untrained mgno_ns2", "params": params,
        "surrogate_path": path, "surrogate_seconds_per_sample": sur, "surrogate_samples": len(x),
        "batch_size": args.batch_size, "speedup": solver_sec / sur, **extra, **machine},
        args.out))
    # The CPU preset (pde/navier_stokes_cpu, or the checkpoint's generator settings): 64² RK4
    # at dt = 2e-2 (50 steps per time unit) in float32, as generated.
    gen = {"viscosity": 1e-5, "dt": 2e-2, "scheme": "rk4", "forcing_amplitude": 0.1,
           "record_every": 1.0, "dtype": "float32"}
    if args.ns_ckpt:
        import yaml

        op = load_operator(args.ns_ckpt)
        params = sum(p.numel() for p in op.operator.model.parameters())
        stored = yaml.safe_load(op.io["dataset"]["generator_config"])
        gen.update({k: stored[k] for k in gen if k in stored})
        frames = _test_frames(op, max(args.ns_batch, args.batch_size))
    else:
        op, params = untrained_surrogate("mgno_ns", "navier_stokes_cpu")
        frames = periodic_grf_2d([np.random.default_rng(i) for i in range(args.batch_size)],
                                 64, 2.5, 7.0).astype(np.float32)
    start = frames[:args.ns_batch]
    f64 = ns.fno_forcing(start.shape[-1], gen["forcing_amplitude"])
    steps = round(gen["record_every"] / gen["dt"])

    def solve() -> np.ndarray:
        w, _ = ns.solve(start, f64, gen["viscosity"], T=gen["record_every"], dt=gen["dt"],
                        scheme=gen["scheme"], dtype=getattr(torch, gen["dtype"]))
        return w[:, -1]

    solver_sec = best_seconds(solve, 1) / len(start)
    sur, path, extra = surrogate_seconds(op, frames, args.batch_size, args.repeats, args.compile)
    row = {"benchmark": "surrogate_vs_solver", "problem": "navier_stokes_cpu_one_time_unit",
           "resolution": int(start.shape[-1]), "solver": f"pseudo-spectral, {gen['scheme']}, "
           f"dt {gen['dt']:g} ({steps} steps)", "solver_seconds_per_sample": solver_sec,
           "solver_samples": len(start), "surrogate": args.ns_ckpt or "untrained mgno_ns",
           "params": params, "surrogate_path": path, "surrogate_seconds_per_sample": sur,
           "surrogate_samples": len(frames), "batch_size": args.batch_size,
           "speedup": solver_sec / sur, **extra, **machine}
    if args.ns_ckpt:
        row["rel_l2_vs_solver"] = rel_l2(op.predict(start), solve())
    rows.append(emit(row, args.out))
    return rows


def _test_frames(op, n: int) -> np.ndarray:
    """Frames of the checkpoint's test split (its data folder), float32 [n, H, W]."""
    from opnet.data import h5

    field = op.io["dataset"]["trajectory_field"]
    w = h5.read_fields(h5.split_path(op.io["dataset"]["path"], "test"), "outputs", [field])
    return np.ascontiguousarray(w.reshape(-1, *w.shape[2:])[:n], dtype=np.float32)


def emit(row: dict, out: Path | None) -> dict:
    line = json.dumps(row)
    print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as fh:
            fh.write(line + "\n")
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default=None, help="a trained Darcy grid operator")
    p.add_argument("--model", default="mgno", help="untrained Darcy network without --ckpt")
    p.add_argument("--ns-ckpt", default=None, help="a trained NS operator (CPU preset)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256, 421])
    p.add_argument("--n", type=int, default=None, help="solver samples (default by size)")
    p.add_argument("--batch-size", type=int, default=32, help="surrogate batch (and samples)")
    p.add_argument("--repeats", type=int, default=3, help="timed surrogate passes (best kept)")
    p.add_argument("--ns-steps", type=int, default=200, help="timed paper-set-up NS steps")
    p.add_argument("--ns-batch", type=int, default=8, help="NS solver samples")
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-ns", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                   f"surrogate_vs_solver_{datetime.date.today()}.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
               "load_at_start": load, "torch": torch.__version__,
               "date": datetime.datetime.now().isoformat(timespec="seconds")}
    rows = darcy_rows(args, machine)
    if not args.skip_ns:
        rows += ns_rows(args, machine)
    return rows


if __name__ == "__main__":
    main()
