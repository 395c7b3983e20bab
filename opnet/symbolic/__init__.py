"""Symbolic layer for PROSE: expression trees, prefix notation, float tokens, vocabulary,
skeletons/term corruption and safe numpy evaluation (shared by data_gen and the model).

>>> e = parse_prefix("add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1"
...                  " | add mul u_0 u_1 mul -2.72 u_2")
>>> len(encode(e)), len(encode(skeleton(e)))
(33, 25)
>>> e.to_infix()
"u_0' = 10.1*u_1 - 10.1*u_0; u_1' = 29.2*u_0 - u_0*u_2 - u_1; u_2' = u_0*u_1 - 2.72*u_2"
"""

from opnet.symbolic.corruption import (
    CORRUPTION_SITES,
    PENDULUM_SITES,
    SumSite,
    addition_terms,
    delete_term,
    deletion_points,
    insert_term,
    insertion_points,
    join_terms,
    perturb,
    perturb_with_mode,
    skeleton,
    split_terms,
)
from opnet.symbolic.evaluate import EvalResult, check, evaluate, is_valid
from opnet.symbolic.floats import decode_float, encode_float, round3
from opnet.symbolic.prefix import decode, decode_tokens, encode, parse_prefix
from opnet.symbolic.tree import ARITY, CONST, MAX_DEPTH, PLACEHOLDER, Expr, Node, SymbolicError
from opnet.symbolic.vocabulary import SPECIALS, Vocabulary

__all__ = [
    "ARITY", "CONST", "CORRUPTION_SITES", "MAX_DEPTH", "PENDULUM_SITES", "PLACEHOLDER", "SPECIALS",
    "EvalResult", "Expr", "Node", "SumSite", "SymbolicError", "Vocabulary",
    "addition_terms", "check", "decode", "decode_float", "decode_tokens", "delete_term",
    "deletion_points", "encode", "encode_float", "evaluate", "insert_term",
    "insertion_points", "is_valid", "join_terms", "parse_prefix", "perturb",
    "perturb_with_mode", "round3", "skeleton", "split_terms",
]
