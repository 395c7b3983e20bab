"""Evaluate a trained operator on a dataset split, across grid resolutions, or on a test set
regenerated with other generator parameters.

    python -m opnet.evaluate CKPT --data data/darcy64 [--split test] [--stride 1]
    python -m opnet.evaluate CKPT --resolutions 32 64 128 [--n 100] [--seed 1]
    python -m opnet.evaluate CKPT --set space=chebyshev [--set n_query=1001] [--n 1000]

The second form regenerates test sets with the generator configuration recorded in the
checkpoint, at each resolution (cached under ``data/<name>_eval<res>_seed<seed>``), and
reports the errors of the model trained on one grid when evaluated on others
(discretisation behaviour). The third regenerates one test set with the recorded
configuration and the given parameters changed (e.g. out-of-distribution inputs for a
DeepONet; cached under ``data/<name>_eval_<key>-<value>..._seed<seed>``). DeepONet
checkpoints are evaluated at the dataset's own query points (which may differ from the
training ones) and report ``mse``, ``mse_wo_outliers`` (largest 0.1 % of the squared errors
dropped, as the reference) and ``rel_l2``. PROSE checkpoints report the PROSE §5 metrics
(``rel_l2_2_4``, ``rel_l2_4_6``, ``rel_l2_2_6``, ``valid_pct``, ``expr_error``) with the
training run's test noise and symbol inputs; ``--set gamma=0.15`` is the paper's
out-of-distribution test. Prints one JSON line per evaluation.
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
from opnet.surrogate import DeepONetSurrogate, ProseSurrogate, Surrogate, load_operator
from opnet.training.losses import h1, rel_l2

Operator = Surrogate | DeepONetSurrogate | ProseSurrogate


def evaluate_points(op: DeepONetSurrogate, data_dir: str | os.PathLike, split: str = "test",
                    limit: int | None = None) -> dict:
    """Errors of a DeepONet on ``data_dir/split`` at that dataset's query points; its
    sensors must be the checkpoint's (after the training sensor stride)."""
    import numpy as np

    from opnet.data.points import read_point_split
    from opnet.training.deeponet_module import exact_metrics

    io = op.io
    path = h5.split_path(data_dir, split)
    data, geo = read_point_split(path, io["input_field"], io["output_fields"], io["branch"],
                                 io["dataset"].get("sensor_stride", 1), 1, limit)
    if geo["sensors"].shape != op.sensors.shape or not np.allclose(geo["sensors"], op.sensors):
        raise h5.DatasetError(f"{path}: its sensors ({len(geo['sensors'])} points) are not the "
                              f"{len(op.sensors)} sensor locations the operator was trained with")
    pred = op.predict(data.u.numpy(), geo["query"])
    out = {"data": str(path), "samples": len(data), "n_query": int(len(geo["query"])),
           "train_n_query": int(len(op.query))}
    out.update(exact_metrics(pred.reshape(data.s.shape), data.s.numpy()))
    return out


def evaluate_prose(op: ProseSurrogate, data_dir: str | os.PathLike, split: str = "test",
                   limit: int | None = None, batch_size: int = 256) -> dict:
    """PROSE §5 metrics of ``op`` on ``data_dir/split`` (an ode_systems dataset): the same
    noise and symbol inputs as the training run's test (the checkpoint's noise level,
    corruption probabilities and seeds): relative L2 on [2, 4], [4, 6], [2, 6] against the
    noisy targets, and (with a symbol decoder) valid % and the expression error."""
    import numpy as np

    from opnet.data.prose import ProseDataModule
    from opnet.symbolic import parse_prefix
    from opnet.training.prose_metrics import decode_ids, expression_errors, relative_errors

    io = op.io
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}: PROSE evaluation reads 'val' or 'test'")
    dm = ProseDataModule(str(data_dir), symbols=op.mode, max_dim=op.max_dim,
                         eval_batch_size=batch_size, noise_level=io.get("noise_level", 0.02),
                         p_add=io.get("p_add", 0.15), p_delete=io.get("p_delete", 0.15),
                         noise_seed=io.get("noise_seed", 1),
                         corruption_seed=io.get("corruption_seed", 2),
                         **{f"n_{split}": limit})
    dm.setup("test" if split == "test" else "validate")
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    sums: dict[str, list[float]] = {}

    def add(name: str, values: np.ndarray) -> None:
        pair = sums.setdefault(name, [0.0, 0])
        pair[0] += float(np.sum(values))
        pair[1] += len(values)

    for batch in loader:
        skel = None
        if "symbols" in batch and op.model.symbol_input:
            skel = [dm.vocab.strip(dm.vocab.decode(row)) for row in batch["symbols"]]
        res = op.predict(batch["t_in"], batch["u_in"], skel, t_out=batch["t_out"],
                         dims=batch["dim"], batch_size=batch_size)
        errors = relative_errors(res.values, batch["u_out"], batch["dim_mask"],
                                 batch["t_out"])
        for name, e in errors.items():
            add(f"rel_l2_{name}", e.numpy())
        if res.tokens is not None and "target_out" in batch:
            pred = [None if p is None else parse_prefix(p) for p in res.prefix]
            true = [decode_ids(row, op.vocab)[0] for row in batch["target_out"]]
            valid, err = expression_errors(pred, true, batch["dim"].numpy(),
                                           op.metadata.get("expression_points", 50),
                                           op.metadata.get("expression_seed", 0))
            add("valid_pct", 100.0 * valid)
            add("expr_error", err[valid])
    out = {"data": str(h5.split_path(data_dir, split)), "samples": len(dm.splits[split])}
    out.update({k: (t / n if n else float("nan")) for k, (t, n) in sums.items()})
    out["rel_l2"] = out["rel_l2_2_6"]
    return out


