"""opnet.symbolic: trees, prefix text/tokens, float tokens, vocabulary, evaluation (PROSE §2)."""

from __future__ import annotations

import numpy as np
import pytest

from opnet.symbolic import (
    ARITY,
    CONST,
    PLACEHOLDER,
    Expr,
    Node,
    SymbolicError,
    Vocabulary,
    check,
    decode,
    decode_float,
    encode,
    encode_float,
    evaluate,
    is_valid,
    parse_prefix,
    round3,
    skeleton,
)
from opnet.symbolic.tree import variable_index

LORENZ = ("add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1 | "
          "add mul u_0 u_1 mul -2.72 u_2")
# the 33 tokens of PROSE §2 (reference: prose.md, measured with the official code)
LORENZ_TOKENS = ("add mul + N101 E-1 u_1 mul - N101 E-1 u_0 | sub sub mul + N292 E-1 u_0 "
                 "mul u_0 u_2 u_1 | add mul u_0 u_1 mul - N272 E-2 u_2").split()
PENDULUM = (
    "u_2 | u_3 | div add mul -29.4 sin u_0 add mul -9.81 sin add u_0 mul -2.0 u_1 mul -2.0 "
    "mul sin sub u_0 u_1 add mul u_3 u_3 mul mul u_2 u_2 cos sub u_0 u_1 sub 3.0 cos mul 2.0 "
    "sub u_0 u_1 | div mul sin sub u_0 u_1 add mul 4.0 mul u_2 u_2 add mul 39.2 cos u_0 mul "
    "mul u_3 u_3 cos sub u_0 u_1 sub 3.0 cos mul 2.0 sub u_0 u_1")
OPS = sorted(ARITY)


def random_const(rng: np.random.Generator, tokenizable: bool) -> float:
    """Signed log-uniform magnitude in [1e-8, 1e9] (3 significant digits if tokenizable)."""
    x = float(rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-8, 9))
    if rng.random() < 0.1:
        x = float(rng.integers(-10, 11))
    return float(round3(x)) if tokenizable else x


def random_node(rng: np.random.Generator, depth: int, n_vars: int, tokenizable: bool = True,
                placeholders: bool = False) -> Node:
    if depth == 0 or rng.random() < 0.3:
        r = rng.random()
        if placeholders and r < 0.1:
            return Node.placeholder()
        if r < 0.55:
            return Node.var(int(rng.integers(n_vars)))
        return Node.const(random_const(rng, tokenizable))
    op = OPS[int(rng.integers(len(OPS)))]
    return Node(op, tuple(random_node(rng, depth - 1, n_vars, tokenizable, placeholders)
                          for _ in range(ARITY[op])))


