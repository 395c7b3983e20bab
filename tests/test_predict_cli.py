"""``python -m opnet.predict`` (issue 21): input fields in a .h5/.npy/.npz file, predictions
in a .npy/.npz/.h5 file equal to ``op.predict`` bit for bit; every bad input one line
``error: ...``, exit code 2. Train-free: tiny untrained checkpoints (as in
test_surrogate_safety.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from test_surrogate_safety import MGNO, M, Q, grid_io, save, toy_deeponet

from opnet import load_operator
from opnet.cli import run_reporting_errors
from opnet.data import h5
from opnet.predict import PROGRESS_MIN_BATCHES, _show_progress, run
from opnet.training.module import OperatorModule

ROOT = Path(__file__).resolve().parents[1]
N = 5  # samples; batch_size=2: three batches


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A tiny MgNO checkpoint (8x8 grid, field a -> u) and 5 inputs [5, 1, 8, 8]."""
    tmp = tmp_path_factory.mktemp("grid")
    torch.manual_seed(0)
    ckpt = save(OperatorModule(MGNO, grid_io()), tmp / "grid.ckpt")
    a = np.random.default_rng(0).uniform(1, 3, (N, 1, 8, 8)).astype(np.float32)
    return ckpt, a


@pytest.fixture(scope="module")
def deeponet(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("deeponet")
    return save(toy_deeponet(), tmp / "deeponet.ckpt")


def write_split(path: Path, fields: dict[str, np.ndarray], coords: dict | None = None) -> Path:
    """An inputs-only opnet split file holding ``inputs/<name>``."""
    n = len(next(iter(fields.values())))
    specs = {f"inputs/{k}": (v.shape[1:], np.float32) for k, v in fields.items()}
    with h5.SplitWriter(path, n, specs, coords or {}, {"split": path.stem,
                                                       "labelled": False}) as w:
        w.write(0, {f"inputs/{k}": v for k, v in fields.items()}, np.arange(n))
        w.commit()
    return path


def _cfg(ckpt: Path, source: Path, out: Path, **more) -> dict:
    return {"ckpt": str(ckpt), "input": str(source), "out": str(out), "progress": False, **more}


# ------------------------------------------------------------------- the same numbers
def test_every_input_and_output_format_gives_op_predict_exactly(grid, tmp_path):
    ckpt, a = grid
    op = load_operator(ckpt)
    want = op.predict(a, batch_size=2)
    assert want.shape == (N, 1, 8, 8) and np.isfinite(want).all() and want.std() > 0
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "one.npz", coeff=a)                    # the only array
    np.savez(tmp_path / "named.npz", a=a, other=a[:2] * 0)     # named like the input field
    np.savez(tmp_path / "field.npz", x=a, y=a[:1])             # field=x
    write_split(tmp_path / "data" / "val.h5", {"a": a})        # a folder + split=val
    write_split(tmp_path / "test.h5", {"a": a, "b": 2 * a})
    cases = [("a.npy", {}), ("one.npz", {}), ("named.npz", {}), ("field.npz", {"field": "x"}),
             ("data", {"split": "val"}), ("test.h5", {})]
    for name, more in cases:
        for suffix in (".npy", ".npz", ".h5"):
            out = tmp_path / f"pred_{Path(name).stem}{suffix}"
            assert run(_cfg(ckpt, tmp_path / name, out, batch_size=2, **more)) == out
            if suffix == ".npy":
                got = np.load(out)
            elif suffix == ".npz":
                with np.load(out) as z:
                    assert z.files == ["prediction"]
                    got = z["prediction"]
            else:
                got = h5.read_fields(out, "outputs", ["u"])
                attrs = h5.read_attrs(out)
                assert attrs["checkpoint"] == str(ckpt)
                assert attrs["model"] == MGNO["_target_"] and attrs["n_samples"] == N
            np.testing.assert_array_equal(got, want, err_msg=f"{name} -> {suffix}")
    # field= on a .h5 reads another input field (b = 2a: another prediction)
    out = run(_cfg(ckpt, tmp_path / "test.h5", tmp_path / "b.npy", field="b"))
    np.testing.assert_array_equal(np.load(out), op.predict(2 * a))
    assert not np.array_equal(np.load(out), want)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes
    # the optimised path (channels-last convolutions) predicts the same to float32 rounding
    out = run(_cfg(ckpt, tmp_path / "a.npy", tmp_path / "cl.npy", channels_last=True))
    np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-6)


