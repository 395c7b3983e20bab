"""Training-step speed and peak memory of the MgNO variants at their reference resolutions.

One step = forward + relative-MSE loss + backward + Adam step on a fixed [batch, 1, r, r]
batch, float32 or bf16 autocast. Prints one JSON line per (variant, resolution):
``{"benchmark": "mgno_variant", "variant", "resolution", "batch", "params",
"samples_per_second", "seconds_per_step", "peak_memory_mb", "memory_method", ...}``.

Peak memory: CUDA ``torch.cuda.max_memory_allocated`` (tensors only); CPU the growth of the
process's max RSS (``resource.getrusage``) over the run, measured in a fresh child process per
case (``--no-isolate`` runs in-process, where only new high-water marks show).

    python benchmarks/mgno_variants.py [--variants darcy_rough ns2 ...] [--batch 8]
                                       [--steps 10] [--device cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from mgno_speed import time_train_step  # the one timed-step loop (benchmarks/ is on sys.path)

from opnet.models.mgno import DARCY_SMOOTHING, HELMHOLTZ, HELMHOLTZ_OFFICIAL, NS2_OFFICIAL, MgNO

#: name -> (MgNO kwargs, reference resolutions)
VARIANTS: dict[str, tuple[dict[str, Any], list[int]]] = {
    "darcy_rough": ({"width": 24, "layers": 4, "smoothing": DARCY_SMOOTHING}, [64, 128]),
    "darcy_smooth": ({"width": 24, "layers": 5, "smoothing": DARCY_SMOOTHING,
                      "prolongation_kernels": [3, 4, 3, 3, 4]}, [211]),
    "ns2": (NS2_OFFICIAL, [64]),
    "helmholtz": (HELMHOLTZ_OFFICIAL, [101]),
    "helmholtz_group": (HELMHOLTZ, [101]),
}


def run_case(variant: str, resolution: int, batch: int, steps: int, warmup: int,
             device: str, precision: str, threads: int | None) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) of one variant; returns the JSON row."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    torch.manual_seed(0)
    kwargs = dict(VARIANTS[variant][0])
    if kwargs.get("norm_resolution") is not None:  # per-pixel LayerNorms: built for this grid
        kwargs["norm_resolution"] = [resolution, resolution]
    model = MgNO(**kwargs).to(dev)
    params = sum(p.numel() for p in model.parameters())
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    times = time_train_step(model, resolution, batch, steps, warmup, device=device,
                            precision=precision)
    if cuda:
        peak_mb, method = torch.cuda.max_memory_allocated(dev) / 2**20, "cuda_max_allocated"
    else:
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb, method = (rss1 - rss0) / 1024, "max_rss_delta"
    sec = statistics.median(times)
    return {"benchmark": "mgno_variant", "variant": variant, "resolution": resolution,
            "batch": batch, "params": params, "samples_per_second": round(batch / sec, 2),
            "seconds_per_step": round(sec, 4), "min_seconds_per_step": round(min(times), 4),
            "steps": steps, "peak_memory_mb": round(peak_mb, 1), "memory_method": method,
            "device": device, "precision": precision, "threads": torch.get_num_threads()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--resolutions", type=int, nargs="+", default=None,
                        help="override the reference resolutions (per-pixel LayerNorms are "
                             "then built for that grid)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--no-isolate", action="store_true",
                        help="CPU: run every case in this process (RSS deltas under-count)")
    args = parser.parse_args(argv)
    isolate = torch.device(args.device).type == "cpu" and not args.no_isolate
    ctx = mp.get_context("spawn")
    for variant in args.variants:
        for res in args.resolutions or VARIANTS[variant][1]:
            case = (variant, res, args.batch, args.steps, args.warmup, args.device,
                    args.precision, args.threads)
            if isolate:
                with ctx.Pool(1) as pool:
                    row = pool.apply(run_case, case)
            else:
                row = run_case(*case)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
