"""Evaluate a trained operator on a dataset split, or across grid resolutions.

    python -m opnet.evaluate CKPT --data data/darcy64 [--split test] [--stride 1]
    python -m opnet.evaluate CKPT --resolutions 32 64 128 [--n 100] [--seed 1]

The second form regenerates test sets with the generator configuration recorded in the
checkpoint, at each resolution (cached under ``data/<name>_eval<res>_seed<seed>``), and
reports the errors of the model trained on one grid when evaluated on others
(discretisation behaviour). Prints one JSON line per evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from opnet.data import h5
from opnet.surrogate import Surrogate, load_operator
from opnet.training.losses import h1, rel_l2


def evaluate(operator: Surrogate | str | os.PathLike, data_dir: str | os.PathLike,
             split: str = "test", stride: int = 1, limit: int | None = None) -> dict:
    """Mean per-sample relative L2 and FFT-H1 errors of ``operator`` on ``data_dir/split``."""
    op = operator if isinstance(operator, Surrogate) else load_operator(operator)
    path = h5.split_path(data_dir, split)
    x = h5.read_fields(path, "inputs", op.io["input_fields"], stride, limit)
    y = torch.from_numpy(h5.read_fields(path, "outputs", op.io["output_fields"], stride, limit))
    pred = torch.from_numpy(op.predict(x))
    out = {"data": str(path), "grid": list(x.shape[2:]), "samples": len(x),
           "train_grid": op.io["grid"], "rel_l2": float(rel_l2(pred, y).mean())}
    if pred.ndim == 4:
        out["h1"] = float(h1(pred, y).mean())
    return out


def evaluate_resolutions(operator: Surrogate | str | os.PathLike, resolutions: Sequence[int],
                         n: int = 100, seed: int = 1, data_root: str | os.PathLike = "data",
                         workers: int = 1) -> list[dict]:
    """Errors on fresh test sets generated at each resolution with the checkpoint's own
    generator configuration (seed differs from training so the samples are new)."""
    from data_gen import generate  # only this function needs the generators

    op = operator if isinstance(operator, Surrogate) else load_operator(operator)
    dataset = op.io["dataset"]
    if not dataset.get("generator_config"):
        raise ValueError("the checkpoint records no generator configuration; evaluate on an "
                         "existing dataset with evaluate(ckpt, data_dir) instead")
    pde = yaml.safe_load(dataset["generator_config"])
    if not isinstance(pde, dict) or "name" not in pde or "importer" in pde:
        raise ValueError("the checkpoint was trained on imported data (no opnet generator "
                         "to make test sets at other resolutions); evaluate on existing "
                         "datasets with evaluate(ckpt, data_dir) instead")
    if "resolution" not in pde:
        raise ValueError(f"generator '{pde['name']}' has no 'resolution' parameter; evaluate "
                         "on existing datasets with evaluate(ckpt, data_dir) instead")
    results = []
    for res in resolutions:
        out = Path(data_root) / f"{dataset.get('name', pde['name'])}_eval{res}_seed{seed}"
        generate({**pde, "resolution": int(res)}, out=out, n_train=0, n_val=0, n_test=n,
                 seed=seed, workers=workers, progress=False)
        results.append(evaluate(op, out))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", help="dataset folder holding <split>.h5")
    parser.add_argument("--split", default="test")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--resolutions", type=int, nargs="+")
    parser.add_argument("--n", type=int, default=100, help="test samples per resolution")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.resolutions):
        parser.error("give exactly one of --data or --resolutions")
    op = load_operator(args.checkpoint)
    if args.data:
        rows = [evaluate(op, args.data, args.split, args.stride)]
    else:
        rows = evaluate_resolutions(op, args.resolutions, args.n, args.seed, args.data_root,
                                    args.workers)
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
