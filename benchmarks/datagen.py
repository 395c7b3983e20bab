"""End-to-end dataset generation speed through ``data_gen.generate`` (HDF5 files included).

Prints one JSON line per (resolution, workers):
``{"benchmark": "darcy_generate", "resolution": s, "workers": w, "samples": n,
"seconds": t, "seconds_per_sample": t / n}``.

    python benchmarks/datagen.py [--resolutions 64 128 256 421] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from data_gen import generate

SAMPLES = {64: 400, 128: 128, 256: 32, 421: 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256, 421])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    for s in args.resolutions:
        n = args.samples or SAMPLES.get(s, 16)
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                generate("darcy", out=tmp, n_train=n, n_val=0, n_test=0, resolution=s,
                         workers=workers, chunk_size=max(1, min(16, n // (2 * workers))),
                         progress=False)
                seconds = time.perf_counter() - t0
            print(json.dumps({"benchmark": "darcy_generate", "resolution": s, "workers": workers,
                              "samples": n, "seconds": round(seconds, 3),
                              "seconds_per_sample": round(seconds / n, 5)}), flush=True)


if __name__ == "__main__":
    main()
