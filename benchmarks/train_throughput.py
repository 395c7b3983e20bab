"""Training throughput of each model family through Lightning: float32 and bf16-mixed, with
and without torch.compile. One JSON line per run: samples/s, steps/s, peak memory.

    python benchmarks/train_throughput.py [--device cuda] [--models mgno deeponet prose]
        [--precisions 32-true bf16-mixed] [--compile both|on|off] [--steps 50]
        [--size full|reduced] [--data-root data/throughput]

``--size full`` (the GPU check): MgNO (Darcy, 572,661 params) on 64x64 Darcy batch 16,
DeepONet (paper antiderivative network, full batch of 1000 functions x 100 points), PROSE
(paper size, 104 M params) batch 32. ``--size reduced`` (CPU, tested): tiny networks and data.
Each run: ``--warmup`` steps (compilation happens there), then ``--steps`` timed steps
(CUDA synchronised at both ends); DeepONet's steps are optimizer iterations, 50 per
``--steps`` (it runs 50 per Lightning step: a step of 7,401 parameters is tiny). Peak
memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak resident set on the
CPU. Data are generated once into
``--data-root``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
import warnings
from collections.abc import Sequence

import lightning as L
import torch

SIZES = {
    "full": {
        "mgno": ["data=darcy64", "model=mgno", "data.batch_size=16", "module.scheduler.name=none",
                 "data.generate.n_train=512", "data.generate.n_val=16",
                 "data.generate.n_test=16", "data.generate.workers=8"],
        "deeponet": ["experiment=deeponet_antiderivative", "~extra_tests.chebyshev"],
        "prose": ["experiment=prose_ode_unknown3d", "data.batch_size=32",
                  "data.generate.n_train=2048", "data.generate.n_val=64",
                  "data.generate.n_test=64", "data.generate.workers=8"],
    },
    "reduced": {
        "mgno": ["data=darcy32", "model=mgno_small", "model.width=8", "model.layers=2",
                 "module.scheduler.name=none",
                 "model.smoothing=[[1,0],[1,0],[1,0]]", "data.batch_size=8",
                 "data.generate.pde.resolution=16", "data.generate.n_train=32",
                 "data.generate.n_val=8", "data.generate.n_test=8"],
        "deeponet": ["experiment=deeponet_antiderivative", "~extra_tests.chebyshev",
                     "data.generate.n_train=64", "data.generate.n_val=8",
                     "data.generate.n_test=8"],
        "prose": ["experiment=prose_ode_cpu", "model.dim=32", "model.heads=4", "model.ffn=64",
                  "model.data_encoder_layers=1", "model.symbol_encoder_layers=1",
                  "model.fusion_layers=1", "model.data_decoder_layers=1",
                  "model.symbol_decoder_layers=1", "data.batch_size=8",
                  "data.generate.n_train=64", "data.generate.n_val=8",
                  "data.generate.n_test=8", "data.generate.pde.ics_per_equation=4",
                  "data.generate.pde.eval_ics_per_equation=2", "data.eval_batch_size=8",
                  "data.steps_per_epoch=10"],
    },
}


class _Clock(L.Callback):
    """Seconds from the end of step ``warmup`` to the end of training (synchronised)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.first_step = warmup, None, None, None

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is None and trainer.global_step >= self.warmup:
            self._sync(pl_module)
            self.start, self.steps_at_start = time.perf_counter(), trainer.global_step
            self.first_step = self.start - self.t0

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.seconds = time.perf_counter() - self.start
        self.steps = trainer.global_step - self.steps_at_start


def _batch_size(datamodule) -> int:
    size = getattr(datamodule, "batch_size", None)
    if size is None and hasattr(datamodule, "splits"):  # DeepONet full batch
        size = len(datamodule.splits["train"])
    return int(size)


def run(model: str, precision: str, compiled: bool, device: str, steps: int, warmup: int,
        size: str, data_root: str) -> dict:
    from hydra.utils import instantiate

    from opnet.config import train_config
    from opnet.training.compile import maybe_compile
    from opnet.training.job import _quiet_lightning, build_module

    _quiet_lightning()
    if model == "deeponet":  # iterations, 50 per Lightning step
        steps, warmup = 50 * steps, 50 * max(warmup, 1)
    overrides = [*SIZES[size][model], f"paths.data_dir={data_root}/{size}"]
    cfg = train_config(*overrides, output_dir="/tmp/opnet_throughput")
    L.seed_everything(0, verbose=False)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    did_compile = maybe_compile(module.model, compiled, "cuda" if device == "cuda" else "cpu")
    clock = _Clock(warmup)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                        precision=precision, max_steps=warmup + steps, max_epochs=-1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[clock],
                        gradient_clip_val=cfg.trainer.get("gradient_clip_val"))
    trainer.fit(module, datamodule=datamodule)
    batch = _batch_size(datamodule)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "size": size, "device": device,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "precision": precision, "compile": did_compile, "batch": batch,
            "params": sum(p.numel() for p in module.model.parameters()),
            "steps": clock.steps, "seconds": round(clock.seconds, 3),
            "steps_per_s": round(clock.steps / clock.seconds, 2),
            "samples_per_s": round(clock.steps * batch / clock.seconds, 1),
            "warmup_seconds": round(clock.first_step, 2), "peak_mem_mib": round(peak, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", nargs="+", default=["mgno", "deeponet", "prose"],
                        choices=["mgno", "deeponet", "prose"])
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--compile", default="both", choices=["both", "on", "off"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--size", default=None, choices=["full", "reduced"],
                        help="default: full on cuda, reduced on cpu")
    parser.add_argument("--data-root", default="data/throughput")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    size = args.size or ("full" if args.device == "cuda" else "reduced")
    compiles = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
    for model in args.models:
        for precision in args.precisions:
            for compiled in compiles:
                try:
                    row = run(model, precision, compiled, args.device, args.steps,
                              args.warmup, size, args.data_root)
                except Exception as err:  # noqa: BLE001 - report and go on to the next run
                    row = {"model": model, "precision": precision, "compile": compiled,
                           "error": f"{type(err).__name__}: {err}"[:500]}
                print(json.dumps(row), flush=True)
                if args.device == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
