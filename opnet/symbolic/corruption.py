"""What PROSE's symbol encoder sees: skeletons and term corruption (PROSE §3).

**Skeleton.** Every numeric literal, fixed constants such as ``3.0`` included, becomes
``<PLACEHOLDER>``.

**Corruption** (the "Unknown" setting, ``noisy_text_input``): keep the skeleton with
probability 0.70, add a term with 0.15, delete a term with 0.15. As the reference code
(``generators.py``: ``tree_with_additional_term``, ``tree_with_missing_term``) does it:

* A *sum site* is a chain of terms. By default each component is one site, read along its
  left spine: ``sub(sub(A, B), C)`` has terms ``[A, B, C]`` joined by ``[sub, sub]`` --
  exactly the reference's ``(op_list, term_list)`` of every system, which it folds into
  trees left to right. A term under ``sub`` keeps its ``sub``; the right operand of an
  ``add``/``sub`` is never split further. A component whose root is not ``add``/``sub``
  is one term.
* **Add**: the term is uniform over ``addition_terms(n_vars)`` = {ph, ph*u_i,
  ph*(u_i*u_j) for i <= j} (``n_vars`` = the system's dimension), its place uniform over
  all (site, position) pairs, positions 0..len(terms) -- so longer components are
  likelier. It joins with ``add``; at position 0 in front of a ``neg X`` term the
  result is ``sub(new, X)``.
* **Delete**: uniform over all (site, position) pairs of sites with more than one term.
  The term goes with the operator that joined it; deleting term 0 when term 1 was joined
  by ``sub`` leaves ``neg(term 1)`` first.
* **Double pendulum**: its components 2 and 3 are quotients, so the reference corrupts
  two right-nested sums instead (``add_terms``: ``add(a, add(b, c))``): the numerator of
  component 2 and the bracket multiplying ``sin(u_0 - u_1)`` in component 3, three terms
  each (8 places to add, 6 terms to delete). :data:`PENDULUM_SITES` describes them;
  pass ``sites=CORRUPTION_SITES.get(system_name)``.

The reference draws the mode, then the term, then the place; so does :func:`perturb`
(with a ``np.random.Generator``). If nothing can be deleted the skeleton is returned
unchanged (never the case for the PROSE systems with their sites).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from opnet.symbolic.tree import CONST, Expr, Node, SymbolicError, fold

Mode = Literal["keep", "add", "delete"]


def skeleton(expr: Expr) -> Expr:
    """``expr`` with every constant replaced by a placeholder."""
    return Expr(tuple(_skeleton_node(c) for c in expr.components))


def _skeleton_node(node: Node) -> Node:
    return fold(node, lambda n: Node.placeholder() if n.op == CONST else n,
                lambda n, children: Node(n.op, tuple(children)))


@dataclass(frozen=True)
class SumSite:
    """A chain of terms: at ``path`` (child indices) below component ``component``,
    folded to the ``left`` (``sub(add(A, B), C)``, any mix of add/sub) or to the
    ``right`` (``add(A, add(B, C))``, adds only)."""

    component: int
    path: tuple[int, ...] = ()
    chain: Literal["left", "right"] = "left"


PENDULUM_SITES: tuple[SumSite, ...] = (
    SumSite(2, (0,), "right"),     # numerator of omega_1' = add_list0 of the reference
    SumSite(3, (0, 1), "right"),   # sin(u_0 - u_1) * [add_list1] in omega_2'
)
CORRUPTION_SITES: dict[str, tuple[SumSite, ...]] = {"double_pendulum": PENDULUM_SITES}
"""Systems whose corruption sites are not their components (keyed by system name)."""


def default_sites(expr: Expr) -> tuple[SumSite, ...]:
    """The sites where terms may be added or deleted: the top-level sum of each component."""
    return tuple(SumSite(i) for i in range(expr.n_components))


def addition_terms(n_vars: int) -> tuple[Node, ...]:
    """``ph, ph*u_0, ph*(u_0*u_0), ph*(u_0*u_1), ..., ph*u_1, ...``: the reference's list
    (1 + n + n(n+1)/2 terms, in its order)."""
    ph = Node.placeholder()
    out = [ph]
    for i in range(n_vars):
        out.append(Node("mul", (ph, Node.var(i))))
        for j in range(i, n_vars):
            out.append(Node("mul", (ph, Node("mul", (Node.var(i), Node.var(j))))))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# sums as (terms, ops): ops[k] joins terms[k + 1]


def split_terms(node: Node, chain: Literal["left", "right"] = "left"
                ) -> tuple[list[Node], list[str]]:
    """The terms of a sum and the operators joining them (``ops[k]`` joins term k+1)."""
    terms: list[Node] = []
    ops: list[str] = []
    if chain == "left":
        while node.op in ("add", "sub"):
            terms.append(node.children[1])
            ops.append(node.op)
            node = node.children[0]
        terms.append(node)
        return terms[::-1], ops[::-1]
    while node.op == "add":
        terms.append(node.children[0])
        ops.append("add")
        node = node.children[1]
    terms.append(node)
    return terms, ops


def join_terms(terms: Sequence[Node], ops: Sequence[str],
               chain: Literal["left", "right"] = "left") -> Node:
    """Inverse of :func:`split_terms`."""
    if len(ops) != len(terms) - 1 or not terms:
        raise SymbolicError(f"{len(terms)} terms need {len(terms) - 1} operators, "
                            f"got {len(ops)}")
    if chain == "left":
        node = terms[0]
        for op, term in zip(ops, terms[1:], strict=True):
            node = Node(op, (node, term))
        return node
    if any(op != "add" for op in ops):
        raise SymbolicError(f"a right-folded sum joins with 'add' only, got {list(ops)}")
    node = terms[-1]
    for term in reversed(terms[:-1]):
        node = Node("add", (term, node))
    return node


def _get(node: Node, path: tuple[int, ...], site: SumSite) -> Node:
    for k in path:
        if k >= len(node.children):
            raise SymbolicError(f"{site}: path {path} leaves the tree at '{node.op}'")
        node = node.children[k]
    return node


def _replace(node: Node, path: tuple[int, ...], new: Node) -> Node:
    if not path:
        return new
    k, rest = path[0], path[1:]
    children = list(node.children)
    children[k] = _replace(children[k], rest, new)
    return Node(node.op, tuple(children))


def _site_terms(expr: Expr, site: SumSite) -> tuple[list[Node], list[str]]:
    if not 0 <= site.component < expr.n_components:
        raise SymbolicError(f"{site}: the expression has {expr.n_components} components")
    return split_terms(_get(expr.components[site.component], site.path, site), site.chain)


def _with_site(expr: Expr, site: SumSite, terms: list[Node], ops: list[str]) -> Expr:
    comps = list(expr.components)
    comps[site.component] = _replace(comps[site.component], site.path,
                                     join_terms(terms, ops, site.chain))
    return Expr(tuple(comps))


def insertion_points(expr: Expr, sites: Sequence[SumSite] | None = None
                     ) -> list[tuple[int, int]]:
    """All (site index, position) where a term can be added: positions 0..len(terms)."""
    sites = default_sites(expr) if sites is None else sites
    return [(s, j) for s, site in enumerate(sites)
            for j in range(len(_site_terms(expr, site)[0]) + 1)]


def deletion_points(expr: Expr, sites: Sequence[SumSite] | None = None
                    ) -> list[tuple[int, int]]:
    """All (site index, position) of terms that can be deleted (sites with > 1 term)."""
    sites = default_sites(expr) if sites is None else sites
    out = []
    for s, site in enumerate(sites):
        n = len(_site_terms(expr, site)[0])
        if n > 1:
            out.extend((s, j) for j in range(n))
    return out


def insert_term(expr: Expr, site: SumSite, position: int, term: Node) -> Expr:
    """``expr`` with ``term`` added as term ``position`` of ``site``."""
    terms, ops = _site_terms(expr, site)
    if not 0 <= position <= len(terms):
        raise SymbolicError(f"{site}: position {position} outside 0..{len(terms)}")
    if position == 0 and site.chain == "left" and terms[0].op == "neg":
        terms[0] = terms[0].children[0]
        ops.insert(0, "sub")
    elif position == 0:
        ops.insert(0, "add")
    else:
        ops.insert(position - 1, "add")
    terms.insert(position, term)
    return _with_site(expr, site, terms, ops)


def delete_term(expr: Expr, site: SumSite, position: int) -> Expr:
    """``expr`` without term ``position`` of ``site`` (which must have > 1 term)."""
    terms, ops = _site_terms(expr, site)
    if len(terms) < 2:
        raise SymbolicError(f"{site}: a single term cannot be deleted")
    if not 0 <= position < len(terms):
        raise SymbolicError(f"{site}: position {position} outside 0..{len(terms) - 1}")
    terms.pop(position)
    op = ops.pop(max(position - 1, 0))
    if position == 0 and op == "sub":
        terms[0] = Node("neg", (terms[0],))
    return _with_site(expr, site, terms, ops)


def perturb_with_mode(expr: Expr, rng: np.random.Generator, p_add: float = 0.15,
                      p_delete: float = 0.15, n_vars: int | None = None,
                      add_terms: Sequence[Node] | None = None,
                      sites: Sequence[SumSite] | None = None) -> tuple[Expr, Mode]:
    """:func:`perturb` and the mode it drew (``"keep"``, ``"add"`` or ``"delete"``)."""
    if not (0 <= p_add and 0 <= p_delete and p_add + p_delete <= 1):
        raise SymbolicError(f"p_add={p_add}, p_delete={p_delete}: expected probabilities "
                            f"with p_add + p_delete <= 1")
    r = rng.random()
    if r >= p_add + p_delete:
        return expr, "keep"
    sites = default_sites(expr) if sites is None else tuple(sites)
    if r < p_add:
        if add_terms is None:
            add_terms = addition_terms(expr.n_components if n_vars is None else n_vars)
        term = add_terms[int(rng.integers(len(add_terms)))]
        points = insertion_points(expr, sites)
        s, j = points[int(rng.integers(len(points)))]
        return insert_term(expr, sites[s], j, term), "add"
    points = deletion_points(expr, sites)
    if not points:
        return expr, "keep"
    s, j = points[int(rng.integers(len(points)))]
    return delete_term(expr, sites[s], j), "delete"


def perturb(expr: Expr, rng: np.random.Generator, p_add: float = 0.15,
            p_delete: float = 0.15, n_vars: int | None = None,
            add_terms: Sequence[Node] | None = None,
            sites: Sequence[SumSite] | None = None) -> Expr:
    """Term corruption of a skeleton: unchanged with 1 - p_add - p_delete, one term added
    with p_add, one deleted with p_delete (see the module docstring).

    ``n_vars``: dimension for the default added terms (default: the component count);
    ``add_terms``: the terms to choose from instead; ``sites``: where sums live (default:
    every component; :data:`CORRUPTION_SITES` has the double pendulum's).
    """
    return perturb_with_mode(expr, rng, p_add, p_delete, n_vars, add_terms, sites)[0]
