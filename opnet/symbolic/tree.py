"""Expression trees: immutable nodes, multi-component systems, prefix and infix text.

A :class:`Node` is an operator with children, a variable ``u_<i>``, a float constant or the
skeleton placeholder. An :class:`Expr` is the right-hand side of an ODE system ``u' = f(u)``:
one tree per component, written in prefix (Polish) notation with components separated by
``|`` (PROSE §2)::

    add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1 | ...

Constants print as ``repr(value)``, so text round-trips exactly; the generators round
parameters to 3 significant digits first (:func:`opnet.symbolic.round3`), which makes the
3-token float encoding exact too. Trees are frozen dataclasses: equal trees compare equal
and hash alike. The parser refuses trees deeper than :data:`MAX_DEPTH` (a hostile or
degenerate text such as 50,000 nested ``neg`` is a :class:`SymbolicError` at parse time);
parsing, printing, infix display, encoding, skeletons and evaluation are iterative
(:func:`fold`), so no tree hits Python's recursion limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

ARITY: dict[str, int] = {
    "add": 2, "sub": 2, "mul": 2, "div": 2,
    "neg": 1, "inv": 1, "sin": 1, "cos": 1, "pow2": 1,
}
"""The operators PROSE emits (``pow`` is in its vocabulary but never used, so not here)."""

CONST = "const"
"""``Node.op`` of a float constant (its number is ``Node.value``)."""

PLACEHOLDER = "<PLACEHOLDER>"
"""``Node.op`` of a skeleton placeholder: a constant whose value is not given."""

MAX_DEPTH = 256
"""The deepest tree (nodes on a root-to-leaf path) the parser accepts: PROSE decodes at most
150 tokens and its systems are a few levels deep; deeper text is refused as malformed."""

T = TypeVar("T")


class SymbolicError(ValueError):
    """A malformed expression, token sequence or float: the message says where and what
    was expected."""


def variable_index(op: str) -> int | None:
    """``"u_3"`` -> 3; anything else -> None."""
    if op.startswith("u_") and op[2:].isdigit() and (op[2:] == "0" or op[2] != "0"):
        return int(op[2:])
    return None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Node:
    """One node of an expression tree.

    ``op``: an operator of :data:`ARITY`, a variable ``"u_<i>"``, :data:`CONST` (with a
    finite float ``value``) or :data:`PLACEHOLDER`. ``children``: as many nodes as the
    operator's arity, none for leaves. Equality, hashing and ``repr`` go through the
    prefix sequence (iterative: any depth).
    """

    op: str
    children: tuple[Node, ...] = ()
    value: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.children, tuple):
            object.__setattr__(self, "children", tuple(self.children))
        arity = ARITY.get(self.op)
        if arity is not None:
            if len(self.children) != arity:
                raise SymbolicError(f"'{self.op}' takes {arity} operand(s), "
                                    f"got {len(self.children)}")
        elif self.children:
            raise SymbolicError(f"leaf '{self.op}' cannot have children")
        if self.op == CONST:
            if self.value is None or not math.isfinite(self.value):
                raise SymbolicError(f"a constant needs a finite value, got {self.value!r}")
            object.__setattr__(self, "value", float(self.value))
        elif self.value is not None:
            raise SymbolicError(f"only constants carry a value, '{self.op}' got {self.value!r}")
        elif arity is None and self.op != PLACEHOLDER and variable_index(self.op) is None:
            raise SymbolicError(f"unknown node '{self.op}': expected one of {sorted(ARITY)}, "
                                f"'u_<i>', '{CONST}' or '{PLACEHOLDER}'")

    @classmethod
    def const(cls, value: float) -> Node:
        """A float leaf."""
        return cls(CONST, (), float(value))

    @classmethod
    def var(cls, index: int) -> Node:
        """The leaf ``u_i`` (state component i)."""
        return cls(f"u_{int(index)}")

    @classmethod
    def placeholder(cls) -> Node:
        """The skeleton's coefficient placeholder leaf."""
        return cls(PLACEHOLDER)

    @classmethod
    def of(cls, op: str, *children: Node) -> Node:
        """An operator node with its children."""
        return cls(op, children)

    @property
    def is_leaf(self) -> bool:
        """Whether the node has no children (a float, a variable or a placeholder)."""
        return not self.children

    def walk(self) -> list[Node]:
        """All nodes in prefix order (iterative)."""
        out: list[Node] = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    def __len__(self) -> int:
        return len(self.walk())

    def _key(self) -> tuple[tuple[str, float | None], ...]:
        """The prefix sequence of (op, value): equal exactly for equal trees (fixed arities)."""
        return tuple((n.op, n.value) for n in self.walk())

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Node):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Node({self.to_prefix()!r})"

    def to_prefix(self) -> str:
        """Human prefix text: tokens separated by spaces, constants as ``repr`` floats."""
        return " ".join(n.op if n.op != CONST else repr(n.value) for n in self.walk())

    def to_infix(self) -> str:
        """Readable infix (display only; ``?`` stands for a placeholder)."""
        return fold(self, _infix_leaf, _infix_inner)[0]

    def __str__(self) -> str:
        return self.to_prefix()


