"""DeepONet training end to end: Hydra config -> PointDataModule + DeepONetModule -> Lightning
-> checkpoint -> point-query surrogate (at new points), resume, POD, bad input, experiments."""

import json

import numpy as np
import pytest
import torch
from conftest import compose_train

from opnet import load_operator
from opnet.data import h5
from opnet.surrogate import DeepONetSurrogate
from opnet.training.deeponet_module import DeepONetModule
from opnet.training.job import ConfigError, train

QUIET = ["~callbacks.progress_bar", "~callbacks.model_summary"]
STEPS = 800  # full-batch iterations of the shared run (~2 s on one core)


def _cfg(data_dir, out, *overrides, experiment="deeponet_antiderivative"):
    return compose_train(f"experiment={experiment}", f"data.data_dir={data_dir}",
                         "data.generate=null", "~extra_tests.chebyshev", *QUIET,
                         f"paths.output_dir={out}", *overrides)


@pytest.fixture(scope="module")
def trained(antiderivative_small, tmp_path_factory):
    """The antiderivative experiment's recipe (paper network, full batch, Adam + cosine)
    for 800 iterations on 100 functions; shared by the tests below."""
    out = tmp_path_factory.mktemp("deeponet_run")
    metrics = train(_cfg(antiderivative_small, out, f"trainer.max_steps={STEPS}",
                         "data.steps_per_epoch=400"))
    return out, metrics


def _test_set(folder):
    with h5.open_split(folder / "test.h5") as f:
        u, s = f["inputs/u"][()], f["outputs/s"][()]
        y = f["coords/query"][()]
    return u, s, y


def test_run_writes_checkpoints_metrics_and_counts_iterations(trained):
    out, metrics = trained
    assert (out / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == STEPS and saved["params"] == 7401  # the paper network
    assert {"test/rel_l2", "test/mse"} <= set(metrics)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == STEPS
    # the per-iteration cosine schedule has run its course: lr ~ 0 at the end
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] < 1e-8


def test_training_lowers_the_test_error(trained, antiderivative_small):
    """Untrained (same architecture and initialisation law) test MSE is ~1e-1 (outputs of
    size ~0.3, predictions of the same size but unrelated); 800 full-batch iterations bring
    it to ~5e-4 (measured): the bound asks for a 50x reduction."""
    out, metrics = trained
    module = DeepONetModule.load_from_checkpoint(out / "checkpoints" / "last.ckpt",
                                                 map_location="cpu")
    torch.manual_seed(0)
    fresh = DeepONetModule(module.hparams.model, module.hparams.io)
    u, s, y = _test_set(antiderivative_small)
    with torch.no_grad():
        pred = fresh(torch.from_numpy(u), torch.as_tensor(y, dtype=torch.float32))[..., 0]
    before = float(((pred - torch.from_numpy(s)) ** 2).mean())
    assert metrics["test/mse"] < before / 50, (metrics, before)


def test_checkpoint_is_plain_and_describes_the_operator(trained):
    out, _ = trained
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    block = ckpt["operator"]
    assert block["module"] == "DeepONetModule"
    assert block["model"]["_target_"] == "opnet.models.deeponet.DeepONet"
    assert block["model"]["branch"] == [100, 40, 40] and block["model"]["trunk"] == [1, 40, 40]
    assert len(block["sensors"]) == 100 and len(block["query"]) == 100
    assert block["normalizers"] == {"in": "none", "out": "none"}
    assert ckpt["hyper_parameters"]["io"]["n_sensors"] == 100
    assert type(ckpt["hyper_parameters"]["model"]) is dict