def random_exprs(count: int, seed: int, **kwargs) -> list[tuple[Expr, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n_vars = int(rng.integers(1, 6))
        n_comp = int(rng.integers(1, 6))
        comps = tuple(random_node(rng, int(rng.integers(0, 7)), n_vars, **kwargs)
                      for _ in range(n_comp))
        out.append((Expr(comps), n_vars))
    return out


# --- trees and prefix text -------------------------------------------------------------

def test_random_trees_round_trip_through_human_prefix():
    """parse(to_prefix(t)) == t for 500 seeded random trees (any float constants, placeholders)."""
    for expr, _ in random_exprs(500, seed=1, tokenizable=False, placeholders=True):
        back = parse_prefix(expr.to_prefix())
        assert back == expr and hash(back) == hash(expr)


def test_random_trees_round_trip_through_tokens():
    """decode(encode(t)) == t for 500 random trees with 3-significant-digit constants."""
    for expr, _ in random_exprs(500, seed=2, placeholders=True):
        tokens = encode(expr)
        assert decode(tokens) == expr
        assert parse_prefix(" ".join(tokens)) == expr  # the parser accepts both spellings


def test_lorenz_encodes_to_the_33_reference_tokens_and_25_skeleton_tokens():
    expr = parse_prefix(LORENZ)
    assert expr.n_components == 3 and expr.n_variables == 3
    assert expr.to_prefix() == LORENZ
    assert encode(expr) == LORENZ_TOKENS
    skel = encode(skeleton(expr))
    assert len(skel) == 25
    assert skel == " ".join(LORENZ_TOKENS).replace("+ N101 E-1", PLACEHOLDER).replace(
        "- N101 E-1", PLACEHOLDER).replace("+ N292 E-1", PLACEHOLDER).replace(
        "- N272 E-2", PLACEHOLDER).split()


def test_pendulum_is_the_longest_target_100_tokens_skeleton_80():
    """PROSE §2: targets are 17..100 tokens, skeletons 15..80 (the double pendulum)."""
    expr = parse_prefix(PENDULUM)
    assert len(encode(expr)) == 100 and len(encode(skeleton(expr))) == 80


def test_infix_is_readable_and_evaluates_like_the_tree():
    expr = parse_prefix(LORENZ)
    assert expr.to_infix() == ("u_0' = 10.1*u_1 - 10.1*u_0; u_1' = 29.2*u_0 - u_0*u_2 - u_1; "
                               "u_2' = u_0*u_1 - 2.72*u_2")
    node = parse_prefix("pow2 neg sub u_0 inv mul u_1 cos u_0").components[0]
    assert node.to_infix() == "(-(u_0 - 1/(u_1*cos(u_0))))**2"
    rng = np.random.default_rng(3)
    u = rng.uniform(-2, 2, (20, 5))
    env = {"sin": np.sin, "cos": np.cos} | {f"u_{i}": u[:, i] for i in range(5)}
    for expr, _ in random_exprs(200, seed=4) + [(parse_prefix(PENDULUM), 4)]:
        result = evaluate(expr, u)
        try:
            with np.errstate(all="ignore"):
                shown = [eval(c.to_infix(), env) * np.ones(len(u)) for c in expr.components]
        except ZeroDivisionError:  # Python floats raise in constant-only parts: inv 0.0
            assert not result.ok.any()
            continue
        ok = result.ok
        scale = 1 + np.abs(result.values[ok]).max(initial=0)
        np.testing.assert_allclose(np.stack(shown, 1)[ok], result.values[ok],
                                   rtol=1e-9, atol=1e-9 * scale)


def test_node_rejects_malformed_trees():
    with pytest.raises(SymbolicError, match="'add' takes 2"):
        Node("add", (Node.var(0),))
    with pytest.raises(SymbolicError, match="finite value"):
        Node.const(float("nan"))
    with pytest.raises(SymbolicError, match="unknown node 'exp'"):
        Node("exp", ())
    assert variable_index("u_12") == 12 and variable_index("u_01") is None
    assert Node.const(np.float64(2.5)).to_prefix() == "2.5"  # numpy scalars become floats


@pytest.mark.parametrize("tokens, message", [
    ("add u_0 foo", r"token 2: unknown token 'foo'"),
    ("add mul u_0 u_1", r"token 4: missing operand 2 of 2 for 'add' \(token 0\)"),
    ("mul u_0 u_1 u_2 | u_0", r"token 3: unexpected 'u_2' after a complete expression"),
    ("mul + N101 E11 u_0", r"float at token 1: exponent 'E11' out of range"),
    ("mul + 101 E-1 u_0", r"float at token 1: expected a mantissa token"),
    ("u_0 | | u_1", r"token 2: empty component"),
    ("u_0 |", r"token 2: empty component"),
    ("sin -", r"token 1: float sign '-' needs a mantissa"),
    ("add u_0 pow", r"token 2: unknown token 'pow'"),
    ("add u_0 <EOS>", r"token 2: unknown token '<EOS>'"),
    ("", r"token 0: empty token sequence"),
])
def test_bad_token_sequences_name_the_position(tokens, message):
    with pytest.raises(SymbolicError, match=message):
        decode(tokens.split())


def test_integer_words_of_the_vocabulary_read_as_constants():
    assert decode(["mul", "-3", "u_0"]) == Expr((Node("mul", (Node.const(-3.0), Node.var(0))),))


# --- floats ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, tokens, decoded", [
    (10.0, ["+", "N100", "E-1"], 10.0),
    (-0.17, ["-", "N170", "E-3"], -0.17),
    (28.31, ["+", "N283", "E-1"], 28.3),
    (0.0, ["+", "N000", "E-2"], 0.0),
    (1e-8, ["+", "N100", "E-10"], 1e-8),
    (9.99e12, ["+", "N999", "E10"], 9.99e12),
])
def test_float_examples_of_section_2(value, tokens, decoded):
    assert encode_float(value) == tokens
    assert decode_float(tokens) == decoded


