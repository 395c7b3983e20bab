"""Prefix tokens <-> expressions.

Two spellings of the same prefix notation, mixed freely by the parser:

* human text (``Expr.to_prefix`` / :func:`parse_prefix`): constants as decimal literals,
  ``add mul 10.1 u_1 mul -10.1 u_0 | ...``;
* model tokens (:func:`encode` / :func:`decode`): constants as three float tokens
  (``+ N101 E-1``), components separated by the token ``|``, placeholders as
  ``<PLACEHOLDER>``. Lorenz (§2) is 33 tokens, its skeleton 25.

Integer words of the reference vocabulary (``-10``..``10``, ``0``) read as constants;
its other never-emitted words (``pow``, ``rand``, ``CONSTANT``, ``INT+``, ...) and the
special tokens other than ``<PLACEHOLDER>`` are rejected. Every malformed sequence raises
:class:`SymbolicError` naming the (0-based) token position and what was expected; so does
a tree deeper than :data:`~opnet.symbolic.tree.MAX_DEPTH` levels (checked while parsing,
which is iterative).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opnet.symbolic.floats import SIGN_TOKENS, decode_float, encode_float
from opnet.symbolic.tree import (
    ARITY,
    CONST,
    MAX_DEPTH,
    PLACEHOLDER,
    Expr,
    Node,
    SymbolicError,
    variable_index,
)

SEPARATOR = "|"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_EXPECTED = ("an operator (" + ", ".join(ARITY) + "), a variable u_<i>, a number, "
             f"a 3-token float (+/- NDDD Ek) or {PLACEHOLDER}")


def encode(expr: Expr) -> list[str]:
    """Prefix tokens of ``expr``: floats as 3 tokens, components joined by ``|``."""
    out: list[str] = []
    for i, comp in enumerate(expr.components):
        if i:
            out.append(SEPARATOR)
        stack = [comp]
        while stack:
            node = stack.pop()
            if node.op == CONST:
                out.extend(encode_float(node.value))  # type: ignore[arg-type]
            else:
                out.append(node.op)
                if node.children:
                    stack.extend(reversed(node.children))
    return out


def _leaf(tokens: Sequence[str], i: int, end: int) -> tuple[Node, int]:
    """The leaf starting at token ``i`` and its width in tokens."""
    tok = tokens[i]
    if tok in SIGN_TOKENS:
        if i + 3 > end:
            raise SymbolicError(f"token {i}: float sign {tok!r} needs a mantissa and an "
                                f"exponent token, but the component ends at token {end}")
        return Node.const(decode_float(tokens[i:i + 3], where=f"float at token {i}")), 3
    if tok == PLACEHOLDER:
        return Node.placeholder(), 1
    if variable_index(tok) is not None:
        return Node(tok), 1
    if _NUMBER.fullmatch(tok):
        value = float(tok)
        if value in (float("inf"), float("-inf")):
            raise SymbolicError(f"token {i}: number {tok!r} overflows a float")
        return Node.const(value), 1
    if tok == SEPARATOR:
        raise SymbolicError(f"token {i}: unexpected separator '|'")
    raise SymbolicError(f"token {i}: unknown token {tok!r}, expected {_EXPECTED}")


def _component(tokens: Sequence[str], start: int, end: int) -> Node:
    """Parse ``tokens[start:end]`` as exactly one tree (iteratively)."""
    if start == end:
        raise SymbolicError(f"token {start}: empty component (nothing between separators "
                            f"or at an end of the sequence)")
    stack: list[tuple[str, list[Node], int]] = []  # (operator, operands so far, position)
    root: Node | None = None
    i = start
    while i < end:
        if root is not None:
            raise SymbolicError(
                f"token {i}: unexpected {tokens[i]!r} after a complete expression "
                f"(tokens {start}..{i - 1}); expected '|' or the end")
        tok = tokens[i]
        if tok in ARITY:
            if len(stack) >= MAX_DEPTH - 1:  # its operand would sit deeper than MAX_DEPTH
                raise SymbolicError(
                    f"token {i}: expression nested deeper than the limit of {MAX_DEPTH} levels "
                    f"(operator {tok!r} inside {len(stack)} open operators); such a tree is "
                    "refused as malformed")
            stack.append((tok, [], i))
            i += 1
            continue
        node, width = _leaf(tokens, i, end)
        i += width
        while True:
            if not stack:
                root = node
                break
            op, operands, _ = stack[-1]
            operands.append(node)
            if len(operands) < ARITY[op]:
                break
            stack.pop()
            node = Node(op, tuple(operands))
    if root is None:
        op, operands, pos = stack[-1]
        raise SymbolicError(
            f"token {end}: missing operand {len(operands) + 1} of {ARITY[op]} for {op!r} "
            f"(token {pos}); the component ends there")
    return root


def decode(tokens: Sequence[str]) -> Expr:
    """The expression of a token sequence (either spelling; see the module docstring).

    Strip ``<BOS>``/``<EOS>``/``<PAD>`` before calling.
    """
    tokens = list(tokens)
    if not tokens:
        raise SymbolicError("token 0: empty token sequence, expected an expression")
    comps = []
    start = 0
    for j, tok in enumerate(tokens + [SEPARATOR]):
        if tok == SEPARATOR:
            comps.append(_component(tokens, start, j))
            start = j + 1
    return Expr(tuple(comps))


decode_tokens = decode


def parse_prefix(text: str) -> Expr:
    """Parse human prefix text, e.g. ``add mul 10.1 u_1 mul -10.1 u_0 | ...`` (tokens
    separated by whitespace; 3-token floats are accepted too)."""
    return decode(text.split())
