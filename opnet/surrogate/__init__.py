"""Trained operators as fast surrogates: ``load_operator(ckpt).predict(a)`` for grid operators,
``load_operator(ckpt).predict(u_sensors, query_points)`` for DeepONets,
``load_operator(ckpt).predict(t_in, u_in, skeleton)`` for PROSE (values and the equation).

Works from the checkpoint alone (no Hydra, no dataset): the ``operator`` block holds the
model class and kwargs, the data description, and the normalizer buffers are in the
``state_dict``. Loads with ``torch.load(weights_only=True)``, checks the tensors' digest and
that the model class is opnet's (:mod:`opnet.checkpoint`). One module per family; every
``predict`` takes physical (un-normalised) inputs, refuses NaN/Inf by default
(``nonfinite=``), names ``batch_size`` when out of memory, and returns physical outputs.
"""

from opnet.checkpoint import CheckpointError, read_checkpoint
from opnet.surrogate.deeponet import DeepONetSurrogate
from opnet.surrogate.grid import Surrogate
from opnet.surrogate.load import load_operator, operator_block
from opnet.surrogate.prose import ProsePrediction, ProseSurrogate
from opnet.surrogate.uncertainty import Bands, Ensemble, calibrate

__all__ = ["Bands", "CheckpointError", "DeepONetSurrogate", "Ensemble", "ProsePrediction",
           "ProseSurrogate", "Surrogate", "calibrate", "load_operator", "operator_block",
           "read_checkpoint"]
