"""MgNO (opnet.models.mgno): sizes, parameter counts, linearity, boundary handling, training."""

from __future__ import annotations

import pytest
import torch

from opnet.models.mgno import MgConv, MgNO, parse_smoothing

DARCY = [[1, 0]] * 5 + [[2, 0]]  # `--num_iteration 10 10 10 10 10 20`


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one intra-op thread avoids OpenMP barrier stalls on busy CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_darcy_rough_parameter_count_matches_official():
    """Official MgNO_DC, L=4, C=24, 6 levels: 572,661 (74,853 + 3 x 165,312 + 1x1s + head)."""
    model = MgNO(in_channels=1, out_channels=1, width=24, layers=4, smoothing=DARCY)
    assert n_params(model) == 572_661
    assert n_params(model.mg[0]) == 74_853
    assert [n_params(m) for m in model.mg[1:]] == [165_312] * 3
    assert sum(n_params(m) for m in model.local) + n_params(model.head) == 48 + 3 * 600 + 24


def test_darcy_smooth_parameter_count_matches_official():
    """MgNO_DC_smooth, L=5: kernel-3 prolongations (24*24*9 instead of *16) give 678,093."""
    model = MgNO(layers=5, smoothing=DARCY, prolongation_kernels=[3, 4, 3, 3, 4])
    assert n_params(model) == 678_093


def test_level_sizes_halve_with_ceil():
    conv = MgConv(1, 4, DARCY)
    assert [h for h, _ in conv.level_sizes(256, 256)] == [256, 128, 64, 32, 16, 8]
    assert [h for h, _ in conv.level_sizes(211, 211)] == [211, 106, 53, 27, 14, 7]


@pytest.mark.parametrize("kernels", [[3, 4, 3, 3, 4], None])
def test_darcy_smooth_grid_211_round_trips(kernels):
    """211 -> 7 and back: official kernels fit exactly, default kernel 4 crops odd levels."""
    model = MgNO(width=4, layers=1, smoothing=DARCY, prolongation_kernels=kernels)
    x = torch.randn(1, 1, 211, 211)
    assert model(x).shape == (1, 1, 211, 211)


@pytest.mark.parametrize("padding", ["zeros", "circular", "reflect"])
@pytest.mark.parametrize("shape", [(63, 65), (33, 47), (64, 64)])
def test_odd_and_non_square_grids_keep_their_shape(shape, padding):
    model = MgNO(in_channels=2, out_channels=3, width=4, layers=2, smoothing=DARCY,
                 padding=padding, prolongation_kernels=[3, 4, 3, 4, 3])
    x = torch.randn(2, 2, *shape)
    assert model(x).shape == (2, 3, *shape)


def test_too_small_grid_raises():
    model = MgNO(width=4, layers=1, smoothing=DARCY)  # 6 levels need H, W >= 32
    model(torch.randn(1, 1, 32, 40))
    with pytest.raises(ValueError, match=r"31x40.*6 multigrid levels"):
        model(torch.randn(1, 1, 31, 40))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="padding"):
        MgNO(padding="replicate")
    with pytest.raises(ValueError, match="activation"):
        MgNO(activation="softmax")
    with pytest.raises(ValueError, match="prolongation_kernels"):
        MgNO(prolongation_kernels=[4, 4])
    with pytest.raises(ValueError, match="finest level"):
        MgNO(smoothing=[[0, 1], [1, 0]])


def test_parse_smoothing_reads_the_reference_strings():
    """`10 10 10 10 10 20` is six [pre, post] pairs, as darcy.py's type=list parses it."""
    assert parse_smoothing(["10", "10", "10", "10", "10", "20"]) == DARCY
    assert parse_smoothing("10 11 20") == [[1, 0], [1, 1], [2, 0]]
    assert parse_smoothing([(1, 0), (2, 1)]) == [[1, 0], [2, 1]]
    assert parse_smoothing([1, 1, 2]) == [[1, 0], [1, 0], [2, 0]]
    assert MgNO(smoothing=["10"] * 5 + ["20"]).smoothing == DARCY


@pytest.mark.parametrize("padding", ["zeros", "circular", "reflect"])
def test_mgconv_is_linear(padding):
    """W_Mg has no nonlinearity and no bias: W(a x + b y) = a W(x) + b W(y)."""
    torch.manual_seed(0)
    conv = MgConv(3, 8, [[1, 1], [2, 1], [1, 1], [2, 0]], padding=padding,
                  prolongation_kernels=[3, 4, 3])
    x, y = torch.randn(2, 2, 3, 30, 27).unbind(0)
    a, b = 0.7, -1.9
    with torch.no_grad():
        lhs = conv(a * x + b * y)
        rhs = a * conv(x) + b * conv(y)
    assert (lhs - rhs).norm() / rhs.norm() < 1e-5


def test_mgconv_with_bias_is_affine_not_linear():
    conv = MgConv(1, 4, [[1, 0], [1, 0]], bias=True)
    with torch.no_grad():
        assert conv(torch.zeros(1, 1, 8, 8)).abs().max() > 0


@pytest.mark.parametrize("kernels", [None, [3, 4, 3]])
def test_circular_padding_is_translation_equivariant(kernels):
    """Periodic grid, 4 levels: shifting the input by multiples of 2**3 shifts the output.

    Every conv (A, S, R, Pi and the wrapped prolongation) must see periodic data for this to
    hold to rounding; with zero padding the boundary breaks it.
    """
    torch.manual_seed(0)
    smoothing = [[1, 0], [1, 1], [1, 0], [2, 0]]
    x = torch.randn(2, 1, 32, 24)
    shift, dims = (8, 16), (-2, -1)
    model = MgNO(width=6, layers=2, smoothing=smoothing, padding="circular",
                 prolongation_kernels=kernels)
    with torch.no_grad():
        shifted_out = model(torch.roll(x, shift, dims))
        out_shifted = torch.roll(model(x), shift, dims)
    assert torch.allclose(shifted_out, out_shifted, atol=1e-5, rtol=1e-4)

    zeros = MgNO(width=6, layers=2, smoothing=smoothing, padding="zeros",
                 prolongation_kernels=kernels)
    with torch.no_grad():
        gap = (zeros(torch.roll(x, shift, dims)) - torch.roll(zeros(x), shift, dims)).abs()
    assert gap.max() > 1e-3


def test_bf16_autocast_forward_backward_is_finite():
    torch.manual_seed(0)
    model = MgNO(width=8, layers=2, smoothing=DARCY[:4])
    x = torch.randn(2, 1, 33, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
        loss = y.float().pow(2).mean()
    loss.backward()
    assert y.shape == (2, 1, 33, 40) and torch.isfinite(y.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("restrict_residual", [False, True])
def test_adam_steps_lower_the_loss(restrict_residual):
    """Fitting a fixed batch (target: a smoothed, squared input) must make progress."""
    torch.manual_seed(0)
    model = MgNO(width=8, layers=2, smoothing=[[1, 0], [1, 1], [2, 0]],
                 restrict_residual=restrict_residual)
    x = torch.randn(4, 1, 16, 16)
    y = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1) ** 2
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_state_dict_round_trip_rebuilds_the_same_function():
    """kwargs + state_dict rebuild the model (the checkpoint path)."""
    kwargs = {"width": 6, "layers": 2, "smoothing": [[1, 0], [1, 0], [2, 0]],
              "padding": "circular", "prolongation_kernels": [3, 4]}
    a, b = MgNO(**kwargs), MgNO(**kwargs)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
