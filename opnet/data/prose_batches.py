"""PROSE batches: trajectory noise drawn per batch, and the sized iterable that serves a
split (training: shuffled, fresh noise and corruption, resumable mid-epoch; evaluation: in
order, fixed noise and symbols). The batch layout is in :mod:`opnet.data.prose`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from opnet.data.prose_symbols import gather_rows

if TYPE_CHECKING:
    from opnet.data.prose import ProseDataModule


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
            sym = gather_rows(tab.known, tab.known_len, data.expr[idx])
        else:
            if dm.mode == "skeleton":
                rows = tab.keep[data.skel[idx]]
            elif rng is not None:
                rows = tab.draw(data.skel[idx], rng, dm.p_add, dm.p_delete)
            else:
                rows = data.symbol_rows[idx]
            sym = gather_rows(tab.rows, tab.row_len, rows)
        e = data.expr[idx]
        pad = dm.vocab.pad_id
        out["symbols"] = torch.from_numpy(sym)
        out["symbol_mask"] = out["symbols"] != pad
        out["target_in"] = torch.from_numpy(gather_rows(tab.target_in, tab.target_len, e))
        out["target_out"] = torch.from_numpy(gather_rows(tab.target_out, tab.target_len, e))
        out["target_mask"] = out["target_out"] != pad
        return out
