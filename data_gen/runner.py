"""Dataset generation: chunks, deterministic per-sample seeds, a worker pool, shards, resume.

Sample ``i`` of split ``s`` (train=0, val=1, test=2) draws from
``np.random.default_rng(np.random.SeedSequence([seed, s, i]))``, so the bytes of a dataset
do not depend on the number of workers, the chunk size, shards or restarts.

Each finished chunk is saved at once (atomically) under ``<out>/.partial/<split>/``; a
rerun of the same command skips those chunks. When a split is complete its chunks are
assembled into ``<split>.h5`` (written under a temporary name unique to the process, then
renamed) and the parts removed.

Across machines: ``generate(..., shard=i, num_shards=n)`` writes only shard ``i`` of every
split (``<split>-0000i.h5``, its own resumable ``.partial-shard0000i/``); once every shard is
there, the last shard to finish stitches them into the virtual ``<split>.h5`` (:func:`merge`,
also ``python -m data_gen.merge``). Every sample is checked for NaN/Inf before anything is
written.

``solve: false`` (darcy, antiderivative, diffusion_reaction) skips the solve: files without an
``outputs`` group, root attribute ``labelled = False`` (inputs for physics-informed training).

Parallel processes (see :mod:`data_gen.locking`): a generation holds ``<out>/.lock`` (shard
``k``: ``<out>/.lock-shard0000k``; merging: ``<out>/.lock``), a second one with the same
configuration waits and then finds the data complete; temporary names are unique per process;
a full disk or an unwritable folder is one :class:`GenerationError` naming the folder, and the
same call resumes once it is fixed; pool workers die with their parent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import yaml

from data_gen.checks import check_memory, checked_config, integer
from data_gen.locking import (
    FOLDER_LOCK,
    GenerationError,
    is_storage_error,
    locked,
    prepare_folder,
    shard_lock_name,
    storage_error,
    worker_init,
)
from data_gen.merge import merge
from data_gen.pdes import generator_key, get_pde, make_config, stored_config
from data_gen.pdes.base import Chunk
from opnet.data import h5
from opnet.files import unique_tmp, write_text_atomic

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
SEED_SCHEME = "numpy.random.SeedSequence([seed, split_id, global_index]); train=0 val=1 test=2"
#: Samples per chunk of a generator without its own ``DEFAULT_CHUNK`` (PDE solvers: a chunk
#: takes seconds, and is what an interrupted run loses).
DEFAULT_CHUNK = 16
#: Samples per chunk of inputs without outputs (``solve=false``: drawing is cheap, per-chunk
#: overhead dominates: 10^5 Darcy 32² inputs took 15 s in chunks of 16, 8 s in chunks of 1024)
INPUTS_CHUNK = 1024
INPUTS_CHUNK_BYTES = 64 << 20


@dataclasses.dataclass
class GenerationSummary:
    """What :func:`generate` produced."""

    out: Path
    files: dict[str, list[Path]]
    samples: dict[str, int]
    seconds: float
    resumed_chunks: int = 0
    skipped_splits: list[str] = dataclasses.field(default_factory=list)
    shard: int | None = None
    num_shards: int = 1
    merged: bool = False  # a shard run that found every shard done and merged them

    def table(self) -> str:
        lines = [f"dataset {self.out}  ({self.seconds:.1f} s)"]
        if self.shard is not None:
            lines[0] += (f"  shard {self.shard} of {self.num_shards}: " + (
                "every shard is done; merged into <split>.h5" if self.merged else
                "the last shard to finish merges them (or: python -m data_gen.merge "
                f"{self.out})"))
        for split, files in self.files.items():
            status = " (already complete)" if split in self.skipped_splits else ""
            of = "" if self.shard is None else " in the split"
            lines.append(f"  {split:<5} {self.samples[split]:>7} samples{of}  {files[0]}{status}"
                         + (f" + {len(files) - 1} shards" if len(files) > 1 else ""))
        if self.resumed_chunks:
            lines.append(f"  resumed {self.resumed_chunks} chunk(s) from an interrupted run")
        return "\n".join(lines)


def default_chunk(pde: str, cfg: object = None) -> int:
    """Samples per chunk when ``chunk_size`` is not given: the generator module's
    ``DEFAULT_CHUNK`` (cheap samples: hundreds or thousands), else :data:`DEFAULT_CHUNK`;
    for inputs only (``cfg.solve`` false: no solve) up to :data:`INPUTS_CHUNK` samples, at
    most :data:`INPUTS_CHUNK_BYTES` of float32 grid values per chunk."""
    module = get_pde(pde)
    chunk = int(getattr(module, "DEFAULT_CHUNK", DEFAULT_CHUNK))
    if cfg is None or getattr(cfg, "solve", True):
        return chunk
    axes = module.coords(cfg)
    grid = math.prod(len(axes[a]) for a in ("x", "y", "z") if a in axes)
    return max(chunk, min(INPUTS_CHUNK, INPUTS_CHUNK_BYTES // (4 * grid)))


def recorded_params(cfg) -> dict:
    """The generator's parameters as recorded (``generator_config``, resume identity):
    ``solve`` only where it is false, so a labelled dataset's record is what it was before
    generators had the key (its files are still found complete)."""
    params = dataclasses.asdict(cfg)
    if "solve" in params and bool(params["solve"]):
        del params["solve"]
    elif "solve" in params:
        params["solve"] = False
    return params


def labelled(params: Mapping[str, object]) -> bool:
    """Whether a generation with ``params`` writes outputs (``solve`` is not false)."""
    return params.get("solve", True) is not False


def sample_rngs(seed: int, split: str, start: int, stop: int) -> list[np.random.Generator]:
    """One independent generator per sample ``start .. stop-1`` of ``split``."""
    sid = SPLIT_IDS[split]
    return [np.random.default_rng(np.random.SeedSequence([seed, sid, i]))
            for i in range(start, stop)]


def _run_chunk(name: str, params: dict, seed: int, split: str, start: int, stop: int):
    module = get_pde(name)
    cfg = make_config(name, params)
    where = f"pde '{name}', {split} samples {start}..{stop - 1} (seed {seed})"
    extra = {}
    if "chunk" in inspect.signature(module.sample).parameters:
        extra["chunk"] = Chunk(int(seed), SPLIT_IDS[split], int(start))
    try:
        fields = module.sample(cfg, sample_rngs(seed, split, start, stop), **extra)
    except (FloatingPointError, ArithmeticError, np.linalg.LinAlgError) as err:
        raise GenerationError(f"{where}: the solver failed: {err}") from err
    arrays = _flatten(fields)
    for key, value in arrays.items():
        if len(value) != stop - start:
            raise GenerationError(f"{where}: '{key}' has {len(value)} samples, expected "
                                  f"{stop - start}")
        if value.dtype.kind in "fc":
            bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
            if bad.any():
                raise GenerationError(
                    f"{where}: '{key}' of sample(s) {(start + np.flatnonzero(bad)).tolist()} "
                    "is not finite (NaN/Inf); nothing was written for this chunk")
    return split, start, stop, arrays


def _flatten(fields: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{group}/{name}": np.ascontiguousarray(arr)
            for group, named in fields.items() for name, arr in named.items()}


def shard_ranges(n: int, shard_size: int = 0, num_shards: int = 1) -> list[tuple[int, int]]:
    """Sample ranges of the shard files of an ``n``-sample split: ``num_shards`` > 1 gives
    that many near-equal contiguous ranges (for machines), else ``shard_size`` > 0 ranges of
    that size, else one range (no shards)."""
    if num_shards > 1:
        edges = [n * k // num_shards for k in range(num_shards + 1)]
        return list(zip(edges[:-1], edges[1:], strict=True))
    if 0 < shard_size < n:
        return [(a, min(n, a + shard_size)) for a in range(0, n, shard_size)]
    return [(0, n)]


def _chunks(ranges: list[tuple[int, int]], chunk: int) -> list[tuple[int, int]]:
    """Chunk boundaries inside each shard range (never crossing a shard boundary)."""
    return [(a, min(s1, a + chunk)) for s0, s1 in ranges for a in range(s0, s1, chunk)]


def _part_path(partial: Path, split: str, start: int, stop: int) -> Path:
    return partial / split / f"{start:09d}-{stop:09d}.npz"


def _save_part(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_tmp(path)  # <part>.npz.<pid>-<random>.tmp: never globbed as a part
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k.replace("/", "."): v for k, v in arrays.items()})
        os.replace(tmp, path)
    except OSError as err:  # zipfile's errors do not name the file
        raise OSError(err.errno, err.strerror, str(err.filename or path)) from err
    finally:
        tmp.unlink(missing_ok=True)


def _load_part(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k.replace(".", "/", 1): z[k] for k in z.files}


def generate(pde: str | Mapping[str, object] = "darcy", out: str | os.PathLike = "data/darcy",
             n_train: int = 1000, n_val: int = 100, n_test: int = 100, seed: int = 0,
             workers: int = 1, chunk_size: int | None = None, shard_size: int = 0,
             shard: int | None = None, num_shards: int = 1,
             overwrite: bool = False, progress: bool = True,
             **params: object) -> GenerationSummary:
    """Generate train/val/test HDF5 files for ``pde`` into the folder ``out``.

    ``pde`` is a generator name (its parameters as keyword arguments) or a mapping
    ``{"name": ..., **parameters}`` as in ``conf/pde/<name>.yaml``. ``chunk_size``: samples
    per task and per resumable part (None: :func:`default_chunk`). ``shard_size > 0``
    splits larger splits into shard files joined by a virtual ``<split>.h5``.
    ``num_shards = n`` cuts every split into ``n`` shard files; with ``shard = i`` only shard
    ``i`` is generated (one machine or job of ``n``; the last to finish merges them), without
    it all ``n`` are generated and stitched here.
    Rerunning an interrupted call resumes it; a finished split with the same
    configuration is left as it is; a different configuration needs ``overwrite=True``.
    Another process generating into ``out`` (same shard) is waited for.
    """
    if isinstance(pde, Mapping):
        params = {**{k: v for k, v in pde.items() if k not in ("name", "_target_")}, **params}
        pde = generator_key(pde)  # a registered name or a plugin's dotted path (_target_)
    cfg = checked_config(pde, params)
    params = recorded_params(cfg)
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    sizes = {s: integer(f"n_{s}", n, 0) for s, n in sizes.items()}
    seed, workers = integer("seed", seed, 0), integer("workers", workers, 1)
    chunk_size = default_chunk(pde, cfg) if chunk_size is None else integer(
        "chunk_size", chunk_size, 1)
    shard_size = integer("shard_size", shard_size, 0)
    num_shards = integer("num_shards", num_shards, 1)
    if shard is not None and not 0 <= integer("shard", shard, 0) < num_shards:
        raise ValueError(f"shard={shard}: expected 0 <= shard < num_shards={num_shards}")
    shard = None if shard is None else int(shard)
    if num_shards > 1 and shard_size:
        raise ValueError("give either shard_size (a single machine) or num_shards "
                         f"(machines), not both (shard_size={shard_size}, "
                         f"num_shards={num_shards})")
    check_memory(pde, cfg, min(chunk_size, max(sizes.values(), default=1) or 1))
    out = Path(out)
    job = _Job(pde, cfg, params, sizes, seed, chunk_size, shard_size, shard, num_shards, out)
    t0 = time.perf_counter()
    prepare_folder(out)
    try:
        with locked(out, FOLDER_LOCK if shard is None else shard_lock_name(shard),
                    "" if shard is None else f" shard {shard}"):
            summary = _generate(job, workers, overwrite, progress)
        if shard is not None:
            summary.merged = _merge_if_complete(job)
    except OSError as err:
        if is_storage_error(err):
            raise storage_error(out, err) from err
        raise
    summary.seconds = time.perf_counter() - t0
    return summary


@dataclasses.dataclass
class _Job:
    """What one :func:`generate` call writes (its identity decides resume and reuse)."""

    pde: str
    cfg: object
    params: dict
    sizes: dict[str, int]
    seed: int
    chunk_size: int
    shard_size: int
    shard: int | None
    num_shards: int
    out: Path

    @property
    def generator_config(self) -> str:
        return yaml.safe_dump(stored_config(self.pde, self.params), sort_keys=True)

    @property
    def identity(self) -> dict:
        identity = {"pde": self.pde, "params": self.params, "seed": self.seed,
                    "sizes": self.sizes, "chunk_size": self.chunk_size,
                    "shard_size": self.shard_size, "num_shards": self.num_shards,
                    "shard": self.shard}
        return yaml.safe_load(yaml.safe_dump(identity))  # as read back: tuples -> lists

    @property
    def partial(self) -> Path:
        return self.out / (".partial" if self.shard is None else
                           f".partial-shard{self.shard:05d}")

    def files(self, split: str, all_shards: bool = False) -> list[tuple[int, int, Path]]:
        """(start, stop, path) of the files this job writes for ``split`` (with
        ``all_shards``: those of every shard)."""
        ranges = shard_ranges(self.sizes[split], self.shard_size, self.num_shards)
        files = [(a, b, self.out / (f"{split}-{k:05d}.h5" if len(ranges) > 1 else
                                    f"{split}.h5")) for k, (a, b) in enumerate(ranges)]
        return files if self.shard is None or all_shards else [files[self.shard]]

    def matches(self, path: Path, start: int, stop: int, split: str) -> bool:
        return _matches(path, self.pde, self.generator_config, self.seed, self.sizes[split],
                        start, stop)


def _generate(job: _Job, workers: int, overwrite: bool, progress: bool) -> GenerationSummary:
    """:func:`generate` with the folder (or shard) lock held."""
    out, partial, sizes = job.out, job.partial, job.sizes
    if overwrite:
        mine = "*" if job.shard is None else f"*-{job.shard:05d}"
        for split in SPLIT_IDS:
            for f in {*out.glob(f"{split}{mine}.h5"), *out.glob(f"{split}.h5")}:
                f.unlink(missing_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    for split in SPLIT_IDS:  # temporary files a killed run left of the files this lock guards
        names = {path.name for _, _, path in job.files(split)}
        for name in names | ({f"{split}.h5"} if job.shard is None else set()):
            for stale in out.glob(f"{name}.*.tmp"):
                stale.unlink(missing_ok=True)
    _check_partial(partial, job.identity)

    todo: list[tuple[str, int, int]] = []
    skipped, resumed = [], 0
    for split, n in sizes.items():
        whole = h5.split_path(out, split)
        if job.shard is None and whole.exists() and job.matches(whole, 0, n, split):
            skipped.append(split)
            continue
        for a, b, path in job.files(split):
            if path.exists() and not job.matches(path, a, b, split):
                raise GenerationError(
                    f"{path}: exists with another configuration (pde, parameters, seed or "
                    "size differ); pass overwrite=true or choose another out folder")
        pending = [(a, b) for a, b, path in job.files(split) if not path.exists()]
        for a, b in _chunks(pending, job.chunk_size):
            if _part_path(partial, split, a, b).exists():
                resumed += 1
            else:
                todo.append((split, a, b))
    if todo or resumed:
        partial.mkdir(parents=True, exist_ok=True)
        write_text_atomic(partial / "run.yaml", yaml.safe_dump(job.identity, sort_keys=True))

    _run_all(todo, job.pde, job.params, job.seed, partial, workers, progress, sizes)

    written: dict[str, list[Path]] = {}
    for split, n in sizes.items():
        if split in skipped:
            written[split] = [h5.split_path(out, split)]
            continue
        attrs = {"pde": job.pde, "split": split, "generator_config": job.generator_config,
                 "seed": job.seed, "seed_scheme": SEED_SCHEME, "split_id": SPLIT_IDS[split],
                 "split_samples": n}
        if not labelled(job.params):  # inputs only: no /outputs group
            attrs["labelled"] = False
        n_files = len(shard_ranges(n, job.shard_size, job.num_shards))
        paths = [path if path.exists() else
                 _assemble(path, partial, split, a, b, job.chunk_size, job.pde, job.cfg, attrs,
                           _shard_index(path) if n_files > 1 else None, n_files)
                 for a, b, path in job.files(split)]
        if job.shard is None and n_files > 1:
            paths = [h5.write_virtual(h5.split_path(out, split), paths, attrs), *paths]
        written[split] = paths
    shutil.rmtree(partial, ignore_errors=True)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(
        {"pde": stored_config(job.pde, job.params), "seed": job.seed,
         **{f"n_{k}": v for k, v in sizes.items()}, "chunk_size": job.chunk_size,
         "shard_size": job.shard_size, "num_shards": job.num_shards}, sort_keys=False))
    return GenerationSummary(out, written, sizes, 0.0, resumed, skipped, job.shard,
                             job.num_shards)


def _merge_if_complete(job: _Job) -> bool:
    """After shard ``job.shard``: when every shard of every split is there (with this
    configuration), merge them under the folder lock, unless another shard already did."""
    for split in job.sizes:
        for a, b, path in job.files(split, all_shards=True):
            if not path.exists() or not job.matches(path, a, b, split):
                return False
    if all((whole := h5.split_path(job.out, split)).exists()
           and job.matches(whole, 0, n, split) for split, n in job.sizes.items()):
        return True
    merge(job.out)
    return True


def _shard_index(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])


def _check_partial(partial: Path, identity: dict) -> None:
    run = partial / "run.yaml"
    if run.exists():
        before = yaml.safe_load(run.read_text())
        if before != identity:
            raise GenerationError(
                f"{run}: an interrupted generation with another configuration is in this "
                f"folder ({before}); pass overwrite=true to discard it, or use another out")


def _matches(path: Path, pde: str, generator_config: str, seed: int, n: int, start: int,
             stop: int) -> bool:
    """Whether the file at ``path`` holds samples ``start..stop`` of an ``n``-sample split made
    with this configuration."""
    attrs = h5.read_attrs(path)
    first = int(attrs.get("shard_start", 0))
    return (attrs.get("pde") == pde and attrs.get("generator_config") == generator_config
            and int(attrs.get("seed", -1)) == seed
            and int(attrs.get("split_samples", attrs.get("n_samples", -1))) == n
            and int(attrs.get("n_samples", -1)) == stop - start and first == start)


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
                max_workers=workers, mp_context=mp.get_context("spawn"),
                initializer=worker_init, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_run_chunk, pde, params, seed, s, a, b) for s, a, b in todo]
            try:
                for fut in as_completed(futures):
                    done(*fut.result())
            except BaseException:  # stop at once: queued chunks would only be thrown away
                pool.shutdown(wait=True, cancel_futures=True)
                raise


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


def _assemble(path: Path, partial: Path, split: str, start: int, stop: int, chunk_size: int,
              pde: str, cfg, attrs: dict, shard: int | None, n_shards: int) -> Path:
    """Write samples ``start..stop`` of ``split`` from their saved chunks into ``path``."""
    module = get_pde(pde)
    parts = _chunks([(start, stop)], chunk_size)
    specs = _specs(partial, split, parts, module, cfg)
    if shard is not None:
        attrs = {**attrs, "shard": shard, "n_shards": n_shards, "shard_start": start}
    with h5.SplitWriter(path, stop - start, specs, module.coords(cfg), attrs) as writer:
        for a, b in parts:
            writer.write(a - start, _load_part(_part_path(partial, split, a, b)),
                         np.arange(a, b, dtype=np.int64))
        return writer.commit()


def _specs(partial, split, parts, module, cfg) -> dict[str, tuple]:
    """Per-sample shapes/dtypes of every field: from the first part of this split, else
    (an empty split) from any other split's part or finished file, else a 1-sample probe."""
    if parts:
        arrays = _load_part(_part_path(partial, split, *parts[0]))
        return {k: (v.shape[1:], v.dtype) for k, v in arrays.items()}
    for other in sorted(partial.glob("*/*.npz")):
        arrays = _load_part(other)
        return {k: (v.shape[1:], v.dtype) for k, v in arrays.items()}
    for other in SPLIT_IDS:
        path = h5.split_path(partial.parent, other)
        if path.exists() and int(h5.read_attrs(path).get("n_samples", 0)) > 0:
            with h5.open_split(path) as f:
                return {k: (f[k].shape[1:], f[k].dtype) for k in _field_keys(f)}
    arrays = _flatten(module.sample(cfg, [np.random.default_rng(0)]))
    return {k: (v.shape[1:], v.dtype) for k, v in arrays.items()}


def _field_keys(f) -> list[str]:
    return [f"{group}/{name}" for group in h5.GROUPS if group in f for name in f[group]]
