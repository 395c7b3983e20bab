"""Reusable network layers shared by the model families: activations and initialisers,
grouped linear maps and MLPs, N-D spectral convolution, Fourier features, a CNN encoder,
node-grid resampling.

Pure torch; imports no training code.
"""

from opnet.models.layers.cnn import CNNBranch
from opnet.models.layers.features import FourierFeatures
from opnet.models.layers.mlp import (
    ACTIVATIONS,
    INITIALIZERS,
    GroupedLinear,
    GroupedMLP,
    Sin,
    activation,
    check_initializer,
    initialize,
)
from opnet.models.layers.resample import resample_nodes
from opnet.models.layers.spectral import SpectralConv, SpectralConv2d

__all__ = ["ACTIVATIONS", "INITIALIZERS", "CNNBranch", "FourierFeatures", "GroupedLinear",
           "GroupedMLP", "Sin", "SpectralConv", "SpectralConv2d", "activation",
           "check_initializer", "initialize", "resample_nodes"]
