"""Training: the LightningModule, losses, and the ``train(cfg)`` job behind ``train.py``.

``train`` and ``ConfigError`` are imported lazily so that loading a surrogate (which needs
only :mod:`opnet.training.module`) does not import Hydra.
"""

from opnet.training.module import OperatorModule

__all__ = ["ConfigError", "OperatorModule", "train"]


def __getattr__(name: str):
    if name in ("train", "ConfigError"):
        from opnet.training import job

        return getattr(job, name)
    raise AttributeError(f"module 'opnet.training' has no attribute '{name}'")
