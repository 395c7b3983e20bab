"""Evaluate a trained operator: a table of metrics, ``metrics.json`` and (optionally) figures.

    python -m opnet.evaluate ckpt=PATH                         # the training data's test split
    python -m opnet.evaluate ckpt=RUN_FOLDER                   # its best (else last) checkpoint
    python -m opnet.evaluate ckpt=PATH data=data/darcy64       # a folder or a conf/data name
    python -m opnet.evaluate ckpt=PATH resolution=[33,65,129]  # one fine set, subsampled
    python -m opnet.evaluate ckpt=PATH set={space:chebyshev}   # a fresh set, generator changed
    python -m opnet.evaluate ckpt=PATH plots=true              # + PNG figures (matplotlib)

(Hydra app, ``conf/evaluate/evaluate.yaml``; outputs in ``outputs/evaluate/<time>/`` unless
``output_dir=`` is given; bad input is one line ``error: ...``, exit code 2.) Metrics are
computed on de-normalised outputs (:mod:`opnet.metrics`):
grid operators report relative L2, FFT-H1, MSE and the PDEBench metrics (RMSE, nRMSE, max
error, cRMSE, bRMSE, fRMSE in low/mid/high Fourier bands), time-stepping operators the same
on their autoregressive rollout plus the relative L2 and correlation per step and the
correlation time (steps with mean correlation >= 0.9; ``error_vs_step.png``); DeepONets
the same without the grid-only ones, at the dataset's own query points, plus
``mse_wo_outliers`` (the largest 0.1 % of squared errors dropped, as the reference); PROSE
its §5 metrics (``rel_l2_2_4``, ``rel_l2_4_6``, ``rel_l2_2_6``, ``valid_pct``,
``expr_error``) with the training run's test noise and symbol
inputs (``set={gamma:0.15}`` is the paper's out-of-distribution test).

``resolution`` (nodes per side) evaluates an operator trained on one grid on others by the
standard nested protocol (:mod:`opnet.resolution`): ONE test set is generated at the finest
resolution F with the generator configuration recorded in the checkpoint (cached under
``<data_root>/<name>_eval<F>_seed<seed>``) and each resolution r is its every s-th node (the
same fields at every resolution; node grids x_i = i/(F−1) need (F−1) % (r−1) == 0, periodic
ones F % r == 0), with two error floors against the same truth: the solver's own
discretisation error (``floor_rel_l2``: the generator's ``solve_inputs`` at r for the
subsampled inputs, where the generator has one) and the resample path's
(``interp_floor_rel_l2``: the truth through the training grid and back). Resolutions that
are not nested fall back to independent fresh sets per resolution (``<name>_eval<r>_seed<seed>``,
different fields); each row says which (``protocol``), and so does a line under the table.
``resample=true`` makes grid operators predict through their training grid
(``Surrogate.predict(a, resample=True)``). ``set`` regenerates one test set with generator
parameters changed (cached under ``<data_root>/<name>_eval_<k>-<v>_seed<seed>``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opnet.threads import openmp_settings

# python -m opnet.evaluate: before torch loads (opnet.surrogate below), a passive OpenMP wait
# policy on a busy machine (main() runs too late for that)
os.environ.update(openmp_settings())

import numpy as np

from opnet.config import CONF
from opnet.data import h5
from opnet.families import family_of, load_object
from opnet.files import write_text_atomic
from opnet.resolution import (  # noqa: F401  (re-exported: opnet.evaluate's public names)
    evaluate_resolutions,
    protocol_notes,
    resolution_evaluations,
    resolution_figure,
)
from opnet.resolution import generator_config as _generator_config
from opnet.surrogate import DeepONetSurrogate, ProseSurrogate, Surrogate, load_operator

Operator = Surrogate | DeepONetSurrogate | ProseSurrogate
MAX_SEED = 2**32 - 1  # numpy's seeds: [0, 2**32 - 1]


@dataclass
class Evaluation:
    """One evaluation: ``row`` (metrics and provenance, JSON-ready) and, for figures, the
    first samples: ``kind`` (``grid1d`` | ``grid2d`` | ``points`` | ``trajectory``),
    ``inputs``/``truth``/``pred`` (physical units), ``coords``, ``equations`` (PROSE) and
    ``errors`` (per-sample relative L2 of every sample)."""

    row: dict[str, Any]
    kind: str
    inputs: Any = None
    truth: Any = None
    pred: Any = None
    coords: Any = None
    equations: list[str] | None = None
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in metrics.items()}


def _batch(batch_size: int | None) -> dict[str, int]:
    """``predict``'s batch_size keyword where one is given (else the surrogate's default)."""
    return {} if batch_size is None else {"batch_size": int(batch_size)}


def evaluate_points(op: DeepONetSurrogate, data_dir: str | os.PathLike, split: str = "test",
                    stride: int = 1, limit: int | None = None, keep: int = 0,
                    batch_size: int | None = None) -> Evaluation:
    """A DeepONet on ``data_dir/split`` at that dataset's query points; its sensors must be
    the checkpoint's (after the training sensor stride; ``stride`` applies to grids only)."""
    from opnet.data.points import read_point_split
    from opnet.metrics import per_sample_rel_l2, point_metrics

    io = op.io
    path = h5.split_path(data_dir, split)
    data, geo = read_point_split(path, io["input_field"], io["output_fields"], io["branch"],
                                 io["dataset"].get("sensor_stride", 1), 1, limit)
    if geo["sensors"].shape != op.sensors.shape or not np.allclose(geo["sensors"], op.sensors):
        raise h5.DatasetError(f"{path}: its sensors ({len(geo['sensors'])} points) are not the "
                              f"{len(op.sensors)} sensor locations the operator was trained with")
    s = data.s.numpy()
    pred = op.predict(data.u.numpy(), geo["query"], **_batch(batch_size)).reshape(s.shape)
    row = {"data": str(path), "samples": len(data), "n_query": int(len(geo["query"])),
           "train_n_query": int(len(op.query))}
    row.update(_jsonable(point_metrics(pred, s)))
    u = data.u.numpy()
    from opnet.physics import point_residual_metrics  # the PDE residual, where one exists

    if not op.pod:
        row.update(point_residual_metrics(path, op.operator, u, op.sensors))
    return Evaluation(row, "points", u[:keep], s[:keep], pred[:keep],
                      {"sensors": geo["sensors"], "query": geo["query"]},
                      errors=per_sample_rel_l2(pred, s))


