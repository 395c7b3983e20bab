"""How many torch threads a job uses: the cores it may use, what the model can use, and how
busy the machine is; ``threads=N`` overrides. The one place every entry point goes through.

Torch takes all the machine's cores by default (not the job's: affinity, cgroup quota and
SLURM allocations are ignored), and its OpenMP threads spin while they wait: beside another
job on a 2-core machine a small model ran 7x slower with 2 threads than with 1. Measured on
a 2-core machine (MgNO small, 32x32 Darcy, batch 8, one training step, min of 3 x 40): quiet,
1 thread 35.5 ms, 2 threads 29.6-37 ms (<= 1.2x for twice the CPU); at 64x64 2 threads are
1.5x faster, at 128x128 1.8x, at 16x16 (width 8) 1.15x slower. Beside a competing 2-thread job
1 thread took 74 ms, 2 threads 120-1850 ms.

* :func:`available_cores`: affinity, cgroup v1/v2 CPU quota, ``SLURM_CPUS_PER_TASK``.
* :func:`default_threads`: at most those, at most ``work / WORK_PER_THREAD`` (see
  :func:`grid_work`), and on a busy machine at most its idle cores (1-minute load average
  minus this process), so under heavy load 1.
* :func:`configure_threads`: ``threads`` (an int >= 1) or the default -> ``torch``.
* :func:`prepare_openmp`: called before torch is imported; on a machine already busy at
  start it sets a passive OpenMP wait policy (``OMP_WAIT_POLICY=PASSIVE``, and
  ``KMP_BLOCKTIME=0`` for Intel's runtime) unless the user set one. On a quiet machine it
  leaves the spinning default: PASSIVE made the quiet 2-thread step 2-3x slower (30 ->
  63-90 ms), while beside a competing job it helped an explicit ``threads=2`` (1408 -> 442 ms).

A leaf: standard library only at import (torch is imported inside the functions).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["available_cores", "configure_threads", "default_threads", "grid_work",
           "machine_load", "openmp_settings", "prepare_openmp", "train_work"]

log = logging.getLogger(__name__)

#: Where the cgroup CPU controller is mounted (tests point it at a folder of fake files).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Per-step work (batch x grid points x channels, :func:`grid_work`) worth one more thread:
#: MgNO small on 32x32 Darcy, batch 8 (131,072) gains <= 1.2x from a 2nd thread, on 64x64
#: (524,288) 1.5x. Work below 2 x this keeps 1 thread.
WORK_PER_THREAD = 2.0**18
KINDS = ("train", "evaluate", "generate", "predict")
# wait-policy variables the user may already have set (any of them: theirs wins)
_WAIT_VARS = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")
_configured: int | None = None  # what configure_threads last set in this process


def _cgroup_quota(root: Path | None = None) -> int | None:
    """CPUs allowed by the cgroup CPU quota (ceil of quota / period), None when unlimited
    or unreadable. v2: ``cpu.max`` ("max 100000" or "200000 100000"); v1:
    ``cpu/cpu.cfs_quota_us`` (-1: none) and ``cpu/cpu.cfs_period_us``."""
    root = CGROUP_ROOT if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        try:
            quota = int((root / folder / "cpu.cfs_quota_us").read_text())
            period = int((root / folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    return None


def _slurm_cpus() -> int | None:
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else None


def available_cores() -> int:
    """Cores this process may use: the smallest of its CPU affinity (else ``os.cpu_count``),
    the cgroup CPU quota and ``SLURM_CPUS_PER_TASK``; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    for limit in (_cgroup_quota(), _slurm_cpus()):
        if limit is not None:
            cores = min(cores, limit)
    return max(1, cores)


def _own_load() -> float:
    """This process's share of the 1-minute load average: its mean CPU use since it started
    (Linux ``/proc``; 0 elsewhere), weighted by how much of the last minute it has run."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        elapsed = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
    if elapsed <= 0:
        return 0.0
    return time.process_time() / elapsed * (1.0 - math.exp(-elapsed / 60.0))


def machine_load() -> float:
    """1-minute load average of the machine minus this process (>= 0; 0 where unknown)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    return max(0.0, load - _own_load())


def _idle_cores(load: float) -> int:
    """Cores of the whole machine that the others leave idle (rounded), at least 1."""
    return max(1, round((os.cpu_count() or 1) - load))


