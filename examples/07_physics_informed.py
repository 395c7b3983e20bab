"""Physics-informed operator learning: a DeepONet trained with no labelled output, and a
trained MgNO refined on inputs it never saw, by the equation alone.

    python examples/07_physics_informed.py                 # ~2 min on 2 CPU cores
    python examples/07_physics_informed.py --steps 20000   # the full zero-label experiment

1. **Zero labels.** The antiderivative ds/dy = u(y), s(0) = 0: the experiment
   ``deeponet_antiderivative_physics`` trains a tanh DeepONet on the ODE's residual at
   random collocation points (``data.labels=0``: the 1000 training functions' outputs are
   never read; s(0) = 0 holds through the output transform G·y). The test error is measured
   against the exact integrals of 1000 unseen functions.
2. **Test-time refinement** (PINO's instance-wise fine-tuning). A small MgNO trained on
   smooth Darcy coefficients (τ = 3) predicts rough ones (τ = 5); ``op.refine(a, steps)``
   then fine-tunes a copy of the network on −∇·(a∇u) = 1 for each rough input alone
   (:mod:`data_gen.physics.darcy`, the generator's 5-point scheme) and returns the refined
   solution with its residual history.

Writes into ``--out``: ``data/``, ``zero_labels/`` and ``darcy/`` (training runs),
``refine.png`` (input, truth, prediction, refined prediction; residual history) and
``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Physics-informed DeepONet and MgNO refinement",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="outputs/examples/07_physics_informed",
                   help="output folder")
    p.add_argument("--steps", type=int, default=3000,
                   help="zero-label DeepONet iterations (the experiment: 20000)")
    p.add_argument("--epochs", type=int, default=8, help="MgNO training epochs (smooth Darcy)")
    p.add_argument("--refine-steps", type=int, default=300, help="refinement steps per input")
    p.add_argument("--n-rough", type=int, default=4, help="rough inputs to refine")
    return p.parse_args(argv)


def zero_labels(out: Path, steps: int) -> dict:
    """Train the antiderivative DeepONet from the residual alone; its test metrics."""
    from opnet.config import train_config
    from opnet.training import train

    cfg = train_config("experiment=deeponet_antiderivative_physics",
                       f"paths.data_dir={out / 'data'}", f"paths.output_dir={out / 'zero_labels'}",
                       f"trainer.max_steps={steps}", "logger=[]")
    metrics = train(cfg)
    return {"test_rel_l2": metrics["test/rel_l2"], "test_residual": metrics["test/residual"]}


def refinement(out: Path, epochs: int, steps: int, n: int) -> dict:
    """Train MgNO on smooth Darcy, predict rough inputs, refine them; errors and a figure."""
    import numpy as np

    import opnet
    from data_gen.pdes import darcy
    from opnet.config import train_config
    from opnet.training import train

    cfg = train_config(f"data.data_dir={out / 'data' / 'darcy32_smooth'}",
                       "data.generate.n_train=200", "data.generate.n_val=40",
                       "data.generate.n_test=40", f"trainer.max_epochs={epochs}",
                       f"paths.output_dir={out / 'darcy'}", "logger=[]")
    train(cfg)
    op = opnet.load_operator(out / "darcy")
    rough = darcy.sample(darcy.DarcyConfig(resolution=32, tau=5.0),
                         [np.random.default_rng(10_000 + i) for i in range(n)])
    a, u = rough["inputs"]["coeff"], rough["outputs"]["sol"]

    def rel(p: np.ndarray) -> np.ndarray:
        return np.linalg.norm((p - u).reshape(n, -1), axis=1) / np.linalg.norm(
            u.reshape(n, -1), axis=1)

    pred = op.predict(a)
    refined = op.refine(a, steps=steps, lr=1e-4)
    figure(out / "refine.png", a[0, 0], u[0, 0], pred[0, 0], refined.values[0, 0],
           refined.history)
    return {"rough_rel_l2_before": float(rel(pred).mean()),
            "rough_rel_l2_refined": float(rel(refined.values).mean()),
            "residual_before": float(refined.history[:, 0].mean()),
            "residual_refined": float(refined.history[:, -1].mean()),
            "refine_seconds_per_input": refined.seconds / n}


def figure(path: Path, a, truth, pred, refined, history) -> None:
    """Input, truth, prediction and refined prediction of one rough input, and the residual
    history of every refined input (matplotlib; skipped without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no figure: pip install 'opnet[plot]'")
        return
    fig, axes = plt.subplots(1, 5, figsize=(19, 3.6))
    for ax, field, title in zip(axes[:4], (a, truth, pred, refined),
                                ("coefficient a (τ = 5)", "truth u", "MgNO (trained τ = 3)",
                                 "refined"), strict=True):
        im = ax.imshow(field, origin="lower")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    for h in history:
        axes[4].semilogy(h)
    axes[4].set_xlabel("refinement step")
    axes[4].set_title("relative residual ‖r‖/‖f‖")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out).resolve()
    summary = {"zero_labels": zero_labels(out, args.steps),
               "refinement": refinement(out, args.epochs, args.refine_steps, args.n_rough)}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    z, r = summary["zero_labels"], summary["refinement"]
    print(f"zero labels: test rel. L2 {z['test_rel_l2']:.2%} (residual "
          f"{z['test_residual']:.3g}) after {args.steps} iterations")
    print(f"refinement: rough-input rel. L2 {r['rough_rel_l2_before']:.2%} -> "
          f"{r['rough_rel_l2_refined']:.2%} ({r['refine_seconds_per_input']:.1f} s per input); "
          f"figure {out / 'refine.png'}")
    print(f"summary: {out / 'summary.json'} ({summary['seconds']:.0f} s)")
    return summary


if __name__ == "__main__":
    main()
