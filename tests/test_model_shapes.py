"""Shape tests over the model registry (PDEArena style, issue 17): every grid network maps
``[B, C_in, *grid] -> [B, C_out, *grid]`` on its dimension and on another resolution, and
is differentiable end to end; the point networks map (u, y) to ``[B, P, C_out]``."""

from __future__ import annotations

import pytest
import torch

from opnet.models import MODELS, build_model

# tiny keyword arguments per registry name; grid: the spatial sizes tried
GRID = {
    "mgno": ({"width": 4, "layers": 1, "smoothing": [[1, 0], [1, 0]]}, [(16, 16), (32, 32)]),
    "fno": ({"modes": 4, "width": 6, "layers": 2, "projection": 8}, [(16, 16), (24, 20)]),
    "fno2d": ({"modes": 4, "width": 6, "layers": 2, "projection": 8}, [(16, 16), (24, 20)]),
    "fno1d": ({"modes": 5, "width": 6, "layers": 2, "projection": 8}, [(32,), (64,)]),
    "fno3d": ({"modes": 3, "width": 4, "layers": 1, "projection": 8, "domain_padding": 2},
              [(8, 8, 8), (12, 10, 8)]),
}
POINT = {"deeponet": {"branch": [10, 8, 8], "trunk": [2, 8, 8], "num_outputs": 2,
                      "strategy": "split_both"},
         "pod_deeponet": {"branch": [10, 8, 4], "n_points": 6, "n_modes": 4}}


def test_every_registered_operator_has_a_shape_test():
    assert set(MODELS) == set(GRID) | set(POINT) | {"prose"}  # prose: tests/test_prose_model


@pytest.mark.parametrize("name", sorted(GRID))
def test_grid_models_keep_the_grid_and_map_channels(name):
    kwargs, grids = GRID[name]
    torch.manual_seed(0)
    net = build_model({"_target_": MODELS[name], "in_channels": 3, "out_channels": 2, **kwargs})
    for grid in grids:
        x = torch.randn(2, 3, *grid, requires_grad=True)
        y = net(x)
        assert y.shape == (2, 2, *grid) and torch.isfinite(y).all(), (name, grid)
        y.square().mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert all(p.grad is not None for p in net.parameters()), name
        net.zero_grad()


@pytest.mark.parametrize("name", sorted(POINT))
def test_point_models_map_functions_and_points(name):
    torch.manual_seed(0)
    net = build_model({"_target_": MODELS[name], **POINT[name]})
    u = torch.randn(3, 10)
    if name == "pod_deeponet":
        net.fit_basis(torch.randn(20, 6))
        assert net(u).shape == (3, 6, 1)
    else:
        assert net(u, torch.rand(7, 2)).shape == (3, 7, 2)  # aligned points
        assert net(u, torch.rand(3, 5, 2)).shape == (3, 5, 2)  # one point set per function