def test_floats_round_trip_to_three_significant_digits_over_17_decades():
    """decode(encode(x)) == round3(x) == float('%.2e' % x) for |x| log-uniform in [1e-8, 1e9]."""
    rng = np.random.default_rng(5)
    x = rng.choice([-1.0, 1.0], 20000) * 10.0 ** rng.uniform(-8, 9, 20000)
    r = round3(x)
    assert r.shape == x.shape
    assert all(r == np.array([float(f"{v:.2e}") for v in x]))
    assert all(decode_float(encode_float(v)) == w for v, w in zip(x[:5000], r[:5000], strict=True))


def test_round3_matches_decimal_formatting_at_ties_and_extremes():
    x = np.array([1.125, 2.675, 0.125, 1.005, 999.5, 9.995, 99.95, 0.0995, 1e-300, 5e-324,
                  1.7976931348623157e308, 123456789.0, -0.0, 0.0, 1e22, 4.35e-5])
    want = np.array([float(f"{v:.2e}") for v in x])
    assert np.array_equal(round3(x), want)
    assert round3(28.31) == 28.3 and isinstance(round3(28.31), float)
    assert np.isnan(round3(np.nan)) and round3(np.inf) == np.inf
    assert round3(np.zeros((2, 3))).shape == (2, 3)


@pytest.mark.parametrize("value", [1e-9, -3e-11, 1e13, float("inf"), float("nan")])
def test_unrepresentable_floats_raise(value):
    with pytest.raises(SymbolicError, match="float"):
        encode_float(value)


def test_decode_float_rejects_malformed_tokens():
    with pytest.raises(SymbolicError, match="3 tokens"):
        decode_float(["+", "N100"])
    with pytest.raises(SymbolicError, match="sign"):
        decode_float(["*", "N100", "E0"])
    with pytest.raises(SymbolicError, match="exponent token"):
        decode_float(["+", "N100", "X0"])


# --- vocabulary ------------------------------------------------------------------------

def reference_words(max_dim: int) -> list[str]:
    """The reference's ``equation_words`` (environment.py + generators.py), duplicates
    included: specials + sorted(set(symbols)) + specials + sorted(set(float symbols))."""
    specials = ["<BOS>", "<EOS>", "<PAD>", "<PLACEHOLDER>"]
    operators = ["add", "sub", "mul", "div", "neg", "inv", "sin", "cos", "pow2"]
    constants = [str(i) for i in range(-10, 11) if i != 0] + ["CONSTANT"]
    variables = ["rand"] + [f"u_{i}" for i in range(max_dim)]  # max_input_dimension = 0
    symbols = operators + constants + variables + ["|", "INT+", "INT-", "FLOAT+", "FLOAT-",
                                                   "pow", "0"]
    floats = ["+", "-"] + [f"N{i:03d}" for i in range(1000)] + [f"E{k}" for k in range(-10, 11)]
    return specials + sorted(set(symbols)) + specials + sorted(set(floats))


@pytest.mark.parametrize("max_dim, entries", [(3, 1072), (5, 1074)])
def test_vocabulary_is_the_reference_word_set_without_duplicates(max_dim, entries):
    ref = reference_words(max_dim)
    assert len(ref) == entries  # the reference's V (prose.md §2)
    vocab = Vocabulary(max_dim)
    assert len(vocab) == len(set(ref)) == entries - 4  # 1068 / 1070
    assert len(set(vocab.tokens)) == len(vocab) and set(vocab.tokens) == set(ref)
    # same order as the reference apart from the dropped second copy of the specials
    assert vocab.tokens == [w for i, w in enumerate(ref) if w not in ref[:i]]
    assert (vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.placeholder_id) == (0, 1, 2, 3)


