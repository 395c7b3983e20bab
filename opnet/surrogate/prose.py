"""PROSE operators as surrogates: trajectory samples (+ a symbolic guess) -> the solution at
query times and the governing equations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet.models import build_model
from opnet.surrogate.common import (
    NonFinite,
    OperatorSurrogate,
    as_tensor,
    check_count,
    check_nonfinite,
    memory_guard,
)
from opnet.symbolic import SymbolicError, Vocabulary, check, decode, encode, parse_prefix
from opnet.symbolic import skeleton as to_skeleton
from opnet.symbolic.scoring import N_POINTS, decode_ids, expression_points


@dataclass
class ProsePrediction:
    """What :meth:`ProseSurrogate.predict` returns.

    values: float32 ``[N_out, d]`` (one trajectory) or ``[B, N_out, d]``: the solution at the
    query times. prefix / infix: the decoded equation in prefix notation (floats as
    decimals, parsed back by :func:`opnet.symbolic.parse_prefix`) and as readable infix, or
    None where the output does not decode (lists for a batch; None for a model without
    symbol decoder). tokens: the generated tokens (before ``<EOS>``). valid: the §5
    criterion (parses, d components, finite at the expression-error points). error: why an
    output is not valid (None when it is).
    """

    values: np.ndarray
    prefix: str | None | list[str | None]
    infix: str | None | list[str | None]
    tokens: list[str] | list[list[str]] | None
    valid: bool | np.ndarray | None
    error: str | None | list[str | None]


class ProseSurrogate(OperatorSurrogate):
    """A trained PROSE operator: trajectory samples (+ a symbolic guess) -> the solution at
    query times and the governing equations.

    ``predict(t_in, u_in, skeleton=None, t_out=None, dims=None)``:

    * ``u_in``: ``[N_in, d]`` (one trajectory) or ``[B, N_in, d]`` samples at the times
      ``t_in`` (``[N_in]`` or ``[B, N_in]``; None: the training input times
      :attr:`t_in`), d <= max_dim; ``dims`` [B]: the components each trajectory uses when
      u_in is zero-padded (default d);
    * ``skeleton`` (the symbol input; required unless the operator is data-only): prefix
      text (``"add mul <PLACEHOLDER> u_1 ..."``; numbers are replaced by placeholders, except
      for an operator trained with ``symbols=known``, which takes the full expression) or a
      token list, shared by the batch, or a list of those per trajectory (give token lists
      as lists, prefix texts as strings);
    * ``t_out``: query times ``[N_out]`` / ``[B, N_out]`` (None: the training ones,
      :attr:`t_out`);
    * returns a :class:`ProsePrediction`.

    Bad input (shapes, unknown tokens, a skeleton that does not parse or has the wrong
    component count) raises ValueError / :class:`~opnet.symbolic.SymbolicError` naming it
    before anything runs; an undecodable *output* is marked invalid, never raised.
    """

    def __init__(self, model: torch.nn.Module, metadata: Mapping[str, Any]) -> None:
        super().__init__(metadata)
        self.model = model.eval()
        self.mode = self.metadata["symbols"]
        self.max_dim = int(self.metadata["max_dim"])
        self.vocab = Vocabulary(int(self.metadata["vocab"]["max_dim"]))
        self._t_in = np.asarray(self.metadata["t_in"], np.float64)
        self._t_out = np.asarray(self.metadata["t_out"], np.float64)

    weights_prefix = "model."  # no normalisers: the network alone

    @staticmethod
    def build(block: Mapping[str, Any]) -> torch.nn.Module:
        return build_model(block["model"])

    @property
    def t_in(self) -> np.ndarray:
        """The training input times [N_in]."""
        return self._t_in.copy()

    @property
    def t_out(self) -> np.ndarray:
        """The training query times [N_out]."""
        return self._t_out.copy()

    # -- inputs ----------------------------------------------------------------------------
    def _trajectories(self, t_in: Any, u_in: Any, nonfinite: str
                      ) -> tuple[Tensor, Tensor, bool]:
        u = as_tensor(u_in)
        n_expected = len(self._t_in) if t_in is None else None
        t = as_tensor(self._t_in if t_in is None else t_in)
        n = t.shape[-1] if t.ndim in (1, 2) else None
        want = (f"[{n}, d] or [B, {n}, d] with d <= {self.max_dim} "
                f"(t_in has {n} times{', the training input times' if n_expected else ''})")
        if t.ndim not in (1, 2):
            raise ValueError(f"predict: t_in has shape {tuple(t.shape)}; expected [N_in] or "
                             "[B, N_in] input times")
        if u.ndim not in (2, 3) or u.shape[-2] != n or not 1 <= u.shape[-1] <= self.max_dim:
            raise ValueError(f"predict: u_in has shape {tuple(u.shape)}; expected {want}")
        single = u.ndim == 2
        u = u[None] if single else u
        if t.ndim == 2 and t.shape[0] != u.shape[0]:
            raise ValueError(f"predict: t_in has shape {tuple(t.shape)} but u_in holds "
                             f"{u.shape[0]} trajectories; give t_in as [{n}] or "
                             f"[{u.shape[0]}, {n}]")
        check_nonfinite("u_in", u, nonfinite, "trajectory")
        check_nonfinite("t_in", t[:, None] if t.ndim == 1 else t, nonfinite,
                        "time" if t.ndim == 1 else "trajectory")
        t = t.expand(u.shape[0], -1) if t.ndim == 1 else t
        return t.float(), u.float(), single

    def _queries(self, t_out: Any, b: int, nonfinite: str) -> Tensor:
        t = as_tensor(self._t_out if t_out is None else t_out)
        if t.ndim == 1:
            check_nonfinite("t_out", t[:, None], nonfinite, "time")
            return t.float().expand(b, -1)
        if t.ndim == 2 and t.shape[0] == b:
            check_nonfinite("t_out", t, nonfinite, "trajectory")
            return t.float()
        raise ValueError(f"predict: t_out has shape {tuple(t.shape)}; expected [N_out] or "
                         f"[{b}, N_out] query times")

    def _symbol_ids(self, skeleton: Any, b: int, dims: np.ndarray) -> list[list[int]] | None:
        if not self.model.symbol_input:
            if skeleton is not None:
                raise ValueError("predict: this operator is data-only (trained with "
                                 "symbols=none); it takes no skeleton")
            return None
        if skeleton is None:
            raise ValueError(f"predict: this operator was trained with symbols={self.mode} "
                             "and needs a skeleton (prefix text or tokens) as symbol input")
        if isinstance(skeleton, str):
            items = [skeleton] * b
        elif (isinstance(skeleton, Sequence) and skeleton
              and all(isinstance(s, str) for s in skeleton)):
            if not any(" " in s.strip() for s in skeleton):
                items = [list(skeleton)] * b  # one token list for the batch
            elif len(skeleton) == b:
                items = list(skeleton)  # one prefix text per trajectory
            else:
                raise ValueError(f"predict: skeleton is a list of {len(skeleton)} prefix "
                                 f"texts for {b} trajectories")
        elif isinstance(skeleton, Sequence) and len(skeleton) == b:
            items = list(skeleton)
        else:
            raise ValueError(f"predict: skeleton must be prefix text, a token list, or a list "
                             f"of {b} of those (one per trajectory)")
        out, cache = [], {}
        for i, item in enumerate(items):
            key = item if isinstance(item, str) else tuple(item)
            if key not in cache:
                where = f"skeleton{'' if b == 1 else f' {i}'}"
                try:
                    expr = parse_prefix(item) if isinstance(item, str) else decode(list(item))
                except SymbolicError as err:
                    raise SymbolicError(f"predict: {where}: {err}") from err
                if self.mode != "known":
                    expr = to_skeleton(expr)
                try:
                    ids = self.vocab.encode(encode(expr))
                except SymbolicError as err:
                    raise SymbolicError(f"predict: {where}: {err}") from err
                cache[key] = (ids, expr.n_components)
            ids, comps = cache[key]
            if comps != int(dims[i]):
                raise ValueError(f"predict: skeleton{'' if b == 1 else f' {i}'} has {comps} "
                                 f"components but the trajectory has {int(dims[i])}")
            out.append(ids)
        return out

    # -- prediction ------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, t_in: Any, u_in: Any, skeleton: Any = None, t_out: Any = None,
                dims: Any = None, batch_size: int = 256, max_len: int | None = None,
                nonfinite: NonFinite = "raise") -> ProsePrediction:
        """The solution at the query times (physical units, those of the training
        trajectories) and, for a model with a symbol decoder, the equations.

        t_in: input times ``[N_in]`` shared by the batch or ``[B, N_in]`` (None: the training
            input times :attr:`t_in`), in the time units of the training data.
        u_in: the state ``[N_in, d]`` (one trajectory) or ``[B, N_in, d]`` at those times,
            d <= max_dim components (zero-padded beyond ``dims`` [B] when given).
        skeleton: the symbol input (prefix text, a token list, or one per trajectory); see
            the class docstring.
        t_out: query times ``[N_out]`` / ``[B, N_out]`` (None: the training ones,
            :attr:`t_out`).
        batch_size: trajectories per forward pass (>= 1; lower it when out of memory);
            max_len: the most tokens decoded per equation.
        nonfinite: NaN/Inf in ``t_in``, ``u_in`` or ``t_out``: ``"raise"`` (ValueError
            naming the argument and trajectory), ``"warn"`` or ``"ignore"``.
        Returns a :class:`ProsePrediction`: ``values`` float32 ``[N_out, d]`` or
        ``[B, N_out, d]`` (B = 0 gives empty values and lists).
        """
        batch_size = check_count("batch_size", batch_size)
        t, u, single = self._trajectories(t_in, u_in, nonfinite)
        b, d = u.shape[0], u.shape[2]
        dims = np.full(b, d) if dims is None else np.asarray(dims, np.int64).reshape(-1)
        if dims.shape != (b,) or np.any((dims < 1) | (dims > d)):
            raise ValueError(f"predict: dims must be [{b}] integers in [1, {d}], got {dims}")
        q = self._queries(t_out, b, nonfinite)
        ids = self._symbol_ids(skeleton, b, dims)
        max_len = int(max_len or self.metadata.get("max_decode_len", 150))
        with memory_guard(batch_size, b, self.device):
            values, generated = self._run(t, u, q, ids, dims, batch_size, max_len)
        out = (torch.cat(values)[:, :, :d] if values else torch.empty(0, q.shape[1], d)).numpy()
        if not self.model.symbol_output:
            return ProsePrediction(out[0] if single else out, None, None, None, None, None)
        return self._decoded(out, generated, dims, single)

    def _run(self, t: Tensor, u: Tensor, q: Tensor, ids: list[list[int]] | None,
             dims: np.ndarray, batch_size: int, max_len: int
             ) -> tuple[list[Tensor], list[np.ndarray]]:
        """The model on batches: (values [b, N_out, max_dim] per batch, generated ids)."""
        d, decodes, pad = u.shape[2], self.model.symbol_output, self.vocab.pad_id
        values: list[Tensor] = []
        generated: list[np.ndarray] = []
        for start in range(0, len(u), batch_size):
            sl = slice(start, start + batch_size)
            ub = u[sl].to(self.device)
            ub = torch.nn.functional.pad(ub, (0, self.max_dim - d))
            mask = torch.arange(self.max_dim)[None, :] < torch.as_tensor(dims[sl])[:, None]
            ub = ub * mask[:, None, :].to(ub)
            sym = sym_mask = None
            if ids is not None:
                rows = ids[sl]
                width = max(len(r) for r in rows)
                sym = torch.full((len(rows), width), pad, dtype=torch.long)
                for k, r in enumerate(rows):
                    sym[k, :len(r)] = torch.as_tensor(r)
                sym = sym.to(self.device)
                sym_mask = sym != pad
            enc = self.model.encode(t[sl].to(self.device), ub, None, sym, sym_mask)
            values.append(self.model.decode_data(enc, q[sl].to(self.device)).float().cpu())
            if decodes:
                gen = self.model.greedy(enc, max_len=max_len)
                generated.extend(gen.tokens.cpu().numpy())
        return values, generated

    def _decoded(self, out: np.ndarray, generated: list[np.ndarray], dims: np.ndarray,
                 single: bool) -> ProsePrediction:
        prefix, infix, tokens, valid, errors = [], [], [], [], []
        # the checkpoint's expression-error points (module.expression_points/_seed)
        n_points = int(self.metadata.get("expression_points", N_POINTS))
        seed = int(self.metadata.get("expression_seed", 0))
        for i, row in enumerate(generated):
            expr, toks, err = decode_ids(row, self.vocab)
            if expr is not None:
                points = expression_points(int(dims[i]), n_points, seed)
                err = check(expr, points, n_components=int(dims[i]))
            prefix.append(None if expr is None else expr.to_prefix())
            infix.append(None if expr is None else expr.to_infix())
            tokens.append(toks)
            valid.append(err is None)
            errors.append(err)
        if single:
            return ProsePrediction(out[0], prefix[0], infix[0], tokens[0], valid[0], errors[0])
        return ProsePrediction(out, prefix, infix, tokens, np.array(valid), errors)

    def describe(self) -> str:
        return (f"symbols={self.mode}, max_dim {self.max_dim}, {len(self._t_in)} -> "
                f"{len(self._t_out)} times")