def test_surrogate_equals_the_module_and_takes_every_layout(trained, antiderivative_small):
    out, _ = trained
    ckpt = out / "checkpoints" / "last.ckpt"
    module = DeepONetModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    op = load_operator(ckpt, model="deeponet")
    assert isinstance(op, DeepONetSurrogate)
    u, _, y = _test_set(antiderivative_small)
    with torch.no_grad():
        expected = module(torch.from_numpy(u[:5]), torch.as_tensor(y, dtype=torch.float32))
    expected = expected[..., 0].numpy()
    np.testing.assert_allclose(op.predict(u[:5], y), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(op.predict(u[:5]), expected, rtol=1e-5, atol=1e-7)  # training y
    np.testing.assert_allclose(op.predict(u[0], y[:, 0]), expected[0], rtol=1e-5, atol=1e-7)
    unaligned = op.predict(u[:5], np.broadcast_to(y, (5, *y.shape)))
    np.testing.assert_allclose(unaligned, expected, rtol=1e-5, atol=1e-7)
    chunked = op.predict(u[:5], y, batch_size=2, point_batch=7)  # other BLAS blockings
    np.testing.assert_allclose(chunked, expected, rtol=1e-4, atol=1e-6)


def test_surrogate_predicts_between_the_training_points(trained, antiderivative_small,
                                                        tmp_path):
    """The same test functions (same seeds) labelled at 991 points (every 10th is a training
    point j/99) by the exact integral of their cubic spline: the error at the 891 points never
    trained on is that at the 100 training points (the trunk is a continuous ReLU net; s is
    smooth): ratio < 1.5."""
    from data_gen import generate

    out, metrics = trained
    dense = tmp_path / "dense"
    generate("antiderivative", out=dense, n_train=0, n_val=0, n_test=100, n_query=991,
             progress=False)
    u, s_dense, y_dense = _test_set(dense)
    u_train_points, s, y = _test_set(antiderivative_small)
    np.testing.assert_array_equal(u, u_train_points)  # the same functions
    np.testing.assert_allclose(s_dense[:, ::10], s, atol=1e-6)  # on the shared points
    op = load_operator(out / "checkpoints" / "last.ckpt")
    pred = op.predict(u, y_dense)
    assert pred.shape == (100, 991)
    new = np.ones(991, bool)
    new[::10] = False
    mse_new = float(((pred - s_dense)[:, new] ** 2).mean())
    mse_old = float(((pred - s_dense)[:, ~new] ** 2).mean())
    assert mse_old == pytest.approx(metrics["test/mse"], rel=1e-3)
    assert mse_new < 1.5 * mse_old, (mse_new, mse_old)


def test_layouts_and_point_subsets_give_the_same_predictions(antiderivative_small):
    """One module, the same functions and points: aligned y [Q, d], unaligned y [B, Q, d],
    and a subset with its indices (pointwise output statistics picked by idx) agree."""
    from opnet.data.points import PointDataModule
    from opnet.training.deeponet_module import point_loss

    dm = PointDataModule(str(antiderivative_small))
    torch.manual_seed(0)
    module = DeepONetModule.from_data(
        {"_target_": "opnet.models.deeponet.DeepONet", "branch": [None, 40, 40],
         "trunk": [None, 40, 40]}, dm, out_normalizer="pointwise", in_normalizer="scalar")
    batch = next(iter(dm.train_dataloader()))
    u, y, s = batch["u"][:6], batch["y"], batch["s"][:6]
    with torch.no_grad():
        aligned = module(u, y)
        unaligned = module(u, y.expand(6, -1, -1))
        idx = torch.tensor([[5, 50, 99]] * 6)
        subset = module(u, y[idx], idx)
    torch.testing.assert_close(unaligned, aligned)
    torch.testing.assert_close(subset, aligned[:, [5, 50, 99]])
    torch.testing.assert_close(point_loss("mse", unaligned, s), point_loss("mse", aligned, s))


def test_bad_inputs_name_the_expected_shapes(trained):
    op = load_operator(trained[0] / "checkpoints" / "last.ckpt")
    u = np.zeros((3, 100), np.float32)
    with pytest.raises(ValueError, match=r"u has shape \(3, 50\); the operator takes \[100\] "
                                         r"or \[B, 100\]"):
        op.predict(np.zeros((3, 50)))
    with pytest.raises(ValueError, match=r"y have shape \(20, 2\); expected \[Q, 1\]"):
        op.predict(u, np.zeros((20, 2)))
    with pytest.raises(ValueError, match=r"y has shape \(4, 20, 1\).*u holds 3 function"):
        op.predict(u, np.zeros((4, 20, 1)))


def test_evaluate_reproduces_the_test_metrics_and_regenerates_ood_sets(trained,
                                                                      antiderivative_small,
                                                                      tmp_path):
    from opnet.evaluate import evaluate, evaluate_generated

    out, metrics = trained
    best = json.loads((out / "metrics.json").read_text())["best_checkpoint"]
    row = evaluate(best, antiderivative_small)
    assert row["samples"] == 100 and row["n_query"] == 100
    assert row["mse"] == pytest.approx(metrics["test/mse"], rel=1e-3)
    assert row["rel_l2"] == pytest.approx(metrics["test/rel_l2"], rel=1e-3)
    assert row["mse_wo_outliers"] <= row["mse"]
    ood = evaluate_generated(best, {"space": "chebyshev"}, n=10, data_root=tmp_path)
    assert ood["samples"] == 10 and np.isfinite(ood["mse"])
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == ["antiderivative_eval_space-chebyshev_seed1"]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.filterwarnings("ignore:.*could not find the monitored key",
                            "ignore:.*The dirpath has changed")
def test_crashed_training_resumes_to_the_same_weights(antiderivative_small, tmp_path):
    """Full batches and fused Adam are deterministic: 2 epochs straight and 1 epoch + crash +
    resume end with identical weights, step count and cosine schedule position."""
    common = ("trainer.max_steps=200", "data.steps_per_epoch=100", "test=false", "logger=none",
              "~callbacks.lr_monitor")
    train(_cfg(antiderivative_small, tmp_path / "full", *common))
    with pytest.raises(RuntimeError, match="simulated crash at epoch 1"):
        train(_cfg(antiderivative_small, tmp_path / "crashed", *common,
                   "+callbacks.crash._target_=conftest.CrashAtEpoch", "+callbacks.crash.epoch=1"))
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 100
    train(_cfg(antiderivative_small, tmp_path / "resumed", *common, f"ckpt_path={last}"))
    full = _weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    resumed = _weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=0)