def evaluate_grid(op: Surrogate, data_dir: str | os.PathLike, split: str = "test",
                  stride: int = 1, limit: int | None = None, keep: int = 0,
                  batch_size: int | None = None, resample: bool = False) -> Evaluation:
    """A grid operator on ``data_dir/split`` at that dataset's grid (any resolution the
    operator accepts, subsampled by ``stride``; ``resample``: through the training grid,
    ``Surrogate.predict(a, resample=True)``); a time-stepping operator (trained on
    trajectories) is rolled out from each trajectory's first frame."""
    from opnet.metrics import grid_metrics, per_sample_rel_l2, rollout_summary

    io, path = op.io, h5.split_path(data_dir, split)
    dataset = io["dataset"]
    if resample and dataset.get("trajectory_field"):
        raise ValueError("resample=true: a time-stepping operator's rollout does not resample")
    if dataset.get("trajectory_field"):
        from opnet.data.trajectory import read_trajectories

        steps = int(io.get("rollout_steps") or 1)
        traj = read_trajectories(path, dataset["trajectory_field"],
                                 dataset.get("initial_field"), steps + 1, stride, limit)
        x, y = traj[:, :1], traj[:, 1:]
        pred = op.rollout(x, steps, **_batch(batch_size))
    else:
        x = h5.read_fields(path, "inputs", io["input_fields"], stride, limit)
        y = h5.read_fields(path, "outputs", io["output_fields"], stride, limit)
        pred = op.predict(x, **_batch(batch_size), **({"resample": True} if resample else {}))
    row = {"data": str(path), "grid": list(y.shape[2:]), "samples": len(y),
           "train_grid": io["grid"], **({"resample": True} if resample else {})}
    row.update(_jsonable(grid_metrics(pred, y)))
    if dataset.get("trajectory_field"):
        row.update(rollout_summary(pred, y, int(io["out_channels"])))
    else:  # the PDE residual, where the problem has one
        from opnet.physics import grid_residual_metrics

        row.update(grid_residual_metrics(path, x, pred, y))
    kind = "grid2d" if y.ndim == 4 else "grid1d"
    coords = None
    if kind == "grid1d":  # the file's x (periodic: i/n) where it matches, else nodes on [0, 1]
        nodes = h5.read_coords(path, stride).get("x")
        if nodes is None or len(nodes) != y.shape[-1]:
            nodes = np.linspace(0.0, 1.0, y.shape[-1])
        coords = {"in": nodes, "out": nodes}
    return Evaluation(row, kind, x[:keep, 0], y[:keep, 0], pred[:keep, 0], coords,
                      errors=per_sample_rel_l2(pred, y))


