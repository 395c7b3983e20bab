"""DeepONet / POD-DeepONet (opnet.models.deeponet): reference parameter counts, the merge and
multi-output strategies against explicit constructions, hard constraints, periodic features,
the POD basis, shapes and errors."""

from __future__ import annotations

import math

import pytest
import torch

from opnet.models import resolve_model_name
from opnet.models.deeponet import (
    DARCY_CNN_BRANCH,
    DeepONet,
    FourierFeatures,
    GroupedMLP,
    PODDeepONet,
)

BURGERS = {"branch": [128] * 5, "trunk": [1, 128, 128, 128], "activation": "tanh",
           "features": {"name": "fourier", "periods": [1.0], "modes": 2}}
SMALL_CNN = {"name": "cnn", "in_channels": 2, "channels": [3, 4], "kernel_size": 3,
             "stride": [2, 1], "mlp": [8, 6], "input_size": [9, 9]}


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Nonzero b_0 and biases, so that every term of the formulas is tested."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def manual_mlp(x: torch.Tensor, net: GroupedMLP, group: int, act, last_act: bool) -> torch.Tensor:
    """Group ``group`` of a GroupedMLP as plain matrix products: x [..., n0] -> [..., nL]."""
    layers = list(net.layers)
    for i, layer in enumerate(layers):
        x = x @ layer.weight[group]
        if layer.bias is not None:
            x = x + layer.bias[group]
        if i < len(layers) - 1 or last_act:
            x = act(x)
    return x


# --- parameter counts (reference §7.1) -------------------------------------------------------

def test_paper_default_has_7401_parameters():
    """[100, 40, 40] / [1, 40, 40] + b_0: branch 5,680 + trunk 1,720 + 1."""
    model = DeepONet(branch=[100, 40, 40], trunk=[1, 40, 40])
    assert n_params(model.branch) == 5_680 and n_params(model.trunk) == 1_720
    assert n_params(model) == 7_401


def test_no_bias_drops_b0_and_the_last_branch_bias():
    """tf.compat.v1 use_bias=False: 7,401 - 1 (b_0) - 40 (last branch bias)."""
    model = DeepONet(branch=[100, 40, 40], trunk=[1, 40, 40], bias=False)
    assert model.b0 is None and model.branch.layers[-1].bias is None
    assert n_params(model) == 7_360


def test_burgers_cmame_has_99713_parameters():
    """Branch [128] x 5 (66,048) + trunk on 4 Fourier features [4, 128, 128, 128] (33,664) + 1."""
    model = DeepONet(**BURGERS)
    assert n_params(model.branch) == 66_048 and n_params(model.trunk) == 33_664
    assert n_params(model) == 99_713


def test_darcy_cnn_deeponet_has_682753_parameters():
    """Unpadded 5x5 stride-2 convs 29 -> 13 -> 5, flatten 3,200, dense 128 -> 128."""
    model = DeepONet(branch=DARCY_CNN_BRANCH, trunk=[2, 128, 128, 128, 128])
    assert model.branch.grid_sizes == [(29, 29), (13, 13), (5, 5)]
    assert model.branch.flat_features == 3_200
    assert n_params(model.branch) == 632_832 and n_params(model.trunk) == 49_920
    assert n_params(model) == 682_753


def test_pod_cmame_branch_parameter_counts():
    """Computed from §3.2: Burgers POD branch [128, 128, 128, 32] = 37,152; Darcy POD = the
    CNN with a last Dense 115 = 631,155; no trunk, so no b_0."""
    burgers = PODDeepONet(branch=[128, 128, 128, 32], n_points=128, n_modes=32,
                          activation="tanh")
    darcy = PODDeepONet(branch={**DARCY_CNN_BRANCH, "mlp": [128, 115]}, n_points=841,
                        n_modes=115)
    assert n_params(burgers) == 37_152 and burgers.b0 is None
    assert n_params(darcy) == 631_155


def test_stacked_parameter_count():
    """p = 40 branch nets 100 -> 40 -> 1: 40 x (4,040 + 41) = 163,240, + trunk 1,720 + b_0."""
    model = DeepONet(branch=[100, 40, 40], trunk=[1, 40, 40], stacked=True)
    assert n_params(model.branch) == 163_240
    assert n_params(model) == 163_240 + 1_720 + 1


# --- the merge and multi-output strategies ---------------------------------------------------

