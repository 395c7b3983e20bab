"""What scoring a generated expression needs, shared by the PROSE metrics
(:mod:`opnet.training.prose_metrics`) and the surrogate's validity check
(:class:`opnet.surrogate.ProseSurrogate`): decoding generated ids and the fixed points at
which expressions are compared. Numpy and the vocabulary only (no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from opnet.symbolic.prefix import decode
from opnet.symbolic.tree import Expr, SymbolicError
from opnet.symbolic.vocabulary import Vocabulary

N_POINTS, BOX = 50, 5.0
"""Expression-error points: 50 uniform in [−5, 5]^d (PROSE §5)."""


def decode_ids(ids: Sequence[int] | Tensor | np.ndarray, vocab: Vocabulary
               ) -> tuple[Expr | None, list[str], str | None]:
    """Generated ids (``<BOS>`` optional, up to ``<EOS>``/``<PAD>``) -> (expression or None,
    tokens, why it does not decode)."""
    try:
        tokens = vocab.strip(vocab.decode(ids))
    except SymbolicError as err:
        return None, [], str(err)
    try:
        return decode(tokens), tokens, None
    except SymbolicError as err:
        return None, tokens, str(err)


def expression_points(d: int, n: int = N_POINTS, seed: int = 0, box: float = BOX
                      ) -> np.ndarray:
    """The ``n`` points uniform in [−box, box]^d at which expressions of dimension ``d`` are
    compared: float64 [n, d], fixed by ``(seed, d)``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(d)]))
    return rng.uniform(-box, box, size=(n, int(d)))