def evaluate_prose(op: ProseSurrogate, data_dir: str | os.PathLike, split: str = "test",
                   stride: int = 1, limit: int | None = None, keep: int = 0,
                   batch_size: int | None = None) -> Evaluation:
    """PROSE §5 metrics of ``op`` on ``data_dir/split`` (an ode_systems dataset): the same
    noise and symbol inputs as the training run's test (the checkpoint's noise level,
    corruption probabilities and seeds): relative L2 on [2, 4], [4, 6], [2, 6] against the
    noisy targets, and (with a symbol decoder) valid % and the expression error
    (``stride`` applies to grids only; ``batch_size`` None: 256)."""
    from opnet.data.prose import ProseDataModule
    from opnet.symbolic import parse_prefix
    from opnet.training.prose_metrics import decode_ids, expression_errors, relative_errors

    io, batch_size = op.io, 256 if batch_size is None else int(batch_size)
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

    kept: dict[str, list] = {"t_in": [], "u_in": [], "t_out": [], "u_out": [], "pred": [],
                             "eq": []}
    per_sample = []
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
        per_sample.append(errors["2_6"].numpy())
        room = keep - len(kept["eq"])
        if room > 0:
            for i in range(min(room, len(res.values))):
                d = int(batch["dim"][i])
                for key, value in (("t_in", batch["t_in"][i]), ("t_out", batch["t_out"][i]),
                                   ("u_in", batch["u_in"][i, :, :d]),
                                   ("u_out", batch["u_out"][i, :, :d]),
                                   ("pred", res.values[i][:, :d])):
                    kept[key].append(np.asarray(value))
                kept["eq"].append(res.infix[i] if res.infix is not None else None)
        if res.tokens is not None and "target_out" in batch:
            pred = [None if p is None else parse_prefix(p) for p in res.prefix]
            true = [decode_ids(row, op.vocab)[0] for row in batch["target_out"]]
            valid, err = expression_errors(pred, true, batch["dim"].numpy(),
                                           op.metadata.get("expression_points", 50),
                                           op.metadata.get("expression_seed", 0))
            add("valid_pct", 100.0 * valid)
            add("expr_error", err[valid])
    row = {"data": str(h5.split_path(data_dir, split)), "samples": len(dm.splits[split])}
    row.update({k: (t / n if n else float("nan")) for k, (t, n) in sums.items()})
    row["rel_l2"] = row["rel_l2_2_6"]
    equations = kept["eq"] if any(e is not None for e in kept["eq"]) else None
    return Evaluation(row, "trajectory", kept["u_in"], kept["u_out"], kept["pred"],
                      {"t_in": kept["t_in"], "t_out": kept["t_out"]}, equations,
                      np.concatenate(per_sample) if per_sample else np.zeros(0))


