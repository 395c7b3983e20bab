"""Physics-informed DeepONet with zero labelled outputs, opnet vs DeepXDE, side by side.

The antiderivative ds/dy = u, s(0) = 0 trained from the residual alone: opnet's
``experiment=deeponet_antiderivative_physics`` (``data.labels=0``, ``module.physics``)
through ``opnet.training.job.train``, in this process; DeepXDE's own example
(``benchmarks/deepxde_pi_antiderivative.py``: ``PDEOperatorCartesianProd``, GRF(l = 0.2)
training functions of its own, hard s(0) = 0) in ``--deepxde-python``, a subprocess.

``--deepxde-setup matched`` (default) gives DeepXDE the experiment's sizes, read from its
composed config: network (branch/trunk widths, activation), sensors (opnet's own, so the test
inputs are exact), iterations, learning rate and schedule (cosine -> DeepXDE's cosine decay),
training functions and functions per iteration, residual points per iteration
(``module.physics.points``; DeepXDE's are fixed, opnet's resampled every iteration).
``example``: DeepXDE's example exactly (50 sensors, 128 x 3, 100 functions per batch, 22
residual points, lr 5e-4 constant) for ``--iterations``, opnet unchanged.

Both are tested on the same 1000 GRF(l = 0.2) test functions with exact labels (the
dataset's test split, generated with ``python -m data_gen``'s generator when missing): mean
over functions of the relative L2 error at the 100 query points, final weights (opnet also
reports its best-validation checkpoint's ``test/rel_l2``). Iterations/s over the training
loop only (opnet: ``Trainer.fit`` with the experiment's validation, checkpoints and logger
unless ``--lean``; DeepXDE: ``model.train``, with its test loss every 1000 iterations).
One JSON line per side, printed and appended to ``--out``.

    OMP_NUM_THREADS=1 python benchmarks/pi_deeponet_speed.py --iterations 20000 \\
        --deepxde-python /tmp/ddevenv/bin/python [--threads 1] [--data-root data]
        [--deepxde-setup matched|example] [--deepxde-autodiff reverse|forward] [--lean]
        [--deepxde-iterations N] [--override KEY=VALUE ...] [--skip opnet|deepxde]
        [--out benchmarks/results/pi_deeponet_<date>.jsonl]

DeepXDE's example differentiates one function at a time (reverse mode): matched to a
full batch of 1000 functions it runs at a few iterations per second or less, so
``--deepxde-iterations`` can measure its rate on a shorter run (its error is then not at
the same budget, and the summary line says so); ``--deepxde-autodiff forward`` is DeepXDE's
own faster option (not the example's).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

EXPERIMENT = "deeponet_antiderivative_physics"
HERE = Path(__file__).resolve().parent
FIT: dict[str, Any] = {}  # filled by FitRecord, which train() builds from the config


class FitRecord(L.Callback):
    """Into :data:`FIT`: seconds of ``Trainer.fit`` (training start to end, validation and
    checkpoints included), optimizer iterations, and a copy of the module with its final
    weights (tested on the same arrays as DeepXDE's side)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        FIT["start"] = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import copy

        FIT["seconds"] = time.perf_counter() - FIT["start"]
        FIT["iterations"] = trainer.global_step
        FIT["module"] = copy.deepcopy(pl_module).cpu().eval()


def machine() -> dict[str, Any]:
    """CPU model, cores this process may use, load average before the run."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)),
            "load_before": [round(x, 2) for x in os.getloadavg()],
            "host": platform.node(), "python": platform.python_version()}


def opnet_config(iterations: int, root: str, threads: int, lean: bool, output_dir: Path,
                 extra: Sequence[str] = ()):
    """The experiment for ``iterations`` on ``{root}/antiderivative``, plus ``extra``
    overrides (the matched DeepXDE run follows them)."""
    from opnet.config import train_config

    overrides = [f"experiment={EXPERIMENT}", f"trainer.max_steps={iterations}",
                 f"data.data_dir={Path(root).resolve()}/antiderivative", f"threads={threads}"]
    if lean:
        overrides += ["callbacks=none", "logger=none"]
    return train_config(*overrides, *extra, output_dir=output_dir)


def test_arrays(cfg) -> dict[str, np.ndarray]:
    """The experiment's test split (generated when missing): sensors [m], y [Q, 1],
    u_test [n, m], s_test [n, Q] (exact labels)."""
    from opnet.data import h5
    from opnet.data.build import instantiate_datamodule

    instantiate_datamodule(cfg.data).prepare_data()
    with h5.open_split(h5.split_path(cfg.data.data_dir, "test")) as f:
        return {"sensors": f["coords/sensors"][()].ravel(),
                "y": f["coords/query"][()].reshape(-1, 1),
                "u_test": f["inputs/u"][()], "s_test": f["outputs/s"][()]}


def deepxde_arguments(cfg, setup: str, iterations: int) -> list[str]:
    """The DeepXDE script's options: the experiment's sizes (``matched``) or the example's."""
    if setup == "example":
        return ["--iterations", str(iterations)]
    model, module = cfg.model, cfg.module
    if list(model.branch[1:]) != list(model.trunk[1:]):
        raise SystemExit(f"model.branch {model.branch} and model.trunk {model.trunk}: "
                         "DeepXDE's matched set-up needs the same hidden widths")
    scheduler = module.scheduler.name
    if scheduler not in ("none", "cosine") or (scheduler == "cosine"
                                                and module.scheduler.min_lr not in (None, 0)):
        raise SystemExit(f"module.scheduler={dict(module.scheduler)}: DeepXDE's matched "
                         "set-up takes none or cosine to 0")
    functions = cfg.data.n_train or cfg.data.generate.n_train
    points = int(module.physics.points)
    return ["--iterations", str(iterations), "--lr", str(module.lr),
            "--decay", "cosine" if scheduler == "cosine" else "none",
            "--hidden", *map(str, model.branch[1:]), "--activation", str(model.activation),
            "--functions", str(functions), "--batch-functions", str(cfg.data.batch_size or 0),
            "--num-domain", str(points - 2), "--sensors", "data"]


def run_deepxde(python: str, arrays: dict[str, np.ndarray], arguments: list[str],
                threads: int, autodiff: str) -> dict[str, Any]:
    script = HERE / "deepxde_pi_antiderivative.py"
    env = dict(os.environ, DDE_BACKEND="pytorch", OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "antiderivative_test.npz"
        np.savez(data, **arrays)
        command = [python, str(script), str(data), *arguments, "--threads", str(threads),
                   "--autodiff", autodiff]
        wall = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - wall
    if out.returncode:
        raise SystemExit(f"{python} {script} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["wall_seconds"] = round(wall, 2)
    return row


def run_opnet(cfg, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Train the experiment; test the final weights on ``arrays`` like DeepXDE's side."""
    import torch
    from omegaconf import open_dict

    from opnet.training.job import train

    with open_dict(cfg):
        cfg.callbacks = cfg.get("callbacks") or {}
        cfg.callbacks["fit_record"] = {"_target_": f"{__name__}.FitRecord"}
    FIT.clear()
    wall = time.perf_counter()
    metrics = train(cfg)
    wall = time.perf_counter() - wall
    module = FIT["module"]
    with torch.inference_mode():
        u = torch.as_tensor(arrays["u_test"], dtype=torch.float32)
        y = torch.as_tensor(arrays["y"], dtype=torch.float32)
        pred = module(u, y).reshape(len(u), -1).double().numpy()
    s = arrays["s_test"].astype(np.float64)
    rel = np.linalg.norm(pred - s, axis=1) / np.linalg.norm(s, axis=1)
    iterations = FIT["iterations"]
    physics = cfg.module.physics
    return {"setup": "pi_antiderivative", "framework": "opnet+lightning",
            "experiment": EXPERIMENT, "iterations": iterations,
            "it_per_s": round(iterations / FIT["seconds"], 1),
            "fit_seconds": round(FIT["seconds"], 2), "wall_seconds": round(wall, 2),
            "test_rel_l2": float(rel.mean()), "test_functions": len(rel),
            "test_rel_l2_best_val_checkpoint": metrics.get("test/rel_l2"),
            "labels": cfg.data.labels, "lr": cfg.module.lr,
            "decay": cfg.module.scheduler.name, "hidden": list(cfg.model.branch[1:]),
            "activation": cfg.model.activation, "sensors": len(arrays["sensors"]),
            "train_functions": cfg.data.n_train or cfg.data.generate.n_train,
            "functions_per_iteration": cfg.data.batch_size or "all",
            "residual_points": int(physics.points), "resampled": True,
            "physics": {k: physics[k] for k in ("weight", "balance")},
            "callbacks": sorted(k for k in cfg.callbacks if k != "fit_record"),
            "params": sum(p.numel() for p in module.model.parameters()),
            "threads": torch.get_num_threads()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--deepxde-iterations", type=int, default=None,
                        help="DeepXDE's iterations (default: --iterations); fewer measure its "
                             "rate only, its error is then not at the same budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--deepxde-python", default=None,
                        help="an interpreter with deepxde installed (required unless "
                             "--skip deepxde)")
    parser.add_argument("--deepxde-setup", choices=["matched", "example"], default="matched")
    parser.add_argument("--deepxde-autodiff", choices=["reverse", "forward"], default="reverse",
                        help="reverse: the example's (one jacobian per function); forward: "
                             "DeepXDE's forward-mode option")
    parser.add_argument("--lean", action="store_true",
                        help="opnet without callbacks and logger (no validation/checkpoints)")
    parser.add_argument("--override", nargs="*", default=[],
                        help="more opnet config overrides (e.g. data.batch_size=100); the "
                             "matched DeepXDE run follows network/lr/points/batch changes")
    parser.add_argument("--skip", choices=["opnet", "deepxde"], default=None)
    parser.add_argument("--out", default=None, help="JSONL to append to (default: "
                        "benchmarks/results/pi_deeponet_<date>.jsonl)")
    args = parser.parse_args(argv)
    if args.skip != "deepxde" and not args.deepxde_python:
        parser.error("--deepxde-python is required (or --skip deepxde)")
    out = Path(args.out or HERE / "results" / f"pi_deeponet_{datetime.date.today()}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    host = machine()
    with tempfile.TemporaryDirectory(prefix="pi_deeponet_speed_") as run_dir:
        cfg = opnet_config(args.iterations, args.data_root, args.threads, args.lean,
                           Path(run_dir), args.override)
        arrays = test_arrays(cfg)
        rows = []
        if args.skip != "deepxde":
            steps = args.deepxde_iterations or args.iterations
            rows.append(run_deepxde(args.deepxde_python, arrays,
                                    deepxde_arguments(cfg, args.deepxde_setup, steps),
                                    args.threads, args.deepxde_autodiff)
                        | {"deepxde_setup": args.deepxde_setup})
        if args.skip != "opnet":
            rows.append(run_opnet(cfg, arrays))
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    with out.open("a") as f:
        for row in rows:
            row.update({"benchmark": "pi_deeponet_speed", "date": stamp, "machine": host,
                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
            line = json.dumps(row)
            print(line, flush=True)
            f.write(line + "\n")
    if len(rows) == 2:
        theirs, ours = rows
        print(json.dumps({"speedup_it_per_s": round(ours["it_per_s"] / theirs["it_per_s"], 2),
                          "test_rel_l2": {"deepxde": theirs["test_rel_l2"],
                                          "opnet": ours["test_rel_l2"]},
                          "same_iterations": theirs["iterations"] == ours["iterations"]}),
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
