"""PDE/ODE data generators writing opnet HDF5 datasets.

``data_gen.generate(pde="darcy", out="data/darcy64", n_train=1000, resolution=64)`` is
the Python form of ``python -m data_gen pde=darcy resolution=64 out=data/darcy64``.
"""

from data_gen.merge import merge
from data_gen.runner import GenerationError, GenerationSummary, generate

__all__ = ["GenerationError", "GenerationSummary", "generate", "merge"]
