"""Dataset generation: chunks, deterministic per-sample seeds, a worker pool, shards, resume.

Sample ``i`` of split ``s`` (train=0, val=1, test=2) draws from
``np.random.default_rng(np.random.SeedSequence([seed, s, i]))``, so the bytes of a dataset
do not depend on the number of workers, the chunk size, shards or restarts.

Each finished chunk is saved at once (atomically) under ``<out>/.partial/<split>/``; a
rerun of the same command skips those chunks. When a split is complete its chunks are
assembled into ``<split>.h5`` (written as ``.tmp`` then renamed) and the parts removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import yaml

from data_gen.pdes import get_pde, make_config
from opnet.data import h5

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
SEED_SCHEME = "numpy.random.SeedSequence([seed, split_id, global_index]); train=0 val=1 test=2"


class GenerationError(RuntimeError):
    """The requested generation conflicts with what is already on disk."""


@dataclasses.dataclass
class GenerationSummary:
    """What :func:`generate` produced."""

    out: Path
    files: dict[str, list[Path]]
    samples: dict[str, int]
    seconds: float
    resumed_chunks: int = 0
    skipped_splits: list[str] = dataclasses.field(default_factory=list)

    def table(self) -> str:
        lines = [f"dataset {self.out}  ({self.seconds:.1f} s)"]
        for split, files in self.files.items():
            status = " (already complete)" if split in self.skipped_splits else ""
            lines.append(f"  {split:<5} {self.samples[split]:>7} samples  {files[0]}{status}"
                         + (f" + {len(files) - 1} shards" if len(files) > 1 else ""))
        if self.resumed_chunks:
            lines.append(f"  resumed {self.resumed_chunks} chunk(s) from an interrupted run")
        return "\n".join(lines)


def sample_rngs(seed: int, split: str, start: int, stop: int) -> list[np.random.Generator]:
    """One independent generator per sample ``start .. stop-1`` of ``split``."""
    sid = SPLIT_IDS[split]
    return [np.random.default_rng(np.random.SeedSequence([seed, sid, i]))
            for i in range(start, stop)]


def _run_chunk(name: str, params: dict, seed: int, split: str, start: int, stop: int):
    module = get_pde(name)
    cfg = make_config(name, params)
    fields = module.sample(cfg, sample_rngs(seed, split, start, stop))
    return split, start, stop, _flatten(fields)


def _flatten(fields: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{group}/{name}": np.ascontiguousarray(arr)
            for group, named in fields.items() for name, arr in named.items()}


def _chunks(n: int, chunk: int, shard: int) -> list[tuple[int, int]]:
    """Chunk boundaries, never crossing a shard boundary."""
    bounds = []
    for s0 in range(0, n, shard):
        s1 = min(n, s0 + shard)
        bounds += [(a, min(s1, a + chunk)) for a in range(s0, s1, chunk)]
    return bounds


def _part_path(partial: Path, split: str, start: int, stop: int) -> Path:
    return partial / split / f"{start:09d}-{stop:09d}.npz"


def _save_part(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{k.replace("/", "."): v for k, v in arrays.items()})
    os.replace(tmp, path)


def _load_part(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k.replace(".", "/", 1): z[k] for k in z.files}


def generate(pde: str | Mapping[str, object] = "darcy", out: str | os.PathLike = "data/darcy",
             n_train: int = 1000, n_val: int = 100, n_test: int = 100, seed: int = 0,
             workers: int = 1, chunk_size: int = 16, shard_size: int = 0,
             overwrite: bool = False, progress: bool = True,
             **params: object) -> GenerationSummary:
    """Generate train/val/test HDF5 files for ``pde`` into the folder ``out``.

    ``pde`` is a generator name (its parameters as keyword arguments) or a mapping
    ``{"name": ..., **parameters}`` as in ``conf/pde/<name>.yaml``. ``shard_size > 0``
    splits larger splits into shard files joined by a virtual ``<split>.h5``.
    Rerunning an interrupted call resumes it; a finished split with the same
    configuration is left as it is; a different configuration needs ``overwrite=True``.
    """
    if isinstance(pde, Mapping):
        params = {**{k: v for k, v in pde.items() if k != "name"}, **params}
        pde = str(pde["name"])
    cfg = make_config(pde, params)
    params = dataclasses.asdict(cfg)
    sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    for key, value, least in [*((f"n_{s}", n, 0) for s, n in sizes.items()),
                              ("workers", workers, 1), ("chunk_size", chunk_size, 1)]:
        if int(value) < least:
            raise ValueError(f"{key}={value}: expected an integer >= {least}")
    out = Path(out)
    identity = {"pde": pde, "params": params, "seed": int(seed), "sizes": sizes,
                "chunk_size": int(chunk_size), "shard_size": int(shard_size)}
    generator_config = yaml.safe_dump({"name": pde, **params}, sort_keys=True)
    t0 = time.perf_counter()

    partial = out / ".partial"
    if overwrite and out.exists():
        for split in SPLIT_IDS:
            for f in out.glob(f"{split}*.h5"):
                f.unlink()
        shutil.rmtree(partial, ignore_errors=True)
    _check_partial(partial, identity)

    todo: list[tuple[str, int, int]] = []
    skipped, resumed = [], 0
    for split, n in sizes.items():
        final = h5.split_path(out, split)
        if final.exists() and _matches(final, pde, generator_config, seed, n):
            skipped.append(split)
            continue
        if final.exists():
            raise GenerationError(
                f"{final}: exists with another configuration (pde, parameters, seed or size "
                "differ); pass overwrite=true or choose another out folder")
        for a, b in _chunks(n, chunk_size, shard_size if shard_size > 0 else max(n, 1)):
            if _part_path(partial, split, a, b).exists():
                resumed += 1
            else:
                todo.append((split, a, b))
    if todo or resumed:
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "run.yaml").write_text(yaml.safe_dump(identity, sort_keys=True))

    _run_all(todo, pde, params, int(seed), partial, workers, progress, sizes)

    files: dict[str, list[Path]] = {}
    for split, n in sizes.items():
        attrs = {"pde": pde, "split": split, "generator_config": generator_config,
                 "seed": int(seed), "seed_scheme": SEED_SCHEME, "split_id": SPLIT_IDS[split]}
        if split in skipped:
            files[split] = [h5.split_path(out, split)]
        else:
            files[split] = _assemble(out, partial, split, n, chunk_size, shard_size, pde, cfg,
                                     attrs)
    shutil.rmtree(partial, ignore_errors=True)
    (out / "config.yaml").write_text(yaml.safe_dump(
        {"pde": {"name": pde, **params}, "seed": int(seed),
         **{f"n_{k}": v for k, v in sizes.items()}, "chunk_size": chunk_size,
         "shard_size": shard_size}, sort_keys=False))
    return GenerationSummary(out, files, sizes, time.perf_counter() - t0, resumed, skipped)


def _check_partial(partial: Path, identity: dict) -> None:
    run = partial / "run.yaml"
    if run.exists():
        before = yaml.safe_load(run.read_text())
        if before != identity:
            raise GenerationError(
                f"{run}: an interrupted generation with another configuration is in this "
                f"folder ({before}); pass overwrite=true to discard it, or use another out")


def _matches(path: Path, pde: str, generator_config: str, seed: int, n: int) -> bool:
    attrs = h5.read_attrs(path)
    return (attrs.get("pde") == pde and attrs.get("generator_config") == generator_config
            and int(attrs.get("seed", -1)) == seed and int(attrs.get("n_samples", -1)) == n)


def _run_all(todo, pde, params, seed, partial, workers, progress, sizes) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress)
    with bar:
        tasks = {s: bar.add_task(f"{pde} {s}", total=sum(b - a for t, a, b in todo if t == s))
                 for s in sizes if any(t == s for t, _, _ in todo)}

        def done(split, a, b, arrays):
            _save_part(_part_path(partial, split, a, b), arrays)
            bar.advance(tasks[split], b - a)

        if workers == 1 or len(todo) <= 1:
            for split, a, b in todo:
                done(*_run_chunk(pde, params, seed, split, a, b))
            return
        with _single_threaded_children(), ProcessPoolExecutor(
                max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_run_chunk, pde, params, seed, s, a, b) for s, a, b in todo]
            for fut in as_completed(futures):
                done(*fut.result())


@contextlib.contextmanager
def _single_threaded_children():
    """Spawned workers start with one BLAS/OpenMP thread each (set before they import
    numpy): the parallelism comes from the pool, not from oversubscribed threads."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: "1" for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _assemble(out, partial, split, n, chunk_size, shard_size, pde, cfg, attrs) -> list[Path]:
    module = get_pde(pde)
    coords = module.coords(cfg)
    shard = shard_size if 0 < shard_size < n else max(n, 1)
    shard_ranges = [(a, min(n, a + shard)) for a in range(0, n, shard)] or [(0, 0)]
    sharded = len(shard_ranges) > 1
    paths = []
    for k, (s0, s1) in enumerate(shard_ranges):
        path = out / (f"{split}-{k:05d}.h5" if sharded else f"{split}.h5")
        parts = [(a, b) for a, b in _chunks(n, chunk_size, shard) if s0 <= a < s1]
        specs = _specs(partial, split, parts, module, cfg)
        shard_attrs = {**attrs, **({"shard": k, "n_shards": len(shard_ranges)} if sharded else {})}
        with h5.SplitWriter(path, s1 - s0, specs, coords, shard_attrs) as writer:
            for a, b in parts:
                writer.write(a - s0, _load_part(_part_path(partial, split, a, b)),
                             np.arange(a, b, dtype=np.int64))
            paths.append(writer.commit())
    if sharded:
        return [h5.write_virtual(h5.split_path(out, split), paths, attrs), *paths]
    return paths


def _specs(partial, split, parts, module, cfg) -> dict[str, tuple]:
    """Per-sample shapes/dtypes of every field (from the first part, or a 1-sample probe
    for an empty split)."""
    if parts:
        arrays = _load_part(_part_path(partial, split, *parts[0]))
    else:
        arrays = _flatten(module.sample(cfg, [np.random.default_rng(0)]))
    return {k: (v.shape[1:], v.dtype) for k, v in arrays.items()}
