"""Train an operator: ``python train.py [experiment=...] [model=...] [data=...] [trainer=gpu]``.

With no arguments: generates a small 32x32 Darcy dataset (cached in data/), trains a small
MgNO on the CPU for a few minutes and prints the test error and where the checkpoint and
TensorBoard logs are. The same command as the installed ``opnet-train`` (any working
directory): :func:`opnet.train_cli.main`, a thin Hydra entry over :func:`opnet.training.train`;
bad input (a typo'd key, a missing dataset or checkpoint, ...) is one line ``error: ...`` on
stderr with exit code 2 (``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from opnet.train_cli import main

if __name__ == "__main__":
    main()
