"""DeepXDE's physics-informed DeepONet on the antiderivative, timed and tested on given
functions (run in an environment with DeepXDE installed; not a dependency of opnet).

    DDE_BACKEND=pytorch python benchmarks/deepxde_pi_antiderivative.py TEST.npz [options]

The set-up of DeepXDE's ``examples/operator/antiderivative_aligned_pideeponet.py`` (the
defaults reproduce it): ds/dx = v on [0, 1] as ``dde.data.PDE(TimeDomain(0, 1), ...,
IC(s(0) = 0), num_domain=20, num_boundary=2, num_test=40)`` -- the residual at 22 fixed points
(20 Hammersley + both ends), never resampled; ``PDEOperatorCartesianProd`` with 1000 training
functions from ``GRF(length_scale=0.2)`` (RBF, 1000 knots, cubic; its own draws, no labels),
100 test functions (PDE loss only), 100 functions per batch; 50 sensors linspace(0, 1);
``DeepONetCartesianProd([50, 128, 128, 128], [1, 128, 128, 128], "tanh", "Glorot normal")``
with the hard IC ``s = G(v)(x) * x``; Adam lr 5e-4, constant, 40,000 iterations;
reverse-mode AD (one ``jacobian`` per function). The options change the sizes so that a
driver (``benchmarks/pi_deeponet_speed.py``) can match another framework's run.

``TEST.npz`` holds ``sensors`` [m], ``y`` [Q, 1], ``u_test`` [n, m] (at ``sensors``) and
``s_test`` [n, Q] (exact labels). ``--sensors data`` uses ``sensors`` as the branch input
points; ``--sensors example`` uses the example's 50 (the test inputs are then interpolated
to them by a cubic spline). After ``model.train`` (the only part timed) the network predicts
``s`` on the test functions: one JSON line with iterations/s and the test mean relative L2.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("DDE_BACKEND", "pytorch")

import deepxde as dde  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.interpolate import CubicSpline  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="npz with sensors, y, u_test, s_test")
    parser.add_argument("--iterations", type=int, default=40000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--decay", choices=["none", "cosine"], default="none",
                        help="cosine: lr -> 0 over the run (torch CosineAnnealingLR)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128, 128],
                        help="hidden/output widths of branch and trunk (the example: 128 x 3)")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--functions", type=int, default=1000, help="training functions")
    parser.add_argument("--batch-functions", type=int, default=100,
                        help="functions per iteration (0: all, full batch)")
    parser.add_argument("--num-domain", type=int, default=20,
                        help="interior residual points (residual at num_domain + 2 points)")
    parser.add_argument("--test-functions", type=int, default=100,
                        help="DeepXDE's own test functions (PDE loss every 1000 iterations)")
    parser.add_argument("--sensors", choices=["example", "data"], default="example",
                        help="branch input points: the example's 50, or the npz's sensors")
    parser.add_argument("--autodiff", choices=["reverse", "forward"], default="reverse")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


def build_model(args: argparse.Namespace, sensors: np.ndarray) -> dde.Model:
    """The example's data, network and hard initial condition, sized by ``args``."""
    geom = dde.geometry.TimeDomain(0, 1)

    def pde(x, u, v):
        if args.autodiff == "forward":  # u = (outputs, net call): ds/dx of every function
            return dde.grad.jacobian(u, x, j=0)[0] - v  # at once, (value, jvp call) back
        return dde.grad.jacobian(u, x) - v  # the example: called once per function

    ic = dde.icbc.IC(geom, lambda _: 0, lambda _, on_initial: on_initial)
    problem = dde.data.PDE(geom, pde, ic, num_domain=args.num_domain, num_boundary=2,
                           num_test=40)
    data = dde.data.PDEOperatorCartesianProd(
        problem, dde.data.GRF(length_scale=0.2), sensors[:, None], args.functions,
        num_test=args.test_functions, batch_size=args.batch_functions or None)
    net = dde.nn.DeepONetCartesianProd([len(sensors), *args.hidden], [1, *args.hidden],
                                       args.activation, "Glorot normal")
    net.apply_output_transform(lambda inputs, outputs: outputs * inputs[1].T)  # s(0) = 0
    model = dde.Model(data, net)
    decay = ("cosine", args.iterations, 0.0) if args.decay == "cosine" else None
    model.compile("adam", lr=args.lr, decay=decay)
    return model


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dde.config.set_random_seed(args.seed)
    dde.config.set_default_autodiff(args.autodiff)
    d = np.load(args.data)
    data_sensors = d["sensors"].astype(np.float64).ravel()
    u_test, s_test = d["u_test"].astype(np.float64), d["s_test"].astype(np.float64)
    y = d["y"].astype(np.float32).reshape(-1, 1)
    if args.sensors == "data":
        sensors = data_sensors
    else:
        sensors = np.linspace(0, 1, num=50)
        u_test = CubicSpline(data_sensors, u_test, axis=1)(sensors)
    model = build_model(args, sensors)
    residual_points = len(model.data.pde.train_x) - sum(model.data.pde.num_bcs)
    start = time.perf_counter()
    history, _ = model.train(iterations=args.iterations, verbose=0)
    seconds = time.perf_counter() - start
    pred = np.asarray(model.predict((u_test.astype(np.float32), y)), dtype=np.float64)
    rel = np.linalg.norm(pred - s_test, axis=1) / np.linalg.norm(s_test, axis=1)
    print(json.dumps({
        "setup": "pi_antiderivative", "framework": f"deepxde {dde.__version__}",
        "backend": dde.backend.backend_name, "iterations": args.iterations,
        "it_per_s": round(args.iterations / seconds, 1), "fit_seconds": round(seconds, 2),
        "test_rel_l2": float(rel.mean()), "test_functions": len(rel),
        "final_train_loss": float(np.sum(history.loss_train[-1])),
        "lr": args.lr, "decay": args.decay, "hidden": args.hidden,
        "activation": args.activation, "sensors": len(sensors),
        "train_functions": args.functions,
        "functions_per_iteration": args.batch_functions or args.functions,
        "residual_points": residual_points, "resampled": False, "autodiff": args.autodiff,
        "params": sum(p.numel() for p in model.net.parameters()),
        "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
