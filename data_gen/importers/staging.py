"""Splits, ranges and the staged, atomic write of an imported dataset folder."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import shutil
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from opnet.data import h5

from .errors import ImporterError
from .formats import F32, FORMATS, Layout, Options
from .sources import Source

STAGING = ".import-tmp"
SIDECAR = "import.yaml"


def parse_range(spec: str | slice | Sequence[int] | None, n: int, where: str,
                flag: str) -> tuple[int, int]:
    """``"a:b"`` (Python slice syntax, no step; negative = from the end) -> (start, stop)
    within ``n`` samples; ``None`` means all of them. Out-of-range is an error, not a clip."""
    if spec is None:
        return 0, n
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) != 2:
            raise ImporterError(f"{flag} {spec!r}: expected START:STOP (Python slice syntax, "
                                "e.g. 0:1000, 1000:, -100:), without a step")
        try:
            spec = slice(*(int(p) if p.strip() else None for p in parts))
        except ValueError as err:
            raise ImporterError(f"{flag} {spec!r}: START and STOP must be integers") from err
    if not isinstance(spec, slice):
        spec = slice(*spec)
    if spec.step not in (None, 1):
        raise ImporterError(f"{flag}: a step ({spec.step}) is not supported")
    start = 0 if spec.start is None else spec.start + (n if spec.start < 0 else 0)
    stop = n if spec.stop is None else spec.stop + (n if spec.stop < 0 else 0)
    text = f"{'' if spec.start is None else spec.start}:{'' if spec.stop is None else spec.stop}"
    if not (0 <= start <= n and 0 <= stop <= n):
        raise ImporterError(f"{where}: {flag} {text} is outside the file's {n} samples "
                            f"(valid: 0 <= START < STOP <= {n})")
    if start >= stop:
        raise ImporterError(f"{where}: {flag} {text} selects no samples (of {n}); omit the "
                            "split to write it empty")
    return start, stop


@dataclasses.dataclass
class ImportSummary:
    """What :func:`import_dataset` wrote."""

    out: Path
    fmt: str
    files: dict[str, Path]
    samples: dict[str, int]
    shapes: dict[str, dict[str, tuple[int, ...]]]
    sources: dict[str, str]
    seconds: float

    def table(self) -> str:
        lines = [f"imported {self.fmt} -> {self.out}  ({self.seconds:.1f} s)"]
        for split, path in self.files.items():
            fields = "  ".join(f"{k} {list(v)}" for k, v in self.shapes[split].items())
            lines.append(f"  {split:<5} {self.samples[split]:>7} samples  {path}  {fields}"
                         + (f"  <- {self.sources[split]}" if self.sources.get(split) else ""))
        return "\n".join(lines)


def _existing(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    pattern = re.compile(rf"({'|'.join(h5.SPLITS)})(-\d{{5}})?\.h5(\.tmp)?")
    found = sorted(p for p in out.iterdir() if pattern.fullmatch(p.name))
    found += [p for p in (out / ".partial", out / "config.yaml", out / SIDECAR) if p.exists()]
    return found


def import_dataset(fmt: str, out: str | os.PathLike, source: str | os.PathLike | None = None, *,
                   train=None, val=None, test=None,
                   train_file: str | os.PathLike | None = None,
                   val_file: str | os.PathLike | None = None,
                   test_file: str | os.PathLike | None = None,
                   stride: int = 1, time_stride: int = 1, initial_steps: int | None = None,
                   fields: Mapping[str, str] | None = None, keys: Sequence[str] | None = None,
                   pde: str | None = None, overwrite: bool = False, allow_overlap: bool = False,
                   block_mb: float = 256.0, progress: bool = False) -> ImportSummary:
    """Import ``source`` (or per-split files) in format ``fmt`` into the folder ``out``.

    ``train``/``val``/``test`` are sample ranges (``"0:1000"``, a slice or ``(start, stop)``);
    a split with neither a range nor a file is written empty. See the module docstring for
    the formats, fields and coordinates. Returns an :class:`ImportSummary`.
    """
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ImporterError(f"unknown format '{fmt}'; choose one of {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    opt = _options(fmt, spec, stride, time_stride, initial_steps, fields, keys)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ImporterError(f"{out}: exists and is not a folder; --out names a dataset folder")
    existing = _existing(out)
    if existing and not overwrite:
        raise ImporterError(f"{out}: already holds a dataset ({', '.join(p.name for p in existing)}"
                            "); pass --overwrite (overwrite=True) to replace it, or choose "
                            "another --out")
    ranges = {"train": train, "val": val, "test": test}
    files = {"train": train_file, "val": val_file, "test": test_file}
    block_bytes = max(1, int(block_mb * (1 << 20)))
    sources: dict[Path, Source] = {}
    try:
        plan = _plan(fmt, spec, opt, source, ranges, files, sources, block_bytes, allow_overlap)
        for path in existing:
            if path.resolve() in sources:
                raise ImporterError(f"{path}: is a source of this import and would be replaced; "
                                    "write to another --out")
        return _write(fmt, spec, opt, out, plan, pde, existing, block_bytes, progress, t0)
    finally:
        for src in sources.values():
            src.close()


def _options(fmt, spec, stride, time_stride, initial_steps, fields, keys) -> Options:
    for flag, value in (("stride", stride), ("time_stride", time_stride)):
        if int(value) != value or value < 1:
            raise ImporterError(f"{flag}={value}: expected a positive integer")
    if not spec.time and (time_stride != 1 or initial_steps is not None):
        raise ImporterError(f"{fmt}: time_stride and initial_steps apply to the time-series "
                            "formats (fno-ns, pdebench) only")
    if keys is not None and fmt != "pdebench":
        raise ImporterError(f"{fmt}: --keys applies to the pdebench format only")
    fields = dict(fields or {})
    roles = spec.roles if spec.roles is not None else tuple(keys or ["tensor"])
    unknown = sorted(set(fields) - set(roles))
    if unknown:
        raise ImporterError(f"{fmt}: --field {unknown} names no source key; roles: {list(roles)}")
    if spec.time and initial_steps is None:
        initial_steps = 10 if fmt == "pdebench" else 0  # PDEBench's initial_step; FNO a -> w0
    return Options(int(stride), int(time_stride), initial_steps, fields,
                   list(keys) if keys is not None else None)


@dataclasses.dataclass
class _Split:
    src: Source
    layout: Layout
    start: int
    stop: int


def _plan(fmt, spec, opt, source, ranges, files, sources, block_bytes, allow_overlap):
    """Open every source, check keys, shapes and ranges before anything is written."""
    plan: dict[str, _Split | None] = {}
    for split in h5.SPLITS:
        path = files[split] if files[split] is not None else source
        if ranges[split] is None and files[split] is None:
            plan[split] = None
            continue
        if path is None:
            raise ImporterError(f"--{split} {ranges[split]}: no file to read; give SOURCE or "
                                f"--{split}-file")
        path = Path(path).resolve()
        if path not in sources:
            sources[path] = Source(path, block_bytes)
        src = sources[path]
        layout = spec.build(src, opt)
        start, stop = parse_range(ranges[split], layout.n, str(src.path), f"--{split}")
        plan[split] = _Split(src, layout, start, stop)
    chosen = {s: p for s, p in plan.items() if p is not None}
    if not chosen:
        raise ImporterError(f"{fmt}: no split selected; give --train/--val/--test ranges "
                            "(and SOURCE) or --train-file/--val-file/--test-file")
    first_split, first = next(iter(chosen.items()))
    order = list(chosen)
    for split, p in chosen.items():
        if p.layout.specs != first.layout.specs:
            raise ImporterError(
                f"{p.src.path}: the {split} split would have fields "
                f"{_fmt_specs(p.layout.specs)} but {first_split} ({first.src.path}) has "
                f"{_fmt_specs(first.layout.specs)}; use files of one resolution")
        for other in order[:order.index(split)]:
            q = chosen[other]
            if (q.src is p.src and not allow_overlap
                    and max(p.start, q.start) < min(p.stop, q.stop)):
                raise ImporterError(
                    f"{p.src.path}: --{other} {q.start}:{q.stop} and --{split} "
                    f"{p.start}:{p.stop} overlap; pass --allow-overlap if that is intended")
    return plan


def _fmt_specs(specs) -> str:
    return ", ".join(f"{k} {list(shape)}" for k, (shape, _) in specs.items())


def _describe(fmt, pde, opt, plan) -> str:
    splits = {}
    for split, p in plan.items():
        if p is None:
            splits[split] = {"samples": 0}
            continue
        splits[split] = {"file": str(p.src.path), "format": p.src.kind, "sha256": p.src.sha256(),
                         "keys": sorted(p.layout.reads), "shapes": p.layout.shapes,
                         "range": [p.start, p.stop], "samples": p.stop - p.start}
    options = {"stride": opt.stride, "time_stride": opt.time_stride,
               "initial_steps": opt.initial_steps, "fields": dict(opt.fields)}
    if opt.keys is not None:
        options["keys"] = list(opt.keys)
    return yaml.safe_dump({"importer": fmt, "pde": pde, "options": options, "splits": splits},
                          sort_keys=False, default_flow_style=None)


def _write(fmt, spec, opt, out, plan, pde, existing, block_bytes, progress, t0):
    first = next(p for p in plan.values() if p is not None)
    if pde is None:
        pde = spec.pde or f"pdebench:{first.src.path.stem}"
    config = _describe(fmt, pde, opt, plan)
    specs, coords = first.layout.specs, first.layout.coords
    staging = out / STAGING
    created = not out.exists()
    shutil.rmtree(staging, ignore_errors=True)
    written: dict[str, Path] = {}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress)
    try:
        with bar:
            for split, p in plan.items():
                n = 0 if p is None else p.stop - p.start
                attrs = {"pde": pde, "split": split, "generator_config": config,
                         "importer": fmt, "source": None if p is None else str(p.src.path)}
                task = bar.add_task(f"{fmt} {split}", total=n)
                with h5.SplitWriter(staging / f"{split}.h5", n, specs, coords, attrs) as writer:
                    if p is not None:
                        _copy(p, writer, block_bytes, functools.partial(bar.advance, task))
                    written[split] = writer.commit()
        for path in existing:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        for split, path in written.items():
            os.replace(path, h5.split_path(out, split))
        (out / SIDECAR).write_text(config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    shapes = {split: {k: (0 if p is None else p.stop - p.start, *shape)
                      for k, (shape, _) in specs.items()} for split, p in plan.items()}
    return ImportSummary(
        out, fmt, {s: h5.split_path(out, s) for s in written},
        {s: (0 if p is None else p.stop - p.start) for s, p in plan.items()}, shapes,
        {s: f"{p.src.path.name}[{p.start}:{p.stop}]" for s, p in plan.items() if p},
        time.perf_counter() - t0)


def _copy(p: _Split, writer: h5.SplitWriter, block_bytes: int, advance) -> None:
    """Copy samples ``p.start:p.stop`` in blocks of about ``block_bytes`` of memory (each
    value read, up to 8 bytes, plus its float32 copy)."""
    per_sample = sum(12 * math.prod(shape) for shape, _ in p.layout.specs.values())
    block = max(1, block_bytes // max(per_sample, 1))
    for a in range(p.start, p.stop, block):
        b = min(p.stop, a + block)
        arrays = {}
        for key, index in p.layout.reads.items():
            try:
                arrays[key] = p.src.read(key, a, b, index)
            except (OSError, EOFError, zlib.error) as err:
                raise ImporterError(f"{p.src.path}: reading '{key}' samples {a}:{b} failed "
                                    f"({type(err).__name__}: {err})") from err
        for key, arr in arrays.items():
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
            if bad.any():
                raise ImporterError(f"{p.src.path}: '{key}' sample {a + int(np.argmax(bad))} "
                                    "holds NaN or Inf; choose a range without it")
        made = {k: np.ascontiguousarray(v, dtype=F32) for k, v in p.layout.make(arrays).items()}
        writer.write(a - p.start, made, np.arange(a, b, dtype=np.int64))
        advance(b - a)


