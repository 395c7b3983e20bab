"""A run folder of its own for every ``python train.py``: ``${run_id:}`` in ``hydra.run.dir``.

``${now:...}`` alone gives runs started in the same second (a parallel sweep, a SLURM array,
two terminals) one folder, one ``last.ckpt`` and one ``metrics.json``. ``run_id`` adds six
random hex digits, drawn once per process (every resolution of ``hydra.run.dir`` in one
process agrees), so two processes collide with probability 2**-24 per pair and second.
"""

from __future__ import annotations

import secrets

from omegaconf import OmegaConf

_RUN_ID: str | None = None


def run_id() -> str:
    """Six random hex digits, the same for the whole process."""
    global _RUN_ID
    if _RUN_ID is None:
        _RUN_ID = secrets.token_hex(3)
    return _RUN_ID


def register_resolvers() -> None:
    """Register ``${run_id:}`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("run_id"):
        # use_cache: the value is kept in the config's resolver cache, which Hydra copies
        # into every job of a sweep (also to submitit/joblib processes), as for ${now:}
        OmegaConf.register_new_resolver("run_id", run_id, use_cache=True)
