"""Training-step speed of MgNO (Darcy-rough config: 4 layers, width 24, 6 levels).

One step = forward + relative-MSE loss + backward + Adam step, batch 8, float32 (or bf16
autocast with ``--precision bf16``), on the CPU or ``--device cuda``. Prints one JSON line
per resolution with the median (and the minimum, which is steadier on a shared machine)
over ``--steps`` timed steps.

    python benchmarks/mgno_speed.py [--resolutions 64 128] [--batch 8] [--steps 10] [--threads N]
                                    [--device cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence

import torch
from timing import time_steps  # the shared timed-step loop (benchmarks/ is on sys.path)
from torch import nn

from opnet.models.mgno import MgNO


def time_train_step(model: nn.Module, resolution: int, batch: int = 8, steps: int = 10,
                    warmup: int = 3, seed: int = 0, device: str = "cpu",
                    precision: str = "fp32") -> list[float]:
    """Seconds of each timed fwd + loss + bwd + Adam step on a fixed [batch, 1, r, r] batch."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, resolution, resolution, generator=gen).to(device)
    y = torch.randn(batch, 1, resolution, resolution, generator=gen).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-4,
                           weight_decay=1e-4)

    def relative_mse() -> torch.Tensor:
        pred = model(x).float()
        return ((pred - y).pow(2).sum(dim=(1, 2, 3)) / y.pow(2).sum(dim=(1, 2, 3))).sum()

    return time_steps(opt, relative_mse, device, precision, warmup, steps)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MgNO(in_channels=1, out_channels=1, width=24, layers=4,
                 smoothing=[[1, 0]] * 5 + [[2, 0]]).to(args.device)
    params = sum(p.numel() for p in model.parameters())
    for res in args.resolutions:
        times = time_train_step(model, res, args.batch, args.steps, args.warmup,
                                device=args.device, precision=args.precision)
        sec = statistics.median(times)
        print(json.dumps({"benchmark": "mgno_train_step", "resolution": res,
                          "batch": args.batch, "seconds_per_step": round(sec, 4),
                          "samples_per_second": round(args.batch / sec, 2), "params": params,
                          "threads": torch.get_num_threads(), "device": args.device,
                          "precision": args.precision,
                          "min_seconds_per_step": round(min(times), 4)}), flush=True)


if __name__ == "__main__":
    main()