def test_vocabulary_encodes_every_generated_token_and_names_unknown_ones():
    vocab = Vocabulary(3)
    expr = parse_prefix(LORENZ)
    for tokens in (encode(expr), encode(skeleton(expr))):
        ids = vocab.encode(tokens)
        assert vocab.decode(ids) == tokens and vocab.decode(np.array(ids)) == tokens
    assert vocab.index("<PLACEHOLDER>") == vocab.placeholder_id
    with pytest.raises(SymbolicError, match=r"token 2: unknown token 'u_3' \(variables run"):
        vocab.encode(["add", "u_0", "u_3"])
    with pytest.raises(SymbolicError, match="id 5000 outside"):
        vocab.decode([0, 5000])
    assert vocab.strip(["<BOS>", "u_0", "<EOS>", "<PAD>"]) == ["u_0"]


# --- evaluation ------------------------------------------------------------------------

_FUNCS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "neg": lambda a: -a, "inv": lambda a: np.float64(1.0) / a,
    "sin": np.sin, "cos": np.cos, "pow2": lambda a: a * a,
}


def closure(node: Node):
    """An independent numpy function of ``u`` (columns u[..., i]) built from the tree."""
    if node.op == CONST:
        value = np.float64(node.value)
        return lambda u: value
    if not node.children:
        k = variable_index(node.op)
        return lambda u: u[..., k]
    f = _FUNCS[node.op]
    kids = [closure(c) for c in node.children]
    return lambda u: f(*(g(u) for g in kids))


def test_evaluate_equals_an_independent_closure_and_flags_exactly_the_raising_points():
    """Values agree bitwise where ok; a point is ok iff evaluating it with numpy set to
    raise on divide/overflow/invalid (the reference's valid criterion) raises nothing."""
    rng = np.random.default_rng(6)
    n_bad = 0
    for expr, n_vars in random_exprs(200, seed=7):
        u = rng.uniform(-3, 3, (16, n_vars))
        u[0, 0] = 0.0  # hit div/inv by zero sometimes
        result = evaluate(expr, u)
        assert result.values.shape == (16, expr.n_components) and result.ok.shape == (16,)
        fns = [closure(c) for c in expr.components]
        with np.errstate(all="ignore"):
            want = np.stack([np.broadcast_to(f(u), (16,)) for f in fns], 1)
        expected_ok = np.ones(16, bool)
        with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
            for i in range(16):
                try:
                    expected_ok[i] = all(np.isfinite(f(u[i])) for f in fns)
                except FloatingPointError:
                    expected_ok[i] = False
        assert np.array_equal(result.ok, expected_ok)
        assert np.array_equal(result.values[result.ok], want[result.ok])
        assert (result.error is None) == bool(expected_ok.all())
        n_bad += int((~expected_ok).any())
    assert 10 < n_bad < 190  # both kinds of expression were exercised


def test_evaluate_lorenz_and_pendulum_against_hand_written_formulas():
    u = np.random.default_rng(8).uniform(-2, 2, (50, 4))
    x, y, z, w = u.T
    lorenz = evaluate(parse_prefix(LORENZ), u)
    assert lorenz.all_ok
    np.testing.assert_allclose(lorenz.values, np.stack(
        [10.1 * (y - x), 29.2 * x - x * z - y, x * y - 2.72 * z], 1), rtol=1e-12, atol=1e-12)
    a, b, c = -29.4, -9.81, 39.2
    den = 3 - np.cos(2 * (x - y))
    want = np.stack([z, w, (a * np.sin(x) + b * np.sin(x - 2 * y)
                            - 2 * np.sin(x - y) * (w * w + z * z * np.cos(x - y))) / den,
                     np.sin(x - y) * (4 * z * z + c * np.cos(x) + w * w * np.cos(x - y)) / den], 1)
    np.testing.assert_allclose(evaluate(parse_prefix(PENDULUM), u).values, want,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text, kind", [
    ("div u_0 u_1", "division by zero in 'div'"),
    ("inv sub u_0 u_0", "division by zero in 'inv'"),
    ("pow2 pow2 pow2 pow2 pow2 pow2 pow2 pow2 pow2 mul 1000.0 u_0", "overflow in 'pow2'"),
    ("mul 1e+300 mul 1e+300 u_0", "overflow in 'mul'"),
    ("inv inv div u_0 u_1", "division by zero in 'div'"),
    ("u_0 | add u_1 <PLACEHOLDER>", "component 1: '<PLACEHOLDER>' has no value"),
    ("mul u_0 u_7", "variable u_7 needs u with at least 8 columns, got 2"),
])
def test_numeric_and_structural_problems_are_reported_not_raised(text, kind):
    u = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 0.0]])
    result = evaluate(parse_prefix(text), u)
    assert not result.ok.all() and kind in result.error
    assert not is_valid(parse_prefix(text), u)