def test_layouts_without_batch_or_channel_axis_come_back_as_predict_returns_them(grid,
                                                                                  tmp_path):
    ckpt, a = grid
    op = load_operator(ckpt)
    for name, x in (("single", a[0, 0]), ("no_channel", a[:, 0])):
        np.save(tmp_path / f"{name}.npy", x)
        out = run(_cfg(ckpt, tmp_path / f"{name}.npy", tmp_path / f"{name}_pred.npy",
                       batch_size=2))
        np.testing.assert_array_equal(np.load(out), op.predict(x, batch_size=2))
        assert np.load(out).shape == x.shape
    out = run(_cfg(ckpt, tmp_path / "single.npy", tmp_path / "single.h5"))  # N = 1 in .h5
    np.testing.assert_array_equal(h5.read_fields(out, "outputs", ["u"]),
                                  op.predict(a[:1, :]))


def test_deeponet_sensor_values_query_points_and_h5(deeponet, tmp_path):
    op = load_operator(deeponet)
    u = np.random.default_rng(1).normal(size=(N, M)).astype(np.float32)
    y = np.linspace(0, 1, 13)[:, None].astype(np.float32)
    np.save(tmp_path / "u.npy", u)
    np.save(tmp_path / "y.npy", y)
    out = run(_cfg(deeponet, tmp_path / "u.npy", tmp_path / "p.npy", batch_size=2))
    np.testing.assert_array_equal(np.load(out), op.predict(u, batch_size=2))
    assert np.load(out).shape == (N, Q)
    out = run(_cfg(deeponet, tmp_path / "u.npy", tmp_path / "q.npy", query=str(tmp_path / "y.npy")))
    np.testing.assert_array_equal(np.load(out), op.predict(u, y))
    assert np.load(out).shape == (N, 13)
    # an opnet point split (inputs/f [N, m] at coords/sensors) -> outputs/u [N, Q] + coords
    write_split(tmp_path / "test.h5", {"f": u}, {"sensors": op.sensors[:, 0]})
    out = run(_cfg(deeponet, tmp_path, tmp_path / "p.h5"))
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["outputs/u"][()], op.predict(u))
        np.testing.assert_allclose(f["coords/query"][()], op.query)
    # sensors elsewhere: refused, naming the file
    write_split(tmp_path / "moved" / "test.h5", {"f": u}, {"sensors": op.sensors[:, 0] / 2})
    with pytest.raises(h5.DatasetError, match="not the 10 sensor locations"):
        run(_cfg(deeponet, tmp_path / "moved", tmp_path / "p2.h5"))


def test_progress_bar_only_on_a_terminal_with_several_batches():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert _show_progress(True, PROGRESS_MIN_BATCHES, Tty())
    assert not _show_progress(True, PROGRESS_MIN_BATCHES - 1, Tty())
    assert not _show_progress(False, 100, Tty())
    assert not _show_progress(True, 100, io.StringIO())  # a pipe or file: no bar


