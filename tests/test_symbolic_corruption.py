"""opnet.symbolic skeletons and term corruption: the reference's rules and frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from opnet.symbolic import (
    CONST,
    PENDULUM_SITES,
    PLACEHOLDER,
    SumSite,
    SymbolicError,
    addition_terms,
    delete_term,
    deletion_points,
    encode,
    insert_term,
    insertion_points,
    parse_prefix,
    perturb,
    perturb_with_mode,
    skeleton,
    split_terms,
)
from tests.test_symbolic import LORENZ, PENDULUM, random_exprs

PH = PLACEHOLDER


def test_skeleton_replaces_every_constant_and_nothing_else():
    for expr, _ in random_exprs(300, seed=11):
        skel = skeleton(expr)
        nodes = [n for c in expr.components for n in c.walk()]
        skel_nodes = [n for c in skel.components for n in c.walk()]
        assert len(nodes) == len(skel_nodes)
        for a, b in zip(nodes, skel_nodes, strict=True):
            assert b.op == (PH if a.op == CONST else a.op)
        assert skeleton(skel) == skel


def test_fixed_constants_become_placeholders_too():
    """Pendulum: 3.0, 2.0, 4.0 and -2.0 are literals of the tree, so the skeleton hides them."""
    assert encode(skeleton(parse_prefix(PENDULUM))).count(PH) == 10


def test_terms_of_a_component_are_its_left_add_sub_chain():
    """The reference's (op_list, term_list) of Lorenz, Rössler and Aizawa z' are recovered."""
    lorenz = skeleton(parse_prefix(LORENZ))
    terms, ops = split_terms(lorenz.components[1])
    assert [t.to_prefix() for t in terms] == [f"mul {PH} u_0", "mul u_0 u_2", "u_1"]
    assert ops == ["sub", "sub"]
    aizawa_z = parse_prefix(f"add sub sub add {PH} mul {PH} u_2 div mul u_2 mul u_2 u_2 {PH} "
                            f"mul u_0 u_0 mul {PH} mul u_0 mul u_0 mul u_0 u_2").components[0]
    terms, ops = split_terms(aizawa_z)
    assert len(terms) == 5 and ops == ["add", "sub", "sub", "add"]
    assert split_terms(parse_prefix("sub neg u_1 u_2").components[0])[1] == ["sub"]


@pytest.mark.parametrize("before, position, after", [
    # Rössler x' = -y - z: a term added in front of a leading neg turns it into a sub
    ("sub neg u_1 u_2", 0, f"sub sub {PH} u_1 u_2"),
    ("sub neg u_1 u_2", 1, f"sub add neg u_1 {PH} u_2"),
    ("sub neg u_1 u_2", 2, f"add sub neg u_1 u_2 {PH}"),
    (f"mul {PH} mul u_1 u_2", 0, f"add {PH} mul {PH} mul u_1 u_2"),  # Sprott B x': one term
    (f"sub sub mul {PH} u_0 mul u_0 u_2 u_1", 2, f"sub add sub mul {PH} u_0 mul u_0 u_2 {PH} u_1"),
])
def test_insertion_follows_the_reference(before, position, after):
    expr = parse_prefix(before)
    assert insert_term(expr, SumSite(0), position, parse_prefix(PH).components[0]) == \
        parse_prefix(after)


@pytest.mark.parametrize("before, position, after", [
    # deleting the first term when the second was subtracted leaves neg(second)
    (f"sub sub mul {PH} u_0 mul u_0 u_2 u_1", 0, "sub neg mul u_0 u_2 u_1"),
    (f"sub sub mul {PH} u_0 mul u_0 u_2 u_1", 1, f"sub mul {PH} u_0 u_1"),
    (f"sub sub mul {PH} u_0 mul u_0 u_2 u_1", 2, f"sub mul {PH} u_0 mul u_0 u_2"),
    ("sub neg u_1 u_2", 0, "neg u_2"),
    ("sub neg u_1 u_2", 1, "neg u_1"),
    (f"add sub {PH} u_1 u_0", 0, "add neg u_1 u_0"),
])
def test_deletion_follows_the_reference(before, position, after):
    assert delete_term(parse_prefix(before), SumSite(0), position) == parse_prefix(after)


def test_single_term_components_cannot_lose_their_term():
    sprott_b = parse_prefix(f"mul {PH} mul u_1 u_2 | add u_0 mul {PH} u_1 | sub {PH} mul u_0 u_1")
    assert len(insertion_points(sprott_b)) == 2 + 3 + 3
    assert deletion_points(sprott_b) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    with pytest.raises(SymbolicError, match="single term"):
        delete_term(sprott_b, SumSite(0), 0)


@pytest.mark.parametrize("n_vars, count", [(1, 3), (3, 10), (4, 15), (5, 21)])
def test_addition_terms_are_the_placeholder_polynomials_of_degree_two(n_vars, count):
    terms = addition_terms(n_vars)
    assert len(terms) == count == 1 + n_vars + n_vars * (n_vars + 1) // 2
    assert [t.to_prefix() for t in addition_terms(2)] == [
        PH, f"mul {PH} u_0", f"mul {PH} mul u_0 u_0", f"mul {PH} mul u_0 u_1",
        f"mul {PH} u_1", f"mul {PH} mul u_1 u_1"]


def test_pendulum_corrupts_the_two_inner_sums():
    """8 places to add (4 in each sum) and 6 terms to delete; the quotients stay intact."""
    skel = skeleton(parse_prefix(PENDULUM))
    assert len(insertion_points(skel, PENDULUM_SITES)) == 8
    assert len(deletion_points(skel, PENDULUM_SITES)) == 6
    assert deletion_points(skel) == []  # as plain components nothing could be deleted
    term = addition_terms(4)[5]
    added = insert_term(skel, PENDULUM_SITES[1], 3, term)
    inner = added.components[3].children[0].children[1]
    assert split_terms(inner, "right")[0][-1] == term and len(added) == len(skel) + len(term) + 1
    assert added.components[:3] == skel.components[:3]
    deleted = delete_term(skel, PENDULUM_SITES[0], 1)
    numerator = deleted.components[2].children[0]
    assert len(split_terms(numerator, "right")[0]) == 2
    assert numerator.to_prefix().startswith(f"add mul {PH} sin u_0 mul {PH} mul sin sub")
    assert deleted.components[2].children[1] == skel.components[2].children[1]


def test_perturbation_frequencies_match_the_reference_probabilities():
    """20,000 draws: keep/add/delete at 0.70/0.15/0.15 within 4 sigma."""
    skel = skeleton(parse_prefix(LORENZ))
    rng = np.random.default_rng(12)
    n = 20000
    counts = {"keep": 0, "add": 0, "delete": 0}
    for _ in range(n):
        out, mode = perturb_with_mode(skel, rng)
        counts[mode] += 1
        size = len(out) - len(skel)
        assert (size == 0 and out == skel) if mode == "keep" else (size > 0) == (mode == "add")
    for mode, p in (("keep", 0.70), ("add", 0.15), ("delete", 0.15)):
        assert abs(counts[mode] / n - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_added_term_and_place_are_uniform():
    """Lorenz: 10 terms x 10 places (3 + 4 + 3), each of the 100 choices ~1/100 (a term
    inserted next to an equal one gives the same tree from two places)."""
    skel = skeleton(parse_prefix(LORENZ))
    ways: dict = {}
    for term in addition_terms(3):
        for s, j in insertion_points(skel):
            out = insert_term(skel, SumSite(s), j, term)
            ways[out] = ways.get(out, 0) + 1
    assert sum(ways.values()) == 100
    rng = np.random.default_rng(14)
    n = 10000
    counts = dict.fromkeys(ways, 0)
    for _ in range(n):
        counts[perturb(skel, rng, p_add=1.0, p_delete=0.0)] += 1
    for out, k in ways.items():
        p = k / 100
        assert abs(counts[out] - n * p) < 4 * np.sqrt(n * p * (1 - p))


def test_perturb_options():
    skel = skeleton(parse_prefix(LORENZ))
    rng = np.random.default_rng(13)
    assert perturb(skel, rng, p_add=0.0, p_delete=0.0) is skel
    only = parse_prefix(f"mul {PH} u_2").components[0]
    out = perturb(skel, rng, p_add=1.0, p_delete=0.0, add_terms=[only])
    assert len(out) == len(skel) + 3 + 1  # the term and its add
    assert len(perturb(skel, rng, p_add=0.0, p_delete=1.0)) < len(skel)
    with pytest.raises(SymbolicError, match="probabilities"):
        perturb(skel, rng, p_add=0.8, p_delete=0.3)
    with pytest.raises(SymbolicError, match="3 components"):
        perturb(skel, rng, p_add=1.0, p_delete=0.0, sites=[SumSite(5)])
