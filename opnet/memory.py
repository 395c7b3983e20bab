"""How much memory this process may use: the machine's RAM and what is still available
under the system's, the cgroup's and the address-space limits.

A leaf: standard library only, so both the data-generation checks (:mod:`data_gen.checks`)
and the datamodules (:mod:`opnet.data.datamodule`) import it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

UNKNOWN_PHYSICAL = 1 << 40  # bytes of RAM assumed where the system does not say (1 TiB)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def physical_memory() -> int:
    """Bytes of RAM of the machine (``UNKNOWN_PHYSICAL``, 1 TiB, where the system does not
    say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return UNKNOWN_PHYSICAL


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of the system's ``MemAvailable``,
    the headroom under a cgroup (v2) memory limit and under an address-space limit
    (``RLIMIT_AS``); None where none of them is known (not Linux)."""
    found: list[int] = []
    meminfo = _read("/proc/meminfo") or ""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            found.append(int(line.split()[1]) * 1024)
    limit, used = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and used and limit.strip().isdigit() and used.strip().isdigit():
        found.append(int(limit) - int(used))
    try:
        import resource

        cap, unlimited = resource.getrlimit(resource.RLIMIT_AS)[0], resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):
        cap = unlimited = -1
    if cap != unlimited and cap > 0:
        status = _read("/proc/self/status") or ""
        size = [int(line.split()[1]) * 1024 for line in status.splitlines()
                if line.startswith("VmSize:")]
        found.append(cap - (size[0] if size else 0))
    return max(0, min(found)) if found else None
