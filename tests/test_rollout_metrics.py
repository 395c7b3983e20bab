"""Rollout metrics of time-stepping operators: relative L2 and Pearson correlation per step,
the correlation time, their per-epoch logging and the rows and figure of opnet.evaluate."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from conftest import compose_train, write_trajectories
from torch import nn

from opnet.data.trajectory import TrajectoryDataModule
from opnet.metrics import correlation_time, rollout_correlation, rollout_errors
from opnet.training.module import OperatorModule

pytestmark = pytest.mark.usefixtures("one_thread")


def _rollout(frames: list[np.ndarray]) -> np.ndarray:
    """R frames ``[B, C, *grid]`` -> a rollout ``[B, R*C, *grid]``."""
    return np.concatenate(frames, axis=1)


def test_scaled_frames_have_rel_l2_of_the_scale_and_correlation_one():
    """pred_t = truth_t * (1 + 0.1 t): relative L2 exactly 0.1 t, correlation 1 (C = 2
    channels per frame, so the frames are pairs of channels)."""
    g = np.random.default_rng(0)
    steps, c = 5, 2
    truth = [g.standard_normal((3, c, 6, 7)) for _ in range(steps)]
    pred = [(1 + 0.1 * t) * f for t, f in enumerate(truth, 1)]
    err = rollout_errors(_rollout(pred), _rollout(truth), c)
    assert err.shape == (3, steps)
    want = 0.1 * np.arange(1, steps + 1)
    np.testing.assert_allclose(err.numpy(), np.broadcast_to(want, (3, steps)), rtol=1e-12)
    corr = rollout_correlation(_rollout(pred), _rollout(truth), c)
    np.testing.assert_allclose(corr.numpy(), 1.0, rtol=1e-12)
    neg = rollout_correlation(-_rollout(truth), _rollout(truth), c)  # anti-correlated
    np.testing.assert_allclose(neg.numpy(), -1.0, rtol=1e-12)


def test_growing_uncorrelated_noise_gives_the_known_correlation():
    """truth_t centred, noise_t centred and orthogonal to it with ‖noise_t‖ = a_t ‖truth_t‖:
    pred = truth + noise has relative L2 a_t and correlation 1/sqrt(1 + a_t²), also after an
    offset and a scale of the prediction (Pearson is invariant to both)."""
    g = np.random.default_rng(1)
    a = np.array([0.0, 0.25, 0.5, 1.0, 2.0])
    b, n = 4, 8
    truth, pred = [], []
    for a_t in a:
        u = g.standard_normal((b, 1, n, n))
        u -= u.mean(axis=(2, 3), keepdims=True)
        v = g.standard_normal((b, 1, n, n))
        v -= v.mean(axis=(2, 3), keepdims=True)
        v -= (np.sum(u * v, axis=(2, 3), keepdims=True)
              / np.sum(u * u, axis=(2, 3), keepdims=True)) * u
        v *= a_t * np.linalg.norm(u.reshape(b, -1), axis=1)[:, None, None, None] / \
            np.linalg.norm(v.reshape(b, -1), axis=1)[:, None, None, None]
        truth.append(u)
        pred.append(u + v)
    p, t = _rollout(pred), _rollout(truth)
    np.testing.assert_allclose(rollout_errors(p, t, 1).numpy(), np.broadcast_to(a, (b, 5)),
                               rtol=1e-10, atol=1e-12)
    want = 1 / np.sqrt(1 + a**2)  # 1, 0.970, 0.894, 0.707, 0.447
    for shifted in (p, 3.0 + 2.0 * p):
        np.testing.assert_allclose(rollout_correlation(shifted, t, 1).numpy(),
                                   np.broadcast_to(want, (b, 5)), rtol=1e-10)
    assert correlation_time(rollout_correlation(p, t, 1)) == 2.0  # 0.970 >= 0.9 > 0.894


def test_correlation_agrees_with_numpy_and_a_constant_frame_correlates_zero():
    g = np.random.default_rng(2)
    p, t = g.standard_normal((3, 4, 5, 5)), g.standard_normal((3, 4, 5, 5))
    corr = rollout_correlation(torch.from_numpy(p).float(), t, 1)  # tensor and array mixed
    want = [[np.corrcoef(p[i, r].ravel(), t[i, r].ravel())[0, 1] for r in range(4)]
            for i in range(3)]
    np.testing.assert_allclose(corr.numpy(), want, rtol=1e-6)
    assert corr.dtype == torch.float64
    p[0, 2] = 1.5
    assert rollout_correlation(p, t, 1)[0, 2] == 0.0


def test_rollout_metrics_refuse_bad_shapes():
    x = np.zeros((2, 6, 4, 4))
    with pytest.raises(ValueError, match=r"rollout_errors: pred has shape \(2, 6, 4, 4\) but "
                                         r"truth has shape \(2, 4, 4, 4\)"):
        rollout_errors(x, x[:, :4], 1)
    with pytest.raises(ValueError, match=r"multiple of channels=4"):
        rollout_correlation(x, x, 4)


def test_correlation_time_counts_the_leading_steps_above_the_threshold():
    curve = [0.99, 0.95, 0.9, 0.89, 0.95]  # 0.9 itself counts; the recovery after does not
    assert correlation_time(curve) == 3.0
    assert correlation_time(curve, threshold=0.96) == 1.0
    assert correlation_time([0.99, 0.98, 0.97]) == 3.0  # never drops: R
    assert correlation_time([0.5, 0.99]) == 0.0  # the first step below: 0
    assert correlation_time([0.95, float("nan"), 0.95]) == 1.0  # NaN counts as below
    per_sample = torch.tensor([[1.0, 0.85, 0.2], [0.9, 0.96, 0.99]])  # means 0.95, 0.905, 0.595
    assert correlation_time(per_sample) == 2.0
    assert correlation_time(per_sample, threshold=0.91) == 1.0
    with pytest.raises(ValueError, match=r"correlations \[R\] or \[B, R\]"):
        correlation_time(np.zeros((2, 2, 2)))


class DiffusingStep(nn.Module):
    """x -> 0.9 x + 0.3 roll(x): correlates less with the decaying truth at every step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.9 * x + 0.3 * torch.roll(x, 1, dims=-1)


