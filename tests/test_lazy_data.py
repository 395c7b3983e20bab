"""Lazy grid data (``data.in_memory=false``): one sample per read, the same batches, statistics
and trained weights as the in-memory splits, and training on a file larger than the memory
the process may use."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, compose_train
from torch.utils.data import DataLoader

from opnet.data import datamodule as datamodule_mod
from opnet.data import h5
from opnet.data.datamodule import GridDataModule, GridDataset, LazyGridDataset
from opnet.data.h5 import DatasetError
from opnet.data.normalizers import GaussianNormalizer, RunningMoments, gaussian_stats
from opnet.training.module import OperatorModule

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_NET = {"_target_": "opnet.models.mgno.MgNO", "width": 8, "layers": 2,
            "smoothing": [[1, 0], [1, 0], [1, 0]]}


def _pair(data_dir: Path, **kwargs) -> tuple[GridDataModule, GridDataModule]:
    """The same data in memory and lazy, set up for fitting."""
    memory = GridDataModule(str(data_dir), in_memory=True, **kwargs)
    lazy = GridDataModule(str(data_dir), in_memory=False, **kwargs)
    for dm in (memory, lazy):
        dm.setup("fit")
    return memory, lazy


def _assert_same_batches(a: DataLoader, b: DataLoader) -> int:
    count = 0
    for one, two in zip(a, b, strict=True):
        assert torch.equal(one["x"], two["x"]) and torch.equal(one["y"], two["y"])
        count += 1
    return count


def test_lazy_samples_and_io_spec_equal_the_in_memory_ones(darcy16):
    """Every sample (stride 3, the first 10) and the data description are the same bytes."""
    memory, lazy = _pair(darcy16, stride=3, n_train=10)
    assert isinstance(lazy.splits["train"], LazyGridDataset)
    assert isinstance(memory.splits["train"], GridDataset)
    for split in ("train", "val"):
        m, z = memory.splits[split], lazy.splits[split]
        assert len(m) == len(z) and m.sample_shapes == z.sample_shapes == ((1, 6, 6), (1, 6, 6))
        for i in range(len(m)):
            assert torch.equal(m[i]["x"], z[i]["x"]) and torch.equal(m[i]["y"], z[i]["y"])
    assert memory.io_spec() == lazy.io_spec()
    for a, b in zip(memory.train_arrays(), lazy.train_arrays(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lazy_and_in_memory_loaders_give_identical_batches(darcy16):
    """Same (seed, epoch) shuffle, same batches, in two epochs; validation likewise."""
    memory, lazy = _pair(darcy16, batch_size=8, seed=3)
    for epoch in (0, 1):
        loaders = [dm.train_dataloader() for dm in (memory, lazy)]
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        assert _assert_same_batches(*loaders) == 8
    assert _assert_same_batches(memory.val_dataloader(), lazy.val_dataloader()) == 2


def test_lazy_dataset_pickles_and_serves_worker_processes(darcy16):
    """Opened in the parent first, it still pickles (without its handle) and serves two
    forked workers, each opening the file itself, with the in-memory batches."""
    memory, lazy = _pair(darcy16, batch_size=8, num_workers=2, shuffle=False)
    train = lazy.splits["train"]
    first = train[5]  # the parent holds an open handle now
    assert train._handle is not None
    copy = pickle.loads(pickle.dumps(train))
    assert copy._handle is None and torch.equal(copy[5]["x"], first["x"])
    assert _assert_same_batches(memory.train_dataloader(), lazy.train_dataloader()) == 8
    train.close()
    copy.close()


def _assert_float32_within_one_ulp(a: torch.Tensor, b: torch.Tensor) -> None:
    """Float32 buffers cast from float64 statistics that agree to ~1e-15: equal, except where
    the float64 value sits on a float32 rounding tie (the exact mean of float32 data over a
    power-of-two count often does), where the two casts may differ by one unit in the last
    place (relative spacing <= 2**-23)."""
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=2.0**-23, atol=0)


def test_streamed_statistics_equal_fit():
    """Chan's pairwise combination over uneven chunks equals the whole-array float64 mean/std
    (Bessel-corrected, per channel or per point) to ~1e-15; the float32 buffers agree."""
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(103, 2, 7, 5)) * [[[[3.0]], [[0.01]]]] + [[[[7.0]], [[-2.0]]]])
    data = data.astype(np.float32)
    for kind in ("scalar", "pointwise"):
        moments = RunningMoments(kind)
        for start in range(0, len(data), 17):
            moments.update(data[start:start + 17])
        streamed, whole = moments.result(), gaussian_stats(data, kind)
        for a, b in zip(streamed, whole, strict=True):
            assert a.dtype == torch.float64 and a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        fitted = GaussianNormalizer(kind, 2, (7, 5)).fit(data)
        taken = GaussianNormalizer(kind, 2, (7, 5)).set_stats(*streamed)
        _assert_float32_within_one_ulp(fitted.mean, taken.mean)
        _assert_float32_within_one_ulp(fitted.std, taken.std)


@pytest.mark.parametrize("kinds", [("scalar", "pointwise"), ("pointwise", "none")])
def test_module_statistics_from_lazy_data_equal_fit(darcy16, kinds):
    """from_data in memory: bitwise the former ``fit(train_arrays())``. Lazy, streamed in
    chunks of 5 (13 combined): float64 statistics equal to 1e-12 relative (near-zero
    boundary means: to 1e-15 of the largest), float32 buffers within one ulp."""
    kw = {"in_normalizer": kinds[0], "out_normalizer": kinds[1]}
    memory, lazy = _pair(darcy16, **kw)
    x, y = memory.train_arrays()
    old = [GaussianNormalizer(k, 1, (16, 16)).fit(a) for k, a in zip(kinds, (x, y), strict=True)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datamodule_mod, "STATS_CHUNK", 5)
        assert len(list(lazy.splits["train"].chunks("inputs"))) == 13  # 64 = 12 x 5 + 4
        streamed = lazy.normalizer_stats()
        from_memory, from_lazy = (OperatorModule.from_data(TINY_NET, dm) for dm in (memory, lazy))
    for found, want, kind in zip(streamed, memory.normalizer_stats(), kinds, strict=True):
        assert (found is None) is (want is None) is (kind == "none")
        for a, b in zip(found or (), want or (), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15 * float(b.abs().max()))
    for norm, ref in zip((from_memory.in_norm, from_memory.out_norm), old, strict=True):
        assert norm.kind == ref.kind
        assert torch.equal(norm.mean, ref.mean) and torch.equal(norm.std, ref.std)
    for norm, ref in zip((from_lazy.in_norm, from_lazy.out_norm), old, strict=True):
        assert norm.kind == ref.kind
        _assert_float32_within_one_ulp(norm.mean, ref.mean)
        _assert_float32_within_one_ulp(norm.std, ref.std)


def test_automatic_choice_follows_the_available_memory(darcy16, monkeypatch):
    """in_memory=None: in memory when the split (64 x 2 x 16^2 float32 = 128 KiB) is under a
    quarter of the available memory, lazy otherwise."""
    size = 64 * 2 * 16 * 16 * 4
    for available, lazy in ((4 * size + 4, False), (4 * size - 4, True)):
        monkeypatch.setattr(datamodule_mod, "available_memory", lambda a=available: a)
        dm = GridDataModule(str(darcy16), n_val=None)
        dm.setup("fit")
        assert isinstance(dm.splits["train"], LazyGridDataset) is lazy
    monkeypatch.undo()
    assert (datamodule_mod.available_memory() or 1) > 0  # this machine's answer, if any


def test_lazy_read_of_a_non_finite_sample_names_it(tmp_path):
    x = np.ones((6, 1, 4, 4), np.float32)
    x[4, 0, 1, 2] = np.nan
    path = _write_split(tmp_path / "train.h5", 6, 4, source=lambda start, stop: (x[start:stop],
                                                                              x[start:stop]))
    ds = LazyGridDataset(path, ["coeff"], ["sol"])
    assert torch.equal(ds[3]["x"], torch.ones(1, 4, 4))
    with pytest.raises(DatasetError, match=r"train\.h5: inputs \['coeff'\] hold NaN/Inf in "
                                           r"sample 4"):
        ds[4]
    with pytest.raises(DatasetError, match="sample 4"):
        list(ds.chunks("inputs", 3))


@pytest.mark.parametrize("initial_field,stride", [(None, 1), ("w0", 2)])
def test_lazy_trajectories_equal_the_in_memory_pairs_and_rollouts(tmp_path, initial_field,
                                                                  stride):
    """Navier-Stokes-like trajectories: the lazy one-step pairs (train) and rollouts (val) are
    the in-memory items, in the same order; the same io_spec, train arrays and statistics."""
    from conftest import write_trajectories

    from opnet.data.trajectory import LazyTrajectories, TrajectoryDataModule

    folder = write_trajectories(tmp_path / "ns", n=6, frames=5, s=8)
    kw = {"initial_field": initial_field, "train_steps": 3, "rollout_steps": 2,
          "stride": stride, "n_train": 5, "in_normalizer": "scalar", "out_normalizer": "scalar"}
    memory, lazy = (TrajectoryDataModule(str(folder), in_memory=m, **kw) for m in (True, False))
    for dm in (memory, lazy):
        dm.setup("fit")
    for split, n in (("train", 5 * 3), ("val", 6)):
        m, z = memory.splits[split], lazy.splits[split]
        assert isinstance(z, LazyTrajectories) and len(m) == len(z) == n
        assert m.sample_shapes == z.sample_shapes
        for i in range(n):
            assert torch.equal(m[i]["x"], z[i]["x"]) and torch.equal(m[i]["y"], z[i]["y"])
    assert memory.io_spec() == lazy.io_spec()
    for a, b in zip(memory.train_arrays(), lazy.train_arrays(), strict=True):
        np.testing.assert_array_equal(a, b)
    for found, want in zip(lazy.normalizer_stats(), memory.normalizer_stats(), strict=True):
        for a, b in zip(found, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    assert _assert_same_batches(memory.train_dataloader(), lazy.train_dataloader()) == 2


def _checkpoint_weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    return ckpt["state_dict"]


def test_lazy_and_in_memory_training_give_identical_weights(tiny_overrides, tmp_path):
    """Two epochs of the tiny MgNO on darcy16 (8 batches each): bitwise the same weights and
    normalizer buffers, whichever way the data is read."""
    from opnet.training import train

    weights = []
    for in_memory in ("true", "false"):
        run = tmp_path / in_memory
        train(compose_train(*tiny_overrides, "trainer.max_epochs=2", f"data.in_memory={in_memory}",
                            "test=false", "logger=none", "~callbacks.val_figures",
                            f"paths.output_dir={run}"))
        weights.append(_checkpoint_weights(run))
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


# -- a split larger than the memory the process may use -------------------------------------

def _write_split(path: Path, n: int, s: int, source=None, chunk: int = 256) -> Path:
    """An opnet split (inputs/coeff, outputs/sol float32 [n, 1, s, s]) written ``chunk``
    samples at a time, so the writer never holds it whole. ``source(start, stop)`` gives
    (coeff, sol); by default a cheap deterministic pattern."""
    grid = np.linspace(0.0, 1.0, s)
    base = (np.sin(np.pi * grid)[:, None] * np.sin(np.pi * grid)[None, :]).astype(np.float32)
    phases = np.arange(8)[:, None, None, None]
    coeffs = np.where(np.cos(phases + 7 * grid[:, None] + 3 * grid[None, :]) > 0, 12.0, 3.0)
    coeffs = coeffs.astype(np.float32)

    def pattern(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(start, stop)
        scale = (1.0 + k / n).astype(np.float32)[:, None, None, None]
        return coeffs[k % len(coeffs)], scale * base

    source = source or pattern
    specs = {"inputs/coeff": ((1, s, s), np.float32), "outputs/sol": ((1, s, s), np.float32)}
    with h5.SplitWriter(path, n, specs, {"x": grid, "y": grid},
                        {"pde": "darcy", "split": path.stem, "seed": 0}) as writer:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            coeff, sol = source(start, stop)
            writer.write(start, {"inputs/coeff": coeff, "outputs/sol": sol},
                         np.arange(start, stop))
        writer.commit()
    return path


TRAIN_UNDER_CAP = """
import gc, json, sys
from opnet.config import train_config
from opnet.data.datamodule import GridDataModule
from opnet.data.h5 import DatasetError
from opnet.training import train

