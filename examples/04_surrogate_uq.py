"""A trained operator as a surrogate in an uncertainty-quantification loop (Darcy flow).

    python examples/04_surrogate_uq.py                # trains 3 quick MgNOs first, ~1 min
    python examples/04_surrogate_uq.py --ckpt outputs/examples/01_darcy_mgno   # example 01's
    python examples/04_surrogate_uq.py --ckpt outputs/train/multirun_<...>     # a seed sweep
    python examples/04_surrogate_uq.py --ckpt a.ckpt b.ckpt c.ckpt --device cuda

Uncertainty quantification by Monte Carlo: the permeability a of -div(a grad u) = 1 is
uncertain (a random field); what is the distribution of a quantity of interest (QoI), here
the mean pressure over the domain, Q(a) = mean of u? Each sample needs one PDE solve; a
trained operator replaces the solver. Steps:

1. load trained Darcy operators (``--ckpt``: one checkpoint, e.g. example 01's, or several /
   a ``train.py -m seed=0,1,2`` sweep folder: a deep ensemble), or train ``--members`` quick
   ones with different seeds;
2. calibrate it (split conformal prediction) on ``--n-cal`` fresh labelled fields generated
   from the distribution the operator was trained on (the generator settings are stored in
   the checkpoint), so that ``predict(a, coverage=0.9)`` returns bands that hold the whole
   field of a new sample with probability >= 90 %;
3. draw ``--n-samples`` new coefficient fields, predict all of them with their bands in
   batches, and solve the first ``--n-solve`` with the numerical solver
   (``data_gen.pdes.darcy``: sparse LU / multigrid-CG), timing both;
4. check the bands on the solved fields (the fraction of fields inside their band), and
   compare the Monte-Carlo mean and standard deviation of Q from the surrogate and from the
   solver (on the same fields, and the surrogate's estimate from all samples), with the
   interval the bands give each sample's Q.

On a CPU and a 32x32 grid the solver is very fast (a direct sparse solve of ~900 unknowns
takes about as long as the network's forward pass), so do not expect a speed-up there: the
surrogate pays off on a GPU, at larger batches, or where each solve is expensive
(time-dependent, nonlinear, fine grids). The script prints what it measures.

Writes into ``--out``: ``data/`` and ``train/`` (without ``--ckpt``), ``calibration/``,
``qoi_histogram.png``, ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Surrogate Monte-Carlo UQ for Darcy flow",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/examples/04_surrogate_uq", help="output folder")
    p.add_argument("--ckpt", nargs="+", default=None,
                   help="trained Darcy grid operator(s): .ckpt files, folders with the "
                   "summary.json of example 01 or the metrics.json of a train.py run, or a "
                   "sweep folder (several: a deep ensemble); none: train --members quick ones")
    p.add_argument("--members", type=int, default=3, help="quick members (without --ckpt)")
    p.add_argument("--n-cal", type=int, default=200, help="calibration fields (solved)")
    p.add_argument("--coverage", type=float, default=0.9, help="coverage of the bands")
    p.add_argument("--n-samples", type=int, default=500, help="Monte-Carlo samples")
    p.add_argument("--n-solve", type=int, default=50,
                   help="of those, how many the numerical solver also solves")
    p.add_argument("--batch-size", type=int, default=100, help="surrogate batch size")
    p.add_argument("--device", default="cpu", help="surrogate device (cpu, cuda)")
    p.add_argument("--epochs", type=int, default=8, help="quick training (without --ckpt)")
    p.add_argument("--n-train", type=int, default=200, help="quick training (without --ckpt)")
    p.add_argument("--seed", type=int, default=2024, help="seed of the Monte-Carlo fields")
    return p.parse_args(argv)


def quick_checkpoints(out: Path, n_train: int, epochs: int, members: int) -> list[str]:
    """Example 01 in short: 32x32 Darcy data and a few epochs of the small MgNO, once per
    seed 0..members-1 (what ``python train.py -m seed=0,1,2`` does at full size)."""
    import data_gen
    from opnet.config import train_config
    from opnet.training import train

    data_dir = out / "data" / "darcy32"
    data_gen.generate("darcy", out=data_dir, resolution=32, n_train=n_train, n_val=40,
                      n_test=40, seed=0, progress=False)
    checkpoints = []
    for seed in range(members):
        run = out / "train" / str(seed)
        cfg = train_config("experiment=mgno_darcy32", f"data.data_dir={data_dir}",
                           "data.generate=null", f"trainer.max_epochs={epochs}", f"seed={seed}",
                           "~callbacks.model_summary", output_dir=run)
        train(cfg)
        run_info = json.loads((run / "metrics.json").read_text())
        checkpoints.append(run_info["best_checkpoint"] or run_info["last_checkpoint"])
    return checkpoints


def resolve_checkpoint(path: str) -> str:
    """A .ckpt file as given; a folder: the best checkpoint its summary.json (example 01) or
    metrics.json (python train.py) names; any other folder (a sweep) as given."""
    p = Path(path)
    for name in ("summary.json", "metrics.json"):
        if p.is_dir() and (p / name).is_file():
            info = json.loads((p / name).read_text())
            return info["best_checkpoint"] or info.get("last_checkpoint")
    return str(p.resolve())


def qoi(u: np.ndarray) -> np.ndarray:
    """The quantity of interest of each field u [N, s, s]: its mean over the grid nodes."""
    return u.mean(axis=(-2, -1))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    import torch
    import yaml

    import opnet
    from data_gen.pdes import darcy, make_config
    from opnet import plot

    # 1. The operator. load_operator needs only the checkpoint file: it rebuilds the
    #    network, its normalizers and the description of its training data. Several
    #    checkpoints (or a sweep folder) give a deep ensemble: predict -> their mean, and
    #    return_std=True their spread.
    ckpts = [resolve_checkpoint(c) for c in args.ckpt] if args.ckpt else \
        quick_checkpoints(out, args.n_train, args.epochs, args.members)
    op = opnet.load_operator(ckpts[0] if len(ckpts) == 1 else ckpts).to(args.device)
    print(op)

    # 2. The input distribution: the generator configuration the training data came from,
    #    recorded in the checkpoint (resolution, GRF smoothness, the two coefficient values).
    pde = yaml.safe_load(op.io["dataset"]["generator_config"])
    if pde.pop("name") != "darcy":
        raise SystemExit(f"{ckpts[0]}: not a Darcy operator "
                         f"(its generator: {op.io['dataset']['generator_config']})")
    cfg = make_config("darcy", pde)
    s = cfg.resolution

    # 2. Calibration: fresh labelled fields from the same distribution (a val split written
    #    by the generator with another seed), then split conformal prediction on them.
    import data_gen

    cal_dir = out / "calibration"
    data_gen.generate({"name": "darcy", **pde}, out=cal_dir, n_train=0, n_val=args.n_cal,
                      n_test=0, seed=args.seed + 1, progress=False, overwrite=True)
    op.calibrate(cal_dir, split="val")
    # One independent random stream per sample, as the generator does; then the
    # generator's own coefficient fields (a = high where a cosine GRF >= threshold, else low).
    rngs = [np.random.default_rng(ss) for ss in np.random.SeedSequence(args.seed)
            .spawn(args.n_samples)]
    coeff = darcy.coefficients(cfg, rngs).astype(np.float32)  # [N, s, s]

    # 3a. The surrogate on all N fields, in batches ([N, s, s] in -> [N, s, s] out, physical
    #     units), with the conformal bands (lower <= u <= upper). One small call first, so
    #     that one-off costs are not counted.
    op.predict(coeff[:2])
    tic = time.perf_counter()
    bands = op.predict(coeff, batch_size=args.batch_size, coverage=args.coverage)
    t_sur = (time.perf_counter() - tic) / args.n_samples
    u_sur = bands.mean

    # 3b. The numerical solver (the one that made the training data) on the first n_solve.
    n = min(args.n_solve, args.n_samples)
    darcy.solve_with(cfg.solver, coeff[:1], cfg.forcing)  # warm-up (sparsity pattern)
    tic = time.perf_counter()
    u_sol = darcy.solve_with(cfg.solver, coeff[:n], cfg.forcing)
    t_sol = (time.perf_counter() - tic) / n

    # 4. Monte-Carlo statistics of the QoI. On the same n fields the difference is the
    #    surrogate's own error; the N-sample surrogate estimate also has a smaller
    #    sampling error (standard error std / sqrt(N)).
    q_sur, q_sol = qoi(u_sur), qoi(u_sol)
    field_err = np.linalg.norm((u_sur[:n] - u_sol).reshape(n, -1), axis=1) / \
        np.linalg.norm(u_sol.reshape(n, -1), axis=1)
    inside = ((bands.lower[:n] <= u_sol) & (u_sol <= bands.upper[:n])).reshape(n, -1).all(1)
    q_low, q_high = qoi(bands.lower), qoi(bands.upper)  # Q's interval from the field band
    result = {
        "checkpoint": ckpts[0] if len(ckpts) == 1 else ckpts,
        "members": len(getattr(op, "members", [op])),
        "coverage_target": args.coverage,
        "n_cal": args.n_cal,
        "band_coverage": float(inside.mean()),
        "band_half_width_rel": float(np.mean(bands.upper - u_sur) / np.mean(np.abs(u_sur))),
        "qoi_interval_coverage": float(np.mean((q_low[:n] <= q_sol) & (q_sol <= q_high[:n]))),
        "resolution": s,
        "n_samples": args.n_samples,
        "n_solve": n,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "surrogate_seconds_per_sample": t_sur,
        "solver_seconds_per_sample": t_sol,
        "speedup": t_sol / t_sur,
        "solver_mean": float(q_sol.mean()),
        "solver_std": float(q_sol.std(ddof=1)),
        "solver_stderr": float(q_sol.std(ddof=1) / np.sqrt(n)),
        "surrogate_mean_same_fields": float(q_sur[:n].mean()),
        "surrogate_std_same_fields": float(q_sur[:n].std(ddof=1)),
        "surrogate_mean": float(q_sur.mean()),
        "surrogate_std": float(q_sur.std(ddof=1)),
        "surrogate_stderr": float(q_sur.std(ddof=1) / np.sqrt(args.n_samples)),
        "qoi_rel_error_per_sample_mean": float(np.mean(np.abs(q_sur[:n] - q_sol) /
                                                       np.abs(q_sol))),
        "field_rel_l2_mean": float(field_err.mean()),
    }
    result["mean_rel_difference_same_fields"] = \
        abs(result["surrogate_mean_same_fields"] - result["solver_mean"]) / result["solver_mean"]
    result["std_rel_difference_same_fields"] = \
        abs(result["surrogate_std_same_fields"] - result["solver_std"]) / result["solver_std"]

    # A histogram of Q: the surrogate's N samples against the solver's n.
    plot.require_matplotlib()  # a clear message if matplotlib is missing
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.2), dpi=80, layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(min(q_sur.min(), q_sol.min()), max(q_sur.max(), q_sol.max()), 30)
    ax.hist(q_sur, bins=bins, density=True, alpha=0.6, label=f"surrogate ({args.n_samples})")
    ax.hist(q_sol, bins=bins, density=True, alpha=0.6, label=f"solver ({n})")
    ax.set_xlabel("Q = mean of u over the domain")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    figure = plot.save_figure(fig, out / "qoi_histogram.png")
    result["figure"] = str(figure)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(result, indent=2))

    r = result
    print("\n=== 04 surrogate UQ: summary ===")
    print(f"{args.n_samples} coefficient fields at {s}x{s}; surrogate on {args.device} "
          f"({r['torch_threads']} torch thread(s)), solver on {n} of them")
    print(f"time per sample: surrogate {1e3 * t_sur:.2f} ms, solver {1e3 * t_sol:.2f} ms "
          f"-> speed-up {r['speedup']:.2f}x"
          + ("  (the solver wins here: see the module docstring)" if r["speedup"] < 1 else ""))
    print(f"surrogate field error on the solved fields: mean rel. L2 {r['field_rel_l2_mean']:.2%}")
    print(f"{args.coverage:.0%} conformal bands ({r['members']} member(s), calibrated on "
          f"{args.n_cal} fields): {r['band_coverage']:.0%} of the {n} solved fields lie "
          f"wholly inside theirs (half-width {r['band_half_width_rel']:.1%} of mean |u|); "
          f"Q inside its interval: {r['qoi_interval_coverage']:.0%}")
    print(f"Q = mean of u:          {'mean':>10} {'std':>10}")
    print(f"  solver ({n:>4} fields) {r['solver_mean']:10.3e} {r['solver_std']:10.3e}  "
          f"(standard error of the mean {r['solver_stderr']:.1e})")
    print(f"  surrogate (same {n:>3}) {r['surrogate_mean_same_fields']:10.3e} "
          f"{r['surrogate_std_same_fields']:10.3e}  -> differences "
          f"{r['mean_rel_difference_same_fields']:.2%} (mean), "
          f"{r['std_rel_difference_same_fields']:.1%} (std)")
    print(f"  surrogate ({args.n_samples:>4} fields) {r['surrogate_mean']:7.3e} "
          f"{r['surrogate_std']:10.3e}  (standard error {r['surrogate_stderr']:.1e})")
    if r["std_rel_difference_same_fields"] > 0.1:
        print(f"Note: the mean agrees, but this surrogate ({r['field_rel_l2_mean']:.0%} field "
              "error) smooths the fields and misjudges the spread of Q;\nstatistics beyond "
              "the mean need a more accurate operator (e.g. `python train.py`: ~1.4 % error).")
    print(f"figure:  {figure}")
    print(f"summary: {out / 'summary.json'}  ({r['seconds']:.0f} s in all)")
    return result


if __name__ == "__main__":
    main()
