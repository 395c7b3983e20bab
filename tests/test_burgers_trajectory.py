"""Burgers in time (issue 20): data=burgers_trajectory (u at t_k = k·0.05, k = 0..10, on a
1-D periodic grid) and the time-stepping path on 1-D grids (x [B, 1, n]): one-step training
of an FNO-1D, its rollout evaluation, ``opnet.evaluate`` and the 1-D figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import compose_train

from data_gen.pdes import burgers
from data_gen.runner import sample_rngs
from opnet.data import h5
from opnet.data.build import instantiate_datamodule
from opnet.training.base import ConfigError
from opnet.training.job import build_module, train
from opnet.training.losses import reduce

DT_FRAME, FRAMES, GRID = 0.05, 11, 128
TINY = ["data.generate.n_train=8", "data.generate.n_val=2", "data.generate.n_test=2",
        "data.generate.workers=1", "data.generate.chunk_size=4"]
SMALL_FNO = ["model.width=16", "model.modes=8", "model.layers=2", "model.projection=32"]


@pytest.fixture(scope="module")
def burgers_dir(tmp_path_factory):
    """The data config's own generator (8 / 2 / 2 trajectories), made by the data module."""
    out = tmp_path_factory.mktemp("burgers_traj") / "data"
    cfg = compose_train("data=burgers_trajectory", f"data.data_dir={out}", *TINY)
    instantiate_datamodule(cfg.data).prepare_data()
    return out


def _cfg(data_dir, *overrides: str):
    return compose_train("experiment=fno_burgers_rollout_cpu", f"data.data_dir={data_dir}",
                         "data.generate=null", "logger=none", "threads=1", *SMALL_FNO,
                         *overrides)


def test_frames_are_the_solution_at_k_dt_frame(burgers_dir):
    """outputs/u [N, 11, 128] at t = 0, 0.05, ..., 0.5; frame 0 is inputs/u0, frame k is the
    generator's one-shot solve to T = k·0.05 of the same sample (same seed)."""
    path = h5.split_path(burgers_dir, "test")
    u = h5.read_fields(path, "outputs", ["u"])
    u0 = h5.read_fields(path, "inputs", ["u0"])
    assert u.shape == (2, FRAMES, GRID) and u0.shape == (2, 1, GRID)
    np.testing.assert_allclose(h5.read_coords(path)["t"], DT_FRAME * np.arange(FRAMES),
                               atol=1e-12)
    np.testing.assert_array_equal(u[:, 0], u0[:, 0])
    cfg = compose_train("data=burgers_trajectory").data.generate.pde
    for k in (1, 4, 10):
        one = burgers.BurgersConfig(resolution=GRID, solver_resolution=cfg.solver_resolution,
                                    viscosity=cfg.viscosity, dt=cfg.dt, T=k * DT_FRAME)
        want = burgers.sample(one, sample_rngs(0, "test", 1, 2))["outputs"]["u"][0, 0]
        err = np.linalg.norm(u[1, k] - want) / np.linalg.norm(want)
        assert err < 1e-6, (k, err)
    norms = np.linalg.norm(u, axis=-1).mean(0)  # visibly changing, decaying (nu = 0.1)
    change = np.linalg.norm(np.diff(u, axis=1), axis=-1).mean(0) / norms[1:]
    assert np.all(change > 0.1) and norms[-1] < 0.3 * norms[0]


def test_one_dimensional_data_refuses_the_h1_loss(burgers_dir):
    cfg = _cfg(burgers_dir, "module.loss=h1")
    dm = instantiate_datamodule(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    with pytest.raises(ConfigError, match="module.loss=h1 needs 2-D grid data.*rel_l2"):
        build_module(cfg, dm)


def test_fno1d_learns_the_one_step_map(burgers_dir):
    """A small FNO-1D on the 80 one-step pairs: the summed relative L2 training loss of the
    last of 15 epochs is under a quarter of the first."""
    torch.manual_seed(0)
    cfg = _cfg(burgers_dir)
    dm = instantiate_datamodule(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    module = build_module(cfg, dm)
    assert module.hparams.loss == "rel_l2" and module.hparams.io["grid"] == [GRID]
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    epochs = []
    for _ in range(15):
        total = 0.0
        for batch in dm.train_dataloader():
            assert batch["x"].shape[1:] == (1, GRID) and batch["y"].shape[1:] == (1, GRID)
            loss = reduce(module.loss_fn(module(batch["x"]), batch["y"]), "sum")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        epochs.append(total)
    assert epochs[-1] < 0.25 * epochs[0], epochs  # measured: 119 -> 10


def test_rollout_evaluation_and_figures_on_1d(burgers_dir, tmp_path):
    """train -> test: finite 10-step rollout errors; ``opnet.evaluate`` on the checkpoint
    reproduces them and draws the 1-D sample and error-by-step figures."""
    from opnet.evaluate import run

    metrics = train(_cfg(burgers_dir, "trainer.max_epochs=2", "~callbacks.progress_bar",
                         f"paths.output_dir={tmp_path / 'run'}"))
    per_step = [metrics[f"test/rel_l2_step{k}"] for k in range(1, 11)]
    assert np.all(np.isfinite(per_step)) and np.isfinite(metrics["test/rel_l2"])
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["best_checkpoint"]
    (result,) = run({"ckpt": best, "data": str(burgers_dir), "plots": True,
                     "output_dir": str(tmp_path / "eval")})
    row = result.row
    assert row["grid"] == [GRID] and row["samples"] == 2
    assert len(row["rel_l2_per_step"]) == 10 and np.all(np.isfinite(row["rel_l2_per_step"]))
    assert row["rel_l2"] == pytest.approx(metrics["test/rel_l2"], rel=1e-4)
    assert row["rel_l2_per_step"][0] == pytest.approx(metrics["test/rel_l2_step1"], rel=1e-4)
    assert result.kind == "grid1d"
    pngs = sorted(p.name for p in (tmp_path / "eval" / "plots").glob("*.png"))
    assert any(n.startswith("samples_") for n in pngs) and "error_vs_step.png" in pngs, pngs
    # the validation figure's data (ValidationFigures): 1-D lines at the file's x = i/128
    from opnet import plot
    from opnet.training.module import OperatorModule

    module = OperatorModule.load_from_checkpoint(best, map_location="cpu").eval()
    dm = instantiate_datamodule(_cfg(burgers_dir).data)
    dm.setup("validate")
    data = module.figure_data(next(iter(dm.val_dataloader())), n=2)
    assert data["kind"] == "grid1d" and data["pred"].shape == (2, GRID)
    np.testing.assert_allclose(data["coords"]["out"], np.arange(GRID) / GRID)
    fig = plot.sample_figure(data["inputs"], data["truth"], data["pred"], kind=data["kind"],
                             coords=data["coords"])
    assert len(fig.axes) == 6
