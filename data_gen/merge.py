"""``python -m data_gen.merge <out>``: stitch the shard files that separate
``python -m data_gen ... shard=i num_shards=n`` runs wrote into one virtual file per split.

The last shard run to finish does this by itself; the command is for shards made elsewhere
or by an older version."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from data_gen.locking import GenerationError, is_storage_error, locked, storage_error
from opnet.data import h5

KEEP = ("pde", "split", "generator_config", "seed", "seed_scheme", "split_id", "split_samples",
        "labelled")


def merge(out: str | os.PathLike) -> dict[str, Path]:
    """Stitch the shard files ``<split>-NNNNN.h5`` that separate ``generate(shard=i,
    num_shards=n)`` runs wrote into ``out`` into virtual ``<split>.h5`` files, after checking
    that every shard is there and that all were made with one configuration. Holds the
    folder lock (``out/.lock``) while it writes."""
    out = Path(out)
    if not out.is_dir():
        raise GenerationError(f"{out}: no shard files <split>-NNNNN.h5 to merge")
    try:
        with locked(out):
            return _merge(out)
    except OSError as err:
        if is_storage_error(err):
            raise storage_error(out, err) from err
        raise


def _merge(out: Path) -> dict[str, Path]:
    merged: dict[str, Path] = {}
    for split in h5.SPLITS:
        for stale in out.glob(f"{split}.h5.*.tmp"):  # of a killed merge: the lock is ours
            stale.unlink(missing_ok=True)
        shards = sorted(out.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9].h5"))
        if not shards:
            continue
        attrs = [h5.read_attrs(p) for p in shards]
        first = attrs[0]
        for path, a in zip(shards, attrs, strict=True):
            for key in ("pde", "generator_config", "seed", "n_shards", "split_samples",
                        "labelled"):
                if a.get(key) != first.get(key):
                    raise GenerationError(
                        f"{path}: {key}={a.get(key)!r} differs from {shards[0].name} "
                        f"({first.get(key)!r}); these shards come from different runs")
        n_shards, n = int(first["n_shards"]), int(first["split_samples"])
        have = {int(a["shard"]) for a in attrs}
        missing = sorted(set(range(n_shards)) - have)
        if missing:
            names = ", ".join(f"{split}-{k:05d}.h5" for k in missing[:5])
            raise GenerationError(
                f"{out}: {split} has {len(have)} of {n_shards} shards; missing {names}"
                f"{' ...' if len(missing) > 5 else ''} (run generate(shard=k, "
                f"num_shards={n_shards}) for them)")
        total = sum(int(a["n_samples"]) for a in attrs)
        if total != n:
            raise GenerationError(f"{out}: {split} shards hold {total} samples, expected {n}")
        keep = {k: v for k, v in first.items() if k in KEEP}
        merged[split] = h5.write_virtual(h5.split_path(out, split), shards, keep)
    if not merged:
        raise GenerationError(f"{out}: no shard files <split>-NNNNN.h5 to merge")
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_gen.merge", description=__doc__)
    parser.add_argument("out", help="dataset folder holding <split>-NNNNN.h5 shard files")
    args = parser.parse_args(argv)
    try:
        merged = merge(args.out)
    except (GenerationError, h5.DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, path in merged.items():
        attrs = h5.read_attrs(path)
        print(f"{split:<5} {attrs['n_samples']:>8} samples from {attrs['n_shards']} shards  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