def evaluate(operator: Operator | str | os.PathLike, data_dir: str | os.PathLike,
             split: str = "test", stride: int = 1, limit: int | None = None) -> dict:
    """Mean per-sample relative L2 and FFT-H1 errors of ``operator`` on ``data_dir/split``
    (DeepONets: :func:`evaluate_points`; PROSE: :func:`evaluate_prose`)."""
    op = operator if isinstance(operator, Operator) else load_operator(operator)
    if isinstance(op, DeepONetSurrogate):
        return evaluate_points(op, data_dir, split, limit)
    if isinstance(op, ProseSurrogate):
        return evaluate_prose(op, data_dir, split, limit)
    path = h5.split_path(data_dir, split)
    x = h5.read_fields(path, "inputs", op.io["input_fields"], stride, limit)
    y = torch.from_numpy(h5.read_fields(path, "outputs", op.io["output_fields"], stride, limit))
    pred = torch.from_numpy(op.predict(x))
    out = {"data": str(path), "grid": list(x.shape[2:]), "samples": len(x),
           "train_grid": op.io["grid"], "rel_l2": float(rel_l2(pred, y).mean())}
    if pred.ndim == 4:
        out["h1"] = float(h1(pred, y).mean())
    return out


def _generator_config(op: Operator) -> dict:
    dataset = op.io["dataset"]
    if not dataset.get("generator_config"):
        raise ValueError("the checkpoint records no generator configuration; evaluate on an "
                         "existing dataset with evaluate(ckpt, data_dir) instead")
    pde = yaml.safe_load(dataset["generator_config"])
    if not isinstance(pde, dict) or "name" not in pde or "importer" in pde:
        raise ValueError("the checkpoint was trained on imported data (no opnet generator "
                         "to make new test sets); evaluate on existing datasets with "
                         "evaluate(ckpt, data_dir) instead")
    return pde


def evaluate_generated(operator: Operator | str | os.PathLike, changes: dict, n: int = 100,
                       seed: int = 1, data_root: str | os.PathLike = "data",
                       workers: int = 1) -> dict:
    """Errors on a fresh test set made by the checkpoint's own generator configuration with
    ``changes`` applied (e.g. ``{"space": "chebyshev"}``: inputs the operator never saw)."""
    from data_gen import generate

    op = operator if isinstance(operator, Operator) else load_operator(operator)
    pde = _generator_config(op)
    unknown = sorted(set(changes) - set(pde))
    if unknown:
        raise ValueError(f"--set {unknown}: generator '{pde['name']}' has no such parameter "
                         f"(it has {sorted(k for k in pde if k != 'name')})")
    tag = "_".join(f"{k}-{v}" for k, v in sorted(changes.items())) or "same"
    out = Path(data_root) / f"{op.io['dataset'].get('name', pde['name'])}_eval_{tag}_seed{seed}"
    generate({**pde, **changes}, out=out, n_train=0, n_val=0, n_test=n, seed=seed,
             workers=workers, progress=False)
    return {**evaluate(op, out), "changes": dict(changes)}


def evaluate_resolutions(operator: Operator | str | os.PathLike, resolutions: Sequence[int],
                         n: int = 100, seed: int = 1, data_root: str | os.PathLike = "data",
                         workers: int = 1) -> list[dict]:
    """Errors on fresh test sets generated at each resolution with the checkpoint's own
    generator configuration (seed differs from training so the samples are new)."""
    from data_gen import generate  # only this function needs the generators

    op = operator if isinstance(operator, Operator) else load_operator(operator)
    dataset = op.io["dataset"]
    pde = _generator_config(op)
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
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="regenerate a test set with this generator parameter changed")
    parser.add_argument("--n", type=int, default=100, help="test samples per resolution")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if sum(map(bool, (args.data, args.resolutions, args.set))) != 1:
        parser.error("give exactly one of --data, --resolutions or --set")
    op = load_operator(args.checkpoint)
    if args.data:
        rows = [evaluate(op, args.data, args.split, args.stride)]
    elif args.set:
        changes = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--set {item}: expected KEY=VALUE")
            changes[key] = yaml.safe_load(value)
        try:
            rows = [evaluate_generated(op, changes, args.n, args.seed, args.data_root,
                                       args.workers)]
        except ValueError as err:
            parser.error(str(err))
    else:
        rows = evaluate_resolutions(op, args.resolutions, args.n, args.seed, args.data_root,
                                    args.workers)
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
