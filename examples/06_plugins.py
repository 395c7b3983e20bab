"""Plugins: your own generator, model and configs, used by opnet through config alone.

    python examples/06_plugins.py                  # ~20 s on 1 CPU thread; writes to a temp dir
    python examples/06_plugins.py --out my_run     # or into a folder of your choice

The user package is ``examples/plugins/mypkg`` (copy it as the start of yours):

* ``mypkg/heat.py``: the 1-D heat equation u_t = nu u_xx on the periodic interval [0, 1),
  u0 a random Fourier series, u(T) exact (every mode decays by exp(-nu (2 pi k)^2 T));
* ``mypkg/nets.py``: ``TinyNet``, a small periodic 1-D conv net;
* ``mypkg/conf/``: Hydra configs found with ``hydra.searchpath=[pkg://mypkg.conf]``:
  ``data=heat1d`` (opnet's GridDataModule, generating with ``mypkg.heat`` when the files are
  missing) and ``model=tiny_net``.

Make the package importable first: ``PYTHONPATH=examples/plugins`` (what this script does
for itself and its subprocess), or give it a ``pyproject.toml`` and ``pip install -e .``.
Then, from any directory::

    python -m data_gen pde=custom pde._target_=mypkg.heat +pde.nu=0.01 \\
        n_train=256 n_val=64 n_test=64 out=data/heat1d  # or let train.py make it
    python train.py hydra.searchpath=[pkg://mypkg.conf] data=heat1d model=tiny_net \\
        module.loss=rel_l2 task_name=heat1d
    python -c "import opnet; opnet.load_operator('outputs/...', trusted_targets=('mypkg.',))"

What a plugin must provide, by ``_target_``:

* ``pde._target_`` (a generator; ``data_gen.pdes.base``): a module (or ``module.attribute``)
  with a frozen dataclass ``Config`` of plain parameters, ``sample(cfg, rngs)`` -> ``{"inputs":
  {name: float32 [n, C, *grid]}, "outputs": {...}}`` for one chunk (one
  ``numpy.random.Generator`` per sample: the runner owns seeds, chunks and files), and
  ``coords(cfg)`` -> ``{axis: float64 array}``. Parameters: ``+pde.<name>=<value>``.
* ``model._target_``: an ``nn.Module`` class built from plain keyword arguments, taking
  ``in_channels``/``out_channels`` (filled from the data) and mapping [B, C_in, *grid] to
  [B, C_out, *grid]. ``load_operator`` rebuilds it from the checkpoint's ``{"_target_", **kwargs}``
  -- only with ``trusted_targets=("mypkg.",)``, since that imports and runs your code.
* ``data._target_``: a ``LightningDataModule`` (simplest: subclass opnet's
  ``GridDataModule``) with ``prepare_data``/``setup``, ``train/val/test_dataloader`` giving
  batches ``{"x": [B, C_in, *grid], "y": [B, C_out, *grid]}``, ``io_spec()`` (the plain data
  description saved in checkpoints: kind, channels, grid, coords, fields, normaliser kinds,
  ``dataset`` provenance) and ``train_arrays()`` -> (x, y) or ``normalizer_stats(in_kind,
  out_kind)`` for the normalisers. The config's other keys reach it as plain values; nested
  blocks are not instantiated (``generate.pde._target_`` is data_gen's to import).
* ``module._target_``: a ``LightningModule`` class with a classmethod ``from_data(model,
  datamodule, **options)`` (``model``: the plain model dict, ``options``: the other
  ``module.*`` keys); simplest: subclass ``opnet.training.module.OperatorModule``.

Steps: 1. generate train/val/test sets with the data_gen CLI and ``pde._target_=mypkg.heat``
and check them against the exact solution; 2. train ``mypkg.TinyNet`` on them with opnet's
training job, composed from ``mypkg``'s own configs; 3. load the checkpoint as a surrogate
(refused without ``trusted_targets``) and predict fresh initial states. Writes into ``--out``:
``data/``, ``train/`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PLUGINS = HERE / "plugins"  # the folder holding mypkg: on PYTHONPATH, or pip install -e it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="a user's generator, model and configs, by config",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=None, help="output folder (default: a new temp folder)")
    p.add_argument("--n-train", type=int, default=256, help="training samples")
    p.add_argument("--epochs", type=int, default=20, help="training epochs")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    return p.parse_args(argv)


def rel_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over samples of ||pred - true|| / ||true|| (all axes but the first)."""
    diff = (pred - true).reshape(len(true), -1)
    return float(np.mean(np.linalg.norm(diff, axis=1)
                         / np.linalg.norm(true.reshape(len(true), -1), axis=1)))