def _operator(operator: Operator | str | os.PathLike) -> Operator:
    """A surrogate (any family's) as it is; a checkpoint path or run folder loaded."""
    return load_operator(operator) if isinstance(operator, str | os.PathLike) else operator


def evaluation(operator: Operator | str | os.PathLike, data_dir: str | os.PathLike,
               split: str = "test", stride: int = 1, limit: int | None = None,
               keep: int = 0, batch_size: int | None = None,
               resample: bool = False) -> Evaluation:
    """``operator`` (or a checkpoint path) on ``data_dir/split`` (at most ``limit``
    samples; grids subsampled by ``stride``), keeping ``keep`` samples for figures;
    ``batch_size`` samples per forward pass (None: the surrogate's default); ``resample``
    (grid operators only): predict through the training grid and interpolate back."""
    check_integer("stride", stride)
    check_integer("limit", limit, null="all samples")
    check_integer("batch_size", batch_size, null="the surrogate's default")
    op = _operator(operator)
    family = family_of(op.metadata)  # the evaluator of the checkpoint's family
    if resample and family.kind != "grid":
        raise ValueError(f"resample=true: only grid operators resample (this is a "
                         f"{family.kind} operator)")
    evaluator = load_object(family.evaluator, f"the {family.kind} family's evaluator")
    return evaluator(op, data_dir, split, stride, limit, keep, batch_size,
                     **({"resample": True} if resample else {}))


def evaluate(operator: Operator | str | os.PathLike, data_dir: str | os.PathLike,
             split: str = "test", stride: int = 1, limit: int | None = None) -> dict:
    """The metrics row of :func:`evaluation` (JSON-ready dict)."""
    return evaluation(operator, data_dir, split, stride, limit).row


def generated_evaluation(operator: Operator | str | os.PathLike, changes: Mapping[str, Any],
                         n: int = 100, seed: int = 1, data_root: str | os.PathLike = "data",
                         workers: int = 1, keep: int = 0, batch_size: int | None = None,
                         resample: bool = False) -> Evaluation:
    """Errors on a fresh test set made by the checkpoint's own generator configuration with
    ``changes`` applied (e.g. ``{"space": "chebyshev"}``: inputs the operator never saw)."""
    from data_gen import generate

    op = _operator(operator)
    changes = dict(changes)
    pde = _generator_config(op)
    unknown = sorted(set(changes) - set(pde))
    if unknown:
        raise ValueError(f"set={unknown}: generator '{pde['name']}' has no such parameter "
                         f"(it has {sorted(k for k in pde if k != 'name')})")
    tag = "_".join(f"{k}-{v}" for k, v in sorted(changes.items())) or "same"
    out = Path(data_root) / f"{op.io['dataset'].get('name', pde['name'])}_eval_{tag}_seed{seed}"
    generate({**pde, **changes}, out=out, n_train=0, n_val=0, n_test=n, seed=seed,
             workers=workers, progress=False)
    result = evaluation(op, out, keep=keep, batch_size=batch_size, resample=resample)
    result.row["changes"] = changes
    return result


def evaluate_generated(operator: Operator | str | os.PathLike, changes: Mapping[str, Any],
                       n: int = 100, seed: int = 1, data_root: str | os.PathLike = "data",
                       workers: int = 1) -> dict:
    """:func:`generated_evaluation`'s metrics row."""
    return generated_evaluation(operator, changes, n, seed, data_root, workers).row


# ------------------------------------------------------------------------------- the app
SPLITS = ("train", "val", "test")


