"""DeepXDE's documented aligned antiderivative example, timed (run in an environment with
DeepXDE installed; not a dependency of opnet).

    DDE_BACKEND=pytorch python benchmarks/deepxde_antiderivative.py DATA.npz [--iterations N]

``DATA.npz`` holds ``u_train`` [n, m], ``s_train`` [n, Q], ``u_test``, ``s_test``, ``y`` [Q, 1]
(``benchmarks/deeponet_speed.py --deepxde-python`` writes it from the same HDF5 data opnet
trains on). The network and training call are the example's: ``DeepONetCartesianProd([m, 40,
40], [1, 40, 40], "relu", "Glorot normal")``, ``compile("adam", lr=0.001, metrics=["mean l2
relative error"])``, ``train(iterations=N)`` (test metrics every 1000 iterations, as by
default). Prints one JSON line: iterations/s over ``train`` and the final test mean relative L2.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("DDE_BACKEND", "pytorch")

import deepxde as dde  # noqa: E402
import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--iterations", type=int, default=10000)
    args = parser.parse_args()
    d = np.load(args.data)
    y = d["y"].astype(np.float32)
    data = dde.data.TripleCartesianProd((d["u_train"].astype(np.float32), y), d["s_train"],
                                        (d["u_test"].astype(np.float32), y), d["s_test"])
    m = d["u_train"].shape[1]
    net = dde.nn.DeepONetCartesianProd([m, 40, 40], [y.shape[1], 40, 40], "relu",
                                       "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=0.001, metrics=["mean l2 relative error"])
    start = time.perf_counter()
    _, state = model.train(iterations=args.iterations, verbose=0)
    seconds = time.perf_counter() - start
    import torch

    print(json.dumps({"setup": "antiderivative", "framework": f"deepxde {dde.__version__}",
                      "iterations": args.iterations,
                      "it_per_s": round(args.iterations / seconds, 1),
                      "fit_seconds": round(seconds, 2),
                      "test_rel_l2": float(np.asarray(state.best_metrics).ravel()[0]),
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
