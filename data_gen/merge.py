"""``python -m data_gen.merge <out>``: stitch the shard files that separate
``python -m data_gen ... shard=i num_shards=n`` runs wrote into one virtual file per split."""

from __future__ import annotations

import argparse
import sys

from data_gen.runner import GenerationError, merge
from opnet.data import h5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_gen.merge", description=__doc__)
    parser.add_argument("out", help="dataset folder holding <split>-NNNNN.h5 shard files")
    args = parser.parse_args(argv)
    try:
        merged = merge(args.out)
    except GenerationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, path in merged.items():
        attrs = h5.read_attrs(path)
        print(f"{split:<5} {attrs['n_samples']:>8} samples from {attrs['n_shards']} shards  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