data_dir, out, try_in_memory = sys.argv[1], sys.argv[2], sys.argv[3] == "1"


def run(in_memory):
    train(train_config(
        f"data.data_dir={data_dir}", "data.generate=null", f"data.in_memory={in_memory}",
        "data.batch_size=8", *sys.argv[4:], "trainer.max_epochs=1",
        "+trainer.limit_train_batches=20", "+trainer.limit_val_batches=1",
        "+trainer.num_sanity_val_steps=0", "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false", "test=false", "logger=none", "callbacks=none",
        output_dir=f"{out}/{'memory' if in_memory == 'true' else 'lazy'}"))


def status(*keys):
    found = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: int(found[k].split()[0]) * 1024 for k in keys}


run("false")
result = status("VmPeak", "VmHWM")
auto = GridDataModule(data_dir, in_memory=None)
auto.setup("fit")
result["automatic"] = type(auto.splits["train"]).__name__
if try_in_memory:
    gc.collect()
    result["VmSize_before_in_memory"] = status("VmSize")["VmSize"]
    try:
        run("true")
        result["in_memory"] = "trained"
    except (MemoryError, DatasetError) as err:
        result["in_memory"] = f"{type(err).__name__}: {err}"
print("RESULT", json.dumps(result))
"""


def _train_capped(data_dir: Path, out: Path, cap: int | None = None, try_in_memory: bool = False
                  ) -> dict:
    """``python -c TRAIN_UNDER_CAP``: 20 steps of the tiny MgNO on ``data_dir`` read lazily
    (after trying the same run in memory when ``try_in_memory``), its address space
    (RLIMIT_AS) capped at ``cap`` bytes from the start (set by ``preexec_fn``, between fork
    and exec; None: no cap). Returns the child's report (VmPeak, VmHWM, in_memory)."""

    import resource  # POSIX only

    def limit() -> None:
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", TRAIN_UNDER_CAP, str(data_dir), str(out),
                             "1" if try_in_memory else "0", *TINY_MODEL], capture_output=True,
                            text=True, env=env, timeout=300, check=False, preexec_fn=limit)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(),
                    reason="measures VmPeak in /proc and caps RLIMIT_AS (Linux)")
