"""Figures: sample panels (2-D fields, 1-D functions, DeepONet points, ODE trajectories),
error histograms and error vs resolution as PNGs; the modules' figure_data; the
ValidationFigures callback writing ``val/samples`` into TensorBoard."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import test_prose_training as prose_tests
import torch
from conftest import compose_train
from hydra.utils import instantiate

from opnet import plot
from opnet.training.job import build_module, train

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"
ode3d = prose_tests.ode3d  # the PROSE tests' 3-D ODE dataset (module-scoped fixture)


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG


def _fields(s: int = 3, shape: tuple[int, ...] = (6, 8), seed: int = 0):
    g = np.random.default_rng(seed)
    truth = g.standard_normal((s, *shape))
    return g.standard_normal((s, *shape)), truth, truth + 0.1 * g.standard_normal(truth.shape)


# ------------------------------------------------------------------------------ figures
def test_grid2d_rows_share_limits_and_show_the_absolute_error(tmp_path):
    """One row per sample: input | truth | prediction | |error| images (2 colour bars per
    row: the input's, one shared by truth and prediction, the error's); truth and
    prediction use the same limits, the min/max over both; the error image is exactly
    |pred − truth| (transposed: field[i, j] at (x_i, y_j), x to the right). max_samples
    caps the rows."""
    inputs, truth, pred = _fields(3)
    fig = plot.sample_figure(inputs, truth, pred, kind="grid2d", max_samples=2)
    main = [ax for ax in fig.axes if ax.images]
    assert len(main) == 2 * 4 and len(fig.axes) == 2 * (4 + 3)
    for i in range(2):
        a_in, a_true, a_pred, a_err = main[4 * i:4 * i + 4]
        np.testing.assert_array_equal(a_in.images[0].get_array(), inputs[i].T)
        both = np.concatenate([truth[i].ravel(), pred[i].ravel()])
        assert a_true.images[0].get_clim() == a_pred.images[0].get_clim() == (
            pytest.approx(both.min()), pytest.approx(both.max()))
        np.testing.assert_allclose(a_err.images[0].get_array(), np.abs(pred[i] - truth[i]).T)
    assert _is_png(plot.save_figure(fig, tmp_path / "grid2d.png"))


def test_grid1d_draws_truth_prediction_and_error_lines(tmp_path):
    """Columns input | truth and prediction | |error| against the grid coordinates."""
    x = np.linspace(0, 1, 32)
    inputs, truth, pred = _fields(4, (32,))
    fig = plot.sample_figure(inputs, truth, pred, kind="grid1d", coords={"in": x, "out": x})
    assert len(fig.axes) == 4 * 3
    a_in, a_both, a_err = fig.axes[3:6]  # sample 1
    np.testing.assert_array_equal(a_in.lines[0].get_xdata(), x)
    np.testing.assert_array_equal(a_in.lines[0].get_ydata(), inputs[1])
    np.testing.assert_array_equal(a_both.lines[0].get_ydata(), truth[1])
    np.testing.assert_array_equal(a_both.lines[1].get_ydata(), pred[1])
    np.testing.assert_allclose(a_err.lines[0].get_ydata(), np.abs(pred[1] - truth[1]))
    assert _is_png(plot.save_figure(fig, tmp_path / "grid1d.png"))


def test_points_in_one_dimension_are_lines_sorted_by_position(tmp_path):
    """DeepONet data with sensors [m, 1] and unsorted query points [Q, 1]: lines in the
    order of the points, so the curve is drawn left to right."""
    sensors = np.linspace(0, 1, 20)[:, None]
    query = np.array([[0.5], [0.0], [1.0], [0.25]])
    truth = np.array([[5.0, 0.0, 10.0, 2.5]])
    fig = plot.sample_figure(np.ones((1, 20)), truth, truth + 1, kind="points",
                             coords={"in": sensors, "out": query})
    assert len(fig.axes) == 3
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_xdata(), [0, 0.25, 0.5, 1])
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_ydata(), [0, 2.5, 5, 10])
    assert _is_png(plot.save_figure(fig, tmp_path / "points1d.png"))


def test_points_in_two_dimensions_are_scatter_plots_with_shared_limits(tmp_path):
    """2-D query points: truth | prediction | |error| scatter plots coloured by value
    (truth and prediction on the same colour scale), an image input as an image."""
    g = np.random.default_rng(1)
    query = g.random((50, 2))
    inputs, truth, pred = _fields(2, (50,))
    images = g.standard_normal((2, 6, 6))
    fig = plot.sample_figure(images, truth, pred, kind="points", coords={"out": query})
    a_in, a_true, a_pred, a_err = fig.axes[:4]
    assert a_in.images and not a_true.images
    np.testing.assert_array_equal(a_true.collections[0].get_offsets(), query)
    np.testing.assert_array_equal(a_true.collections[0].get_array(), truth[0])
    assert a_true.collections[0].get_clim() == a_pred.collections[0].get_clim()
    np.testing.assert_allclose(a_err.collections[0].get_array(), np.abs(pred[0] - truth[0]))
    assert _is_png(plot.save_figure(fig, tmp_path / "points2d.png"))


def test_trajectory_panels_show_components_and_the_decoded_equation(tmp_path):
    """One panel per sample (3 samples: a 2 x 2 grid, the fourth hidden); per component
    observations, truth and prediction; NaN (padded) components are skipped; the equation
    is the panel's title, None reads as not decodable."""
    t_in, t_out = np.linspace(0, 2, 16), np.linspace(2, 6, 32)
    g = np.random.default_rng(2)
    u_in, truth = g.standard_normal((3, 16, 3)), g.standard_normal((3, 32, 3))
    pred = truth + 0.1
    u_in[1, :, 2] = truth[1, :, 2] = pred[1, :, 2] = np.nan  # sample 1 is 2-D
    eqs = ["u_0' = -u_1\nu_1' = u_0\nu_2' = 0", None, "u_0' = 1"]
    fig = plot.sample_figure(u_in, truth, pred, kind="trajectory", equations=eqs,
                             coords={"in": t_in, "out": np.tile(t_out, (3, 1))})
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()
    assert len(fig.axes[0].lines) == 3 * 3 + 1 and len(fig.axes[1].lines) == 2 * 3 + 1
    np.testing.assert_array_equal(fig.axes[0].lines[1].get_xdata(), t_out)
    np.testing.assert_array_equal(fig.axes[0].lines[2].get_ydata(), pred[0, :, 0])
    assert "u_1' = u_0" in fig.axes[0].get_title(loc="left")
    assert "not decodable" in fig.axes[1].get_title(loc="left")
    assert _is_png(plot.save_figure(fig, tmp_path / "trajectory.png"))


