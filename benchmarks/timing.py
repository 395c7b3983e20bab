"""The timed training-step loop shared by the speed benchmarks (benchmarks/ is on sys.path
when a benchmark script runs)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def time_steps(opt: torch.optim.Optimizer, compute_loss: Callable[[], torch.Tensor],
               device: str = "cpu", precision: str = "fp32", warmup: int = 3,
               steps: int = 10) -> list[float]:
    """Seconds of each of ``steps`` timed iterations (after ``warmup``) of zero_grad +
    ``compute_loss()`` (under bf16 autocast when ``precision="bf16"``) + backward + step,
    CUDA-synchronised around each."""
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = compute_loss()
        loss.backward()
        opt.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times