def check_integer(key: str, value: Any, low: int = 1, high: int | None = None,
                  null: str | None = None) -> int | None:
    """``value`` if it is an integer in [low, high] (or None where ``null`` says what None
    means); else a one-line ValueError naming ``key``, e.g. ``stride=0: expected an integer
    >= 1``."""
    if value is None and null is not None:
        return None
    if (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high)):
        return value
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    raise ValueError(f"{key}={value!r}: expected {expected}"
                     + (f" or null ({null})" if null is not None else ""))


def check_options(cfg: Mapping[str, Any]) -> None:
    """Refuse bad values of ``conf/evaluate/evaluate.yaml``'s keys in one line naming the
    key, before any file is read (``stride=0`` would otherwise look like a damaged file)."""
    if cfg.get("ckpt") in (None, "", "???"):
        raise ValueError("ckpt=<path to a .ckpt file or a run folder>: required")
    split = cfg.get("split", "test")
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    check_integer("stride", cfg.get("stride", 1))
    check_integer("n", cfg.get("n"), null="all samples; regenerated sets: 100")
    check_integer("seed", cfg.get("seed", 1), low=0, high=MAX_SEED)
    check_integer("workers", cfg.get("workers", 1))
    check_integer("n_plot", cfg.get("n_plot", 4))
    check_integer("batch_size", cfg.get("batch_size"), null="the surrogate's default")
    if not isinstance(cfg.get("resample", False), bool):
        raise ValueError(f"resample={cfg['resample']!r}: expected true or false")
    resolution = cfg.get("resolution")
    entries = resolution if isinstance(resolution, list | tuple) else [resolution]
    if resolution is not None and (not entries or not all(
            isinstance(r, int) and not isinstance(r, bool) and r >= 2 for r in entries)):
        raise ValueError(f"resolution={resolution!r}: expected an integer >= 2 (nodes per "
                         "side), a non-empty list of them, or null")
    changes = cfg.get("set") or {}
    if not isinstance(changes, Mapping):
        raise ValueError(f"set={changes!r}: expected generator parameters as a mapping, "
                         "e.g. set={space:chebyshev}")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``ckpt=``: ``path`` itself (a checkpoint file) or, for a training run's folder or
    ``outputs/<task>/latest``, its best checkpoint (:func:`opnet.checkpoint.checkpoint_file`)."""
    from opnet.checkpoint import checkpoint_file as resolve

    if not (Path(path).exists() or Path(path).is_symlink()):
        raise FileNotFoundError(f"ckpt={path}: no such checkpoint file or run folder")
    return resolve(path, key="ckpt")


def resolve_data(data: str | None, op: Operator) -> Path:
    """``data``: a dataset folder, a ``conf/data`` config name (its ``data_dir``), or None
    (the dataset the checkpoint was trained on)."""
    if data is None:
        path = op.io["dataset"].get("path")
        if not path:
            raise ValueError("the checkpoint records no dataset path: give data=<folder>")
        return Path(path)
    if Path(data).is_dir():
        return Path(data)
    if (CONF / "data" / f"{data}.yaml").is_file():
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[f"data={data}"])
        return Path(cfg.data.data_dir)
    names = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
    raise ValueError(f"data={data}: neither a dataset folder nor a data config (conf/data: "
                     f"{', '.join(names)})")


def run(cfg: Mapping[str, Any]) -> list[Evaluation]:
    """What ``python -m opnet.evaluate`` does with its config (``conf/evaluate/evaluate.yaml``):
    evaluate, print the table, write ``metrics.json`` (and figures) under ``output_dir``."""
    check_options(cfg)
    ckpt = checkpoint_file(str(cfg["ckpt"]))
    op = load_operator(ckpt)
    if cfg.get("device", "cpu") != "cpu":
        op.to(cfg["device"])
    keep = cfg.get("n_plot", 4) if cfg.get("plots") else 0
    n, seed, batch_size = cfg.get("n"), cfg.get("seed", 1), cfg.get("batch_size")
    root, workers, resample = cfg.get("data_root", "data"), cfg.get("workers", 1), bool(
        cfg.get("resample", False))
    resolution, changes = cfg.get("resolution"), dict(cfg.get("set") or {})
    if resolution is not None and changes:
        raise ValueError("give resolution= or set=, not both")
    if resolution is not None:
        res = [resolution] if isinstance(resolution, int) else list(resolution)
        results = resolution_evaluations(op, res, n or 100, seed, root, workers, keep,
                                         batch_size, resample)
    elif changes:
        results = [generated_evaluation(op, changes, n or 100, seed, root, workers, keep,
                                        batch_size, resample)]
    else:
        data = resolve_data(cfg.get("data"), op)
        results = [evaluation(op, data, cfg.get("split", "test"), cfg.get("stride", 1), n,
                              keep, batch_size, resample)]
    out = Path(str(cfg.get("output_dir") or "."))
    out.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(ckpt), "evaluations": [r.row for r in results]}
    write_text_atomic(out / "metrics.json", json.dumps(report, indent=2))
    draw = load_object(family_of(op.metadata).figure, "the family's figure")
    figures = _figures(results, out / "plots", draw) if cfg.get("plots") else []
    _print_table(results, out, figures)
    return results


def _figures(results: list[Evaluation], folder: Path, draw: Any) -> list[Path]:
    """Sample figures (``draw``: the family's figure function), error histograms, for
    rollouts the errors and correlation by step (``error_vs_step.png``) and, for
    several resolutions, the errors and floors against the resolution
    (:func:`opnet.resolution.resolution_figure`)."""
    from opnet import plot

    made = []
    for i, r in enumerate(results):
        tag = Path(r.row["data"]).parent.name + (f"_{i}" if len(results) > 1 else "")
        if r.truth is not None and len(r.truth):
            fig = draw(r.inputs, r.truth, r.pred, kind=r.kind, coords=r.coords,
                       equations=r.equations, titles=None)
            made.append(plot.save_figure(fig, folder / f"samples_{tag}.png"))
        if len(r.errors):
            made.append(plot.save_figure(plot.error_histogram(r.errors),
                                         folder / f"errors_{tag}.png"))
        if "rel_l2_per_step" in r.row:  # a rollout: errors and correlation by step
            fig = plot.error_vs_step(r.row["rel_l2_per_step"], r.row["correlation_per_step"])
            name = f"error_vs_step_{i}.png" if len(results) > 1 else "error_vs_step.png"
            made.append(plot.save_figure(fig, folder / name))
    fig = resolution_figure(results)
    if fig is not None:
        made.append(plot.save_figure(fig, folder / "error_vs_resolution.png"))
    return made


def _print_table(results: list[Evaluation], out: Path, figures: list[Path]) -> None:
    """One column per evaluation, one row per metric (fits a terminal however many)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="evaluation (physical units)")
    table.add_column("metric")
    for r in results:
        grid = r.row.get("grid")
        label = Path(r.row["data"]).parent.name + (f" @{'x'.join(map(str, grid))}" if grid else "")
        table.add_column(f"{label}\n{r.row['samples']} samples", justify="right")
    keys = [k for k, v in results[0].row.items() if isinstance(v, float)]
    for key in keys:
        table.add_row(key, *(f"{r.row.get(key, float('nan')):.4g}" for r in results))
    console = Console()
    console.print(table)
    for line in protocol_notes([r.row for r in results]):  # resolution=: which protocol
        console.print(line, soft_wrap=True)
    console.print(f"metrics:  {out / 'metrics.json'}", soft_wrap=True)
    for path in figures:
        console.print(f"figure:   {path}", soft_wrap=True)


def main() -> None:
    from opnet.cli import run_app
    from opnet.run_dir import register_resolvers

    register_resolvers()  # ${run_id:} in the output folder
    run_app("evaluate", {"ckpt": "<path to a .ckpt file or a run folder>"}, run)


if __name__ == "__main__":
    main()