@dataclass(frozen=True, slots=True)
class Expr:
    """A system ``u' = f(u)``: one tree per component (``u_0' = components[0]``, ...)."""

    components: tuple[Node, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.components, tuple):
            object.__setattr__(self, "components", tuple(self.components))
        if not self.components:
            raise SymbolicError("an expression needs at least one component")
        for i, c in enumerate(self.components):
            if not isinstance(c, Node):
                raise SymbolicError(f"component {i} is a {type(c).__name__}, expected a Node")

    @property
    def n_components(self) -> int:
        """Number of components (equations) of the system."""
        return len(self.components)

    @property
    def n_variables(self) -> int:
        """1 + the largest variable index used (0 when no variable appears): the least D
        that :func:`opnet.symbolic.evaluate` accepts."""
        idx = [variable_index(n.op) for c in self.components for n in c.walk()]
        return 1 + max((i for i in idx if i is not None), default=-1)

    def to_prefix(self) -> str:
        """``add mul 10.1 u_1 mul -10.1 u_0 | sub ...`` (parsed back by ``parse_prefix``)."""
        return " | ".join(c.to_prefix() for c in self.components)

    def to_infix(self, sep: str = "; ") -> str:
        """``u_0' = 10.1*u_1 - 10.1*u_0; u_1' = ...`` for display."""
        return sep.join(f"u_{i}' = {c.to_infix()}" for i, c in enumerate(self.components))

    def __len__(self) -> int:
        return sum(len(c) for c in self.components)

    def __str__(self) -> str:
        return self.to_prefix()


# ---------------------------------------------------------------------------------------
# infix rendering: (text, precedence); higher binds tighter

_ATOM, _POW, _UNARY, _MUL, _ADD = 5, 4, 3, 2, 1


def fold(node: Node, leaf: Callable[[Node], T],
         inner: Callable[[Node, Sequence[T]], T]) -> T:
    """Bottom-up over ``node`` without recursion: ``leaf(n)`` for a leaf, ``inner(n,
    [results of n's children])`` for an operator; children left to right, each operator
    after its operands (the order of a recursive post-order walk)."""
    results: list[T] = []
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        n, expanded = stack.pop()
        if not n.children:
            results.append(leaf(n))
        elif expanded:
            k = len(n.children)
            args = results[-k:]
            del results[-k:]
            results.append(inner(n, args))
        else:
            stack.append((n, True))
            stack.extend((c, False) for c in reversed(n.children))
    return results[0]


# ---------------------------------------------------------------------------------------
# infix rendering, bottom-up: (text, precedence, the same without its leading minus or
# None). Higher precedence binds tighter.

_ATOM, _POW, _UNARY, _MUL, _ADD = 5, 4, 3, 2, 1
_Part = tuple[str, int]
_Infix = tuple[str, int, "_Part | None"]


def _wrap(part: _Part | _Infix, need: int) -> str:
    text, prec = part[0], part[1]
    return text if prec >= need else f"({text})"


def _infix_leaf(node: Node) -> _Infix:
    if node.op == CONST:
        assert node.value is not None
        if node.value < 0:
            return repr(node.value), _UNARY, (repr(-node.value), _ATOM)
        return repr(node.value), _ATOM, None
    return ("?" if node.op == PLACEHOLDER else node.op), _ATOM, None


def _product(op: str, left: _Part | _Infix, right: _Infix) -> _Part:
    right_text = (_wrap(right, _POW) if (op == "div" or right[1] == _UNARY)
                  else _wrap(right, _MUL))
    return f"{_wrap(left, _MUL)}{'*' if op == 'mul' else '/'}{right_text}", _MUL


def _infix_inner(node: Node, parts: Sequence[_Infix]) -> _Infix:
    """A node's infix from its children's; ``-x`` reads with a leading minus when it is a
    negative constant, ``neg``, or a product/quotient whose leftmost factor is one (then
    ``a + -x`` prints as ``a - x``)."""
    op = node.op
    if op in ("sin", "cos"):
        return f"{op}({parts[0][0]})", _ATOM, None
    if op == "pow2":
        return f"{_wrap(parts[0], _ATOM)}**2", _POW, None
    if op == "neg":
        return f"-{_wrap(parts[0], _POW)}", _UNARY, (parts[0][0], parts[0][1])
    if op == "inv":
        return f"1/{_wrap(parts[0], _POW)}", _MUL, None
    a, b = parts
    if op in ("add", "sub"):
        right: _Part | _Infix = b
        if b[2] is not None:
            right, op = b[2], ("sub" if op == "add" else "add")
        return f"{_wrap(a, _ADD)} {'+' if op == 'add' else '-'} {_wrap(right, _MUL)}", _ADD, None
    text, prec = _product(op, a, b)
    return text, prec, (_product(op, a[2], b) if a[2] is not None else None)
