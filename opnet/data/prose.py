"""PROSE data: noisy ODE trajectories, symbol inputs by mode and expression targets, served
as whole batches.

Reads a dataset folder of the ``ode_systems`` layout (:mod:`data_gen.pdes.ode_systems`):
``inputs/u`` [N, N_in, D], ``outputs/u`` [N, N_out, D], ``coords/t_in``, ``coords/t_out``,
``params/dim`` (components used; default D), ``symbols/expression`` (prefix notation) and
``symbols/system`` (for the double pendulum's corruption sites). The splits are held in
memory (512,000 × 192 × 3 float32 = 1.2 GB at the paper's size).

**Noise** (PROSE §3): ``u <- u + σ z``, σ = level·‖u‖/‖z‖ over the whole trajectory
(input and output times, the system's own components), the same noisy trajectory being the
input (first N_in times) and the target (the rest). Training batches draw fresh noise every
time a sample is served, from a stream seeded by ``(seed, rank, epoch)``; validation and
test noise is fixed: :func:`opnet.data.noise.add_trajectory_noise` with sample ``i`` of split
``s`` drawing from ``SeedSequence([noise_seed, s, i])`` (i = the sample's index in its split,
``meta/global_index``).

**Symbol input** (``symbols``):

* ``unknown``: the skeleton (every constant a placeholder) with term corruption: kept with
  probability 1 − p_add − p_delete, one term added with p_add, one deleted with p_delete
  (:func:`opnet.symbolic.perturb` with ``sites=CORRUPTION_SITES.get(system)``). Resampled
  every time a training sample is served; drawn once with ``corruption_seed`` for
  validation/test (sample ``i`` of split ``s`` from ``SeedSequence([corruption_seed, s, i])``).
* ``skeleton``: the clean skeleton; ``known``: the full expression (constants included);
* ``none``: no symbol input (the data-only model); the batch has no symbol keys.

Fast path: skeletons depend on the system only, so every corruption a skeleton can receive
(each added term at each place, each deleted term) is enumerated and tokenised once
(:class:`SymbolTables`); serving a batch is then a few vectorised draws and array gathers.
The draw is the one :func:`~opnet.symbolic.perturb` makes (mode, then a uniform term and
place, or a uniform deletion), so the distribution is the same.

**Batch** (dict of tensors; B samples, D = max_dim, L / L_t = the batch's longest symbol
input / target + 1)::

    t_in        float32 [B, N_in]     input times (t <= 1.98)
    u_in        float32 [B, N_in, D]  noisy inputs, components beyond the system's d zero
    t_out       float32 [B, N_out]    query times (t in [2.01, 6])
    u_out       float32 [B, N_out, D] noisy targets (zero beyond d)
    dim_mask    bool    [B, D]        True for the system's components
    symbols     int64   [B, L]        symbol input ids (no BOS/EOS), padded with pad_id
    symbol_mask bool    [B, L]        True = real token
    target_in   int64   [B, L_t]      [BOS] target, padded (teacher forcing)
    target_out  int64   [B, L_t]      target [EOS], padded (the cross-entropy labels)
    target_mask bool    [B, L_t]
    index       int64   [B]           the samples' indices in their split
    dim         int64   [B]           the systems' dimensions d

(``symbols``/``symbol_mask`` are absent in mode ``none``, the targets too.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from opnet.data import h5
from opnet.data.datamodule import ensure_dataset
from opnet.data.h5 import DatasetError
from opnet.data.noise import add_trajectory_noise
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

MODES = ("unknown", "skeleton", "known", "none")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


# ------------------------------------------------------------------------------ noise
def batch_noise(u: np.ndarray, dims: np.ndarray, level: float, rng: np.random.Generator
                ) -> np.ndarray:
    """Vectorised :func:`~opnet.data.noise.add_trajectory_noise` for one batch: ``u`` [B, T,
    D] float32, ``dims`` [B]; z ~ N(0, 1) on each trajectory's own components, σ = level ·
    ‖u‖ / (‖z‖ + 1e-6) per trajectory (norms in float64). One draw of [B, T, D] float32
    normals from ``rng``."""
    if level == 0:
        return u.copy()
    b, t, d = u.shape
    keep = (np.arange(d)[None, :] < dims[:, None])[:, None, :]  # [B, 1, D]
    z = rng.standard_normal((b, t, d), dtype=np.float32)
    z *= keep
    norm_u = np.sqrt(np.square(u, dtype=np.float64).sum(axis=(1, 2)))
    norm_z = np.sqrt(np.square(z, dtype=np.float64).sum(axis=(1, 2)))
    sigma = (level * norm_u / (norm_z + 1e-6)).astype(np.float32)
    return u + sigma[:, None, None] * z


# ---------------------------------------------------------------------------- symbols
def _pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
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
        self.known, self.known_len = _pad_rows(self._targets, v.pad_id)
        self.target_in, _ = _pad_rows([[v.bos_id, *t] for t in self._targets], v.pad_id)
        self.target_out, self.target_len = _pad_rows([[*t, v.eos_id] for t in self._targets],
                                                     v.pad_id)
        self.rows, self.row_len = _pad_rows(self._rows, v.pad_id)
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


def _gather(table: np.ndarray, lengths: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a padded table, cut to the longest of them."""
    width = max(1, int(lengths[idx].max(initial=0)))
    return table[idx, :width]