@pytest.fixture
def rollout_module(tmp_path):
    dm = TrajectoryDataModule(str(write_trajectories(tmp_path / "traj", n=6, frames=5)),
                              trajectory_field="w", train_steps=2, rollout_steps=4,
                              batch_size=4, eval_batch_size=4)
    dm.setup("fit")
    io = {**dm.io_spec(), "in_normalizer": "none", "out_normalizer": "none"}
    module = OperatorModule({"_target_": "torch.nn.Identity"}, io, loss="rel_l2")
    module.operator.model = DiffusingStep()
    return module, dm


def test_validation_and_test_log_per_step_errors_and_the_correlation_time(rollout_module,
                                                                          monkeypatch):
    """6 trajectories in batches of 4 and 2: the logged per-step errors and correlation time
    are those of all 6 at once (sample-weighted epoch means), not means of batch means;
    sums left over from before the epoch are dropped."""
    module, dm = rollout_module
    val = dm.splits["val"]
    with monkeypatch.context() as m:  # no trainer yet: no logging
        m.setattr(module, "log_dict", lambda *a, **k: None)
        stale = {"x": -val.x.repeat(10, 1, 1, 1), "y": val.y.repeat(10, 1, 1, 1)}
        module.evaluate_batch(stale, "val")  # 60 anti-correlated: would make the time 0
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, datamodule=dm, verbose=False)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    with torch.no_grad():
        pred = module.predict_frames(val.x)
    errors = rollout_errors(pred, val.y, 1).mean(dim=0)
    corr = rollout_correlation(pred, val.y, 1).mean(dim=0)
    for i in range(4):
        assert logged[f"val/rel_l2_step{i + 1}"] == pytest.approx(float(errors[i]), rel=1e-6)
    first = rollout_errors(pred[:4], val.y[:4], 1)[:, 2].mean()  # (step 1: 1/3 for all)
    assert abs(float(first) - float(errors[2])) > 1e-3  # the batches' means differ
    want = correlation_time(corr)
    assert 0 < want < 4  # the correlation drops below 0.9 within the rollout
    assert logged["val/correlation_time"] == want
    assert "val/rel_l2_step1" in trainer.progress_bar_metrics
    assert "val/rel_l2_step3" not in trainer.progress_bar_metrics
    trainer.test(module, datamodule=dm, verbose=False)
    test = dm.splits["test"]
    with torch.no_grad():
        pred = module.predict_frames(test.x)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert logged["test/rel_l2_step4"] == pytest.approx(
        float(rollout_errors(pred, test.y, 1)[:, 3].mean()), rel=1e-6)
    assert logged["test/correlation_time"] == correlation_time(
        rollout_correlation(pred, test.y, 1))


