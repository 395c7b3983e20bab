"""Train an operator from any working directory: ``opnet-train [experiment=...] [model=...]
[data=...] [trainer=gpu]`` (installed console script), ``python -m opnet.train_cli ...`` or,
in the repository, ``python train.py ...`` (a wrapper over :func:`main`).

With no arguments: generates a small 32x32 Darcy dataset (cached in data/), trains a small
MgNO on the CPU for a few minutes and prints the test error and where the checkpoint and
TensorBoard logs are. A thin Hydra entry over :func:`opnet.training.train` with the configs
shipped in the package (:data:`opnet.config.CONF`); bad input (a typo'd key, a missing
dataset or checkpoint, ...) is one line ``error: ...`` on stderr with exit code 2
(``HYDRA_FULL_ERROR=1`` shows the traceback).

Light on import (no torch, no Hydra), which sets the OpenMP wait policy before torch loads.
"""

from __future__ import annotations

import logging
import os
import sys

from opnet.config import CONF
from opnet.threads import openmp_settings

__all__ = ["main"]

# before torch loads (opnet.training in main): a passive OpenMP wait policy on a busy machine
os.environ.update(openmp_settings())


def _lightning_info_to_stdout() -> None:
    """Lightning, imported before logging is configured, prints its notices ("Seed set to
    0", "GPU available: ...") through its own stderr handler: send them to stdout, so that
    stderr holds warnings and errors only (an error is then one line there)."""
    for name in ("lightning.fabric", "lightning.pytorch"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler and handler.stream is sys.stderr:
                handler.setStream(sys.stdout)


def main() -> None:
    """The command line (``sys.argv``) -> one training run or a Hydra multirun."""
    import hydra
    from omegaconf import DictConfig

    from opnet.cli import checked_overrides, run_reporting_errors
    from opnet.training import train

    # conf/train.yaml names the job "train" (train.log, --help), whichever file calls this
    @checked_overrides("train", CONF)  # a typo'd key: one line with the nearest key, exit 2
    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="train")
    def app(cfg: DictConfig) -> None:
        _lightning_info_to_stdout()
        run_reporting_errors(train, cfg)

    app()


if __name__ == "__main__":
    main()