def test_reference_protocol_keeps_the_lowest_training_loss(antiderivative_small, tmp_path):
    """experiment=deeponet_antiderivative_reference: constant lr, and the checkpoint tested is
    the one with the lowest end-of-epoch training loss (DeepXDE's restore-best)."""
    metrics = train(_cfg(antiderivative_small, tmp_path, "trainer.max_steps=60",
                         "data.steps_per_epoch=20", "logger=none", "~callbacks.lr_monitor",
                         experiment="deeponet_antiderivative_reference"))
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    assert best.endswith(".ckpt") and "step_" in best
    ckpt = torch.load(best, weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items()
                 if "ModelCheckpoint" in k and "train/loss_end" in k)
    assert state["best_model_score"] is not None
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert np.isfinite(metrics["test/mse"])


def test_pod_basis_is_fitted_on_train_and_stored(antiderivative_small, tmp_path):
    """POD-DeepONet: the basis (10 modes of the 100 training label vectors) is fitted before
    training, lives in the checkpoint (orthogonal columns of norm sqrt(Q), mean = mean training
    label), and the surrogate reproduces the module; other query points are refused."""
    train(_cfg(antiderivative_small, tmp_path, "model=pod_deeponet", "model.n_modes=10",
               "model.branch=[null,40,10]", "trainer.max_steps=20", "data.steps_per_epoch=20",
               "test=false", "logger=none", "~callbacks.lr_monitor"))
    ckpt_path = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt_path, weights_only=True)["state_dict"]
    basis = state["operator.model.pod_basis"].double()
    assert basis.shape == (100, 10) and bool(state["operator.model.pod_fitted"])
    torch.testing.assert_close(basis.T @ basis / 100, torch.eye(10, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    with h5.open_split(antiderivative_small / "train.h5") as f:
        s_train = f["outputs/s"][()]
    np.testing.assert_allclose(state["operator.model.pod_mean"].numpy(), s_train.mean(0),
                               atol=1e-6)
    module = DeepONetModule.load_from_checkpoint(ckpt_path, map_location="cpu").eval()
    op = load_operator(ckpt_path)
    u, _, y = _test_set(antiderivative_small)
    with torch.no_grad():
        expected = module(torch.from_numpy(u[:4]), torch.as_tensor(y, dtype=torch.float32))
    np.testing.assert_allclose(op.predict(u[:4]), expected[..., 0].numpy(), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="a POD basis ties this operator to its 100 training"):
        op.predict(u[:4], np.linspace(0, 1, 33))


def test_pointwise_output_scaler_ties_the_operator_to_its_points(antiderivative_small,
                                                                 tmp_path):
    """Also: the inverse-time schedule is stepped every iteration (DeepXDE's
    lr / (1 + rate * step / decay_steps): 1e-3 / (1 + 0.5 * 10 / 10) after 10 iterations)."""
    train(_cfg(antiderivative_small, tmp_path, "module.out_normalizer=pointwise",
               "module.in_normalizer=scalar", "trainer.max_steps=10", "data.steps_per_epoch=10",
               "module.scheduler.name=inverse_time", "module.scheduler.decay_steps=10",
               "module.scheduler.decay_rate=0.5",
               "test=false", "logger=none", "~callbacks.lr_monitor"))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 1.5)
    op = load_operator(tmp_path / "checkpoints" / "last.ckpt")
    u, _, y = _test_set(antiderivative_small)
    assert op.predict(u[:2], y).shape == (2, 100)
    with pytest.raises(ValueError, match="pointwise output normalizer ties"):
        op.predict(u[:2], y[:50])


def test_configuration_mistakes_are_named(antiderivative_small, darcy16, tmp_path):
    with pytest.raises(ConfigError, match=r"model.branch\[0\]=50 but data 'antiderivative'.*"
                                          r"100 sensor values"):
        train(_cfg(antiderivative_small, tmp_path, "model.branch=[50,40,40]"))
    with pytest.raises(ConfigError, match="module._target_='opnet.nope.Module' cannot be"):
        train(_cfg(antiderivative_small, tmp_path, "module._target_=opnet.nope.Module"))
    with pytest.raises(ConfigError, match="OperatorModule trains grid operators"):
        train(compose_train("data=antiderivative", f"data.data_dir={antiderivative_small}",
                            "data.generate=null", f"paths.output_dir={tmp_path}"))


# ------------------------------------------------------------------------------ experiments
DEEPONET_EXPERIMENTS = ["deeponet_antiderivative", "deeponet_antiderivative_reference",
                        "deeponet_nonlinear_ode", "deeponet_diffusion_reaction",
                        "deeponet_burgers", "deeponet_darcy",
                        "deeponet_antiderivative_physics", "deeponet_diffusion_reaction_physics"]


def test_every_deeponet_experiment_is_listed():
    from pathlib import Path

    found = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment")
                   .glob("deeponet*.yaml"))
    assert found == sorted(DEEPONET_EXPERIMENTS)


