"""Token tables of a PROSE dataset: every expression, skeleton and skeleton corruption
tokenised once, so serving a batch is a few vectorised draws and array gathers.

Skeletons depend on the system only, so every corruption a skeleton can receive (each added
term at each place, each deleted term) is enumerated and tokenised once
(:class:`SymbolTables`). The draw is the one :func:`~opnet.symbolic.perturb` makes (mode,
then a uniform term and place, or a uniform deletion), so the distribution is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from opnet.data.h5 import DatasetError
from opnet.symbolic import (
    CORRUPTION_SITES,
    SymbolicError,
    Vocabulary,
    addition_terms,
    delete_term,
    deletion_points,
    encode,
    insert_term,
    insertion_points,
    parse_prefix,
    skeleton,
)
from opnet.symbolic.corruption import default_sites


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(r) for r in rows], np.int64)
    out = np.full((len(rows), max(1, int(lengths.max(initial=0)))), pad, np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out, lengths


class SymbolTables:
    """Token tables of one dataset (all splits), built once.

    * expressions (targets): ``target_in`` [E, L_t] (``[BOS] target``), ``target_out``
      [E, L_t] (``target [EOS]``), ``target_len`` [E] (L + 1), ``known`` [E, L] and
      ``known_len`` [E] (the expression itself, the ``known`` mode's symbol input);
    * symbol rows ``rows`` [R, L_s] / ``row_len`` [R]: every skeleton (row ``keep[s]``),
      then its corruptions: ``n_add[s]`` added-term variants from ``add_start[s]`` (term
      major, then place) and ``n_del[s]`` deletions from ``del_start[s]``.

    ``skeleton_of`` (system, expression) -> skeleton index; ``expression_of`` expression
    text -> expression index.
    """

    def __init__(self, vocab: Vocabulary, corrupt: bool = True) -> None:
        self.vocab, self.corrupt = vocab, corrupt
        self.expression_of: dict[str, int] = {}
        self.skeleton_of: dict[tuple[str, tuple[str, ...]], int] = {}
        self._targets: list[list[int]] = []
        self._rows: list[list[int]] = []
        self._keep: list[int] = []
        self._add: list[tuple[int, int]] = []
        self._del: list[tuple[int, int]] = []
        self._skel_of_expr: dict[str, int] = {}
        self._frozen = False

    def add(self, expressions: np.ndarray, systems: np.ndarray, where: str
            ) -> tuple[np.ndarray, np.ndarray]:
        """Register the expressions of a split: (expression index [N], skeleton index [N])."""
        uniq, inverse = np.unique(np.asarray(expressions, dtype=str), return_inverse=True)
        sys_of = {}
        for e, s in zip(inverse, systems, strict=True):
            sys_of.setdefault(int(e), str(s))
        e_idx = np.empty(len(uniq), np.int64)
        s_idx = np.empty(len(uniq), np.int64)
        for k, text in enumerate(uniq):
            system = sys_of[k]
            if text not in self.expression_of:
                try:
                    expr = parse_prefix(text)
                    tokens = encode(expr)
                    ids = self.vocab.encode(tokens)
                except SymbolicError as err:
                    first = int(np.flatnonzero(inverse == k)[0])
                    raise DatasetError(f"{where}: symbols/expression of sample {first} "
                                       f"({system}) cannot be tokenised: {err}") from err
                self.expression_of[text] = len(self._targets)
                self._targets.append(ids)
                skel = skeleton(expr)
                key = (system, tuple(encode(skel)))
                if key not in self.skeleton_of:
                    self.skeleton_of[key] = self._add_skeleton(skel, system)
                self._skel_of_expr[text] = self.skeleton_of[key]
            e_idx[k] = self.expression_of[text]
            s_idx[k] = self._skel_of_expr[text]
        self._frozen = False
        return e_idx[inverse], s_idx[inverse]

    def _add_skeleton(self, skel: Any, system: str) -> int:
        v = self.vocab
        s = len(self._keep)
        self._keep.append(len(self._rows))
        self._rows.append(v.encode(encode(skel)))
        if not self.corrupt:
            self._add.append((len(self._rows), 0))
            self._del.append((len(self._rows), 0))
            return s
        sites = CORRUPTION_SITES.get(system) or default_sites(skel)
        terms = addition_terms(skel.n_components)
        points = insertion_points(skel, sites)
        start = len(self._rows)
        for term in terms:
            for site, j in points:
                self._rows.append(v.encode(encode(insert_term(skel, sites[site], j, term))))
        self._add.append((start, len(terms) * len(points)))
        start = len(self._rows)
        for site, j in deletion_points(skel, sites):
            self._rows.append(v.encode(encode(delete_term(skel, sites[site], j))))
        self._del.append((start, len(self._rows) - start))
        return s

    def freeze(self) -> None:
        """Build the padded arrays (after every split was added)."""
        if self._frozen:
            return
        v = self.vocab
        self.known, self.known_len = pad_rows(self._targets, v.pad_id)
        self.target_in, _ = pad_rows([[v.bos_id, *t] for t in self._targets], v.pad_id)
        self.target_out, self.target_len = pad_rows([[*t, v.eos_id] for t in self._targets],
                                                     v.pad_id)
        self.rows, self.row_len = pad_rows(self._rows, v.pad_id)
        self.keep = np.array(self._keep, np.int64)
        self.add_start, self.n_add = np.array(self._add, np.int64).reshape(-1, 2).T
        self.del_start, self.n_del = np.array(self._del, np.int64).reshape(-1, 2).T
        self._frozen = True

    def draw(self, skel: np.ndarray, rng: np.random.Generator, p_add: float,
             p_delete: float) -> np.ndarray:
        """Symbol rows for skeleton indices ``skel`` [B] after term corruption: the draw of
        :func:`opnet.symbolic.perturb` (mode, then uniform term x place, or uniform
        deletion; nothing deletable -> kept), vectorised."""
        r = rng.random(len(skel))
        w = rng.random(len(skel))
        rows = self.keep[skel].copy()
        add = r < p_add
        dele = (~add) & (r < p_add + p_delete) & (self.n_del[skel] > 0)

        def pick(where: np.ndarray, start: np.ndarray, n: np.ndarray) -> np.ndarray:
            return start[skel[where]] + np.minimum((w[where] * n[skel[where]]).astype(
                np.int64), n[skel[where]] - 1)

        rows[add] = pick(add, self.add_start, self.n_add)
        rows[dele] = pick(dele, self.del_start, self.n_del)
        return rows


def gather_rows(table: np.ndarray, lengths: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a padded table, cut to the longest of them."""
    width = max(1, int(lengths[idx].max(initial=0)))
    return table[idx, :width]