def test_mismatched_shapes_are_named():
    with pytest.raises(ValueError, match=r"truth has shape \(2, 4\) but pred \(2, 5\)"):
        plot.sample_figure(None, np.zeros((2, 4)), np.zeros((2, 5)), kind="grid1d")
    with pytest.raises(ValueError, match="kind='image'"):
        plot.sample_figure(None, np.zeros((2, 4)), np.zeros((2, 4)), kind="image")
    with pytest.raises(ValueError, match=r"coords\['out'\] has shape \(3,\)"):
        plot.sample_figure(None, np.zeros((2, 4)), np.zeros((2, 4)), kind="grid1d",
                           coords={"out": np.zeros(3)})


def test_error_histogram_is_logarithmic_only_for_a_wide_spread(tmp_path):
    """Errors over 4 decades (> 100x): log x axis; within a factor 2: linear."""
    g = np.random.default_rng(3)
    wide = plot.error_histogram(10 ** g.uniform(-5, -1, 200))
    narrow = plot.error_histogram(g.uniform(0.01, 0.02, 200), label="H1")
    assert wide.axes[0].get_xscale() == "log" and narrow.axes[0].get_xscale() == "linear"
    assert narrow.axes[0].get_xlabel() == "H1"
    assert _is_png(plot.save_figure(wide, tmp_path / "hist.png"))


