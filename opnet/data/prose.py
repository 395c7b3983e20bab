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

Fast path: every corruption a skeleton can receive is tokenised once
(:class:`~opnet.data.prose_symbols.SymbolTables`); serving a batch
(:class:`~opnet.data.prose_batches.ProseBatches`) is then a few vectorised draws and array
gathers, with the distribution of :func:`~opnet.symbolic.perturb`.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opnet.data import h5
from opnet.data.base import OperatorDataModule, check_positive_or_null
from opnet.data.h5 import DatasetError
from opnet.data.noise import add_trajectory_noise
from opnet.data.prose_batches import ProseBatches, batch_noise
from opnet.data.prose_symbols import SymbolTables
from opnet.symbolic import Vocabulary

__all__ = ["MODES", "SPLIT_IDS", "ProseBatches", "ProseDataModule", "ProseSplit",
           "SymbolTables", "batch_noise", "read_prose_split"]  # ProseBatches, SymbolTables,
# batch_noise: re-exported from opnet.data.prose_batches / opnet.data.prose_symbols

MODES = ("unknown", "skeleton", "known", "none")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


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


# ------------------------------------------------------------------------ datamodule
class ProseDataModule(OperatorDataModule):
    """Train/val/test splits of an ``ode_systems`` dataset folder served as PROSE batches
    (see the module docstring for the batch and the noise/corruption streams).

    data_dir, n_train/n_val/n_test, generate (``{"pde": {"name": "ode_systems", ...},
    "n_train": ..}``: the arguments of :func:`data_gen.generate`, used when files are
    missing), name, missing_hint: as :class:`~opnet.data.base.OperatorDataModule`.
    symbols: ``unknown`` | ``skeleton`` | ``known`` | ``none`` (the symbol input).
    max_dim: components the model takes (null: the data's D; larger zero-pads).
    batch_size / eval_batch_size: samples per training / validation-test batch;
    steps_per_epoch: training batches per Lightning epoch (null: one pass).
    noise_level: relative trajectory noise (0.02); p_add / p_delete: term corruption.
    seed: training stream (order, noise, corruption); noise_seed / corruption_seed: the
    fixed evaluation noise and symbol inputs.
    """

    workers_refused = "PROSE batches are built by array indexing in the main process"

    def __init__(self, data_dir: str, symbols: str = "unknown", batch_size: int = 64,
                 eval_batch_size: int | None = None, steps_per_epoch: int | None = None,
                 noise_level: float = 0.02, p_add: float = 0.15, p_delete: float = 0.15,
                 max_dim: int | None = None, n_train: int | None = None,
                 n_val: int | None = None, n_test: int | None = None,
                 generate: Mapping | None = None, name: str | None = None,
                 missing_hint: str | None = None, seed: int = 0, noise_seed: int = 1,
                 corruption_seed: int = 2, num_workers: int = 0) -> None:
        if symbols not in MODES:
            raise ValueError(f"data.symbols='{symbols}': expected one of {MODES}")
        check_positive_or_null(batch_size=batch_size, eval_batch_size=eval_batch_size,
                               steps_per_epoch=steps_per_epoch, max_dim=max_dim)
        if not (math.isfinite(noise_level) and noise_level >= 0):
            raise ValueError(f"data.noise_level={noise_level}: expected a number >= 0")
        if not (0 <= p_add and 0 <= p_delete and p_add + p_delete <= 1):
            raise ValueError(f"data.p_add={p_add}, data.p_delete={p_delete}: expected "
                             "probabilities with p_add + p_delete <= 1")
        super().__init__(data_dir, n_train=n_train, n_val=n_val, n_test=n_test,
                         generate=generate, name=name, missing_hint=missing_hint, seed=seed,
                         num_workers=num_workers)
        if generate and dict(generate.get("pde") or {}).get("name", "ode_systems") \
                != "ode_systems":
            raise ValueError(f"data.generate.pde.name={generate['pde'].get('name')!r}: the "
                             "PROSE data module reads the ode_systems layout")
        self.mode = symbols
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.steps_per_epoch = steps_per_epoch
        self.noise_level, self.p_add, self.p_delete = float(noise_level), p_add, p_delete
        self.max_dim_cfg = max_dim
        self.noise_seed, self.corruption_seed = int(noise_seed), int(corruption_seed)
        self.splits: dict[str, ProseSplit] = {}
        self.times: dict[str, np.ndarray] = {}
        self.vocab: Vocabulary | None = None
        self.tables: SymbolTables | None = None
        self.max_dim = 0

    # -- files -------------------------------------------------------------------------
    def splits_loaded(self) -> None:
        """Build the token tables' arrays once every split needed was tokenised."""
        if self.tables is not None:
            self.tables.freeze()

    def load_split(self, split: str) -> ProseSplit:
        """One split: its trajectories (zero-padded to ``max_dim``), expressions tokenised,
        val/test with their fixed noise and symbol inputs. The train split fixes D, the
        times and the vocabulary."""
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
        return data

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
        train, v = self.require("train"), self.vocab
        out = {
            "kind": "prose", "symbols": self.mode, "max_dim": self.max_dim,
            "vocab": {"size": len(v), "max_dim": v.max_dim, "pad_id": v.pad_id,
                      "bos_id": v.bos_id, "eos_id": v.eos_id,
                      "placeholder_id": v.placeholder_id},
            "t_in": self.times["t_in"].tolist(), "t_out": self.times["t_out"].tolist(),
            "noise_level": self.noise_level, "p_add": self.p_add, "p_delete": self.p_delete,
            "noise_seed": self.noise_seed, "corruption_seed": self.corruption_seed,
            "systems": sorted({str(s) for s in train.system if s}),
            "dataset": self.provenance(),
        }
        if self.tables is not None:
            self.tables.freeze()
            out["max_target_len"] = int(self.tables.target_len.max())
            out["max_symbol_len"] = int(max(self.tables.row_len.max(),
                                            self.tables.known_len.max()))
        return out

    # -- loaders -----------------------------------------------------------------------
    def train_dataloader(self) -> ProseBatches:
        """Training batches: noisy input trajectories, query times/targets and symbol tokens."""
        self.require("train")
        trainer = getattr(self, "trainer", None)
        epoch = (lambda: trainer.current_epoch) if trainer is not None else None
        return ProseBatches(self, "train", True, self.batch_size, self.steps_per_epoch,
                            *self.rank_and_world(), epoch=epoch)

    def val_dataloader(self) -> ProseBatches:
        """Validation batches (fixed noise and corruption, seeded)."""
        self.require("val")
        return ProseBatches(self, "val", False, self.eval_batch_size, None,
                            *self.rank_and_world())

    def test_dataloader(self) -> ProseBatches:
        """Test batches (fixed noise and corruption, seeded)."""
        self.require("test")
        return ProseBatches(self, "test", False, self.eval_batch_size, None,
                            *self.rank_and_world())