def generate_with_cli(out: Path, data_dir: Path, sizes: dict[str, int], seed: int) -> None:
    """``python -m data_gen pde=custom pde._target_=mypkg.heat ...`` in a subprocess that finds
    ``mypkg`` through PYTHONPATH (started in ``out``, so nothing lands elsewhere)."""
    path = [str(PLUGINS), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    cmd = [sys.executable, "-m", "data_gen", "pde=custom", "pde._target_=mypkg.heat",
           "+pde.nu=0.01", "+pde.T=0.1", *(f"n_{s}={n}" for s, n in sizes.items()),
           f"seed={seed}", f"out={data_dir}", "progress=false"]
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"data_gen failed:\n{proc.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="opnet_plugins_")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(PLUGINS))  # as PYTHONPATH=examples/plugins would

    import h5py
    from mypkg import heat

    import opnet
    from opnet.checkpoint import CheckpointError, checkpoint_file
    from opnet.config import train_config
    from opnet.training import train

    # 1. Data from the plugin generator, through the data_gen command line.
    data_dir = out / "data" / "heat1d"
    sizes = {"train": args.n_train, "val": 64, "test": 64}
    generate_with_cli(out, data_dir, sizes, args.seed)
    cfg = heat.Config(nu=0.01, T=0.1)
    rngs = [np.random.default_rng(np.random.SeedSequence([args.seed, 2, i]))
            for i in range(sizes["test"])]
    with h5py.File(data_dir / "test.h5", "r") as f:
        u0_test, u_test = f["inputs/u0"][()], f["outputs/u"][()]
    data_error = float(np.abs(u_test[:, 0] - heat.solution(cfg, heat.coefficients(cfg, rngs),
                                                           cfg.T)).max())

    # 2. Train mypkg.TinyNet on data=heat1d, both configs from mypkg/conf. The data config's
    #    generate block names the same generator: the files are complete, nothing is redone.
    train_cfg = train_config(
        "hydra.searchpath=[pkg://mypkg.conf]", "data=heat1d", "model=tiny_net",
        "module.loss=rel_l2", "task_name=heat1d", f"paths.data_dir={out / 'data'}",
        f"paths.output_root={out}", *(f"data.generate.n_{s}={n}" for s, n in sizes.items()),
        f"data.generate.seed={args.seed}", f"trainer.max_epochs={args.epochs}",
        "~callbacks.val_figures", "~callbacks.model_summary", output_dir=out / "train")
    metrics = train(train_cfg)

    # 3. The checkpoint as a surrogate: refused unless mypkg is trusted, then fresh cases.
    try:
        opnet.load_operator(out / "train")
        refused = ""
    except CheckpointError as err:
        refused = str(err)
    op = opnet.load_operator(out / "train", trusted_targets=("mypkg.",))
    ab = heat.coefficients(cfg, [np.random.default_rng([99, i]) for i in range(32)])
    u0, exact = heat.solution(cfg, ab, 0.0), heat.solution(cfg, ab, cfg.T)    # [32, s]
    pred = np.asarray(op.predict(u0.astype(np.float32)))                      # [32, s]
    result = {
        "data_max_error": data_error, "test_rel_l2": metrics["test/rel_l2"],
        "fresh_rel_l2": rel_l2(pred, exact), "identity_rel_l2": rel_l2(u0, exact),
        "test_rel_l2_surrogate": rel_l2(np.asarray(op.predict(u0_test)), u_test),
        "refused_untrusted": refused, "model": op.metadata["model"]["_target_"],
        "checkpoint": str(checkpoint_file(out / "train")),
        "seconds": time.perf_counter() - t0,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    print(f"generated by pde._target_=mypkg.heat: max |stored - exact| = {data_error:.1e}")
    print(f"without trusted_targets: {refused}")
    print(f"{result['model']}, {args.epochs} epochs: test rel. L2 {result['test_rel_l2']:.2%}; "
          f"fresh cases {result['fresh_rel_l2']:.2%} (u0 itself as the prediction: "
          f"{result['identity_rel_l2']:.2%})  ({result['seconds']:.0f} s)")
    print(f"summary: {out / 'summary.json'}")
    return result


if __name__ == "__main__":
    main()