@pytest.mark.parametrize("last_act", [True, False])
def test_single_output_is_the_sum_of_branch_times_trunk_plus_b0(last_act):
    """G(u)(y_j) = sum_k b_k(u) t_k(y_j) + b_0, with the trunk's last layer (not) activated."""
    model = randomize_(DeepONet(branch=[5, 7, 6], trunk=[2, 8, 6], activation="tanh",
                                trunk_last_activation=last_act))
    u, y = torch.randn(4, 5), torch.rand(9, 2)
    b = manual_mlp(u, model.branch, 0, torch.tanh, False)
    t = manual_mlp(y, model.trunk, 0, torch.tanh, last_act)
    expected = (b @ t.T + model.b0)[..., None]
    assert torch.allclose(model(u, y), expected, atol=1e-6)


@pytest.mark.parametrize("kwargs", [
    {},
    {"num_outputs": 2, "strategy": "independent"},
    {"num_outputs": 3, "strategy": "split_both"},
    {"num_outputs": 2, "strategy": "split_branch", "branch": [5, 8, 12]},
    {"num_outputs": 2, "strategy": "split_trunk", "trunk": [2, 7, 12]},
    {"stacked": True},
])
def test_aligned_equals_unaligned_with_the_points_tiled(kwargs):
    """Cartesian-product evaluation == each function at its own (identical) points."""
    base = {"branch": [5, 8, 6], "trunk": [2, 7, 6]}
    model = randomize_(DeepONet(**{**base, **kwargs}))
    u, y = torch.randn(3, 5), torch.rand(11, 2)
    aligned = model(u, y)
    unaligned = model(u, y.expand(3, 11, 2))
    n = kwargs.get("num_outputs", 1)
    assert aligned.shape == unaligned.shape == (3, 11, n)
    assert torch.allclose(aligned, unaligned, atol=1e-6)


def test_unaligned_points_differ_per_function():
    """Function i at its own points y_i: row i of the output is the aligned model at y_i."""
    model = randomize_(DeepONet(branch=[5, 8, 6], trunk=[2, 7, 6]))
    u, y = torch.randn(3, 5), torch.rand(3, 4, 2)
    out = model(u, y)
    for i in range(3):
        assert torch.allclose(out[i], model(u[i:i + 1], y[i])[0], atol=1e-6)


def test_stacked_equals_p_separate_branch_nets():
    """Stacked: b_k(u) = MLP_k(u), m -> 8 -> 1 for k = 1..p, each with its own weights."""
    model = randomize_(DeepONet(branch=[5, 8, 6], trunk=[2, 7, 6], stacked=True,
                                activation="tanh"))
    assert model.branch.layers[0].weight.shape == (6, 5, 8)
    u, y = torch.randn(4, 5), torch.rand(9, 2)
    b = torch.cat([manual_mlp(u, model.branch, k, torch.tanh, False) for k in range(6)], dim=1)
    t = manual_mlp(y, model.trunk, 0, torch.tanh, True)
    assert torch.allclose(model(u, y), (b @ t.T + model.b0)[..., None], atol=1e-6)


def _group_state(model: DeepONet, g: int, n: int) -> dict[str, torch.Tensor]:
    """Slice g of n along dim 0 of every tensor: one pair of an "independent" model (grouped
    linear weights [G, ...], grouped conv weights [G * C_out, ...], b_0 [n])."""
    return {k: v.chunk(n, dim=0)[g] for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kwargs", [
    {"branch": [5, 8, 6]},
    {"branch": [5, 8, 6], "stacked": True},
    {"branch": {**SMALL_CNN, "mlp": [8, 6]}},
])
def test_independent_equals_n_separate_single_output_models(kwargs):
    """Output j of an "independent" model is a separate DeepONet built from pair j's weights."""
    n = 3
    common = {"trunk": [2, 7, 6], "activation": "tanh", **kwargs}
    model = randomize_(DeepONet(num_outputs=n, strategy="independent", **common))
    single = DeepONet(**common)
    assert n_params(model) == n * n_params(single)
    shape = (4, 5) if isinstance(kwargs["branch"], list) else (4, 2, 9, 9)
    u, y = torch.randn(shape), torch.rand(10, 2)
    out = model(u, y)
    for j in range(n):
        single.load_state_dict(_group_state(model, j, n))
        assert torch.allclose(out[..., j], single(u, y)[..., 0], atol=1e-5)


