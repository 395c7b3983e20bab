"""Your own PDE, used by config alone: a generator module named by ``pde._target_``.

    python examples/05_custom_pde.py                      # ~10 s on 2 CPU cores

The problem: the 1-D heat equation u_t = u_xx on [0, 1], u = 0 at both ends, mapping the
initial state u0 to u(T). With u0 = sum_k a_k sin(k pi x) the solution is exact:
u(T) = sum_k a_k exp(-k^2 pi^2 T) sin(k pi x). A generator is any module (or
``module.attribute``) defining (see ``data_gen/pdes/base.py``)

* ``Config``: a frozen dataclass of plain parameters,
* ``sample(cfg, rngs)``: one chunk, one ``numpy.random.Generator`` per sample,
* ``coords(cfg)``: the coordinates.

This file is such a module (below), imported as ``_target_`` by its file name. In your own
package: ``data_gen.generate({"_target_": "mypkg.heat", ...})``, or on the command line
``python -m data_gen pde=custom pde._target_=mypkg.heat +pde.T=0.05 out=data/heat``. The
dataset records ``_target_`` in its generator config, so evaluation and resume rebuild it.

Steps: 1. generate train/val/test sets through ``_target_`` (point layout: u0 at m sensors,
u(T) at Q query points, as DeepONet reads them) and check them against the exact solution;
2. train the repository's DeepONet experiment on them (a 1-D grid model would do as well;
DeepONet reads this layout with no new config); 3. predict fresh cases with the surrogate.
Writes into ``--out``: ``data/``, ``train/`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------------------- the generator


@dataclass(frozen=True)
class Config:
    n_modes: int = 4          # sine modes k = 1..n_modes, a_k ~ N(0, 1) / k
    T: float = 0.02           # final time
    n_sensors: int = 64       # u0 at linspace(0, 1, m)   -> inputs/u [N, m]
    n_query: int = 64         # u(T) at linspace(0, 1, Q) -> outputs/s [N, Q]


def coords(cfg: Config) -> dict[str, np.ndarray]:
    """``sensors`` [m] and ``query`` [Q, 1] on [0, 1] (float64)."""
    return {"sensors": np.linspace(0.0, 1.0, cfg.n_sensors),
            "query": np.linspace(0.0, 1.0, cfg.n_query)[:, None]}


def coefficients(cfg: Config, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """a_k of each sample, [n, n_modes], one stream per sample."""
    return np.stack([rng.standard_normal(cfg.n_modes) for rng in rngs]) / np.arange(
        1, cfg.n_modes + 1)


def solution(cfg: Config, a: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """u(x, t) = sum_k a_k exp(-k^2 pi^2 t) sin(k pi x): [n, len(x)] float64."""
    k = np.arange(1, cfg.n_modes + 1)
    return (a * np.exp(-(k * np.pi) ** 2 * t)) @ np.sin(np.pi * k[:, None] * x[None])


def sample(cfg: Config, rngs: Sequence[np.random.Generator]) -> dict:
    """One chunk: ``inputs/u`` = u0 at the sensors [n, m], ``outputs/s`` = u(T) [n, Q]."""
    a, c = coefficients(cfg, rngs), coords(cfg)
    return {"inputs": {"u": solution(cfg, a, c["sensors"], 0.0).astype(np.float32)},
            "outputs": {"s": solution(cfg, a, c["query"][:, 0], cfg.T).astype(np.float32)}}


# ----------------------------------------------------------------------------- the script


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="a custom PDE generator plugged in by _target_",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/examples/05_custom_pde", help="output folder")
    p.add_argument("--n-train", type=int, default=200, help="training functions")
    p.add_argument("--iterations", type=int, default=2000, help="full-batch Adam iterations")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def rel_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean relative L2 error over functions (last axis)."""
    return float(np.mean(np.linalg.norm(pred - true, axis=-1) / np.linalg.norm(true, axis=-1)))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out).resolve()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # your package: pip install it
    target = Path(__file__).stem  # this file as a module: "05_custom_pde"

    import h5py

    import data_gen
    import opnet
    from opnet.config import train_config
    from opnet.training import train

    # 1. Data through _target_; the test split checked against the exact solution.
    data_dir = out / "data" / "heat"
    pde = {"_target_": target, "T": 0.02}
    data_gen.generate(pde, out=data_dir, n_train=args.n_train, n_val=50, n_test=50,
                      seed=args.seed, chunk_size=50, progress=False)
    cfg = Config(T=0.02)
    rngs = [np.random.default_rng(np.random.SeedSequence([args.seed, 2, i])) for i in range(50)]
    with h5py.File(data_dir / "test.h5", "r") as f:
        stored = f["outputs/s"][()]
        recorded = f.attrs["generator_config"]
    exact = solution(cfg, coefficients(cfg, rngs), coords(cfg)["query"][:, 0], cfg.T)
    data_error = float(np.abs(stored - exact).max())

    # 2. DeepONet (the antiderivative experiment's network and optimiser) on our data.
    train_cfg = train_config("experiment=deeponet_antiderivative", f"data.data_dir={data_dir}",
                             "data.generate=null", "~extra_tests.chebyshev",
                             f"trainer.max_steps={args.iterations}", f"seed={args.seed}",
                             "~callbacks.val_figures", "~callbacks.model_summary",
                             output_dir=out / "train")
    metrics = train(train_cfg)
    run_info = json.loads((out / "train" / "metrics.json").read_text())

    # 3. Fresh initial states (other seeds) through the surrogate vs the exact u(T).
    op = opnet.load_operator(run_info["best_checkpoint"] or run_info["last_checkpoint"])
    a = coefficients(cfg, [np.random.default_rng([99, i]) for i in range(20)])
    x, y = coords(cfg)["sensors"], coords(cfg)["query"]
    pred = np.asarray(op.predict(solution(cfg, a, x, 0.0), y)).reshape(20, -1)
    result = {
        "target": target, "generator_config": recorded, "data_max_error": data_error,
        "test_rel_l2": metrics["test/rel_l2"],
        "fresh_rel_l2": rel_l2(pred, solution(cfg, a, y[:, 0], cfg.T)),
        "seconds": time.perf_counter() - t0,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    print(f"generated by _target_={target}: max |stored - exact| = {data_error:.1e}")
    print(f"DeepONet, {args.iterations} iterations: test rel. L2 {result['test_rel_l2']:.2%}, "
          f"fresh cases {result['fresh_rel_l2']:.2%}  ({result['seconds']:.0f} s)")
    print(f"summary: {out / 'summary.json'}")
    return result


if __name__ == "__main__":
    main()