def test_error_vs_resolution_is_log_log_with_one_line_per_metric(tmp_path):
    fig = plot.error_vs_resolution([16, 32, 64], {"rel_l2": [0.1, 0.05, 0.03],
                                                  "h1": [0.2, 0.1, 0.06]})
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log") and len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [0.2, 0.1, 0.06])
    assert _is_png(plot.save_figure(fig, tmp_path / "res.png"))
    with pytest.raises(ValueError, match=r"errors\['h1'\] has 2 values for 3 resolutions"):
        plot.error_vs_resolution([16, 32, 64], {"h1": [0.2, 0.1]})


def test_save_figure_replaces_the_file_atomically(tmp_path, monkeypatch):
    """The PNG appears under its name only when complete: no temporary file is left, and
    a write that fails halfway leaves the previous file as it was."""
    path = tmp_path / "figs" / "hist.png"
    assert plot.save_figure(plot.error_histogram([1.0, 2.0]), path) == path
    assert _is_png(path) and [p.name for p in path.parent.iterdir()] == ["hist.png"]
    before = path.read_bytes()
    fig = plot.error_histogram([3.0, 4.0])

    def broken(f, **kwargs):
        f.write(PNG + b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        plot.save_figure(fig, path)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == [
        "hist.png"]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'opnet\[plot\]'"):
        plot.require_matplotlib()


# -------------------------------------------------------------------------- figure_data
def _built(cfg):
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    return dm, build_module(cfg, dm).eval()


def _first_val_batch(dm):
    return next(iter(dm.val_dataloader()))


def test_operator_figure_data_is_the_first_channel_in_physical_units(tiny_cfg):
    dm, module = _built(tiny_cfg())
    batch = _first_val_batch(dm)
    data = module.figure_data(batch, 3)
    with torch.no_grad():
        want = module(batch["x"][:3])[:, 0].numpy()
    assert data["kind"] == "grid2d" and data["inputs"].shape == (3, 16, 16)
    np.testing.assert_array_equal(data["truth"], batch["y"][:3, 0].numpy())
    np.testing.assert_allclose(data["pred"], want, rtol=1e-6, atol=1e-7)
    assert plot.sample_figure(**data).axes


def test_operator_figure_data_on_a_1d_grid_is_drawn_against_the_grid():
    """1-D fields [B, C, N] (Burgers-like): kind grid1d, lines against io["coords"]["x"]."""
    from opnet.training.module import OperatorModule

    x = np.linspace(0, 1, 12, endpoint=False)
    io = {"in_normalizer": "none", "out_normalizer": "none", "in_channels": 1,
          "out_channels": 1, "grid": [12], "coords": {"x": x.tolist()}}
    torch.manual_seed(0)
    module = OperatorModule({"_target_": "torch.nn.Conv1d", "in_channels": 1,
                             "out_channels": 1, "kernel_size": 3, "padding": 1}, io).eval()
    batch = {"x": torch.randn(5, 1, 12), "y": torch.randn(5, 1, 12)}
    data = module.figure_data(batch, 4)
    assert data["kind"] == "grid1d" and data["pred"].shape == (4, 12)
    np.testing.assert_array_equal(data["coords"]["out"], x)
    fig = plot.sample_figure(**data)
    np.testing.assert_allclose(fig.axes[1].lines[0].get_xdata(), x)


def test_deeponet_figure_data_is_at_the_sensors_and_query_points(antiderivative_small,
                                                                  tmp_path):
    dm, module = _built(compose_train("experiment=deeponet_antiderivative",
                                      f"data.data_dir={antiderivative_small}",
                                      "data.generate=null", f"paths.output_dir={tmp_path}"))
    batch = _first_val_batch(dm)
    data = module.figure_data(batch, 4)
    sensors, query = dm.coordinates()
    with torch.no_grad():
        want = module(batch["u"][:4], batch["y"])[..., 0].numpy()
    assert data["kind"] == "points" and data["inputs"].shape == (4, 100)
    np.testing.assert_array_equal(data["coords"]["in"], sensors)
    np.testing.assert_allclose(data["coords"]["out"], query, rtol=1e-6)  # float32 batch
    np.testing.assert_array_equal(data["truth"], batch["s"][:4, :, 0].numpy())
    np.testing.assert_allclose(data["pred"], want, rtol=1e-6, atol=1e-7)
    assert plot.sample_figure(**data).axes


@pytest.mark.slow  # generates the PROSE test data (~2-4 s)
def test_prose_figure_data_has_trajectories_and_decoded_equations(ode3d, tmp_path):
    """The module's own prediction and greedy decoding; the padded 4th component (data
    max_dim 4 for 3-D systems) is NaN so that it is not drawn."""
    dm, module = _built(prose_tests._cfg(ode3d, tmp_path, *prose_tests.TINY, "data.max_dim=4",
                                         "model.max_dim=4", "module.max_decode_len=20"))
    batch = _first_val_batch(dm)
    data = module.figure_data(batch, 2)
    with torch.no_grad():
        want, _ = module({k: v[:2] for k, v in batch.items()}, logits=False)
    assert data["kind"] == "trajectory" and data["truth"].shape == (2, 128, 4)
    assert np.isnan(data["pred"][..., 3]).all() and np.isnan(data["inputs"][..., 3]).all()
    np.testing.assert_allclose(data["pred"][..., :3], want[..., :3].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(data["coords"]["out"], batch["t_out"][:2].double().numpy())
    assert len(data["equations"]) == 2
    assert all(e.startswith("predicted: ") for e in data["equations"])
    fig = plot.sample_figure(**data)
    assert "predicted: " in fig.axes[0].get_title(loc="left")


# ----------------------------------------------------------------------------- callback
def test_callback_logs_a_figure_next_to_the_scalars(tiny_cfg, tmp_path):
    """The default callbacks (conf/callbacks/default.yaml) write the image val/samples to
    TensorBoard after the validation epoch (not after the sanity check: one image for one
    epoch), at the step of the val/rel_l2 scalar."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_cfg("trainer.max_epochs=1", "test=false", "callbacks.val_figures.n_samples=2",
                   "callbacks.val_figures.every_n_epochs=1"))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "val/samples" in events.Tags()["images"]
    images = events.Images("val/samples")
    assert len(images) == 1
    assert [im.step for im in images] == [s.step for s in events.Scalars("val/rel_l2")]
    assert images[0].encoded_image_string[:8] == PNG


def test_callback_draws_every_n_epochs_on_rank_zero_outside_the_sanity_check():
    """every_n_epochs=3: validation epochs 3, 6, ... (current_epoch 2, 5, ...); never in
    the sanity check, on other ranks, or without a logger that takes figures."""
    from types import SimpleNamespace

    from opnet.training.figures import ValidationFigures

    board = SimpleNamespace(experiment=SimpleNamespace(add_figure=print))
    cb = ValidationFigures(every_n_epochs=3)

    def due(epoch, sanity=False, rank0=True, loggers=(board,)):
        return cb._due(SimpleNamespace(current_epoch=epoch, sanity_checking=sanity,
                                       is_global_zero=rank0, loggers=list(loggers)))

    assert [e for e in range(9) if due(e)] == [2, 5, 8]
    assert not due(2, sanity=True) and not due(2, rank0=False) and not due(2, loggers=())
    assert not due(2, loggers=[SimpleNamespace(experiment=SimpleNamespace())])
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        ValidationFigures(every_n_epochs=0)


def test_callback_without_matplotlib_warns_once_and_training_completes(tiny_cfg, monkeypatch):
    """Two validation epochs without matplotlib: one warning naming the extra, no error."""
    def missing():
        raise ImportError("opnet's figures need matplotlib: pip install 'opnet[plot]'")

    monkeypatch.setattr(plot, "require_matplotlib", missing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(tiny_cfg("trainer.max_epochs=2", "callbacks.val_figures.every_n_epochs=1"))
    said = [w for w in caught if "no validation figures" in str(w.message)]
    assert len(said) == 1 and "opnet[plot]" in str(said[0].message)
    assert np.isfinite(metrics["test/rel_l2"])