@pytest.mark.parametrize("strategy, branch, trunk", [
    ("split_both", [5, 8, 12], [2, 7, 12]),
    ("split_branch", [5, 8, 12], [2, 7, 4]),
    ("split_trunk", [5, 8, 4], [2, 7, 12]),
])
def test_split_strategies_match_the_reference_loop(strategy, branch, trunk):
    """DeepXDE deeponet_strategy.py: output j uses the j-th contiguous slice of the split
    network(s), merged with the shared (or also sliced) other one, plus b_0[j]."""
    n = 3
    model = randomize_(DeepONet(branch=branch, trunk=trunk, num_outputs=n, strategy=strategy))
    u, y = torch.randn(4, 5), torch.rand(9, 2)
    b = manual_mlp(u, model.branch, 0, torch.relu, False)
    t = manual_mlp(y, model.trunk, 0, torch.relu, True)
    cols = []
    for j in range(n):
        sb = b.shape[1] // n if strategy in ("split_both", "split_branch") else b.shape[1]
        st = t.shape[1] // n if strategy in ("split_both", "split_trunk") else t.shape[1]
        b_j = b[:, j * sb:(j + 1) * sb] if strategy != "split_trunk" else b
        t_j = t[:, j * st:(j + 1) * st] if strategy != "split_branch" else t
        cols.append(b_j @ t_j.T + model.b0[j])
    assert torch.allclose(model(u, y), torch.stack(cols, dim=2), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_outputs": 2}, "needs a multi-output strategy"),
    ({"num_outputs": 4, "strategy": "split_both"}, "divisible by num_outputs=4"),
    ({"num_outputs": 2, "strategy": "split_branch"}, r"branch width = num_outputs=2 x trunk"),
    ({"num_outputs": 2, "strategy": "split_trunk"}, r"trunk width = num_outputs=2 x branch"),
    ({"trunk": [2, 7, 5]}, "widths must be equal"),
    ({"strategy": "split"}, "strategy='split' is not supported"),
    ({"activation": "elu"}, "activation='elu' is not supported"),
    ({"initializer": "lecun"}, "initializer='lecun' is not supported"),
    ({"branch": [5]}, "branch=.*at least two"),
    ({"branch": dict(DARCY_CNN_BRANCH), "stacked": True}, "stacked=True needs an MLP branch"),
    ({"branch": {**SMALL_CNN, "kernel_size": 11}}, "does not fit the 9x9 grid"),
    ({"features": {"name": "rff"}}, "features: name='rff'"),
    ({"output_transform": {"name": "zero_at", "coordinate": 2}}, r"must be in \[0, 2\)"),
])
def test_bad_construction_raises(kwargs, match):
    base = {"branch": [5, 8, 6], "trunk": [2, 7, 6]}
    with pytest.raises(ValueError, match=match):
        DeepONet(**{**base, **kwargs})


# --- shapes and errors -----------------------------------------------------------------------

def test_input_shape_errors_name_the_expected_shapes():
    model = DeepONet(branch=[5, 8, 6], trunk=[2, 7, 6])
    u, y = torch.randn(3, 5), torch.rand(4, 2)
    with pytest.raises(ValueError, match=r"u has shape \(3, 4\), the branch expects \[B, 5\]"):
        model(torch.randn(3, 4), y)
    with pytest.raises(ValueError, match=r"y has shape \(4, 3\), expected \[N, 2\]"):
        model(u, torch.rand(4, 3))
    with pytest.raises(ValueError, match=r"y has shape \(4,\)"):
        model(u, torch.rand(4))
    with pytest.raises(ValueError, match=r"u holds 3 functions: y must be \[3, N, 2\]"):
        model(u, torch.rand(2, 4, 2))


def test_cnn_branch_takes_grids_or_flattened_grids_and_checks_the_size():
    model = randomize_(DeepONet(branch=SMALL_CNN, trunk=[2, 7, 6]))
    assert model.num_sensors == 2 * 9 * 9
    u, y = torch.randn(3, 2, 9, 9), torch.rand(5, 2)
    assert torch.allclose(model(u, y), model(u.flatten(1), y))
    with pytest.raises(ValueError, match=r"CNN branch expects \[B, 2, 9, 9\].*\[B, 162\]"):
        model(torch.randn(3, 2, 8, 9), y)


# --- output transforms -----------------------------------------------------------------------

