"""Trained operators as fast surrogates: ``load_operator(ckpt).predict(a)`` for grid operators,
``load_operator(ckpt).predict(u_sensors, query_points)`` for DeepONets,
``load_operator(ckpt).predict(t_in, u_in, skeleton)`` for PROSE (values and the equation).

Works from the checkpoint alone (no Hydra, no dataset): the ``operator`` block holds the
model class and kwargs, the data description, and the normalizer buffers are in the
``state_dict``. Loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet import __version__
from opnet.data.normalizers import GaussianNormalizer, PointNormalizer
from opnet.models import resolve_model_name
from opnet.symbolic import (
    SymbolicError,
    Vocabulary,
    check,
    decode,
    encode,
    parse_prefix,
)
from opnet.symbolic import skeleton as to_skeleton
from opnet.training.module import OPERATOR_FORMAT, build_model
from opnet.training.prose_metrics import decode_ids, expression_points


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not what the caller expects."""


class Surrogate:
    """A trained grid operator in physical units.

    ``predict(a)``: ``a`` numpy/tensor ``[*grid]``, ``[B, *grid]`` (one input channel) or
    ``[B, C_in, *grid]``; returns numpy float32 of the matching layout with ``C_out``
    output channels (the channel axis is dropped when the input had none and C_out = 1).
    """

    def __init__(self, model: torch.nn.Module, in_norm: GaussianNormalizer,
                 out_norm: GaussianNormalizer, metadata: Mapping[str, Any]) -> None:
        self.model, self.in_norm, self.out_norm = model.eval(), in_norm, out_norm
        self.metadata = dict(metadata)
        self.io = self.metadata["io"]
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> Surrogate:
        self.device = torch.device(device)
        for m in (self.model, self.in_norm, self.out_norm):
            m.to(self.device)
        return self

    def _as_batch(self, a: np.ndarray | Tensor) -> tuple[Tensor, bool, bool]:
        x = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a)
        dims, c_in = len(self.io["grid"]), self.io["in_channels"]
        single, channel_axis = False, True
        if x.ndim == dims:
            x, single, channel_axis = x[None, None], True, False
        elif x.ndim == dims + 1 and c_in == 1:
            x, channel_axis = x[:, None], False
        elif x.ndim != dims + 2:
            raise ValueError(f"predict: input of shape {tuple(x.shape)} does not fit "
                             f"[*grid], [B, *grid] or [B, {c_in}, *grid] ({dims}-D grid)")
        if x.shape[1] != c_in:
            raise ValueError(f"predict: input has {x.shape[1]} channel(s), the operator "
                             f"expects {c_in} ({self.io['input_fields']})")
        trained = tuple(self.io["grid"])
        if "pointwise" in (self.in_norm.kind, self.out_norm.kind) and tuple(x.shape[2:]) != trained:
            raise ValueError(f"predict: grid {tuple(x.shape[2:])} differs from the training "
                             f"grid {trained}, and a pointwise normalizer ties this operator "
                             "to that grid")
        return x.float(), single, channel_axis

    @torch.inference_mode()
    def predict(self, a: np.ndarray | Tensor, batch_size: int = 64) -> np.ndarray:
        x, single, channel_axis = self._as_batch(a)
        outs = []
        for chunk in torch.split(x, batch_size):
            z = self.model(self.in_norm.encode(chunk.to(self.device)))
            outs.append(self.out_norm.decode(z).float().cpu())
        y = torch.cat(outs).numpy()
        if not channel_axis and y.shape[1] == 1:
            y = y[:, 0]
        return y[0] if single else y

    @torch.inference_mode()
    def rollout(self, a: np.ndarray | Tensor, steps: int, batch_size: int = 64) -> np.ndarray:
        """Autoregressive prediction of a one-step (time-stepping) operator: the ``steps``
        frames after ``a``; ``[*grid]`` -> ``[steps, *grid]``, ``[B, *grid]`` ->
        ``[B, steps, *grid]``, ``[B, C, *grid]`` -> ``[B, steps·C, *grid]``."""
        if self.io["in_channels"] != self.io["out_channels"]:
            raise ValueError(f"rollout: the operator maps {self.io['in_channels']} to "
                             f"{self.io['out_channels']} channels; a rollout needs equal ones")
        if int(steps) < 1:
            raise ValueError(f"rollout: steps={steps}, expected >= 1")
        x, single, channel_axis = self._as_batch(a)
        outs = []
        for chunk in torch.split(x, batch_size):
            z, frames = chunk.to(self.device), []
            for _ in range(int(steps)):
                z = self.out_norm.decode(self.model(self.in_norm.encode(z))).float()
                frames.append(z.cpu())
            outs.append(torch.cat(frames, dim=1))
        y = torch.cat(outs).numpy()
        return y[0] if single else y

    def __repr__(self) -> str:
        io = self.io
        return (f"Surrogate({self.metadata['model'].get('_target_')}, "
                f"{io['input_fields']} -> {io['output_fields']}, grid {io['grid']}, "
                f"data {io['dataset'].get('name')})")