def test_evaluate_reports_per_step_rows_and_draws_error_vs_step(tmp_path):
    """A tiny FNO trained 40 epochs on synthetic trajectories: evaluate's per-step errors and
    correlation time are the Lightning test metrics; plots=true writes error_vs_step.png."""
    from opnet.evaluate import run
    from opnet.training.job import train

    traj = write_trajectories(tmp_path / "traj", n=6, frames=5)
    out = tmp_path / "run"
    cfg = compose_train("data=navier_stokes", f"data.data_dir={traj}", "data.generate=null",
                        "data.train_steps=3", "data.rollout_steps=4", "data.batch_size=6",
                        "model=fno", "model.modes=3", "model.width=4", "model.layers=1",
                        "model.projection=8", "module.loss=rel_l2", "module.lr=1e-2",
                        "trainer.max_epochs=40",
                        f"paths.output_dir={out}", "~callbacks.progress_bar",
                        "~callbacks.model_summary")
    metrics = train(cfg)
    results = run({"ckpt": str(out / "checkpoints" / "last.ckpt"), "plots": True,
                   "n_plot": 1, "output_dir": str(tmp_path / "eval")})
    row = json.loads((tmp_path / "eval" / "metrics.json").read_text())["evaluations"][0]
    for key in ("rel_l2_per_step", "correlation_per_step", "correlation_time"):
        assert row[key] == pytest.approx(results[0].row[key], rel=1e-12)
    assert len(row["rel_l2_per_step"]) == 4 and len(row["correlation_per_step"]) == 4
    for i, e in enumerate(row["rel_l2_per_step"], 1):
        assert e == pytest.approx(metrics[f"test/rel_l2_step{i}"], rel=1e-4)
    assert all(-1 <= c <= 1 for c in row["correlation_per_step"])
    assert row["correlation_time"] == correlation_time(row["correlation_per_step"])
    assert row["correlation_time"] == metrics["test/correlation_time"]
    errors, corr = np.array(row["rel_l2_per_step"]), np.array(row["correlation_per_step"])
    assert errors[0] < 0.1 and np.all(np.diff(errors) > 0)  # trained; errors accumulate
    assert np.all(np.diff(corr) < 0)
    png = tmp_path / "eval" / "plots" / "error_vs_step.png"
    assert png.stat().st_size > 1000


def test_error_vs_step_figure_marks_threshold_and_correlation_time(tmp_path):
    from opnet import plot

    fig = plot.error_vs_step([0.01, 0.1, 2.0], [0.99, 0.95, 0.5])
    ax_err, ax_corr = fig.axes
    assert ax_err.get_yscale() == "log"  # errors spread over more than a factor 100
    assert ax_corr.get_title() == "correlation time: 2 of 3 steps"
    assert [tuple(line.get_ydata()) for line in ax_corr.lines[1:2]] == [(0.9, 0.9)]
    assert plot.save_figure(fig, tmp_path / "e.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="same number"):
        plot.error_vs_step([0.1, 0.2], [0.9])