# ------------------------------------------------------------------------- bad input
def _one_line(cfg: dict, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        run_reporting_errors(run, cfg)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.rstrip("\n")


def test_every_bad_input_is_one_line_naming_key_or_file(grid, tmp_path, capsys):
    ckpt, a = grid
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "bad_shape.npy", a[..., None].repeat(2, -1).repeat(4, 1))
    np.save(tmp_path / "text.npy", np.array(["x", "y"]))
    np.savez(tmp_path / "two.npz", x=a, y=a)
    (tmp_path / "a.txt").write_text("1 2 3")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    ok, out = tmp_path / "a.npy", tmp_path / "pred.npy"
    cases = [  # (config, the key the line starts with, what it says)
        (_cfg(tmp_path / "gone.ckpt", ok, out), "ckpt", "gone.ckpt: no such checkpoint"),
        (_cfg(ckpt, tmp_path / "gone.npy", out), "input", "gone.npy: no such file"),
        (_cfg(ckpt, tmp_path / "a.txt", out), "input", "unsupported input type '.txt'"),
        (_cfg(ckpt, tmp_path, out), "input", "a folder without test.h5 (split=test)"),
        (_cfg(ckpt, tmp_path / "broken.npy", out), "input", "not a readable .npy file"),
        (_cfg(ckpt, tmp_path / "text.npy", out), "input", "dtype <U1, expected real numbers"),
        (_cfg(ckpt, tmp_path / "bad_shape.npy", out, batch_size=2), "input",
         "input of shape (5, 4, 8, 8, 2) does not fit"),  # the whole array's shape
        (_cfg(ckpt, tmp_path / "two.npz", out, field="z"), "field",
         f"z: {tmp_path / 'two.npz'} has no array 'z' (it has: x, y)"),
        (_cfg(ckpt, tmp_path / "two.npz", out), "input",
         "holds arrays ['x', 'y']; give field=<name> (the operator's input field(s): a)"),
        (_cfg(ckpt, ok, out, field="x"), "field", "x: a .npy file holds one array"),
        (_cfg(ckpt, ok, out, compile="yes"), "compile", "'yes': expected true or false"),
        (_cfg(ckpt, ok, tmp_path / "nowhere" / "p.npy"), "out",
         f"folder {tmp_path / 'nowhere'} does not exist"),
        (_cfg(ckpt, ok, tmp_path / "p.csv"), "out", "unsupported output type '.csv'"),
        (_cfg(ckpt, ok, tmp_path), "out", "is a folder"),
        (_cfg(ckpt, ok, out, batch_size=0), "batch_size", "0: expected an integer >= 1"),
        (_cfg(ckpt, ok, out, split="tset"), "split", "'tset': expected one of"),
        (_cfg(ckpt, ok, tmp_path / "p.npz", coverage=1.5), "coverage", "expected a prob"),
        (_cfg(ckpt, ok, tmp_path / "p.npz", coverage=0.9), "coverage", "needs calibrate="),
        (_cfg(ckpt, ok, out, coverage=0.9, calibrate=str(tmp_path)), "out",
         "a .npy file holds one array; with coverage="),
        (_cfg(ckpt, ok, out, device="cuda:99"), "device", "'cuda:99'"),
    ]
    for cfg, key, expected in cases:
        line = _one_line(cfg, capsys)
        assert line.startswith(f"error: {key}=") and expected in line, (key, line)
    assert not (tmp_path / "pred.npy").exists() and not (tmp_path / "p.npz").exists()


def test_coverage_writes_conformal_bands_of_op_predict(grid, tmp_path):
    """coverage= + calibrate=<folder>: op.calibrate on its val split, then the bands of
    predict(a, coverage=...) in .npz (prediction, lower, upper) and .h5 (lower/, upper/)."""
    ckpt, a = grid
    rng = np.random.default_rng(2)
    xv = rng.uniform(1, 3, (9, 1, 8, 8)).astype(np.float32)
    yv = rng.normal(size=(9, 1, 8, 8)).astype(np.float32)
    specs = {"inputs/a": ((1, 8, 8), np.float32), "outputs/u": ((1, 8, 8), np.float32)}
    with h5.SplitWriter(tmp_path / "cal" / "val.h5", 9, specs, {}, {"split": "val"}) as w:
        w.write(0, {"inputs/a": xv, "outputs/u": yv}, np.arange(9))
        w.commit()
    np.save(tmp_path / "a.npy", a)
    op = load_operator(ckpt).calibrate(tmp_path / "cal", "val")
    want = op.predict(a, coverage=0.8, batch_size=2)
    assert (want.upper - want.lower).min() > 0
    more = {"coverage": 0.8, "calibrate": str(tmp_path / "cal"), "batch_size": 2}
    out = run(_cfg(ckpt, tmp_path / "a.npy", tmp_path / "p.npz", **more))
    with np.load(out) as z:
        assert sorted(z.files) == ["lower", "prediction", "upper"]
        for name, field in (("prediction", "mean"), ("lower", "lower"), ("upper", "upper")):
            np.testing.assert_array_equal(z[name], getattr(want, field))
    out = run(_cfg(ckpt, tmp_path / "a.npy", tmp_path / "p.h5", **more))
    for group, field in (("outputs", "mean"), ("lower", "lower"), ("upper", "upper")):
        np.testing.assert_array_equal(h5.read_fields(out, group, ["u"]), getattr(want, field))
    assert h5.read_attrs(out)["coverage"] == 0.8