def _pair_with(transform: dict, **kwargs) -> tuple[DeepONet, DeepONet]:
    base = {"branch": [5, 8, 6], "trunk": [2, 7, 6], **kwargs}
    raw = randomize_(DeepONet(**base))
    model = DeepONet(**base, output_transform=transform)
    model.load_state_dict(raw.state_dict())
    return raw, model


def test_zero_at_is_exactly_zero_on_the_constraint_and_g_times_distance_elsewhere():
    """{"zero_at", coordinate 1, value 0.25}: G(u)(x, t = 0.25) = 0 exactly (initial condition)."""
    raw, model = _pair_with({"name": "zero_at", "coordinate": 1, "value": 0.25})
    u, y = torch.randn(3, 5), torch.rand(8, 2)
    y[::2, 1] = 0.25
    out = model(u, y)
    assert (out[:, ::2] == 0).all()
    assert torch.allclose(out, raw(u, y) * (y[:, 1] - 0.25)[:, None], atol=1e-6)
    # unaligned points: the same factor, per function
    yb = y.expand(3, 8, 2)
    assert (model(u, yb)[:, ::2] == 0).all()


def test_dirichlet_box_vanishes_on_every_face():
    """x(1 - x) y(1 - y) G on the unit square: zero on the four edges, multiplied inside."""
    raw, model = _pair_with({"name": "dirichlet_box", "coordinate": [0, 1], "low": 0.0,
                             "high": 1.0})
    s = torch.linspace(0, 1, 5)
    y = torch.stack(torch.meshgrid(s, s, indexing="ij"), -1).reshape(-1, 2)
    u = torch.randn(2, 5)
    out = model(u, y)
    edge = (y == 0).any(1) | (y == 1).any(1)
    assert (out[:, edge] == 0).all() and (out[:, ~edge] != 0).all()
    factor = (y[:, 0] * (1 - y[:, 0]) * y[:, 1] * (1 - y[:, 1]))[:, None]
    assert torch.allclose(out, raw(u, y) * factor, atol=1e-6)


def test_scale_transform_is_affine_per_output():
    raw, model = _pair_with({"name": "scale", "scale": [0.01, 2.0], "shift": [1.0, -1.0]},
                            num_outputs=2, strategy="split_both")
    u, y = torch.randn(3, 5), torch.rand(4, 2)
    expected = raw(u, y) * torch.tensor([0.01, 2.0]) + torch.tensor([1.0, -1.0])
    assert torch.allclose(model(u, y), expected, atol=1e-6)


# --- trunk features --------------------------------------------------------------------------

def test_fourier_features_values():
    """x = 0.25, P = 1, K = 2: [cos pi/2, sin pi/2, cos pi, sin pi] after the untouched t."""
    feats = FourierFeatures(2, periods=[1.0], modes=2)
    out = feats(torch.tensor([[0.25, 0.7]]))
    assert torch.allclose(out, torch.tensor([[0.7, 0.0, 1.0, -1.0, 0.0]]), atol=1e-6)
    assert FourierFeatures(2, [2.0, 1.0], 3, keep=True).out_features == 2 + 12


def test_fourier_trunk_is_periodic_in_the_chosen_coordinate_only():
    """G(u)(x + P, t) = G(u)(x, t) for P = 0.5 on x; t is not periodic."""
    model = randomize_(DeepONet(branch=[5, 8, 6], trunk=[2, 7, 6], activation="tanh",
                                features={"name": "fourier", "periods": [0.5], "modes": 3}))
    u, y = torch.randn(3, 5), torch.rand(10, 2)
    out = model(u, y)
    assert torch.allclose(model(u, y + torch.tensor([0.5, 0.0])), out, atol=1e-5)
    assert torch.allclose(model(u, y + torch.tensor([-1.5, 0.0])), out, atol=1e-5)
    assert (model(u, y + torch.tensor([0.0, 0.5])) - out).abs().max() > 1e-3


# --- POD-DeepONet ----------------------------------------------------------------------------

def _low_rank_outputs(n_funcs: int = 12, n_points: int = 20, rank: int = 4) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n_funcs, rank) @ torch.randn(rank, n_points) + torch.randn(n_points)


