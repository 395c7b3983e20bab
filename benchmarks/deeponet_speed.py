"""DeepONet training speed inside Lightning (PointDataModule + DeepONetModule) vs DeepXDE.

Set-ups (one JSON line each):

* ``antiderivative``: DeepXDE's documented aligned antiderivative example — branch
  [100, 40, 40], trunk [1, 40, 40], ReLU, 150 functions x 100 points, full batch, Adam 1e-3,
  10,000 iterations — which DeepXDE's PyTorch backend trains at about 675 iterations/s on the
  2-core CPU this project develops on (test mean relative L2 ~2.4 % on 1000 functions);
* ``burgers``: the CMAME Burgers configuration (branch [128] x 5, Fourier-feature trunk
  [1, 128, 128, 128], tanh; 1000 functions x 128 points, full batch; per-point scaler;
  inverse-time decay) for ``--burgers-steps`` iterations.

Each is timed through ``lightning.Trainer.fit`` (from ``on_train_start`` to
``on_train_end``; no logger, checkpoints or progress bar unless ``--with-callbacks``) and,
as a floor, the same network/batch/optimizer in a bare PyTorch loop. The antiderivative
line also reports the test MSE / mean relative L2 after training.

    python benchmarks/deeponet_speed.py [--setups antiderivative burgers] [--steps 10000]
        [--burgers-steps 1000] [--threads N] [--with-callbacks] [--data-root data]
        [--deepxde-python /path/to/venv-with-deepxde/bin/python]

``--deepxde-python``: also time DeepXDE's own example (benchmarks/deepxde_antiderivative.py)
on the same data in that interpreter, before and after ours, so both see the same machine
load; the speed-up is then against that measurement instead of the 675 it/s figure.

Data come from the experiments' data configs (generated once into ``--data-root``:
``antiderivative_150`` (150/100/1000 functions) and ``burgers128``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from opnet.config import CONF

DEEPXDE_IT_PER_S = 675.0  # issue 5: DeepXDE PyTorch backend, this 2-core CPU

SETUPS = {
    "antiderivative": {
        "overrides": ["experiment=deeponet_antiderivative", "module.scheduler.name=none",
                      "data.n_train=150", "data.data_dir={root}/antiderivative_150",
                      "data.generate.n_train=150", "data.generate.n_val=100",
                      "data.generate.n_test=1000", "data.steps_per_epoch=1000"],
    },
    "burgers": {
        "overrides": ["experiment=deeponet_burgers", "data.data_dir={root}/burgers128",
                      "data.steps_per_epoch={steps}"],
    },
}


class _Clock(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides + ["paths.output_dir=/tmp/unused"])


def _bare_loop(module, batch: dict, steps: int) -> float:
    """Iterations/s of forward + loss + backward + optimizer step with nothing around it."""
    import copy

    from opnet.training.deeponet_module import point_loss
    from opnet.training.flat_adam import FlatAdam

    m = copy.deepcopy(module)
    opt = FlatAdam(m.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        loss = point_loss("mse", m(batch["u"], batch["y"], batch.get("idx")), batch["s"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def run(setup: str, steps: int, root: str, with_callbacks: bool, batches_per_step: int | None,
        bare_steps: int) -> dict:
    from hydra.utils import instantiate

    from opnet.training.job import _instantiate_all, _quiet_lightning, build_module

    _quiet_lightning()
    overrides = [o.format(root=root, steps=min(steps, 1000)) for o in SETUPS[setup]["overrides"]]
    overrides += [f"trainer.max_steps={steps}"]
    if batches_per_step is not None:
        overrides.append(f"data.batches_per_step={batches_per_step}")
    cfg = _compose(overrides)
    L.seed_everything(0, verbose=False)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    clock = _Clock()
    callbacks = [clock]
    if with_callbacks:
        cfg.paths.output_dir = f"/tmp/deeponet_speed_{setup}"
        callbacks += _instantiate_all(cfg.callbacks)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1,
                        logger=False, enable_checkpointing=with_callbacks,
                        enable_progress_bar=with_callbacks, enable_model_summary=False,
                        limit_val_batches=1.0 if with_callbacks else 0, callbacks=callbacks)
    wall = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall = time.perf_counter() - wall
    row = {"setup": setup, "framework": "opnet+lightning", "iterations": trainer.global_step,
           "it_per_s": round(trainer.global_step / clock.seconds, 1),
           "fit_seconds": round(clock.seconds, 2), "wall_seconds": round(wall, 2),
           "batches_per_step": trainer.train_dataloader.group, "callbacks": with_callbacks,
           "params": sum(p.numel() for p in module.model.parameters()),
           "threads": torch.get_num_threads()}
    batch = next(iter(datamodule.train_dataloader()))
    batch = batch[0] if isinstance(batch, list) else batch
    if bare_steps:
        row["bare_pytorch_it_per_s"] = round(_bare_loop(module, batch, bare_steps), 1)
    if setup == "antiderivative":
        datamodule.setup("test")
        results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        row.update({"test_mse": results["test/mse"], "test_rel_l2": results["test/rel_l2"],
                    "deepxde_it_per_s": DEEPXDE_IT_PER_S, "deepxde_test_rel_l2": 0.024,
                    "speedup_vs_deepxde": round(row["it_per_s"] / DEEPXDE_IT_PER_S, 2)})
    return row


def deepxde_row(python: str, root: str, steps: int) -> dict:
    """DeepXDE's example on ``{root}/antiderivative_150`` (exported to npz), in ``python``."""
    import numpy as np

    from opnet.data import h5

    folder = Path(root) / "antiderivative_150"
    arrays = {}
    for split in ("train", "test"):
        with h5.open_split(h5.split_path(folder, split)) as f:
            arrays[f"u_{split}"] = f["inputs/u"][()]
            arrays[f"s_{split}"] = f["outputs/s"][()]
            arrays["y"] = f["coords/query"][()].reshape(-1, 1)
    script = Path(__file__).with_name("deepxde_antiderivative.py")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "antiderivative.npz"
        np.savez(data, **arrays)
        env = dict(os.environ, DDE_BACKEND="pytorch")
        out = subprocess.run([python, str(script), str(data), "--iterations", str(steps)],
                             capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(f"{python} {script} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--steps", type=int, default=10000, help="antiderivative iterations")
    parser.add_argument("--burgers-steps", type=int, default=1000)
    parser.add_argument("--bare-steps", type=int, default=2000,
                        help="iterations of the bare PyTorch loop (0: skip it)")
    parser.add_argument("--batches-per-step", type=int, default=None,
                        help="override data.batches_per_step (iterations per Lightning step)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--with-callbacks", action="store_true",
                        help="the experiment's callbacks (checkpoints, progress bar, ...) and "
                             "validation every epoch, as train.py runs it")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--deepxde-python", default=None,
                        help="an interpreter with deepxde installed: time its example too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    for setup in args.setups:
        steps = args.steps if setup == "antiderivative" else args.burgers_steps
        compare = args.deepxde_python and setup == "antiderivative"
        theirs = [deepxde_row(args.deepxde_python, args.data_root, steps)] if compare else []
        row = run(setup, steps, args.data_root, args.with_callbacks, args.batches_per_step,
                  args.bare_steps if setup == "antiderivative" else min(args.bare_steps, 200))
        if compare:
            theirs.append(deepxde_row(args.deepxde_python, args.data_root, steps))
            for r in theirs:
                print(json.dumps(r), flush=True)
            rate = sum(r["it_per_s"] for r in theirs) / len(theirs)
            row.update({"deepxde_it_per_s": round(rate, 1),
                        "deepxde_test_rel_l2": theirs[-1]["test_rel_l2"],
                        "speedup_vs_deepxde": round(row["it_per_s"] / rate, 2)})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