def test_coverage_on_a_surrogate_without_calibrate_is_one_line(grid, tmp_path, capsys,
                                                              monkeypatch):
    """A surrogate class without ``calibrate`` (a plugin family's, an older opnet) is
    refused in one line before anything is predicted or written."""
    from opnet.surrogate import Surrogate

    monkeypatch.setattr(Surrogate, "calibrate", None)
    ckpt, a = grid
    np.save(tmp_path / "a.npy", a)
    line = _one_line(_cfg(ckpt, tmp_path / "a.npy", tmp_path / "p.npz", coverage=0.9,
                          calibrate=str(tmp_path)), capsys)
    assert line == ("error: coverage=0.9: this Surrogate has no conformal calibration "
                    "(op.calibrate) in this opnet; predict without coverage=")
    assert not (tmp_path / "p.npz").exists()


# ------------------------------------------------------------------- the command line
def _command(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "opnet.predict", *overrides], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_command_line_writes_only_out_and_reports_errors_in_one_line(grid, tmp_path):
    ckpt, a = grid
    np.savez(tmp_path / "in.npz", a=a)
    done = _command(tmp_path, f"ckpt={ckpt}", "input=in.npz", "out=pred.h5", "batch_size=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "prediction [5, 1, 8, 8] -> pred.h5"
    np.testing.assert_array_equal(h5.read_fields(tmp_path / "pred.h5", "outputs", ["u"]),
                                  load_operator(ckpt).predict(a, batch_size=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "pred.h5"]  # no log/run dir
    done = _command(tmp_path, f"ckpt={ckpt}", "input=in.npz", "out=pred.csv")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines == [
        "error: out=pred.csv: unsupported output type '.csv'; expected a file name ending "
        ".h5, .npy, .npz"], done.stderr
    done = _command(tmp_path, f"ckpt={ckpt}", "input=in.npz")  # out= missing: before Hydra
    assert done.returncode == 2
    assert done.stderr.strip() == "error: out=<output file .npy, .npz or .h5>: required"


def test_a_sweep_folder_predicts_the_ensemble_mean(grid, tmp_path):
    """ckpt=<a folder of run folders> (train.py -m seed=...): the members' mean, at the
    members' default batch size, channels-last on every member."""
    from test_uncertainty import grid_run

    _, a = grid
    sweep = tmp_path / "multirun"
    members = [grid_run(sweep / str(i), i) for i in range(2)]
    np.save(tmp_path / "a.npy", a)
    out = run(_cfg(sweep, tmp_path / "a.npy", tmp_path / "mean.npy", channels_last=True))
    want = np.mean([load_operator(m).predict(a) for m in members], axis=0)
    np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-6)


def test_a_deeponet_sweep_reads_a_point_split_and_writes_its_query_points(tmp_path):
    """A DeepONet ensemble on an opnet point split: the sensors are checked against the
    members' and the .h5 output carries their query points (both read off one member)."""
    from test_uncertainty import deeponet_ckpt

    sweep = tmp_path / "multirun"
    members = []
    for i in range(2):
        (sweep / str(i) / "checkpoints").mkdir(parents=True)
        members.append(deeponet_ckpt(sweep / str(i) / "checkpoints" / "last.ckpt", i))
    one = load_operator(members[0])
    u = np.random.default_rng(4).normal(size=(N, M)).astype(np.float32)
    write_split(tmp_path / "data" / "test.h5", {"f": u}, {"sensors": one.sensors[:, 0]})
    out = run(_cfg(sweep, tmp_path / "data", tmp_path / "p.h5"))
    want = np.mean([load_operator(m).predict(u) for m in members], axis=0)
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["outputs/u"][()], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f["coords/query"][()], one.query)
    write_split(tmp_path / "moved" / "test.h5", {"f": u}, {"sensors": one.sensors[:, 0] / 2})
    with pytest.raises(h5.DatasetError, match="not the 10 sensor locations"):
        run(_cfg(sweep, tmp_path / "moved", tmp_path / "p2.h5"))
    # the optimised path is the grid operators': refused in one line, one model or several
    for ckpt in (members[0], sweep):
        with pytest.raises(ValueError, match=r"^compile/channels_last: .*only grid operators"):
            run(_cfg(ckpt, tmp_path / "data", tmp_path / "p3.h5", channels_last=True))
