"""The PROSE token vocabulary, without the reference's duplicates.

The reference builds ``specials + sorted(set(symbols)) + specials + sorted(set(floats))``:
the 4 specials appear twice (1072 entries, 1068 distinct, at D = 3). This vocabulary has
the same word set once, in the same order with the second copy of the specials removed::

    <BOS> <EOS> <PAD> <PLACEHOLDER>                    ids 0-3
    sorted symbols (38 + D)                            operators, u_0..u_{D-1}, "|", and
                                                       never-emitted words: integers
                                                       -10..10, CONSTANT, rand, INT+, INT-,
                                                       FLOAT+, FLOAT-, pow
    sorted float words (1023)                          + - N000..N999 E-10..E10

1065 + D words: 1068 at D = 3, 1070 at D = 5. The unused words are kept so that the
embedding and output layers have the reference's shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opnet.symbolic.floats import EXPONENT_TOKENS, MANTISSA_TOKENS, SIGN_TOKENS
from opnet.symbolic.tree import ARITY, PLACEHOLDER, SymbolicError

SPECIALS = ("<BOS>", "<EOS>", "<PAD>", PLACEHOLDER)
MAX_INT = 10
UNUSED_SYMBOLS = (
    *(str(i) for i in range(-MAX_INT, MAX_INT + 1) if i != 0),
    "CONSTANT", "rand", "INT+", "INT-", "FLOAT+", "FLOAT-", "pow", "0",
)
"""Words of the reference vocabulary that its generator never emits."""


def symbol_words(max_dim: int) -> list[str]:
    """Operators, variables ``u_0..u_{max_dim-1}``, ``|`` and the unused words, sorted."""
    words = {*ARITY, *(f"u_{i}" for i in range(max_dim)), "|", *UNUSED_SYMBOLS}
    return sorted(words)


def float_words() -> list[str]:
    """``+ -``, ``N000..N999``, ``E-10..E10`` in the reference's (string-sorted) order."""
    return sorted({*SIGN_TOKENS, *MANTISSA_TOKENS, *EXPONENT_TOKENS})


class Vocabulary:
    """Token <-> id map for systems of up to ``max_dim`` components.

    ``tokens``: the words, id = position; ``bos_id``, ``eos_id``, ``pad_id``,
    ``placeholder_id``: the specials (0, 1, 2, 3).
    """

    def __init__(self, max_dim: int = 3) -> None:
        if int(max_dim) < 1:
            raise SymbolicError(f"Vocabulary(max_dim={max_dim}): expected max_dim >= 1")
        self.max_dim = int(max_dim)
        self.tokens: list[str] = [*SPECIALS, *symbol_words(self.max_dim), *float_words()]
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):  # pragma: no cover - construction invariant
            raise AssertionError("duplicated vocabulary entries")
        self.bos_id, self.eos_id, self.pad_id, self.placeholder_id = (
            self._ids[t] for t in SPECIALS)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def __repr__(self) -> str:
        return f"Vocabulary(max_dim={self.max_dim})  # {len(self)} tokens"

    def index(self, token: str) -> int:
        """The id of ``token``."""
        try:
            return self._ids[token]
        except KeyError:
            raise SymbolicError(self._unknown(token)) from None

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; an unknown token raises, naming it and its position."""
        tokens = list(tokens)
        ids = self._ids
        try:
            return [ids[t] for t in tokens]
        except KeyError:
            pos = next(i for i, t in enumerate(tokens) if t not in ids)
            raise SymbolicError(f"token {pos}: {self._unknown(tokens[pos])}") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (ints, or a 1-D numpy array / tensor)."""
        words = self.tokens
        out = []
        for pos, i in enumerate(ids):
            j = int(i)
            if not 0 <= j < len(words):
                raise SymbolicError(f"position {pos}: id {j} outside the vocabulary "
                                    f"(0..{len(words) - 1})")
            out.append(words[j])
        return out

    def strip(self, tokens: Sequence[str]) -> list[str]:
        """``tokens`` without a leading ``<BOS>`` and from the first ``<EOS>``/``<PAD>`` on
        (a decoder's output, ready for :func:`opnet.symbolic.decode`)."""
        out = list(tokens)
        if out and out[0] == SPECIALS[0]:
            out = out[1:]
        for j, t in enumerate(out):
            if t in (SPECIALS[1], SPECIALS[2]):
                return out[:j]
        return out

    def _unknown(self, token: str) -> str:
        hint = ""
        if token.startswith("u_") and token[2:].isdigit():
            hint = f" (variables run u_0..u_{self.max_dim - 1} at max_dim={self.max_dim})"
        return f"unknown token {token!r}{hint}"