def test_overflow_inside_a_finite_result_is_not_ok():
    """inv(pow2(1e200 u)) underflows back to a finite 0, but the reference's seterr raised."""
    result = evaluate(parse_prefix("inv pow2 mul 1e+200 u_0"), np.array([[1.0], [1e-300]]))
    assert np.isfinite(result.values).all()
    assert result.ok.tolist() == [False, True] and "overflow in 'pow2'" in result.error


def test_validity_checks_the_component_count_and_the_shape_of_u():
    expr, u = parse_prefix(LORENZ), np.ones((5, 3))
    assert is_valid(expr, u, n_components=3) and check(expr, u) is None
    assert check(expr, u, n_components=4) == "3 components, expected 4"
    with pytest.raises(SymbolicError, match=r"expected \[n, D\]"):
        evaluate(expr, np.ones(3))
    bad_u = np.array([[np.nan, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert evaluate(expr, bad_u).ok.tolist() == [False, True]


# -- depth: hostile or degenerate nesting (issue 15) ------------------------------------------
def test_deep_nesting_is_refused_at_parse_time_naming_the_limit():
    """50,000 nested operators: a SymbolicError while parsing (text and tokens alike), never
    a RecursionError from a later to_infix/evaluate/skeleton."""
    from opnet.symbolic import MAX_DEPTH

    with pytest.raises(SymbolicError, match=rf"token {MAX_DEPTH - 1}: expression nested deeper "
                                            rf"than the limit of {MAX_DEPTH} levels"):
        parse_prefix("neg " * 50_000 + "u_0")
    with pytest.raises(SymbolicError, match=f"limit of {MAX_DEPTH} levels"):
        decode(["add", "u_0"] * 50_000 + ["u_1"] * 50_001)
    parse_prefix("neg " * (MAX_DEPTH - 1) + "u_0")  # depth MAX_DEPTH: accepted


def _stack_depth() -> int:
    import sys

    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def test_the_deepest_accepted_tree_needs_no_recursion():
    """A tree of MAX_DEPTH levels is printed, compared, hashed, skeletonised and evaluated
    with only 60 frames of Python stack to spare (every walk is iterative)."""
    import sys

    from opnet.symbolic import MAX_DEPTH

    adds = MAX_DEPTH // 4  # sin(sin(...(-2.0*u_0 + (-2.0*u_0 + ... + u_1)))): MAX_DEPTH deep
    expr = parse_prefix("sin " * (MAX_DEPTH - 2 - adds) + "add mul -2.0 u_0 " * adds + "u_1")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 60)
    try:
        infix = expr.to_infix()
        same = parse_prefix(expr.to_prefix())
        equal, hashed = same == expr, hash(same) == hash(expr)
        skel = skeleton(expr)
        result = evaluate(expr, np.full((4, 2), 0.5))
        shown = repr(expr)
    finally:
        sys.setrecursionlimit(limit)
    assert infix.startswith("u_0' = sin(sin(") and equal and hashed and "u_1" in shown
    assert skel != expr and len(skel) == len(expr) and result.all_ok
