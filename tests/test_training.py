"""Training end to end: Hydra config -> Lightning fit/test -> checkpoint -> surrogate."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train, write_trajectories

from opnet import load_operator
from opnet.data import h5
from opnet.surrogate import CheckpointError
from opnet.training.job import ConfigError, train
from opnet.training.module import OperatorModule


@pytest.fixture(scope="module")
def trained(tiny_overrides, tmp_path_factory):
    """One 20-epoch run (~5 s) on 16x16 Darcy shared by the tests below."""
    out = tmp_path_factory.mktemp("run")
    cfg = compose_train(*tiny_overrides, "trainer.max_epochs=20", "module.lr=3e-3",
                        f"paths.output_dir={out}")
    metrics = train(cfg)
    return out, metrics


def _untrained_test_error(darcy16, ckpt):
    """Same architecture and normalizers, initial weights: the error to beat."""
    module = OperatorModule.load_from_checkpoint(ckpt, map_location="cpu")
    torch.manual_seed(0)
    fresh = OperatorModule(module.hparams.model, module.hparams.io)
    fresh.in_norm.load_state_dict(module.in_norm.state_dict())
    fresh.out_norm.load_state_dict(module.out_norm.state_dict())
    x = torch.from_numpy(h5.read_fields(darcy16 / "test.h5", "inputs", ["coeff"]))
    y = torch.from_numpy(h5.read_fields(darcy16 / "test.h5", "outputs", ["sol"]))
    with torch.no_grad():
        return float(((fresh(x) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean())


def test_run_writes_checkpoints_logs_and_metrics(trained):
    out, metrics = trained
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert len(list((out / "checkpoints").glob("epoch_*.ckpt"))) == 1  # best by val/rel_l2
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["test/rel_l2"] == pytest.approx(metrics["test/rel_l2"])
    assert {"test/rel_l2", "test/h1", "test/mse"} <= set(metrics)


def test_training_lowers_the_test_error(trained, darcy16):
    """20 epochs on 64 samples cut the untrained relative L2 error (~0.64) by over 3x
    (measured: 0.11)."""
    out, metrics = trained
    before = _untrained_test_error(darcy16, out / "checkpoints" / "last.ckpt")
    assert metrics["test/rel_l2"] < 0.3 * before, (metrics, before)


def test_trained_operator_beats_the_best_input_blind_guess(trained, darcy16):
    """The mean training solution, predicted for every input, scores ~0.24 here; an
    operator that learned the coefficient dependence must do clearly better (measured
    0.11 after 20 epochs): bound 0.6 x the mean-field error."""
    _, metrics = trained
    y_train = h5.read_fields(darcy16 / "train.h5", "outputs", ["sol"])
    y_test = torch.from_numpy(h5.read_fields(darcy16 / "test.h5", "outputs", ["sol"]))
    mean_field = torch.from_numpy(y_train.mean(0, keepdims=True)).expand_as(y_test)
    from opnet.training.losses import rel_l2

    blind = float(rel_l2(mean_field, y_test).mean())
    assert metrics["test/rel_l2"] < 0.6 * blind, (metrics, blind)


def test_checkpoint_loads_with_weights_only(trained):
    out, _ = trained
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["operator"]["model"]["_target_"] == "opnet.models.mgno.MgNO"
    assert ckpt["operator"]["io"]["grid"] == [16, 16]
    assert ckpt["hyper_parameters"]["loss"] == "h1"


def test_surrogate_equals_lightning_module(trained, darcy16):
    out, _ = trained
    ckpt = out / "checkpoints" / "last.ckpt"
    module = OperatorModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    surrogate = load_operator(ckpt, model="mgno")
    a = h5.read_fields(darcy16 / "test.h5", "inputs", ["coeff"])[:5, 0]  # [B, s, s] physical
    with torch.no_grad():
        expected = module(torch.from_numpy(a)[:, None])[:, 0].numpy()
    got = surrogate.predict(a)
    assert got.shape == (5, 16, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(surrogate.predict(a[0]), expected[0], rtol=1e-5, atol=1e-7)


def test_surrogate_predicts_physical_units(trained, darcy16):
    """Outputs are in the units of u (max ~0.01 for a in {3, 12}), not normalised."""
    out, _ = trained
    surrogate = load_operator(out / "checkpoints" / "last.ckpt")
    a = h5.read_fields(darcy16 / "test.h5", "inputs", ["coeff"])[:, 0]
    u = h5.read_fields(darcy16 / "test.h5", "outputs", ["sol"])[:, 0]
    pred = surrogate.predict(a)
    rel = np.linalg.norm((pred - u).reshape(len(u), -1), axis=1) / np.linalg.norm(
        u.reshape(len(u), -1), axis=1)
    assert rel.mean() < 0.5 and 0.001 < np.abs(pred).max() < 0.05


def _state(path):
    ckpt = torch.load(path, weights_only=True)
    return (ckpt["epoch"], ckpt["global_step"], ckpt["lr_schedulers"][0]["last_epoch"],
            ckpt["optimizer_states"][0]["param_groups"][0]["lr"])


def test_crashed_training_resumes_where_it_stopped(tiny_cfg, tmp_path):
    """A run killed at the start of epoch 5 of 10 and resumed from its last.ckpt ends in the
    same epoch, step and OneCycle state as an uninterrupted run (not restarted), with the
    same weights (the shuffle is fixed by seed and epoch; mid-epoch kills:
    tests/test_reliability.py)."""
    common = ("trainer.max_epochs=10", "test=false", "~callbacks.val_figures")
    train(tiny_cfg(*common, f"paths.output_dir={tmp_path / 'full'}"))
    with pytest.raises(RuntimeError, match="simulated crash at epoch 5"):
        train(tiny_cfg(*common, "+callbacks.crash._target_=conftest.CrashAtEpoch",
                       "+callbacks.crash.epoch=5", f"paths.output_dir={tmp_path / 'crashed'}"))
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    assert _state(last)[:2] == (4, 40)
    train(tiny_cfg(*common, f"ckpt_path={last}", f"paths.output_dir={tmp_path / 'resumed'}"))
    resumed = _state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert resumed == _state(tmp_path / "full" / "checkpoints" / "last.ckpt")
    assert resumed[:3] == (9, 80, 10)
    weights = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt",
                          weights_only=True)["state_dict"] for run in ("resumed", "full")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])


def test_bf16_mixed_training_runs_on_cpu(tiny_cfg):
    metrics = train(tiny_cfg("trainer.precision=bf16-mixed", "trainer.max_epochs=1"))
    assert np.isfinite(metrics["test/rel_l2"])


def test_channel_mismatch_between_model_and_data_is_named(tiny_cfg):
    with pytest.raises(ConfigError, match=r"model.in_channels=2 but data 'darcy16'.*\['coeff'\]"):
        train(tiny_cfg("+model.in_channels=2"))


def test_missing_dataset_without_generator_is_named(tiny_cfg, tmp_path):
    with pytest.raises(h5.DatasetError, match=r"nowhere: dataset folder lacks train\.h5.*generate"):
        train(tiny_cfg(f"data.data_dir={tmp_path / 'nowhere'}"))


def test_missing_resume_checkpoint_is_named(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path=.*nope.ckpt: no such checkpoint"):
        train(tiny_cfg(f"ckpt_path={tmp_path / 'nope.ckpt'}"))


def test_bad_checkpoints_are_named(trained, tmp_path):
    out, _ = trained
    with pytest.raises(CheckpointError, match="missing.ckpt: no such checkpoint file"):
        load_operator(tmp_path / "missing.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="foreign.ckpt: has no 'operator' block"):
        load_operator(tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="holds a opnet.models.mgno.MgNO model, not"):
        load_operator(out / "checkpoints" / "last.ckpt", model="opnet.models.deeponet.DeepONet")


def test_surrogate_accepts_another_grid_unless_pointwise(trained):
    """Scalar normalizers keep the operator grid-free: a 31x31 field gives a finite 31x31
    answer (its accuracy there is not claimed: MgNO's 3x3 stencils are in grid units)."""
    out, _ = trained
    surrogate = load_operator(out / "checkpoints" / "last.ckpt")
    pred = surrogate.predict(np.full((2, 31, 31), 3.0, dtype=np.float32))
    assert pred.shape == (2, 31, 31) and np.isfinite(pred).all()
    surrogate.in_norm.kind = "pointwise"
    with pytest.raises(ValueError, match=r"grid \(31, 31\) differs from the training grid"):
        surrogate.predict(np.ones((31, 31), dtype=np.float32))


def test_train_py_entry_point_runs(darcy16, tmp_path):
    """The README's command through Hydra's main (one batch of each stage); ``debug=fdr``
    writes nothing: no run folder under the working directory or ``paths.output_root``, and
    the temporary one it ran in is gone."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, str(root / "train.py"), "debug=fdr", f"data.data_dir={darcy16}",
         "data.generate=null", "model.width=8", "model.layers=1",
         "model.smoothing=[[1,0],[1,0]]", f"paths.output_root={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "test/rel_l2" in res.stdout
    assert list(tmp_path.iterdir()) == []
    ran_in = re.search(r"metrics: +(\S+)metrics\.json", res.stdout)
    assert ran_in and not Path(ran_in.group(1)).exists()


EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment")
                     .glob("*.yaml") if not p.stem.startswith(("deeponet", "prose")))
# deeponet_*: tests/test_deeponet_training.py; prose_*: tests/test_prose_training.py


@pytest.fixture(scope="module")
def experiment_data(darcy64_tiny, tmp_path_factory):
    """A tiny dataset of the kind each experiment trains on (its grid, its fields)."""
    from data_gen import generate

    root = tmp_path_factory.mktemp("exp_data")
    tiny = {"n_train": 4, "n_val": 2, "n_test": 2, "progress": False}
    made = {"darcy": darcy64_tiny}

    def folder(kind: str) -> Path:
        if kind not in made:
            if kind == "helmholtz101":
                generate("helmholtz", out=root / kind, **tiny)
            elif kind == "helmholtz51":
                generate("helmholtz", out=root / kind, elements=50, omega=500.0, **tiny)
            elif kind == "darcy129":  # read at stride 4 by the super-resolution experiments
                generate("darcy", out=root / kind, resolution=129, **tiny)
            elif kind == "navier_stokes64":  # 11 frames at 64x64 (synthetic: shapes matter)
                write_trajectories(root / kind, n=4, frames=11, s=64)
            elif kind == "burgers_trajectory128":  # u at t = k/20, k = 0..10, 128 points
                generate("burgers", out=root / kind, resolution=128, solver_resolution=256,
                         T=0.5, record_times=[k / 20 for k in range(11)], **tiny)
            made[kind] = root / kind
        return made[kind]

    return folder


def _data_kind(experiment: str) -> str:
    if experiment.startswith("mgno_helmholtz"):
        return "helmholtz51" if experiment.endswith("_cpu") else "helmholtz101"
    if "navier_stokes" in experiment:
        return "navier_stokes64"
    if "burgers" in experiment:  # fno_burgers_rollout_cpu: 1-D trajectories
        return "burgers_trajectory128"
    if "superres" in experiment:  # a fine grid read at stride 4 (33x33)
        return "darcy129"
    return "darcy"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_runs_one_batch(experiment, experiment_data, tmp_path):
    """Each experiment's own network, data module and recipe, one batch, on a tiny set of
    its own kind (Darcy 64x64, Helmholtz 101x101 / 51x51, Navier-Stokes 64x64 trajectories)."""
    few = ["data.labels=4"] if experiment.endswith("_physics") else []  # of the 8 samples
    cfg = compose_train(f"experiment={experiment}", "debug=fdr",
                        f"data.data_dir={experiment_data(_data_kind(experiment))}",
                        "data.generate=null", f"paths.output_dir={tmp_path}", *few)
    assert np.isfinite(train(cfg)["test/rel_l2"])


def test_evaluate_reproduces_the_lightning_test_metrics(trained, darcy16):
    from opnet.evaluate import evaluate

    out, metrics = trained
    best = json.loads((out / "metrics.json").read_text())["best_checkpoint"]
    row = evaluate(best, darcy16)
    assert row["grid"] == [16, 16] and row["samples"] == 16
    assert row["rel_l2"] == pytest.approx(metrics["test/rel_l2"], rel=1e-4)
    assert row["h1"] == pytest.approx(metrics["test/h1"], rel=1e-4)


def test_evaluate_across_resolutions_regenerates_with_the_checkpoint_config(trained, tmp_path):
    from opnet.evaluate import run

    out, _ = trained
    results = run({"ckpt": str(out / "checkpoints" / "last.ckpt"), "resolution": [12, 16],
                   "n": 4, "data_root": str(tmp_path / "data"), "output_dir": str(tmp_path)})
    made = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert made == ["darcy16_eval12_seed1", "darcy16_eval16_seed1"]
    assert [r.row["grid"] for r in results] == [[12, 12], [16, 16]]
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["samples"] for e in report["evaluations"]] == [4, 4]
    attrs = h5.read_attrs(tmp_path / "data" / "darcy16_eval12_seed1" / "test.h5")
    assert "resolution: 12" in attrs["generator_config"] and "tau: 3.0" in attrs["generator_config"]


def test_evaluate_cli_prints_a_table_and_writes_pdebench_metrics(trained, darcy16, tmp_path):
    """``python -m opnet.evaluate ckpt=... data=...`` (Hydra app): metrics.json holds the
    grid metrics on physical outputs; its rel. L2 is the Lightning test metric."""
    import subprocess
    import sys

    out, metrics = trained
    best = json.loads((out / "metrics.json").read_text())["best_checkpoint"]
    done = subprocess.run([sys.executable, "-m", "opnet.evaluate", f"ckpt={best}",
                           f"data={darcy16}", f"output_dir={tmp_path}"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rel_l2" in done.stdout and "metrics.json" in done.stdout
    row = json.loads((tmp_path / "metrics.json").read_text())["evaluations"][0]
    assert {"rel_l2", "h1", "mse", "rmse", "nrmse", "max_error", "crmse", "brmse",
            "frmse_low", "frmse_mid", "frmse_high"} <= set(row)
    assert row["rel_l2"] == pytest.approx(metrics["test/rel_l2"], rel=1e-4)
    assert row["mse"] == pytest.approx(metrics["test/mse"], rel=1e-3)
    bad = subprocess.run([sys.executable, "-m", "opnet.evaluate", f"ckpt={best}",
                          "data=no_such_set", f"output_dir={tmp_path}"],
                         capture_output=True, text=True, check=False, cwd=tmp_path)
    assert bad.returncode != 0
    assert "data=no_such_set: neither a dataset folder nor a data config" in bad.stderr