class DeepONetSurrogate:
    """A trained DeepONet (or POD-DeepONet) in physical units.

    ``predict(u, y=None)``:

    * ``u``: sensor values ``[m]`` (one function) or ``[B, m]``; for a CNN branch images
      ``[C, H, W]`` / ``[B, C, H, W]`` (``[H, W]`` / ``[B, H, W]`` when C = 1) or flattened
      ``[B, C·H·W]``; the sensors are where the operator was trained (:attr:`sensors`);
    * ``y``: query points ``[Q, d]`` shared by every function (aligned; ``[Q]`` when d = 1),
      ``[B, Q, d]`` one set per function (unaligned), or None: the training query points
      (:attr:`query`);
    * returns numpy float32 ``[B, Q]`` (``[B, Q, C_out]`` with several outputs; without the
      B axis for a single function).

    A pointwise output normalizer or a POD basis ties the operator to its training query
    points: other points are refused with a message saying so.
    """

    def __init__(self, model: torch.nn.Module, in_norm: PointNormalizer,
                 out_norm: PointNormalizer, sensors: Tensor, query: Tensor,
                 metadata: Mapping[str, Any]) -> None:
        self.model, self.in_norm, self.out_norm = model.eval(), in_norm, out_norm
        self._sensors, self._query = sensors.double().cpu(), query.double().cpu()
        self.metadata = dict(metadata)
        self.io = self.metadata["io"]
        self.pod = hasattr(model, "fit_basis")
        self.device = torch.device("cpu")

    @property
    def sensors(self) -> np.ndarray:
        """Sensor locations ``[m, d_s]`` the branch input is sampled at (training data)."""
        return self._sensors.numpy()

    @property
    def query(self) -> np.ndarray:
        """The training query points ``[Q, d]``."""
        return self._query.numpy()

    def to(self, device: str | torch.device) -> DeepONetSurrogate:
        self.device = torch.device(device)
        for m in (self.model, self.in_norm, self.out_norm):
            m.to(self.device)
        return self

    def _as_inputs(self, u: np.ndarray | Tensor) -> tuple[Tensor, bool]:
        u = (u if isinstance(u, Tensor) else torch.tensor(np.asarray(u))).float()
        shape = tuple(self.io["input_shape"])
        flat = int(np.prod(shape))
        if len(shape) == 1:
            expected = f"[{shape[0]}] or [B, {shape[0]}]"
            if u.ndim in (1, 2) and u.shape[-1] == shape[0]:
                return (u[None], True) if u.ndim == 1 else (u, False)
        else:
            c, grid = shape[0], shape[1:]
            expected = (f"[{', '.join(map(str, shape))}], [B, {', '.join(map(str, shape))}] or "
                        f"[B, {flat}]" + (f" (or [{', '.join(map(str, grid))}] / [B, ...] with "
                                           "one channel)" if c == 1 else ""))
            if tuple(u.shape[-len(shape):]) == shape and u.ndim in (len(shape), len(shape) + 1):
                return (u[None], True) if u.ndim == len(shape) else (u, False)
            if c == 1 and tuple(u.shape[-len(grid):]) == grid and u.ndim in (len(grid),
                                                                            len(grid) + 1):
                u = u.unsqueeze(-len(grid) - 1)
                return (u[None], True) if u.ndim == len(shape) else (u, False)
            if u.ndim == 2 and u.shape[1] == flat:
                return u.reshape(len(u), *shape), False
        raise ValueError(f"predict: u has shape {tuple(u.shape)}; the operator takes {expected} "
                         f"(values at the {len(self._sensors)} training sensor locations, "
                         f"input '{self.io['input_field']}')")

    def _as_query(self, y: np.ndarray | Tensor | None, batch: int) -> tuple[Tensor, bool]:
        """-> (y [Q, d] or [B, Q, d], at the training points?)"""
        if y is None:
            return self._query.float(), True
        y = y if isinstance(y, Tensor) else torch.tensor(np.asarray(y))
        d = self.io["query_dim"]
        if y.ndim == 1 and d == 1:
            y = y[:, None]
        if y.ndim not in (2, 3) or y.shape[-1] != d:
            raise ValueError(f"predict: query points y have shape {tuple(y.shape)}; expected "
                             f"[Q, {d}] (the same points for every function), [B, Q, {d}] "
                             f"(one set per function)" + (" or [Q]" if d == 1 else "")
                             + f": the operator's query points are {d}-dimensional")
        if y.ndim == 3 and y.shape[0] != batch:
            raise ValueError(f"predict: y has shape {tuple(y.shape)} (unaligned: one point set "
                             f"per function) but u holds {batch} function(s); give y as "
                             f"[{batch}, Q, {d}] or [Q, {d}]")
        same = y.shape[-2] == len(self._query) and bool(
            torch.allclose(y.double(), self._query.expand_as(y), rtol=0, atol=1e-6))
        return y.float(), same

    @torch.inference_mode()
    def predict(self, u: np.ndarray | Tensor, y: np.ndarray | Tensor | None = None,
                batch_size: int = 256, point_batch: int = 1 << 16) -> np.ndarray:
        u, single = self._as_inputs(u)
        y, training_points = self._as_query(y, len(u))
        if not training_points and (self.pod or self.out_norm.kind == "pointwise"):
            why = "a POD basis" if self.pod else "a pointwise output normalizer"
            raise ValueError(f"predict: {why} ties this operator to its {len(self._query)} "
                             "training query points (operator.query); these points differ. "
                             "Retrain with module.out_normalizer=scalar (and a DeepONet, not a "
                             "POD-DeepONet) to evaluate anywhere")
        outs = []
        for start in range(0, len(u), batch_size):
            ub = self.in_norm.encode(u[start:start + batch_size].to(self.device))
            yb = y if y.ndim == 2 else y[start:start + batch_size]
            if self.pod:
                z = self.model(ub, self._query.float().to(self.device)
                               if self.model.trunk is not None else None)
            else:
                z = torch.cat([self.model(ub, yc.to(self.device))
                               for yc in torch.split(yb, point_batch, dim=-2)], dim=1)
            outs.append(self.out_norm.decode(z).float().cpu())
        out = torch.cat(outs).numpy()
        if out.shape[-1] == 1:
            out = out[..., 0]
        return out[0] if single else out

    def __repr__(self) -> str:
        io = self.io
        return (f"DeepONetSurrogate({self.metadata['model'].get('_target_')}, "
                f"{io['input_field']} at {len(self._sensors)} sensors -> {io['output_fields']} "
                f"at {io['query_dim']}-D points, data {io['dataset'].get('name')})")


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