# ----------------------------------------------------------------------------- splits
@dataclass
class ProseSplit:
    """One split in memory. ``u`` float32 [N, N_in + N_out, D] clean trajectories (noisy for
    val/test after :meth:`ProseDataModule.setup`), ``dims`` [N], ``index`` [N] (in the split,
    the noise/corruption streams), ``expr`` / ``skel`` [N] (rows of the
    :class:`SymbolTables`), ``system`` [N] names, ``symbol_rows`` [N] (fixed symbol inputs
    of val/test in mode unknown; None otherwise)."""

    u: np.ndarray
    dims: np.ndarray
    index: np.ndarray
    system: np.ndarray
    expr: np.ndarray | None = None
    skel: np.ndarray | None = None
    symbol_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.u)


def read_prose_split(path: Path, limit: int | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The arrays of one ``ode_systems`` split file: (``{"u" [N, T, D], "dims", "index",
    "system", "expression"}``, ``{"t_in", "t_out"}``); a missing or misshapen field is a
    :class:`DatasetError` naming it."""
    sl = slice(0, limit)
    with h5.open_split(path) as f:
        def need(key: str, what: str) -> Any:
            if key not in f:
                group = key.split("/")[0]
                have = sorted(f[group].keys()) if group in f else []
                raise DatasetError(f"{path}: has no field '{key}' ({what}; it has {group}: "
                                   f"{have}); expected the ode_systems layout "
                                   "(data_gen/pdes/ode_systems.py)")
            return f[key]

        u_in = need("inputs/u", "the observed trajectories [N, N_in, D]")
        u_out = need("outputs/u", "the target trajectories [N, N_out, D]")
        if u_in.ndim != 3 or u_out.ndim != 3 or u_in.shape[0] != u_out.shape[0] \
                or u_in.shape[2] != u_out.shape[2]:
            raise DatasetError(f"{path}: inputs/u {list(u_in.shape)} and outputs/u "
                               f"{list(u_out.shape)}: expected [N, N_in, D] and [N, N_out, D]")
        t_in = np.asarray(need("coords/t_in", "input times")[()], np.float64)
        t_out = np.asarray(need("coords/t_out", "output times")[()], np.float64)
        for name, t, n in (("t_in", t_in, u_in.shape[1]), ("t_out", t_out, u_out.shape[1])):
            if t.shape != (n,):
                raise DatasetError(f"{path}: coords/{name} has shape {list(t.shape)}, expected "
                                   f"[{n}] (the trajectories' time axis)")
        u = np.concatenate([np.asarray(u_in[sl], np.float32),
                            np.asarray(u_out[sl], np.float32)], axis=1)
        n, _, d = u.shape
        dims = (np.asarray(f["params/dim"][sl], np.int64) if "params/dim" in f
                else np.full(n, d, np.int64))
        if np.any((dims < 1) | (dims > d)):
            raise DatasetError(f"{path}: params/dim has values outside [1, {d}] "
                               f"(inputs/u has D = {d} components)")
        index = (np.asarray(f["meta/global_index"][sl], np.int64) if "meta/global_index" in f
                 else np.arange(n, dtype=np.int64))
        system = (np.asarray(f["symbols/system"].asstr()[sl], dtype=str)
                  if "symbols/system" in f else np.full(n, "", dtype=str))
        expression = (np.asarray(f["symbols/expression"].asstr()[sl], dtype=str)
                      if "symbols/expression" in f else None)
    return ({"u": u, "dims": dims, "index": index, "system": system,
             "expression": expression}, {"t_in": t_in, "t_out": t_out})


# -------------------------------------------------------------------------- batching
class ProseBatches:
    """Batches of one split: training (shuffled, fresh noise and corruption on every pass;
    ``steps`` batches per epoch, from consecutive permutations) or evaluation (in order,
    fixed noise and symbols). A sized iterable of dicts of CPU tensors; training resumes
    exactly from a mid-epoch checkpoint (``state_dict``)."""

    def __init__(self, dm: ProseDataModule, split: str, train: bool, batch_size: int,
                 steps: int | None = None, rank: int = 0, world_size: int = 1,
                 epoch: Callable[[], int] | None = None) -> None:
        self.dm, self.data, self.train = dm, dm.splits[split], train
        self.rank, self.world = int(rank), int(world_size)
        self.samples = np.arange(self.rank, len(self.data), self.world)  # this rank's share
        n_local = len(self.samples)
        self.batch_size = max(1, min(int(batch_size), max(n_local, 1)))
        self.steps = int(steps) if (train and steps) else math.ceil(n_local / self.batch_size)
        self.epoch = epoch or (lambda: 0)
        self._served = 0  # training batches served in this epoch (saved in checkpoints)
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip) after a restore
        self._t_in = torch.as_tensor(dm.times["t_in"], dtype=torch.float32)
        self._t_out = torch.as_tensor(dm.times["t_out"], dtype=torch.float32)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        if not self.train:
            for k in range(self.steps):
                yield self.batch(self.samples[k * self.batch_size:(k + 1) * self.batch_size])
            return
        epoch = int(self.epoch())
        resume, self._resume = self._resume, None
        skip = resume[1] if resume is not None and resume[0] == epoch else 0
        self._served = 0
        rng = np.random.default_rng(np.random.SeedSequence([self.dm.seed, self.rank, epoch]))
        perm, pos = rng.permutation(self.samples), 0
        for _ in range(self.steps):
            parts, need = [], self.batch_size
            while need:
                if pos >= len(perm):
                    perm, pos = rng.permutation(self.samples), 0
                take = perm[pos:pos + need]
                pos += len(take)
                need -= len(take)
                parts.append(take)
            batch = self.batch(np.concatenate(parts), rng)  # skipped ones too: same draws
            self._served += 1
            if self._served > skip:
                yield batch

    def state_dict(self) -> dict[str, int]:
        """Position in the training epoch (Lightning stores it in checkpoints)."""
        return {"epoch": int(self.epoch()), "batches": int(self._served)} if self.train else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resumed from a mid-epoch checkpoint: the next pass skips the batches of that epoch
        already trained on, drawing their noise and corruption so the rest match the
        uninterrupted run."""
        batches = int(state.get("batches", 0))
        if self.train and 0 < batches < self.steps:
            self._resume = (int(state.get("epoch", 0)), batches)

    def batch(self, idx: np.ndarray, rng: np.random.Generator | None = None
              ) -> dict[str, Tensor]:
        """The batch of samples ``idx`` (training: noise and corruption from ``rng``)."""
        dm, data = self.dm, self.data
        n_in = len(dm.times["t_in"])
        dims = data.dims[idx]
        u = data.u[idx]
        if rng is not None:
            u = batch_noise(u, dims, dm.noise_level, rng)
        b, d = len(idx), u.shape[2]
        out = {"t_in": self._t_in.expand(b, -1).contiguous(),
               "u_in": torch.from_numpy(np.ascontiguousarray(u[:, :n_in])),
               "t_out": self._t_out.expand(b, -1).contiguous(),
               "u_out": torch.from_numpy(np.ascontiguousarray(u[:, n_in:])),
               "dim_mask": torch.from_numpy(np.arange(d)[None, :] < dims[:, None]),
               "index": torch.from_numpy(data.index[idx]),
               "dim": torch.from_numpy(dims)}
        if dm.mode == "none":
            return out
        tab = dm.tables
        if dm.mode == "known":
            sym = _gather(tab.known, tab.known_len, data.expr[idx])
        else:
            if dm.mode == "skeleton":
                rows = tab.keep[data.skel[idx]]
            elif rng is not None:
                rows = tab.draw(data.skel[idx], rng, dm.p_add, dm.p_delete)
            else:
                rows = data.symbol_rows[idx]
            sym = _gather(tab.rows, tab.row_len, rows)
        e = data.expr[idx]
        pad = dm.vocab.pad_id
        out["symbols"] = torch.from_numpy(sym)
        out["symbol_mask"] = out["symbols"] != pad
        out["target_in"] = torch.from_numpy(_gather(tab.target_in, tab.target_len, e))
        out["target_out"] = torch.from_numpy(_gather(tab.target_out, tab.target_len, e))
        out["target_mask"] = out["target_out"] != pad
        return out


# ------------------------------------------------------------------------ datamodule
class ProseDataModule(L.LightningDataModule):
    """Train/val/test splits of an ``ode_systems`` dataset folder served as PROSE batches
    (see the module docstring for the batch and the noise/corruption streams).

    data_dir, n_train/n_val/n_test, generate (``{"pde": {"name": "ode_systems", ...},
    "n_train": ..}``: the arguments of :func:`data_gen.generate`, used when files are
    missing), name, missing_hint: as :class:`~opnet.data.datamodule.GridDataModule`.
    symbols: ``unknown`` | ``skeleton`` | ``known`` | ``none`` (the symbol input).
    max_dim: components the model takes (null: the data's D; larger zero-pads).
    batch_size / eval_batch_size: samples per training / validation-test batch;
    steps_per_epoch: training batches per Lightning epoch (null: one pass).
    noise_level: relative trajectory noise (0.02); p_add / p_delete: term corruption.
    seed: training stream (order, noise, corruption); noise_seed / corruption_seed: the
    fixed evaluation noise and symbol inputs.
    """

    def __init__(self, data_dir: str, symbols: str = "unknown", batch_size: int = 64,
                 eval_batch_size: int | None = None, steps_per_epoch: int | None = None,
                 noise_level: float = 0.02, p_add: float = 0.15, p_delete: float = 0.15,
                 max_dim: int | None = None, n_train: int | None = None,
                 n_val: int | None = None, n_test: int | None = None,
                 generate: Mapping | None = None, name: str | None = None,
                 missing_hint: str | None = None, seed: int = 0, noise_seed: int = 1,
                 corruption_seed: int = 2, num_workers: int = 0) -> None:
        super().__init__()
        if symbols not in MODES:
            raise ValueError(f"data.symbols='{symbols}': expected one of {MODES}")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                           ("steps_per_epoch", steps_per_epoch), ("max_dim", max_dim)):
            if value is not None and int(value) < 1:
                raise ValueError(f"data.{key}={value}: expected a positive integer or null")
        if not (math.isfinite(noise_level) and noise_level >= 0):
            raise ValueError(f"data.noise_level={noise_level}: expected a number >= 0")
        if not (0 <= p_add and 0 <= p_delete and p_add + p_delete <= 1):
            raise ValueError(f"data.p_add={p_add}, data.p_delete={p_delete}: expected "
                             "probabilities with p_add + p_delete <= 1")
        if num_workers:
            raise ValueError(f"data.num_workers={num_workers}: PROSE batches are built by "
                             "array indexing in the main process (use 0)")
        if generate and dict(generate.get("pde") or {}).get("name", "ode_systems") \
                != "ode_systems":
            raise ValueError(f"data.generate.pde.name={generate['pde'].get('name')!r}: the "
                             "PROSE data module reads the ode_systems layout")
        self.data_dir = Path(data_dir)
        self.name = name or self.data_dir.name
        self.mode = symbols
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.steps_per_epoch = steps_per_epoch
        self.noise_level, self.p_add, self.p_delete = float(noise_level), p_add, p_delete
        self.max_dim_cfg = max_dim
        self.limits = {"train": n_train, "val": n_val, "test": n_test}
        self.generate = dict(generate) if generate else None
        self.missing_hint = missing_hint
        self.seed, self.noise_seed, self.corruption_seed = (int(seed), int(noise_seed),
                                                            int(corruption_seed))
        self.splits: dict[str, ProseSplit] = {}
        self.times: dict[str, np.ndarray] = {}
        self.vocab: Vocabulary | None = None
        self.tables: SymbolTables | None = None
        self.max_dim = 0

    # -- files -------------------------------------------------------------------------
    def missing_splits(self) -> list[str]:
        """Names of the splits whose ``<split>.h5`` is not in the data folder."""
        return [s for s in h5.SPLITS if not h5.split_path(self.data_dir, s).is_file()]

    def prepare_data(self) -> None:
        """Generate the files from ``generate`` when given, else name what is missing."""
        ensure_dataset(self.data_dir, self.generate, self.missing_hint)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits needed for ``stage`` (train always: it fixes D and the times),
        tokenise their expressions, add the fixed evaluation noise and symbol inputs."""
        if self.missing_splits():
            self.prepare_data()
        need = {"fit": ["train", "val"], "validate": ["train", "val"],
                "test": ["train", "test"], "predict": ["train", "test"]}.get(stage or "",
                                                                            h5.SPLITS)
        for split in ["train", *[s for s in need if s != "train"]]:
            if split not in self.splits:
                self._load(split)
        if self.tables is not None:
            self.tables.freeze()

    def _load(self, split: str) -> None:
        path = h5.split_path(self.data_dir, split)
        arrays, times = read_prose_split(path, self.limits[split])
        d = arrays["u"].shape[2]
        if split == "train":
            self.times = times
            self.max_dim = int(self.max_dim_cfg or d)
            if self.max_dim < d:
                raise DatasetError(f"{path}: the trajectories have D = {d} components but "
                                   f"data.max_dim={self.max_dim}; drop it (null) or raise it")
            self.vocab = Vocabulary(self.max_dim)
            if self.mode != "none":
                self.tables = SymbolTables(self.vocab, corrupt=self.mode == "unknown")
        else:
            for key in ("t_in", "t_out"):
                if times[key].shape != self.times[key].shape or \
                        not np.allclose(times[key], self.times[key]):
                    raise DatasetError(f"{path}: coords/{key} differ from train.h5's; the "
                                       "splits of a PROSE dataset must share their times")
            if d > self.max_dim:
                raise DatasetError(f"{path}: D = {d} components, train.h5 has "
                                   f"{self.max_dim}")
        u = arrays["u"]
        if d < self.max_dim:
            u = np.pad(u, ((0, 0), (0, 0), (0, self.max_dim - d)))
        data = ProseSplit(u=u, dims=arrays["dims"], index=arrays["index"],
                          system=arrays["system"])
        if self.mode != "none":
            if arrays["expression"] is None:
                raise DatasetError(f"{path}: has no field 'symbols/expression' (the "
                                   f"expressions in prefix notation), needed by "
                                   f"data.symbols='{self.mode}'; use data.symbols=none for "
                                   "data-only training")
            data.expr, data.skel = self.tables.add(arrays["expression"], arrays["system"],
                                                   str(path))
        sid = SPLIT_IDS[split]
        if split != "train":
            rngs = [np.random.default_rng(np.random.SeedSequence([self.noise_seed, sid, int(i)]))
                    for i in data.index]
            data.u = add_trajectory_noise(data.u, self.noise_level, rngs, dims=data.dims)
            if self.mode == "unknown":
                self.tables.freeze()
                data.symbol_rows = self._fixed_corruption(data, sid)
        self.splits[split] = data

    def _fixed_corruption(self, data: ProseSplit, sid: int) -> np.ndarray:
        """One corruption per evaluation sample, from its own stream."""
        rows = np.empty(len(data), np.int64)
        for k, (i, s) in enumerate(zip(data.index, data.skel, strict=True)):
            rng = np.random.default_rng(np.random.SeedSequence([self.corruption_seed, sid,
                                                                int(i)]))
            rows[k] = self.tables.draw(np.array([s]), rng, self.p_add, self.p_delete)[0]
        return rows

    # -- what the LightningModule needs ------------------------------------------------
    def io_spec(self) -> dict[str, Any]:
        """Plain description of the data (vocabulary, dimensions, times, mode,
        provenance), saved in checkpoints for the surrogate."""
        if "train" not in self.splits:
            self.setup("fit")
        train, v = self.splits["train"], self.vocab
        attrs = h5.read_attrs(h5.split_path(self.data_dir, "train"))
        out = {
            "kind": "prose", "symbols": self.mode, "max_dim": self.max_dim,
            "vocab": {"size": len(v), "max_dim": v.max_dim, "pad_id": v.pad_id,
                      "bos_id": v.bos_id, "eos_id": v.eos_id,
                      "placeholder_id": v.placeholder_id},
            "t_in": self.times["t_in"].tolist(), "t_out": self.times["t_out"].tolist(),
            "noise_level": self.noise_level, "p_add": self.p_add, "p_delete": self.p_delete,
            "noise_seed": self.noise_seed, "corruption_seed": self.corruption_seed,
            "systems": sorted({str(s) for s in train.system if s}),
            "dataset": {"name": self.name, "path": str(self.data_dir), "n_train": len(train),
                        "pde": attrs.get("pde"), "generator_config": attrs.get(
                            "generator_config"), "seed": attrs.get("seed")},
        }
        if self.tables is not None:
            self.tables.freeze()
            out["max_target_len"] = int(self.tables.target_len.max())
            out["max_symbol_len"] = int(max(self.tables.row_len.max(),
                                            self.tables.known_len.max()))
        return out

    # -- loaders -----------------------------------------------------------------------
    def _ensure(self, split: str) -> None:
        if split not in self.splits:
            self.setup("test" if split == "test" else "fit")

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> ProseBatches:
        """Training batches: noisy input trajectories, query times/targets and symbol tokens."""
        self._ensure("train")
        trainer = getattr(self, "trainer", None)
        epoch = (lambda: trainer.current_epoch) if trainer is not None else None
        return ProseBatches(self, "train", True, self.batch_size, self.steps_per_epoch,
                            *self._rank(), epoch=epoch)

    def val_dataloader(self) -> ProseBatches:
        """Validation batches (fixed noise and corruption, seeded)."""
        self._ensure("val")
        return ProseBatches(self, "val", False, self.eval_batch_size, None, *self._rank())

    def test_dataloader(self) -> ProseBatches:
        """Test batches (fixed noise and corruption, seeded)."""
        self._ensure("test")
        return ProseBatches(self, "test", False, self.eval_batch_size, None, *self._rank())
