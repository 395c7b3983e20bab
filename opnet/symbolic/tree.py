"""Expression trees: immutable nodes, multi-component systems, prefix and infix text.

A :class:`Node` is an operator with children, a variable ``u_<i>``, a float constant or the
skeleton placeholder. An :class:`Expr` is the right-hand side of an ODE system ``u' = f(u)``:
one tree per component, written in prefix (Polish) notation with components separated by
``|`` (PROSE §2)::

    add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1 | ...

Constants print as ``repr(value)``, so text round-trips exactly; the generators round
parameters to 3 significant digits first (:func:`opnet.symbolic.round3`), which makes the
3-token float encoding exact too. Trees are frozen dataclasses: equal trees compare equal
and hash alike. Parsing, printing and encoding are iterative (no recursion limit on
model-generated trees); evaluation and infix display recurse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ARITY: dict[str, int] = {
    "add": 2, "sub": 2, "mul": 2, "div": 2,
    "neg": 1, "inv": 1, "sin": 1, "cos": 1, "pow2": 1,
}
"""The operators PROSE emits (``pow`` is in its vocabulary but never used, so not here)."""

CONST = "const"
"""``Node.op`` of a float constant (its number is ``Node.value``)."""

PLACEHOLDER = "<PLACEHOLDER>"
"""``Node.op`` of a skeleton placeholder: a constant whose value is not given."""


class SymbolicError(ValueError):
    """A malformed expression, token sequence or float: the message says where and what
    was expected."""


def variable_index(op: str) -> int | None:
    """``"u_3"`` -> 3; anything else -> None."""
    if op.startswith("u_") and op[2:].isdigit() and (op[2:] == "0" or op[2] != "0"):
        return int(op[2:])
    return None


@dataclass(frozen=True, slots=True)
class Node:
    """One node of an expression tree.

    ``op``: an operator of :data:`ARITY`, a variable ``"u_<i>"``, :data:`CONST` (with a
    finite float ``value``) or :data:`PLACEHOLDER`. ``children``: as many nodes as the
    operator's arity, none for leaves.
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
        return cls(CONST, (), float(value))

    @classmethod
    def var(cls, index: int) -> Node:
        return cls(f"u_{int(index)}")

    @classmethod
    def placeholder(cls) -> Node:
        return cls(PLACEHOLDER)

    @classmethod
    def of(cls, op: str, *children: Node) -> Node:
        return cls(op, children)

    @property
    def is_leaf(self) -> bool:
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

    def to_prefix(self) -> str:
        """Human prefix text: tokens separated by spaces, constants as ``repr`` floats."""
        return " ".join(n.op if n.op != CONST else repr(n.value) for n in self.walk())

    def to_infix(self) -> str:
        """Readable infix (display only; ``?`` stands for a placeholder)."""
        return _infix(self)[0]

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


def _strip_minus(node: Node) -> Node | None:
    """``-x`` as ``x`` when the node reads with a leading minus (negative constant,
    ``neg``, or a product/quotient whose leftmost factor is one); else None."""
    if node.op == CONST and node.value is not None and node.value < 0:
        return Node.const(-node.value)
    if node.op == "neg":
        return node.children[0]
    if node.op in ("mul", "div"):
        left = _strip_minus(node.children[0])
        if left is not None:
            return Node(node.op, (left, node.children[1]))
    return None


def _wrap(part: tuple[str, int], need: int) -> str:
    text, prec = part
    return text if prec >= need else f"({text})"


def _infix(node: Node) -> tuple[str, int]:
    op = node.op
    if op == CONST:
        assert node.value is not None
        return repr(node.value), (_UNARY if node.value < 0 else _ATOM)
    if op == PLACEHOLDER:
        return "?", _ATOM
    if not node.children:
        return op, _ATOM
    if op in ("sin", "cos"):
        return f"{op}({_infix(node.children[0])[0]})", _ATOM
    if op == "pow2":
        return f"{_wrap(_infix(node.children[0]), _ATOM)}**2", _POW
    if op == "neg":
        return f"-{_wrap(_infix(node.children[0]), _POW)}", _UNARY
    if op == "inv":
        return f"1/{_wrap(_infix(node.children[0]), _POW)}", _MUL
    a, b = node.children
    left = _infix(a)
    if op in ("add", "sub"):
        flipped = _strip_minus(b)
        if flipped is not None:
            b, op = flipped, ("sub" if op == "add" else "add")
        right = _wrap(_infix(b), _MUL)
        sign = "+" if op == "add" else "-"
        return f"{_wrap(left, _ADD)} {sign} {right}", _ADD
    right = _infix(b)
    right_text = _wrap(right, _POW) if (op == "div" or right[1] == _UNARY) else _wrap(right, _MUL)
    return f"{_wrap(left, _MUL)}{'*' if op == 'mul' else '/'}{right_text}", _MUL