class ProseSurrogate:
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
        self.model = model.eval()
        self.metadata = dict(metadata)
        self.io = self.metadata["io"]
        self.mode = self.metadata["symbols"]
        self.max_dim = int(self.metadata["max_dim"])
        self.vocab = Vocabulary(int(self.metadata["vocab"]["max_dim"]))
        self._t_in = np.asarray(self.metadata["t_in"], np.float64)
        self._t_out = np.asarray(self.metadata["t_out"], np.float64)
        self.device = torch.device("cpu")

    @property
    def t_in(self) -> np.ndarray:
        """The training input times [N_in]."""
        return self._t_in.copy()

    @property
    def t_out(self) -> np.ndarray:
        """The training query times [N_out]."""
        return self._t_out.copy()

    def to(self, device: str | torch.device) -> ProseSurrogate:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    # -- inputs ----------------------------------------------------------------------------
    def _trajectories(self, t_in: Any, u_in: Any) -> tuple[Tensor, Tensor, bool]:
        u = torch.as_tensor(np.asarray(u_in) if not isinstance(u_in, Tensor) else u_in)
        n_expected = len(self._t_in) if t_in is None else None
        t = torch.as_tensor(self._t_in if t_in is None else
                            (np.asarray(t_in) if not isinstance(t_in, Tensor) else t_in))
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
        t = t.expand(u.shape[0], -1) if t.ndim == 1 else t
        if not (torch.isfinite(u).all() and torch.isfinite(t).all()):
            raise ValueError("predict: t_in / u_in contain non-finite values")
        return t.float(), u.float(), single

    def _queries(self, t_out: Any, b: int) -> Tensor:
        t = torch.as_tensor(self._t_out if t_out is None else
                            (np.asarray(t_out) if not isinstance(t_out, Tensor) else t_out))
        if t.ndim == 1:
            return t.float().expand(b, -1)
        if t.ndim == 2 and t.shape[0] == b:
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
                dims: Any = None, batch_size: int = 256, max_len: int | None = None
                ) -> ProsePrediction:

        t, u, single = self._trajectories(t_in, u_in)
        b, d = u.shape[0], u.shape[2]
        dims = np.full(b, d) if dims is None else np.asarray(dims, np.int64).reshape(-1)
        if dims.shape != (b,) or np.any((dims < 1) | (dims > d)):
            raise ValueError(f"predict: dims must be [{b}] integers in [1, {d}], got {dims}")
        q = self._queries(t_out, b)
        ids = self._symbol_ids(skeleton, b, dims)
        max_len = int(max_len or self.metadata.get("max_decode_len", 150))
        decodes = self.model.symbol_output
        pad = self.vocab.pad_id
        values, generated = [], []
        for start in range(0, b, int(batch_size)):
            sl = slice(start, start + int(batch_size))
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
        out = torch.cat(values)[:, :, :d].numpy()
        if not decodes:
            return ProsePrediction(out[0] if single else out, None, None, None, None, None)
        prefix, infix, tokens, valid, errors = [], [], [], [], []
        for i, row in enumerate(generated):
            expr, toks, err = decode_ids(row, self.vocab)
            if expr is not None:
                err = check(expr, expression_points(int(dims[i])), n_components=int(dims[i]))
            prefix.append(None if expr is None else expr.to_prefix())
            infix.append(None if expr is None else expr.to_infix())
            tokens.append(toks)
            valid.append(err is None)
            errors.append(err)
        if single:
            return ProsePrediction(out[0], prefix[0], infix[0], tokens[0], valid[0], errors[0])
        return ProsePrediction(out, prefix, infix, tokens, np.array(valid), errors)

    def __repr__(self) -> str:
        return (f"ProseSurrogate({self.metadata['model'].get('_target_')}, symbols={self.mode}, "
                f"max_dim {self.max_dim}, {len(self._t_in)} -> {len(self._t_out)} times, "
                f"data {self.io['dataset'].get('name')})")


