"""One normalised operator (issue 17): the nn.Module that training holds and the surrogate
runs is the same class with the same weights; checkpoints of the previous layout (format 1:
``model.*``, ``in_norm.*`` at the top) still load, for prediction and for training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_surrogate_safety import MGNO, M, Q, grid_io, save

from opnet import load_operator
from opnet.checkpoint import add_digest, read_checkpoint
from opnet.models.operator import NormalisedOperator, PointOperator
from opnet.training.deeponet_module import DeepONetModule
from opnet.training.module import OperatorModule

POINT_IO = {"kind": "points", "input_field": "f", "input_fields": ["f"], "output_fields": ["u"],
            "branch": "vector", "input_shape": [M], "n_sensors": M, "sensor_points": M,
            "sensor_dim": 1, "n_query": Q, "query_dim": 1, "out_channels": 1,
            "input_grid": None, "output_grid": None, "layout": "aligned",
            "dataset": {"name": "toy", "path": "data/toy"}}
DEEPONET = {"_target_": "opnet.models.deeponet.DeepONet", "branch": [M, 8, 8],
            "trunk": [1, 8, 8], "num_outputs": 1}


def _fitted_grid_module() -> OperatorModule:
    torch.manual_seed(0)
    module = OperatorModule(MGNO, grid_io())
    gen = torch.Generator().manual_seed(1)
    x = 3 + 2 * torch.rand(16, 1, 8, 8, generator=gen)
    module.fit_normalizers(x.numpy(), (10 * x).numpy())
    return module


def _fitted_point_module(out_normalizer: str = "pointwise") -> DeepONetModule:
    torch.manual_seed(0)
    module = DeepONetModule(DEEPONET, POINT_IO, in_normalizer="scalar",
                            out_normalizer=out_normalizer)
    gen = torch.Generator().manual_seed(1)
    module.operator.set_coordinates(torch.linspace(0, 1, M)[:, None],
                                    torch.linspace(0, 1, Q)[:, None])
    module.operator.fit_normalizers(torch.randn(20, M, generator=gen).numpy(),
                                    (5 + torch.randn(20, Q, 1, generator=gen)).numpy())
    return module


def test_training_and_the_surrogate_run_one_operator(tmp_path):
    """Same class, same state, same numbers: the normalisation is applied in one place."""
    grid = _fitted_grid_module()
    op = load_operator(save(grid, tmp_path / "grid.ckpt"))
    assert type(op.operator) is type(grid.operator) is NormalisedOperator
    x = 3 + 2 * torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        direct = grid.operator.out_norm.decode(grid.operator.model(
            (x - grid.in_norm.mean) / grid.in_norm.std))
        np.testing.assert_allclose(op.predict(x.numpy()), grid(x).numpy(), rtol=1e-6)
        np.testing.assert_allclose(grid(x).numpy(), direct.numpy(), rtol=1e-5, atol=1e-5)
        two = grid.operator.rollout(x, 2)
        np.testing.assert_allclose(two[:, 1:].numpy(), grid(grid(x)).numpy(), rtol=1e-6)
    points = _fitted_point_module()
    pop = load_operator(save(points, tmp_path / "points.ckpt"))
    assert type(pop.operator) is type(points.operator) is PointOperator
    u = torch.randn(4, M)
    with torch.no_grad():
        expect = points(u, points.query.float())[..., 0].numpy()
    np.testing.assert_allclose(pop.predict(u.numpy()), expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pop.query, points.query.numpy())


def _as_format_1(path, out):
    """The checkpoint as opnet wrote it before issue 17: the operator's weights at the top
    level and format_version 1 (digest over those keys)."""
    ckpt = read_checkpoint(path)
    ckpt["state_dict"] = {k.removeprefix("operator."): v for k, v in ckpt["state_dict"].items()}
    ckpt["operator"]["format_version"] = 1
    del ckpt["operator"]["family"]
    add_digest(ckpt)
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize("which", ["grid", "points"])
def test_format_1_checkpoints_still_load_and_resume(which, tmp_path):
    module = _fitted_grid_module() if which == "grid" else _fitted_point_module()
    new = save(module, tmp_path / "new.ckpt")
    old = _as_format_1(new, tmp_path / "old.ckpt")
    assert "model.operator" not in str(list(read_checkpoint(old)["state_dict"]))
    assert any(k.startswith("in_norm.") for k in read_checkpoint(old)["state_dict"])
    a, b = load_operator(new), load_operator(old)
    x = (3 + 2 * np.random.default_rng(0).random((2, 1, 8, 8))) if which == "grid" else \
        np.random.default_rng(0).standard_normal((2, M))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    cls = type(module)
    again = cls.load_from_checkpoint(old, map_location="cpu")  # training resumes from it
    for (k1, v1), (k2, v2) in zip(module.state_dict().items(), again.state_dict().items(),
                                  strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1
