"""The standard (nested) protocol across resolutions (issue 19, opnet/resolution.py): one fine
Darcy test set at 33 nodes, its every 2nd/4th node for 17/9; the solver and interpolation
error floors; the independent fallback; ``resample=true`` through evaluate; the figure."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TINY_MODEL, compose_train

from data_gen import generate
from data_gen.pdes import darcy
from opnet import load_operator
from opnet.data import h5
from opnet.evaluate import evaluation, resolution_evaluations, run
from opnet.metrics import per_sample_rel_l2
from opnet.resolution import (
    nested_strides,
    protocol_notes,
    resolution_figure,
    solver_floor,
)

pytestmark = pytest.mark.usefixtures("one_thread")
RES = [9, 17, 33]


def _rel(pred: np.ndarray, true: np.ndarray) -> float:
    """mean_b ‖pred_b − true_b‖ / ‖true_b‖, written out (not opnet.metrics)."""
    b = len(true)
    return float(np.mean(np.linalg.norm((pred - true).reshape(b, -1), axis=1)
                         / np.linalg.norm(true.reshape(b, -1), axis=1)))


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """A 1-epoch MgNO trained on 17x17 Darcy, evaluated at 9/17/33 (4 samples, seed 1)."""
    root = tmp_path_factory.mktemp("resolution")
    generate("darcy", out=root / "darcy17", resolution=17, n_train=8, n_val=4, n_test=4,
             progress=False)
    cfg = compose_train(f"data.data_dir={root / 'darcy17'}", "data.generate=null",
                        "data.batch_size=4", *TINY_MODEL, "trainer.max_epochs=1", "test=false",
                        "logger=none", "~callbacks.progress_bar", "~callbacks.model_summary",
                        "~callbacks.val_figures", f"paths.output_dir={root / 'run'}")
    from opnet.training.job import train

    train(cfg)
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    results = resolution_evaluations(str(ckpt), RES, n=4, data_root=root / "data", keep=2)
    return SimpleNamespace(root=root, ckpt=ckpt, results=results,
                           fine=root / "data" / "darcy17_eval33_seed1" / "test.h5")


def test_coarse_resolutions_are_every_sth_node_of_one_fine_set(nested):
    """Every row reads the one 33-node set at stride (33−1)/(r−1); the fields evaluated are the
    fine ones at [::s] bit for bit and the coordinates those of a set made at r. (A set
    generated directly at r with the same seed has other coefficients: the GRF's noise and
    modes depend on the size, so it is no test of nesting.)"""
    coeff = h5.read_fields(nested.fine, "inputs", ["coeff"])
    sol = h5.read_fields(nested.fine, "outputs", ["sol"])
    for r, e in zip(RES, nested.results, strict=True):
        s = (33 - 1) // (r - 1)
        assert e.row["data"] == str(nested.fine) and e.row["grid"] == [r, r]
        assert (e.row["protocol"], e.row["fine_grid"], e.row["stride"]) == ("nested", 33, s)
        np.testing.assert_array_equal(e.inputs, coeff[:2, 0, ::s, ::s])
        np.testing.assert_array_equal(e.truth, sol[:2, 0, ::s, ::s])
        direct = nested.root / f"direct{r}"
        generate("darcy", out=direct, resolution=r, n_train=0, n_val=0, n_test=1, seed=1,
                 progress=False)
        coarse = h5.read_coords(nested.fine, stride=s)
        for axis, x in h5.read_coords(h5.split_path(direct, "test")).items():
            np.testing.assert_array_equal(coarse[axis], x)


def test_nested_strides_by_grid_kind():
    nodes, periodic = {"x": np.linspace(0, 1, 33)}, {"x": np.arange(64) / 64}
    assert nested_strides(nodes, 33, RES) == ("nodes", {9: 4, 17: 2, 33: 1})
    assert nested_strides(periodic, 64, [16, 64]) == ("periodic", {16: 4, 64: 1})
    assert nested_strides(nodes, 33, [12, 33]) is None  # 32 % 11 != 0
    assert nested_strides(periodic, 64, [33]) is None


def test_solver_floor_is_the_direct_coarse_solve_error(nested):
    """floor_rel_l2: 0 at the fine grid, larger on coarser grids, and exactly the error of
    darcy.solve_with at r for the subsampled coefficients against the fine solution."""
    floors = [e.row["floor_rel_l2"] for e in nested.results]
    assert floors[2] == 0.0 and floors[0] > floors[1] > 0.0
    coeff = h5.read_fields(nested.fine, "inputs", ["coeff"]).astype(np.float64)[:, 0]
    sol = h5.read_fields(nested.fine, "outputs", ["sol"]).astype(np.float64)[:, 0]
    for r, floor in zip(RES[:2], floors[:2], strict=True):
        s = (33 - 1) // (r - 1)
        u = darcy.solve_with("direct", coeff[:, ::s, ::s], 1.0)
        assert floor == pytest.approx(_rel(u, sol[:, ::s, ::s]), rel=1e-9)


def test_solver_floor_is_second_order_for_a_smooth_coefficient():
    """a = 1 + ½ sin(πx) sin(πy): the 5-point scheme's error ~ C h², so against the 129-node
    solution the floors at 9 and 17 nodes have the ratio (8⁻² − 128⁻²)/(16⁻² − 128⁻²) ≈ 4.05."""
    x = np.linspace(0.0, 1.0, 129)
    a = 1.0 + 0.5 * np.outer(np.sin(np.pi * x), np.sin(np.pi * x))
    cfg = darcy.DarcyConfig(resolution=129, solver="direct")
    fine = darcy.solve_inputs(cfg, {"coeff": a[None, None]})["sol"]
    floor = {}
    for r in (9, 17):
        s = 128 // (r - 1)
        coarse = darcy.solve_inputs(cfg, {"coeff": a[None, None, ::s, ::s]})["sol"]
        assert coarse.shape == (1, 1, r, r)
        floor[r] = _rel(coarse, fine[:, :, ::s, ::s])
    assert 3.6 < floor[9] / floor[17] < 4.5, floor


def test_generators_without_solve_inputs_have_no_floor():
    """Navier-Stokes has no ``solve_inputs``: no floor (nothing read), and the table says so."""
    assert solver_floor({"name": "navier_stokes"}, "no/such/file.h5", ["w"], 2) is None
    row = {"protocol": "nested", "grid": [32, 32], "fine_grid": 64, "stride": 2,
           "floor": "not available for navier_stokes"}
    assert "floor: not available for navier_stokes" in protocol_notes([row])


def test_interpolation_floor_through_the_training_grid(nested):
    """The 17-node training grid is nested in 33: exact at 9 and 17 (their nodes are training
    nodes), positive at 33 and equal to u_33[::2] interpolated bilinearly back to 33."""
    floors = [e.row["interp_floor_rel_l2"] for e in nested.results]
    assert floors[:2] == [0.0, 0.0] and floors[2] > 1e-3
    u = h5.read_fields(nested.fine, "outputs", ["sol"]).astype(np.float64)[:, 0]
    c = u[:, ::2, ::2]
    back = np.zeros_like(u)
    back[:, ::2, ::2] = c
    back[:, 1::2, ::2] = 0.5 * (c[:, :-1] + c[:, 1:])
    back[:, :, 1::2] = 0.5 * (back[:, :, :-1:2] + back[:, :, 2::2])
    assert floors[2] == pytest.approx(_rel(back, u), rel=1e-9)


def test_not_nested_resolutions_fall_back_to_independent_sets(nested):
    results = resolution_evaluations(str(nested.ckpt), [12, 17], n=4,
                                     data_root=nested.root / "data")
    rows = [e.row for e in results]
    assert [r["protocol"] for r in rows] == ["independent", "independent"]
    assert [Path(r["data"]).parent.name for r in rows] == ["darcy17_eval12_seed1",
                                                           "darcy17_eval17_seed1"]
    assert not any("floor_rel_l2" in r or "stride" in r for r in rows)
    assert protocol_notes(rows)[0].startswith("protocol: independent")
    assert protocol_notes([e.row for e in nested.results])[0].startswith("protocol: nested")


def test_resample_through_evaluate_equals_predict_resample(nested, tmp_path, capsys):
    """resample=true: each row is predict(a, resample=True) on the fine set at [::s]; at 33
    nodes it differs from the plain prediction, at the training grid (17) it is the same."""
    results = run({"ckpt": str(nested.ckpt), "resolution": RES, "resample": True, "n": 4,
                   "data_root": str(nested.root / "data"), "output_dir": str(tmp_path),
                   "plots": True, "n_plot": 1})
    op = load_operator(nested.ckpt)
    x = h5.read_fields(nested.fine, "inputs", ["coeff"])
    y = h5.read_fields(nested.fine, "outputs", ["sol"])
    for r, e, plain in zip(RES, results, nested.results, strict=True):
        s = (33 - 1) // (r - 1)
        pred = op.predict(x[:, :, ::s, ::s], resample=True)
        expected = float(per_sample_rel_l2(pred, y[:, :, ::s, ::s]).mean())
        assert e.row["resample"] is True
        assert e.row["rel_l2"] == pytest.approx(expected, rel=1e-6)
        same = e.row["rel_l2"] == pytest.approx(plain.row["rel_l2"], rel=1e-6)
        assert same == (r == 17), (r, e.row["rel_l2"], plain.row["rel_l2"])
    assert (tmp_path / "plots" / "error_vs_resolution.png").stat().st_size > 1000
    assert "protocol: nested: one test set at 33 points per side" in capsys.readouterr().out


def test_resample_is_refused_by_other_families_and_bad_values(tmp_path):
    points = SimpleNamespace(metadata={"family": "points", "io": {}})
    with pytest.raises(ValueError, match=r"^resample=true: only grid operators resample"):
        evaluation(points, tmp_path, resample=True)
    with pytest.raises(ValueError, match=r"^resample='yes': expected true or false$"):
        run({"ckpt": str(tmp_path / "missing.ckpt"), "resample": "yes"})


def test_error_vs_resolution_skips_zero_floors(nested, tmp_path):
    """Floors of 0 (solver at 33, interpolation at 9 and 17) are left out of the log axes."""
    from opnet import plot

    fig = resolution_figure(nested.results)
    lines = {line.get_label(): np.asarray(line.get_ydata(), float) for line in fig.axes[0].lines}
    assert set(lines) == {"rel_l2", "h1", "solver floor", "interpolation floor"}
    assert np.isfinite(lines["solver floor"]).tolist() == [True, True, False]
    assert np.isfinite(lines["interpolation floor"]).tolist() == [False, False, True]
    assert plot.save_figure(fig, tmp_path / "e.png").stat().st_size > 1000


def test_super_resolution_benchmark_reports_the_protocol_rows(nested, tmp_path):
    """benchmarks/super_resolution.py: one JSON line per variant and resolution, with the
    numbers of resolution_evaluations (native) and of the resample path."""
    import json
    import subprocess
    import sys

    out = tmp_path / "sr.jsonl"
    subprocess.run([sys.executable, "benchmarks/super_resolution.py", str(nested.ckpt),
                    "--resolutions", *map(str, RES), "--n", "4",
                    "--data-root", str(nested.root / "data"), "--out", str(out)],
                   cwd=Path(__file__).parents[1], check=True, capture_output=True)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["variant"], r["grid"][0]) for r in lines] == [
        (v, r) for v in ("native", "resample") for r in RES]
    for line, row in zip(lines[:3], (e.row for e in nested.results), strict=True):
        assert line["rel_l2"] == pytest.approx(row["rel_l2"], rel=1e-6)
        assert line["protocol"] == "nested" and line["threads"] == 1
    assert lines[4]["rel_l2"] == pytest.approx(lines[1]["rel_l2"], rel=1e-6)  # 17: trained grid
