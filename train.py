"""Train an operator: ``python train.py [experiment=...] [model=...] [data=...] [trainer=gpu]``.

With no arguments: generates a small 32x32 Darcy dataset (cached in data/), trains a small
MgNO on the CPU for a few minutes and prints the test error and where the checkpoint and
TensorBoard logs are. A thin Hydra entry over :func:`opnet.training.train`.
"""

import hydra
from omegaconf import DictConfig

from opnet.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