def test_pod_basis_is_orthogonal_and_scaled_by_sqrt_n_points():
    """basis^T basis = N_points I (orthonormal eigenvectors x sqrt(N_points)), rank 4 data:
    4 modes hold all the variance."""
    outputs = _low_rank_outputs()
    model = PODDeepONet(branch=[3, 8, 4], n_points=20, n_modes=4)
    captured = model.fit_basis(outputs)
    basis = model.pod_basis.double()
    assert torch.allclose(basis.T @ basis, 20 * torch.eye(4, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(model.pod_mean, outputs.mean(0), atol=1e-6)
    assert captured == pytest.approx(1.0, abs=1e-9)


def test_pod_basis_is_the_reference_eigenbasis():
    """Columns = eigenvectors of cov(y - mean) by decreasing eigenvalue (authors' pod())."""
    outputs = _low_rank_outputs(rank=6)
    model = PODDeepONet(branch=[3, 3], n_points=20, n_modes=3)
    model.fit_basis(outputs)
    y = (outputs - outputs.mean(0)).double()
    w, v = torch.linalg.eigh(y.T @ y / (len(y) - 1))
    v = v.flip(1)[:, :3] * math.sqrt(20)
    assert torch.allclose(model.pod_basis.double().abs(), v.abs(), atol=1e-4)


def test_pod_fit_reproduces_the_training_outputs_at_full_rank():
    """n_modes = rank: a linear branch giving b = n_modes (y - mean) basis / N_points makes
    forward return every training output exactly (basis x sqrt(N), out / n_modes + mean)."""
    outputs = _low_rank_outputs()
    model = PODDeepONet(branch=[20, 4], n_points=20, n_modes=4)
    model.fit_basis(outputs)
    layer = model.branch.layers[0]
    with torch.no_grad():
        layer.weight[0] = 4 * model.pod_basis / 20
        layer.bias[0] = -4 * model.pod_mean @ model.pod_basis / 20
    out = model(outputs)
    assert out.shape == (12, 20, 1)
    assert torch.allclose(out[..., 0], outputs, atol=1e-4)


def test_pod_with_trunk_adds_the_trunk_term_and_b0():
    """(b[:n_modes] basis^T + b[n_modes:] t(y)^T + b_0) / n_modes + mean."""
    model = randomize_(PODDeepONet(branch=[3, 8, 7], n_points=10, n_modes=4, trunk=[1, 5, 3],
                                   activation="tanh"))
    model.fit_basis(torch.randn(6, 10))
    u, y = torch.randn(2, 3), torch.rand(10, 1)
    b = manual_mlp(u, model.branch, 0, torch.tanh, False)
    t = manual_mlp(y, model.trunk, 0, torch.tanh, True)
    expected = (b[:, :4] @ model.pod_basis.T + b[:, 4:] @ t.T + model.b0) / 4 + model.pod_mean
    assert torch.allclose(model(u, y)[..., 0], expected, atol=1e-5)
    assert torch.allclose(model(u, y.expand(2, 10, 1)), model(u, y), atol=1e-6)


def test_pod_errors():
    model = PODDeepONet(branch=[3, 4], n_points=10, n_modes=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        model(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"expected \[N_funcs, 10\]"):
        model.fit_basis(torch.randn(6, 9))
    with pytest.raises(ValueError, match="3 functions cannot give n_modes=4"):
        model.fit_basis(torch.randn(3, 10))
    model.fit_basis(torch.randn(6, 10))
    with pytest.raises(ValueError, match="y has 9 points.*n_points=10"):
        model(torch.randn(2, 3), torch.rand(9, 1))
    with pytest.raises(ValueError, match=r"the branch expects \[B, 3\]"):
        model(torch.randn(2, 4))
    with pytest.raises(ValueError, match="must be n_modes=4 \\+ trunk width 2"):
        PODDeepONet(branch=[3, 4], n_points=10, n_modes=4, trunk=[1, 2])
    with_trunk = PODDeepONet(branch=[3, 6], n_points=10, n_modes=4, trunk=[1, 2])
    with_trunk.fit_basis(torch.randn(6, 10))
    with pytest.raises(ValueError, match="needs the query points"):
        with_trunk(torch.randn(2, 3))


def test_pod_state_dict_round_trip_carries_the_basis():
    """A fresh model from the same kwargs loads the fitted basis, mean and flag."""
    kwargs = {"branch": [3, 8, 4], "n_points": 20, "n_modes": 4}
    a = PODDeepONet(**kwargs)
    a.fit_basis(_low_rank_outputs())
    b = PODDeepONet(**kwargs)
    b.load_state_dict(a.state_dict())
    u = torch.randn(2, 3)
    assert bool(b.pod_fitted) and torch.equal(a(u), b(u))


# --- numerics: gradients, precision, initialisation, training --------------------------------

@pytest.mark.parametrize("kwargs", [
    {"branch": [5, 8, 6]},
    {"branch": [5, 8, 6], "stacked": True, "num_outputs": 2, "strategy": "independent"},
    {"branch": SMALL_CNN, "num_outputs": 2, "strategy": "split_both"},
])
def test_gradients_reach_every_parameter(kwargs):
    model = randomize_(DeepONet(trunk=[2, 7, 6], activation="tanh", **kwargs))
    u = torch.randn(3, *model.input_shape)
    model(u, torch.rand(5, 2)).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs", [
    {"branch": [5, 8, 6]},
    {"branch": [5, 8, 6], "stacked": True, "num_outputs": 2, "strategy": "independent",
     "features": {"name": "fourier", "periods": [1.0], "modes": 2}},
    {"branch": SMALL_CNN, "num_outputs": 3, "strategy": "split_trunk", "trunk": [2, 7, 18],
     "output_transform": {"name": "zero_at", "coordinate": 0}},
])
def test_bf16_autocast_forward_is_close_to_float32(kwargs):
    model = randomize_(DeepONet(**{"trunk": [2, 7, 6], "activation": "tanh", **kwargs}))
    u, y = torch.randn(3, *model.input_shape), torch.rand(5, 2)
    ref = model(u, y)
    assert ref.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(u, y)
        out.float().square().mean().backward()
    assert out.shape == ref.shape and torch.isfinite(out.float()).all()
    assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max()
    pod = PODDeepONet(branch=[5, 4], n_points=5, n_modes=4)
    pod.fit_basis(torch.randn(8, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(pod(torch.randn(2, 5)).float()).all()


def test_float64_model_runs_in_float64():
    model = DeepONet(branch=[5, 8, 6], trunk=[2, 7, 6],
                     features={"name": "fourier", "periods": [1.0], "modes": 2}).double()
    out = model(torch.randn(3, 5, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_glorot_normal_uses_per_network_fans_and_zero_biases():
    """Stacked layer 100 -> 400 of each of 40 nets: std sqrt(2 / 500), not the stack's fans."""
    torch.manual_seed(0)
    model = DeepONet(branch=[100, 400, 40], trunk=[1, 40, 40], stacked=True)
    w = model.branch.layers[0].weight
    assert w.shape == (40, 100, 400)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.02)
    assert all((layer.bias == 0).all() for layer in model.branch.layers)
    conv = DeepONet(branch=DARCY_CNN_BRANCH, trunk=[2, 128], num_outputs=2,
                    strategy="independent").branch.convs[1].weight
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (25 * 64 + 25 * 128)), rel=0.02)


def test_adam_fits_a_linear_operator():
    """G(u)(y) = y * mean(u) on 16 functions x 10 points: 150 Adam steps cut the MSE 20x."""
    torch.manual_seed(0)
    model = DeepONet(branch=[8, 16, 16], trunk=[1, 16, 16], activation="tanh")
    u, y = torch.randn(16, 8), torch.linspace(0, 1, 10)[:, None]
    target = u.mean(1)[:, None, None] * y[None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = (model(u, y) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20


def test_builds_from_omegaconf_containers():
    """Hydra passes DictConfig / ListConfig values unless told to convert."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"branch": dict(DARCY_CNN_BRANCH), "trunk": [2, 128, 128, 128, 128],
                            "output_transform": {"name": "dirichlet_box",
                                                 "coordinate": [0, 1]}})
    model = DeepONet(branch=cfg.branch, trunk=cfg.trunk, output_transform=cfg.output_transform)
    assert n_params(model) == 682_753
    assert model(torch.randn(2, 841), torch.rand(3, 2)).shape == (2, 3, 1)


def test_state_dict_round_trip_and_registry():
    kwargs = {"branch": [5, 8, 6], "trunk": [2, 7, 6], "num_outputs": 2,
              "strategy": "independent", "stacked": True}
    a, b = randomize_(DeepONet(**kwargs)), DeepONet(**kwargs)
    b.load_state_dict(a.state_dict())
    u, y = torch.randn(3, 5), torch.rand(4, 2)
    assert torch.equal(a(u, y), b(u, y))
    assert resolve_model_name("deeponet") == "opnet.models.deeponet.DeepONet"
    assert resolve_model_name("pod_deeponet") == "opnet.models.deeponet.PODDeepONet"
