"""Samplers and loaders whose position in an epoch survives a checkpoint: a resumed run
serves the batches the uninterrupted run would have (grid and trajectory data)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler


class EpochShuffle(RandomSampler):
    """Shuffles a dataset with a permutation fixed by ``(seed, epoch)``, not by the global RNG,
    so a run resumed from a checkpoint sees the batches the uninterrupted run saw (Lightning
    calls :meth:`set_epoch` before every epoch, as for a DistributedSampler)."""

    def __init__(self, data_source: Any, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (a function of the seed and the epoch only)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:  # a generator: the epoch is read at the first fetch
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0]
        generator = torch.Generator().manual_seed(int(state))
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch goes into Lightning checkpoints
    (``state_dict``/``load_state_dict``): resumed from a mid-epoch ``last.ckpt``, it skips the
    batches of that epoch that were trained on already, as the uninterrupted run would. Exact
    when the sampler's order depends on the epoch only (:class:`EpochShuffle`, a seeded
    DistributedSampler, no shuffle)."""

    _served = 0
    _resume: tuple[int, int] | None = None  # (epoch, batches to skip) after a restore

    def _epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def __iter__(self) -> Iterator[Any]:  # a generator: runs after Lightning's set_epoch
        resume, self._resume = self._resume, None
        skip = resume[1] if resume is not None and resume[0] == self._epoch() else 0
        self._served = 0
        for batch in super().__iter__():
            self._served += 1
            if self._served > skip:
                yield batch

    def state_dict(self) -> dict[str, int]:
        """``{"epoch": e, "batches": k}``: the position within the epoch (batches served)."""
        return {"epoch": self._epoch(), "batches": int(self._served)}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue from a saved position: the next epoch served skips its first ``batches``."""
        epoch, batches = int(state.get("epoch", 0)), int(state.get("batches", 0))
        if 0 < batches < len(self):  # saved mid-epoch (at an epoch's end: nothing to skip)
            self._resume = (epoch, batches)
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