def _load_state(path: Path, state: Mapping[str, Tensor], target: str,
                parts: Sequence[tuple[str, torch.nn.Module]]) -> None:
    for prefix, module in parts:
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights under '{prefix}' do not fit {target} "
                                  f"built from the checkpoint's kwargs ({err})") from err


def _load_deeponet(path: Path, ckpt: Mapping[str, Any], block: Mapping[str, Any]
                   ) -> DeepONetSurrogate:
    io = block["io"]
    shape = list(io["input_shape"])
    net = build_model(block["model"])
    kinds = block.get("normalizers", {})
    in_norm = PointNormalizer(kinds.get("in", "none"), shape, 0 if len(shape) > 1 else None)
    out_norm = PointNormalizer(kinds.get("out", "none"), [io["n_query"], io["out_channels"]], 1)
    state = ckpt["state_dict"]
    _load_state(path, state, block["model"].get("_target_"),
                [("model.", net), ("in_norm.", in_norm), ("out_norm.", out_norm)])
    sensors = state.get("sensors", torch.tensor(block.get("sensors", []), dtype=torch.float64))
    query = state.get("query", torch.tensor(block.get("query", []), dtype=torch.float64))
    return DeepONetSurrogate(net, in_norm, out_norm, sensors, query, block)


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a missing or unreadable file (not a
    torch checkpoint, truncated) is a :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({err}); a "
                              "truncated or corrupt file? Use another checkpoint of the run "
                              "(checkpoints/last.ckpt or the best epoch_*.ckpt)") from err


