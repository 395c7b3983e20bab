"""Training: the LightningModules, losses, and the ``train(cfg)`` job behind ``train.py``.

``train`` is imported lazily so that loading a surrogate (which needs only the modules)
does not import Hydra.
"""

from opnet.run_dir import register_resolvers
from opnet.training.deeponet_module import DeepONetModule
from opnet.training.module import ConfigError, OperatorModule
from opnet.training.prose_module import ProseModule

register_resolvers()  # ${run_id:} in conf/train.yaml's run folders

__all__ = ["ConfigError", "DeepONetModule", "OperatorModule", "ProseModule", "train"]


def __getattr__(name: str):
    if name == "train":
        from opnet.training import job

        return job.train
    raise AttributeError(f"module 'opnet.training' has no attribute '{name}'")
