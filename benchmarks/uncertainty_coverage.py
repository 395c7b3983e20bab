"""Conformal coverage and ensemble error of trained operators (issue 21), measured.

For each member of the runs given (a sweep folder, run folders or checkpoints) and for their
ensemble: the test error (mean relative L2 over samples, all output channels), and the
empirical coverage of the ``predict(..., coverage=c)`` bands ``ŷ ± q·σ`` on ``--test`` after
``calibrate(--cal)``: the fraction of test samples whose whole field lies inside (score
<= q, :func:`opnet.surrogate.uncertainty.nonconformity`). Because one split's coverage is itself
random (finite calibration and test sets), also the mean and spread of the coverage over
``--resplits`` random re-partitions of the pooled calibration + test scores into sets of
the same sizes (what conformal papers report).

One JSON line per operator (``member 0..``, ``ensemble``), printed and appended to ``--out``:

    python benchmarks/uncertainty_coverage.py outputs/train/multirun_<...> \\
        --cal data/darcy32_holdout --cal-split val --test data/darcy32_holdout --test-split test
    python benchmarks/uncertainty_coverage.py RUN [RUN ...] --cal DATA --test DATA
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def rel_l2(pred: np.ndarray, y: np.ndarray) -> float:
    n = len(y)
    pred = np.asarray(pred, np.float64).reshape(n, -1)
    y = np.asarray(y, np.float64).reshape(n, -1)
    return float(np.mean(np.linalg.norm(pred - y, axis=1) / np.linalg.norm(y, axis=1)))


def measure(op, name: str, args) -> dict:
    from opnet.surrogate import Ensemble
    from opnet.surrogate.uncertainty import calibrate, conformal_quantile, nonconformity

    scale = args.scale if isinstance(op, Ensemble) else None
    cal = calibrate(op, args.cal, args.cal_split, scale=scale).calibration
    test = nonconformity(op, args.test, args.test_split, scale=scale)  # one prediction
    q = cal.quantile(args.coverage)
    pooled = np.concatenate([cal.scores, test.scores])
    rng, n_cal, covered = np.random.default_rng(0), len(cal.scores), []
    for _ in range(args.resplits):
        perm = rng.permutation(pooled)
        covered.append(float(np.mean(perm[n_cal:] <= conformal_quantile(perm[:n_cal],
                                                                         args.coverage))))
    return {"benchmark": "uncertainty_coverage", "operator": name,
            "test_rel_l2": rel_l2(test.mean, test.y), "coverage_target": args.coverage,
            "coverage": float(np.mean(test.scores <= q)), "n_cal": n_cal,
            "n_test": len(test.y), "cal": f"{args.cal}:{args.cal_split}",
            "test": f"{args.test}:{args.test_split}", "quantile": q, "scale": cal.scale,
            "band_half_width_rel": float(np.mean(q * test.sigma) / np.mean(np.abs(test.y))),
            "resplit_coverage_mean": float(np.mean(covered)),
            "resplit_coverage_std": float(np.std(covered)), "resplits": args.resplits}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="a sweep folder, run folders or checkpoints")
    p.add_argument("--cal", required=True, help="dataset folder to calibrate on")
    p.add_argument("--cal-split", default="val")
    p.add_argument("--test", required=True, help="dataset folder to measure coverage on")
    p.add_argument("--test-split", default="test")
    p.add_argument("--coverage", type=float, default=0.9)
    p.add_argument("--resplits", type=int, default=1000)
    p.add_argument("--scale", default="sample", help="ensemble band scale: sample, "
                   "pointwise or none (opnet.surrogate.uncertainty.SCALES)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                   f"uncertainty_coverage_{datetime.date.today()}.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from opnet import load_operator
    from opnet.surrogate import Ensemble

    runs = args.runs[0] if len(args.runs) == 1 else args.runs
    ensemble = load_operator(runs)
    members = ensemble.members if isinstance(ensemble, Ensemble) else [ensemble]
    named = [(f"member {i} ({src})", m) for i, (m, src) in
             enumerate(zip(members, getattr(ensemble, "sources", [str(runs)]),
                                             strict=True))]
    if isinstance(ensemble, Ensemble):
        named.append((f"ensemble of {len(members)}", ensemble))
    rows = []
    for name, op in named:
        row = measure(op, name, args)
        line = json.dumps(row)
        print(line, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(line + "\n")
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