def operator_block(path: str | os.PathLike, ckpt: Any) -> dict[str, Any]:
    """The checkpoint's ``operator`` block after checking its ``format_version`` against the
    one this opnet reads (a newer one: upgrade opnet; an older or missing one: the opnet that
    wrote it reads it)."""
    block = ckpt.get("operator") if isinstance(ckpt, dict) else None
    if not isinstance(block, dict):
        raise CheckpointError(f"{path}: has no 'operator' block; it was not written by opnet "
                              "training (keys: "
                              f"{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt)})")
    version, writer = block.get("format_version"), block.get("opnet_version", "unknown")
    if isinstance(version, int) and not isinstance(version, bool) and version > OPERATOR_FORMAT:
        raise CheckpointError(
            f"{path}: operator format_version {version} is newer than this opnet "
            f"({__version__}) reads (format_version {OPERATOR_FORMAT}); it was written by opnet "
            f"{writer}: upgrade opnet to load or resume it")
    if version != OPERATOR_FORMAT:
        raise CheckpointError(
            f"{path}: operator format_version {version!r}, expected {OPERATOR_FORMAT} (written "
            f"by opnet {writer}, this is {__version__}); load it with the opnet that wrote it, "
            "or retrain")
    if not isinstance(block.get("model"), dict):
        raise CheckpointError(f"{path}: its operator block has no 'model' dict (_target_ + "
                              "kwargs); the checkpoint is damaged or not opnet's")
    return block


def load_operator(path: str | os.PathLike, model: str | None = None,
                  device: str | torch.device = "cpu"
                  ) -> Surrogate | DeepONetSurrogate | ProseSurrogate:
    """Load a checkpoint written by opnet training as a :class:`Surrogate` (grid operators),
    a :class:`DeepONetSurrogate` (checkpoints of the DeepONetModule) or a
    :class:`ProseSurrogate` (the ProseModule's).

    ``model`` (e.g. ``"mgno"``), when given, must match the checkpoint's model class.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    block = operator_block(path, ckpt)
    target = block["model"].get("_target_")
    if model is not None and resolve_model_name(model) != target:
        raise CheckpointError(f"{path}: holds a {target} model, not the requested "
                              f"'{model}' ({resolve_model_name(model)})")
    if block.get("module", "OperatorModule") == "DeepONetModule":
        return _load_deeponet(path, ckpt, block).to(device)
    if block.get("module") == "ProseModule":
        return _load_prose(path, ckpt, block).to(device)
    io = block["io"]
    net = build_model(block["model"])
    in_norm = GaussianNormalizer(io["in_normalizer"], io["in_channels"], io["grid"])
    out_norm = GaussianNormalizer(io["out_normalizer"], io["out_channels"], io["grid"])
    _load_state(path, ckpt["state_dict"], target,
                [("model.", net), ("in_norm.", in_norm), ("out_norm.", out_norm)])
    return Surrogate(net, in_norm, out_norm, block).to(device)


def _load_prose(path: Path, ckpt: Mapping[str, Any], block: Mapping[str, Any]
                ) -> ProseSurrogate:
    net = build_model(block["model"])
    _load_state(path, ckpt["state_dict"], block["model"].get("_target_"), [("model.", net)])
    return ProseSurrogate(net, block)