def grid_work(batch_size: int | None, grid: int | tuple[int, ...] | None,
              channels: int | None) -> float | None:
    """Per-step work estimate of a grid operator: ``batch x grid points x channels`` (None
    when a part is unknown), the ``work`` argument of :func:`default_threads`."""
    if not batch_size or not grid or not channels:
        return None
    points = math.prod(grid) if isinstance(grid, tuple | list) else int(grid) ** 2
    return float(batch_size) * points * float(channels)


def train_work(cfg: Mapping[str, Any]) -> float | None:
    """:func:`grid_work` of a training config: ``data.batch_size``, the generated grid
    ``data.generate.pde.resolution`` (over ``data.stride``) and ``model.width``; None when
    the config does not say (another model family, a dataset of its own)."""
    try:
        data, model = cfg.get("data") or {}, cfg.get("model") or {}
        generate = data.get("generate") or {}
        resolution = (generate.get("pde") or {}).get("resolution")
        stride = data.get("stride") or 1
        grid = None if not isinstance(resolution, int) else -(-resolution // int(stride))
        return grid_work(data.get("batch_size"), grid, model.get("width"))
    except (AttributeError, TypeError, ValueError):  # a field that is not what it seems
        return None


def default_threads(kind: str = "train", work: float | None = None) -> int:
    """The automatic thread count for a ``kind`` job (train, evaluate, generate, predict):
    at most :func:`available_cores`, at most ``work / WORK_PER_THREAD`` (``work`` from
    :func:`grid_work`; None: no such limit) and at most the machine's idle cores."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {list(KINDS)}")
    threads = min(available_cores(), _idle_cores(machine_load()))
    if work is not None:
        threads = min(threads, max(1, int(work // WORK_PER_THREAD)))
    return max(1, threads)


def _checked(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r}: expected an integer >= 1, or null (automatic)")
    return threads


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def configure_threads(threads: int | None = None, kind: str = "train",
                      work: float | None = None, keep: bool = False) -> int:
    """Set torch's intra-op threads (and inter-op threads where torch still allows it) to
    ``threads``, or when None to ``OMP_NUM_THREADS`` if the user set it, else to
    :func:`default_threads`; logs one line and returns the number. ``keep``: with
    ``threads=None``, leave a count an earlier call in this process set (``load_operator``
    inside ``evaluate``)."""
    global _configured
    import torch

    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {list(KINDS)}")
    if threads is None and keep and _configured is not None:
        return torch.get_num_threads()
    load = machine_load()
    if threads is not None:
        chosen, why = _checked(threads), "threads="
    elif _env_threads() is not None:
        chosen, why = _env_threads(), "OMP_NUM_THREADS"
    else:
        chosen, why = default_threads(kind, work), "automatic"
    torch.set_num_threads(chosen)
    try:  # allowed once, before any inter-op work started
        torch.set_num_interop_threads(chosen)
    except RuntimeError:
        pass
    _configured = chosen
    log.info("threads: %d (%d cores available, load %.1f; %s)", chosen, available_cores(),
             load, why)
    return chosen


def _intel_openmp() -> bool:
    """Whether the torch install ships Intel's OpenMP runtime (libiomp5) rather than GNU's
    libgomp (torch's Linux wheels), looked up on ``sys.path`` without importing torch."""
    for entry in sys.path:
        lib = Path(entry or ".") / "torch" / "lib"
        if lib.is_dir():
            return any(lib.glob("libiomp5*"))
    return False


def openmp_settings() -> dict[str, str]:
    """The OpenMP wait policy to set before torch is imported: a passive one on a machine
    already busy (fewer idle cores than this process may use), nothing on a quiet one, where
    the user set OMP_WAIT_POLICY / KMP_BLOCKTIME / GOMP_SPINCOUNT, or once torch is loaded
    (OpenMP read its settings then)."""
    if "torch" in sys.modules or any(v in os.environ for v in _WAIT_VARS):
        return {}
    if _idle_cores(machine_load()) >= available_cores():
        return {}
    settings = {"OMP_WAIT_POLICY": "PASSIVE"}  # libgomp (torch's Linux wheels): no spinning
    if _intel_openmp():
        settings["KMP_BLOCKTIME"] = "0"
    return settings


def prepare_openmp() -> dict[str, str]:
    """Put :func:`openmp_settings` into ``os.environ``; returns them. Entry points do this
    first, before their imports load torch::

        os.environ.update(openmp_settings())  # (ruff allows imports after this line)
    """
    settings = openmp_settings()
    os.environ.update(settings)
    return settings
