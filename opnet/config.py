"""Compose the Hydra configs of ``train.py`` from Python (scripts, notebooks, tests).

    from opnet.config import train_config
    from opnet.training import train

    cfg = train_config("experiment=deeponet_antiderivative", "trainer.max_steps=5000",
                       output_dir="outputs/my_run")
    metrics = train(cfg)

The same overrides as on the command line; ``output_dir`` replaces the run folder that
``python train.py`` gets from Hydra (``outputs/<task>/<time>``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONF = Path(__file__).resolve().parent / "conf"
"""Every Hydra config (training, data generation, evaluation): package data, so an installed
wheel finds it from any working directory; ``conf/`` at the repository root links here."""


def train_config(*overrides: str, output_dir: str | os.PathLike | None = None) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides`` as ``python train.py`` would, with
    ``paths.output_dir=output_dir`` when given (needed outside a Hydra app to train)."""
    from hydra import compose, initialize_config_dir

    from opnet.run_dir import register_resolvers

    register_resolvers()  # ${run_id:} and the others conf/train.yaml uses
    extra = [] if output_dir is None else [f"paths.output_dir={Path(output_dir).resolve()}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[*overrides, *extra])
