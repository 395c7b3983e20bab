"""The fast surrogate path and the surrogate benchmarks (issue 21): ``op.optimize()``
(channels-last, torch.compile) predicts what the plain path does; the reduced CPU runs of
benchmarks/surrogate_vs_solver.py and benchmarks/uncertainty_coverage.py give rows whose
numbers agree with computing them by hand. Tiny untrained operators."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_surrogate_safety import MGNO, grid_io, save
from test_uncertainty import _grid_data, grid_run

from opnet import load_operator
from opnet.training.module import OperatorModule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import surrogate_vs_solver  # noqa: E402
import uncertainty_coverage  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
DARCY = "name: darcy\nresolution: 8\nalpha: 2.0\ntau: 3.0\nhigh: 12.0\nlow: 3.0\n"


def darcy_ckpt(path: Path) -> Path:
    torch.manual_seed(0)
    io = grid_io(dataset={"name": "toy", "path": "data/toy", "pde": "darcy",
                          "generator_config": DARCY})
    module = OperatorModule(MGNO, io)
    module.operator.in_norm.set_stats(torch.full((1, 1, 1, 1), 7.0),
                                      torch.full((1, 1, 1, 1), 4.0))
    module.operator.out_norm.set_stats(torch.full((1, 1, 1, 1), 0.01),
                                       torch.full((1, 1, 1, 1), 0.005))
    return save(module, path)


def test_optimized_paths_predict_what_the_plain_path_does(tmp_path):
    op = load_operator(darcy_ckpt(tmp_path / "m.ckpt"))
    a = np.random.default_rng(0).uniform(3, 12, (5, 16, 16)).astype(np.float32)
    plain = op.predict(a, batch_size=2)
    assert op.optimize() is op and op.channels_last
    assert next(op.operator.model.parameters()).is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(op.predict(a, batch_size=2), plain, rtol=1e-5, atol=1e-7)
    op.optimize(channels_last=False, compile=True)
    np.testing.assert_allclose(op.predict(a, batch_size=5), plain, rtol=1e-5, atol=1e-7)
    op.optimize(channels_last=False)  # back to the network as loaded: MgNO builds NHWC weights
    assert op._forward is op.operator and not op.channels_last
    convs = [p for p in op.operator.model.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    np.testing.assert_allclose(op.predict(a, batch_size=2), plain, rtol=1e-6, atol=1e-8)


def test_surrogate_vs_solver_reduced_run(tmp_path):
    """Every row has both timings and their ratio; the Darcy error is the surrogate's
    relative L2 against the solver on the same fields, recomputed here."""
    from data_gen.pdes import darcy, make_config

    ckpt = darcy_ckpt(tmp_path / "m.ckpt")
    out = tmp_path / "rows.jsonl"
    rows = surrogate_vs_solver.main([
        "--ckpt", str(ckpt), "--resolutions", "16", "--n", "3", "--batch-size", "4",
        "--repeats", "1", "--ns-steps", "2", "--ns-batch", "2", "--out", str(out)])
    assert [r["problem"] for r in rows] == [
        "darcy", "navier_stokes_paper_one_time_unit", "navier_stokes_cpu_one_time_unit"]
    assert len(out.read_text().splitlines()) == 3
    for r in rows:
        assert r["solver_seconds_per_sample"] > 0 and r["surrogate_seconds_per_sample"] > 0
        assert r["speedup"] == pytest.approx(
            r["solver_seconds_per_sample"] / r["surrogate_seconds_per_sample"])
        assert r["threads"] == 1
    d = rows[0]
    op = load_operator(ckpt)
    assert d["params"] == sum(p.numel() for p in op.operator.model.parameters())
    assert d["solver"] in ("direct", "multigrid")
    assert set(d["seconds_per_sample_by_path"]) == {"eager", "channels_last"}
    cfg = make_config("darcy", {"resolution": 16, "alpha": 2.0, "tau": 3.0})
    coeff = darcy.coefficients(cfg, [np.random.default_rng(10_000 + i) for i in range(3)])
    u = darcy.solve(coeff)
    pred = op.predict(coeff.astype(np.float32))
    err = np.mean(np.linalg.norm((pred - u).reshape(3, -1), axis=1)
                  / np.linalg.norm(u.reshape(3, -1), axis=1))
    assert d["rel_l2_vs_solver"] == pytest.approx(err, rel=1e-4)
    assert rows[1]["params"] == 2_885_194  # MgNO-NS2 of the paper


def test_uncertainty_coverage_rows_of_members_and_ensemble(tmp_path):
    """Labels = the ensemble mean + 0.05·N(0, 1): the bands of each member and of the
    ensemble cover ~90 % of 2,000 test fields, and the error is recomputed by hand."""
    runs = tmp_path / "sweep"
    for i in range(2):
        grid_run(runs / str(i), i)
    ens = load_operator(runs)
    data = _grid_data(tmp_path / "data", ens, {"val": 1000, "test": 2000},
                      lambda m, s, rng: 0.05 * rng.standard_normal(m.shape))
    rows = uncertainty_coverage.main([str(runs), "--cal", str(tmp_path / "data"), "--test",
                                      str(tmp_path / "data"), "--resplits", "200", "--out",
                                      str(tmp_path / "cov.jsonl")])
    assert [r["operator"].split(" (")[0] for r in rows] == ["member 0", "member 1",
                                                           "ensemble of 2"]
    a, y, mean = data["test"]
    bands = ens.calibrate(tmp_path / "data").predict(a, coverage=0.9)  # the public path
    inside = ((bands.lower <= y) & (y <= bands.upper)).reshape(len(y), -1).all(axis=1)
    assert rows[-1]["coverage"] == pytest.approx(inside.mean(), abs=1e-3)
    for r in rows:
        assert (r["n_cal"], r["n_test"]) == (1000, 2000)
        assert 0.88 <= r["coverage"] <= 0.92
        assert 0.89 <= r["resplit_coverage_mean"] <= 0.91 and r["resplit_coverage_std"] < 0.02
    ens_err = np.mean(np.linalg.norm((mean - y).reshape(2000, -1), axis=1)
                      / np.linalg.norm(y.reshape(2000, -1), axis=1))
    assert rows[-1]["test_rel_l2"] == pytest.approx(ens_err, rel=1e-4)
    assert rows[-1]["test_rel_l2"] < min(r["test_rel_l2"] for r in rows[:-1])