def test_a_split_larger_than_the_memory_cap_trains_lazily(tmp_path):
    """A 577 MiB train split (4608 x [1, 128, 128] inputs and outputs, float32) under an
    address-space cap of (a tiny run's peak + 300 MiB): read lazily (statistics streamed over
    the whole split, 20 batches of 8) it trains, peaking within a few MiB of the tiny run;
    the same run in memory (data.in_memory=true), in the same capped process, runs out of
    memory, and in_memory=null chooses lazy there. The files are written 256 samples at a
    time, so this test never holds them."""
    small, big = tmp_path / "small", tmp_path / "big"
    for split, n in (("train", 4608), ("val", 16), ("test", 16)):
        _write_split(big / f"{split}.h5", n, 128)
        _write_split(small / f"{split}.h5", 64 if split == "train" else 16, 128)
    size = (big / "train.h5").stat().st_size
    assert size > 550 * 2**20
    baseline = _train_capped(small, tmp_path / "run_small")["VmPeak"]  # torch + a tiny run
    cap = baseline + 300 * 2**20
    assert cap < baseline + size  # the split cannot fit under the cap
    report = _train_capped(big, tmp_path / "run_big", cap, try_in_memory=True)
    assert report["VmPeak"] <= cap  # (RLIMIT_AS guarantees it; the run got to the end)
    metrics = json.loads((tmp_path / "run_big" / "lazy" / "metrics.json").read_text())
    assert metrics["steps"] == 20
    assert report["in_memory"].startswith("MemoryError: Unable to allocate"), report["in_memory"]
    assert report["automatic"] == "LazyGridDataset"  # in_memory=null sees the cap
    mib = {k: round(v / 2**20) for k, v in report.items() if k.startswith("Vm")}
    print(f"file {size / 2**20:.0f} MiB, baseline VmPeak {baseline / 2**20:.0f} MiB, cap "
          f"{cap / 2**20:.0f} MiB, lazy run {mib}; in memory: {report['in_memory']}")