@pytest.fixture(scope="module")
def experiment_data(antiderivative_small, tmp_path_factory):
    """Tiny data sets of each experiment's kind (its generator, fields and grids)."""
    from data_gen import generate

    root = tmp_path_factory.mktemp("deeponet_exp_data")
    tiny = {"n_train": 4, "n_val": 2, "n_test": 2, "progress": False}
    made = {"antiderivative": antiderivative_small}

    def folder(kind):
        if kind not in made:
            if kind == "chebyshev":
                generate("antiderivative", out=root / kind, space="chebyshev", n_train=0,
                         n_val=0, n_test=2, progress=False)
            elif kind == "burgers":
                generate("burgers", out=root / kind, resolution=128, solver_resolution=256,
                         dt=0.01, **tiny)
            elif kind == "darcy":
                generate("darcy", out=root / kind, resolution=85, **tiny)
            else:
                generate(kind, out=root / kind, **tiny)
            made[kind] = root / kind
        return made[kind]

    return folder


@pytest.mark.parametrize("experiment", DEEPONET_EXPERIMENTS)
def test_every_deeponet_experiment_composes_and_runs_one_batch(experiment, experiment_data,
                                                               tmp_path):
    """Each experiment's network, data module and recipe, one training step (of
    batches_per_step iterations), one validation and test batch, on a tiny set of its kind."""
    kind = experiment.removeprefix("deeponet_").removesuffix("_reference").removesuffix(
        "_physics")
    overrides = [f"experiment={experiment}", "debug=fdr", "data.generate=null",
                 f"data.data_dir={experiment_data(kind)}", f"paths.output_dir={tmp_path}"]
    if kind == "antiderivative" and not experiment.endswith("_physics"):
        overrides += [f"extra_tests.chebyshev.data_dir={experiment_data('chebyshev')}",
                      "extra_tests.chebyshev.generate=null"]
    metrics = train(compose_train(*overrides))
    assert np.isfinite(metrics["test/rel_l2"]) and np.isfinite(metrics["test/mse"])
    if experiment.endswith("_physics"):
        assert np.isfinite(metrics["test/residual"])
    elif kind == "antiderivative":
        assert np.isfinite(metrics["chebyshev/test/mse"])


def test_cnn_branch_surrogate_takes_images(experiment_data, tmp_path):
    """Darcy as point data for the CMAME CNN-DeepONet (682,753 parameters): the surrogate
    takes [B, 29, 29], [B, 1, 29, 29] or flattened [B, 841] coefficients, and answers at
    the 841 grid points or anywhere else (scalar output scaler)."""
    train(compose_train("experiment=deeponet_darcy", f"data.data_dir={experiment_data('darcy')}",
                        "data.generate=null", "data.batch_size=2", "data.steps_per_epoch=2",
                        "data.batches_per_step=1", "trainer.max_steps=2", "test=false",
                        "logger=none", "~callbacks.lr_monitor", "module.out_normalizer=scalar",
                        *QUIET, f"paths.output_dir={tmp_path}"))
    op = load_operator(tmp_path / "checkpoints" / "last.ckpt")
    assert sum(p.numel() for p in op.model.parameters()) == 682_753
    with h5.open_split(experiment_data("darcy") / "test.h5") as f:
        a = f["inputs/coeff"][:, :, ::3, ::3]
    grid = op.predict(a[:, 0])
    assert grid.shape == (2, 841)
    np.testing.assert_allclose(op.predict(a), grid, rtol=1e-6)
    np.testing.assert_allclose(op.predict(a.reshape(2, -1)), grid, rtol=1e-6)
    np.testing.assert_allclose(op.predict(a[0, 0]), grid[0], rtol=1e-6)
    anywhere = op.predict(a, np.array([[0.5, 0.5], [0.25, 0.75]]))
    assert anywhere.shape == (2, 2) and np.isfinite(anywhere).all()
    with pytest.raises(ValueError, match=r"u has shape \(2, 1, 30, 30\).*\[1, 29, 29\]"):
        op.predict(np.zeros((2, 1, 30, 30)))
