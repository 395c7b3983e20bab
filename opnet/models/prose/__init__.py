"""PROSE (Liu, Zhang & Schaeffer, "Predicting Operators and Symbolic Expressions using
Multimodal Transformers", arXiv 2309.16816; Neural Networks 180, 106707, 2024), following
the official ``felix-lyx/prose`` ``prose_ode`` code with its fusion-mask fix (0771b9f).

Modules: :mod:`~opnet.models.prose.layers` (attention on ``scaled_dot_product_attention``,
FFN, post-/pre-LN blocks, stacks), :mod:`~opnet.models.prose.encoders` (data embedder, data
encoder, symbol encoder), :mod:`~opnet.models.prose.fusion`,
:mod:`~opnet.models.prose.decoders` (data decoder, symbol decoder with KV-cached greedy
decoding), :mod:`~opnet.models.prose.model` (:class:`PROSE`).

Parameter counts (trainable; the fixed sinusoidal positions are buffers, as the reference
counts them), max_dim = 3, post-LN:

================  =========================  ===========  ===========
module            structure                  V = 1072     V = 1068
================  =========================  ===========  ===========
embedder          Linear(4, d), Linear(d, d)      265,216      265,216
symbol encoder    emb + LN + 4 layers          13,159,424   13,157,376
symbol decoder    emb + LN + 8 x-layers + b    34,183,216   34,181,164
data encoder      LN + 2 layers                 6,305,792    6,305,792
data decoder      Linear(1,d) + LN + 8 + head  25,222,659   25,222,659
fusion            modality(2) + LN + 8 layers  25,221,120   25,221,120
total                                         104,357,427  104,353,327
================  =========================  ===========  ===========

(d = 512; a self-attention layer is 4d^2 + 4d + FFN 2*d*4d + 5d + 2 LN*2d = 3,152,384, a
decoder layer with cross-attention 4,204,032.) At max_dim = 5 the reference has
104,361,527 (V = 1074). :data:`SMALL` (d = 128, 2 layers per stack) has 2,410,163 / 2,409,135;
``norm_first=True`` adds one final LayerNorm per stack (+5 x 2d).
"""

from opnet.models.prose.decoders import DataDecoder, Generated, SymbolDecoder
from opnet.models.prose.encoders import DataEmbedder, DataEncoder, SymbolEncoder
from opnet.models.prose.fusion import Fusion
from opnet.models.prose.model import PAPER, PROSE, SMALL, Encoded

__all__ = ["PAPER", "PROSE", "SMALL", "DataDecoder", "DataEmbedder", "DataEncoder", "Encoded",
           "Fusion", "Generated", "SymbolDecoder", "SymbolEncoder"]
