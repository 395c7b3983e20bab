"""MgNO (opnet.models.mgno): sizes, parameter counts, linearity, boundary handling, training."""

from __future__ import annotations

import math

import pytest
import torch

from opnet.models.mgno import (
    HELMHOLTZ,
    HELMHOLTZ_OFFICIAL,
    NS2_OFFICIAL,
    MgConv,
    MgNO,
    parse_smoothing,
)

DARCY = [[1, 0]] * 5 + [[2, 0]]  # `--num_iteration 10 10 10 10 10 20`
# Small NS / Helmholtz models with the official structure, for the fast behavioural tests.
NS_SMALL = {**NS2_OFFICIAL, "width": 6, "layers": 2, "smoothing": [[1, 0], [1, 1], [2, 0]],
            "norm_resolution": [16, 16]}
HELM_SMALL = {**HELMHOLTZ_OFFICIAL, "width": 3, "layers": 2, "norm_resolution": [101, 101]}


pytestmark = pytest.mark.usefixtures("one_thread")


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


def shifted_pair(model: torch.nn.Module, x: torch.Tensor,
                 shift: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(model(roll(x)), roll(model(x))), rolled over the last two dims."""
    dims = (-2, -1)
    with torch.no_grad():
        return model(torch.roll(x, shift, dims)), torch.roll(model(x), shift, dims)


@pytest.mark.parametrize("kernels", [None, [3, 4, 3]])
def test_circular_padding_is_translation_equivariant(kernels):
    """Periodic grid, 4 levels: shifting the input by multiples of 2**3 shifts the output.

    Every conv (A, S, R, Pi and the wrapped prolongation) must see periodic data for this to
    hold to rounding; with zero padding the boundary breaks it.
    """
    torch.manual_seed(0)
    smoothing = [[1, 0], [1, 1], [1, 0], [2, 0]]
    x = torch.randn(2, 1, 32, 24)
    model = MgNO(width=6, layers=2, smoothing=smoothing, padding="circular",
                 prolongation_kernels=kernels)
    assert torch.allclose(*shifted_pair(model, x, (8, 16)), atol=1e-5, rtol=1e-4)

    zeros = MgNO(width=6, layers=2, smoothing=smoothing, padding="zeros",
                 prolongation_kernels=kernels)
    shifted_out, out_shifted = shifted_pair(zeros, x, (8, 16))
    assert (shifted_out - out_shifted).abs().max() > 1e-3


def test_ns_without_level_norm_is_translation_equivariant():
    """NS structure (biased A/S, no branch, residual) on a periodic 32x24 grid, shifts by 2**2.

    Biases are constant in space and the transposed convs wrap, so u_{t+1} commutes with
    translations; the official zero-padded transposed convs (wrap_prolongation=False) do not.
    """
    torch.manual_seed(0)
    kwargs = {**NS_SMALL, "level_norm": False, "norm_resolution": None}
    x = torch.randn(2, 1, 32, 24)
    model = MgNO(**{**kwargs, "wrap_prolongation": True})
    assert torch.allclose(*shifted_pair(model, x, (4, 12)), atol=1e-5, rtol=1e-4)
    shifted_out, out_shifted = shifted_pair(MgNO(**kwargs), x, (4, 12))
    assert (shifted_out - out_shifted).abs().max() > 1e-3


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


def test_full_v_cycle_matches_its_definition():
    """smoothing [[1, 1], [2, 0]]: down (init, R/Pi, 2 pre-steps), up (ConvT, 1 post-step)."""
    torch.manual_seed(0)
    conv = MgConv(2, 5, [[1, 1], [2, 0]], padding="zeros", bias=True)
    f = torch.randn(3, 2, 12, 10)
    with torch.no_grad():
        u0 = conv.init(f)
        f1, u1 = conv.restrict_f[0](f), conv.restrict_u[0](u0)
        for step in conv.pre[1]:
            u1 = u1 + step.S(f1 - step.A(u1))
        u0 = u0 + torch.nn.functional.conv_transpose2d(u1, conv.prolong[0].weight, stride=2,
                                                       padding=1)
        post = conv.post[0][0]
        expected = u0 + post.S(f - post.A(u0))
        assert len(conv.pre[1]) == 2 and len(conv.post[0]) == 1
        assert torch.allclose(conv(f), expected, atol=1e-6)


def test_ns2_parameter_count_matches_official():
    """MgNO_NS, NS2 flags: 2,885,194 with --bias, 2,883,300 without (1,894 A/S biases).

    The per-level LayerNorm([32, 64/2^j, 64/2^j]) affine, j = 0..3, is 2*32*5440 = 348,160
    per layer, 1,740,800 in all.
    """
    model = MgNO(**NS2_OFFICIAL)
    assert n_params(model) == 2_885_194
    assert n_params(MgNO(**{**NS2_OFFICIAL, "mg_bias": False})) == 2_883_300
    assert sum(n_params(m.level_norms) for m in model.mg) == 1_740_800
    assert model.local is None and model.norms is None


def test_helmholtz_parameter_count_matches_official():
    """MgNO_helm, `4 layers, width 20, 1 1 1 1 2`: 5,351,806.

    1,632,160 = 4 x LayerNorm([20, 101, 101]) affine; 11,241 = the first A of each of the five
    cycles, which MgConv_helm builds but never uses (20*1*9+1 + 3*(20*20*9+20) + 1*20*9+20).
    """
    model = MgNO(**HELMHOLTZ_OFFICIAL)
    assert n_params(model) == 5_351_806
    assert n_params(model.norms) == 1_632_160
    dead = [m.init_A for m in [*model.mg, model.head]]
    assert sum(n_params(a) for a in dead) == 11_241
    assert not any(p.requires_grad for a in dead for p in a.parameters())
    assert n_params(MgNO(**HELMHOLTZ)) == 5_351_806 - 1_632_160 - 11_241 + 4 * 2 * 20


def test_helmholtz_levels_and_output_shape():
    """Unpadded restriction 101 -> 50 -> 24 -> 11 -> 5, ConvT kernels 3, 4, 4, 3 back to 101."""
    model = MgNO(**HELM_SMALL)
    assert model.mg[0].level_sizes(101, 101) == [(101, 101), (50, 50), (24, 24), (11, 11),
                                                 (5, 5)]
    channels = [m.weight.shape[:2] for m in model.mg[1].prolong]  # ConvT: [C_in, C_out, k, k]
    assert channels == [(6, 3), (9, 6), (12, 9), (15, 12)]  # width 3 x (j + 2) -> x (j + 1)
    assert [m.weight.shape[-1] for m in model.mg[1].prolong] == [3, 4, 4, 3]
    assert [m.weight.shape[:2] for m in model.head.restrict_u] == [(2, 1), (3, 2), (4, 3),
                                                                   (5, 4)]
    x = torch.randn(2, 1, 101, 101)
    assert model(x).shape == (2, 1, 101, 101)


def test_helmholtz_with_group_norm_runs_on_other_grids():
    """GroupNorm(1, C) has no per-pixel weights: the same model runs on 101x101 and 63x80."""
    model = MgNO(**{**HELMHOLTZ, "width": 3, "layers": 1})
    for shape in [(101, 101), (63, 80)]:
        assert model(torch.randn(1, 1, *shape)).shape == (1, 1, *shape)


@pytest.mark.parametrize("kwargs", [NS_SMALL, HELM_SMALL], ids=["ns_level_norm", "helm_layer"])
def test_per_pixel_norms_reject_another_grid(kwargs):
    """LayerNorm weights of shape [C, H, W] only fit norm_resolution: a clear ValueError."""
    model = MgNO(**kwargs)
    h, w = kwargs["norm_resolution"]
    with pytest.raises(ValueError, match=rf"grid {h + 2}x{w}.*norm_resolution={h}x{w}"):
        model(torch.randn(1, kwargs["in_channels"], h + 2, w))
    with pytest.raises(ValueError, match="norm_resolution"):
        MgNO(**{**kwargs, "norm_resolution": None})


def test_level_norm_mgconv_alone_rejects_another_grid():
    conv = MgConv(1, 4, [[1, 0], [1, 0]], level_norm=True, norm_resolution=8)
    assert conv(torch.randn(1, 1, 8, 8)).shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"input grid 16x16 differs from norm_resolution=8x8"):
        conv(torch.randn(1, 1, 16, 16))


def test_group_level_norm_is_resolution_free_and_translation_equivariant():
    """level_norm="group": GroupNorm(1, C) per level (2·C parameters each, not C·h·w), runs on
    any grid, normalises each level's u over [C, h, w] as the per-pixel LayerNorm does before
    its affine, and keeps the periodic NS cycle translation-equivariant."""
    torch.manual_seed(0)
    kwargs = {**NS_SMALL, "level_norm": "group", "norm_resolution": None,
              "wrap_prolongation": True}
    model = MgNO(**kwargs)
    levels = len(NS_SMALL["smoothing"]) - 1
    assert sum(n_params(m.level_norms) for m in model.mg) == 2 * 2 * 6 * levels
    for shape in ((16, 16), (32, 24)):
        assert model(torch.randn(1, 1, *shape)).shape == (1, 1, *shape)
    assert torch.allclose(*shifted_pair(model, torch.randn(2, 1, 32, 24), (4, 12)),
                          atol=1e-5, rtol=1e-4)
    group, layer = (MgConv(1, 4, [[1, 0], [1, 0]], level_norm=norm, norm_resolution=8)
                    for norm in ("group", "layer"))
    convs = {k: v for k, v in group.state_dict().items() if "level_norms" not in k}
    layer.load_state_dict(convs, strict=False)  # the same convs; both affines still 1, 0
    f = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(group(f), layer(f), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"level_norm='batch': expected one of"):
        MgConv(1, 4, [[1, 0], [1, 0]], level_norm="batch")


def test_positional_channels_are_the_coordinates_and_keep_the_residual_on_the_input():
    """positional="periodic" appends (sin 2πx, cos 2πx, sin 2πy, cos 2πy) at i/n (NS2's forcing
    sin 2π(x+y) + cos 2π(x+y) depends on position, which circular convolutions alone cannot
    see), "nodes" (x, y) at i/(n-1); only the first layer grows (by 3x3 A/S convs of the
    extra f-channels), and the residual adds the input field, not a coordinate."""
    torch.manual_seed(0)
    base = {**NS_SMALL, "level_norm": False, "norm_resolution": None}
    plain = MgNO(**base)
    periodic = MgNO(**base, positional="periodic")
    nodes = MgNO(**base, positional="nodes")
    x = torch.randn(2, 1, 16, 12)
    c = periodic.coordinates(x)
    assert c.shape == (2, 4, 16, 12)
    i, j = torch.arange(16.0)[:, None], torch.arange(12.0)[None, :]
    expected = torch.stack([torch.sin(2 * math.pi * i / 16).expand(16, 12),
                            torch.cos(2 * math.pi * i / 16).expand(16, 12),
                            torch.sin(2 * math.pi * j / 12).expand(16, 12),
                            torch.cos(2 * math.pi * j / 12).expand(16, 12)])
    torch.testing.assert_close(c[1], expected, atol=1e-6, rtol=0)
    n = nodes.coordinates(x)[0]
    assert n.shape == (2, 16, 12) and n[0, -1, 0] == 1 and n[1, 0, -1] == 1
    assert n[:, 0, 0].sum() == 0
    first = n_params(periodic.mg[0]) - n_params(plain.mg[0])
    assert n_params(periodic) - n_params(plain) == first > 0
    assert 0 < n_params(nodes) - n_params(plain) < first
    # a uniform input: the periodic cycle alone (equivariant to shifts by 2**(levels-1) = 4)
    # answers with a 4-periodic field, so no forcing that varies on the domain's scale can be
    # learnt; with the coordinates it can
    zero = torch.zeros(1, 1, 16, 16)
    wrap = {**base, "wrap_prolongation": True}
    for model, periodic_answer in ((MgNO(**wrap), True),
                                   (MgNO(**wrap, positional="periodic"), False)):
        out = model(zero)
        shifted = torch.roll(out, shifts=(4, 4), dims=(-2, -1))
        assert torch.allclose(out, shifted, atol=1e-6) == periodic_answer
    torch.nn.init.zeros_(periodic.head.weight)
    torch.testing.assert_close(periodic(x), x)  # residual: the field, not a coordinate
    with pytest.raises(ValueError, match=r"positional='xy': expected one of \('none', "):
        MgNO(**base, positional="xy")


def test_ns_residual_returns_the_input_when_the_head_is_zero():
    """u_{t+1} = u_t + N(u_t): a zero head makes N = 0, so the output is u_t exactly."""
    torch.manual_seed(0)
    model = MgNO(**NS_SMALL)
    torch.nn.init.zeros_(model.head.weight)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_residual_adds_the_last_input_channels():
    """in_channels=3 (a history), out_channels=1: the skip is the latest frame x[:, -1:]."""
    model = MgNO(in_channels=3, out_channels=1, width=4, layers=1, smoothing=[[1, 0], [1, 0]],
                 branch=False, residual=True)
    torch.nn.init.zeros_(model.head.weight)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), x[:, -1:])
    with pytest.raises(ValueError, match="residual"):
        MgNO(in_channels=1, out_channels=2, residual=True)


def test_variant_arguments_are_checked():
    with pytest.raises(ValueError, match="norm="):
        MgNO(norm="batch")
    with pytest.raises(ValueError, match="head="):
        MgNO(head="mlp")
    with pytest.raises(ValueError, match="channel_multipliers"):
        MgNO(smoothing=[1, 1, 2], channel_multipliers=[2, 2, 3])
    with pytest.raises(ValueError, match="restrict_padding"):
        MgNO(restrict_padding=2)
    with pytest.raises(ValueError, match=r"2\*\*levels - 1"):
        MgNO(smoothing=[1, 1, 1], restrict_padding=0)(torch.randn(1, 1, 6, 6))


@pytest.mark.parametrize("kwargs", [NS_SMALL, HELM_SMALL, {**HELMHOLTZ, "width": 3}],
                         ids=["ns", "helm_official", "helm_group"])
def test_variants_bf16_autocast_forward_backward_is_finite(kwargs):
    torch.manual_seed(0)
    model = MgNO(**{**kwargs, "layers": 1})
    h, w = kwargs["norm_resolution"] or (51, 60)
    x = torch.randn(2, 1, h, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
        loss = y.float().pow(2).mean()
    loss.backward()
    assert y.shape == (2, 1, h, w) and torch.isfinite(y.float()).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("kwargs", [NS_SMALL, HELM_SMALL], ids=["ns", "helm"])
def test_variants_state_dict_round_trip(kwargs):
    """kwargs (plain values only) + state_dict rebuild the NS / Helmholtz model."""
    a, b = MgNO(**kwargs), MgNO(**kwargs)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 1, *kwargs["norm_resolution"])
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
