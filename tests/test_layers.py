"""Reusable layers (opnet.models.layers): the N-D spectral convolution against explicit FFT
computations and analytic Fourier modes, its resolution invariance, the shared activation
table, grouped linear maps, initialisers, and the re-exports from opnet.models.deeponet."""

from __future__ import annotations

import math

import pytest
import torch

from opnet.models import deeponet, layers
from opnet.models.layers import (
    ACTIVATIONS,
    GroupedLinear,
    SpectralConv,
    activation,
    initialize,
)


def randomized(conv: SpectralConv, seed: int = 0) -> SpectralConv:
    """Weights ~ N(0, 1) (real and imaginary parts), so every corner and mode matters."""
    torch.manual_seed(seed)
    with torch.no_grad():
        conv.weight.normal_()
    return conv


def test_2d_spectral_conv_equals_the_explicit_rfft2_computation():
    """FNO2d's layer: out_ft[:m1, :m2] = x_ft[:m1, :m2] W0 and out_ft[-m1:, :m2] = x_ft[-m1:,
    :m2] W1 (per mode, a [C_in, C_out] complex matrix), everything else zero."""
    conv = randomized(SpectralConv(3, 2, (4, 3), dim=2))
    x = torch.randn(5, 3, 12, 10)
    w = torch.view_as_complex(conv.weight.detach())
    x_ft = torch.fft.rfft2(x)
    out = torch.zeros(5, 2, 12, 6, dtype=torch.cfloat)
    for kx in range(4):
        for ky in range(3):
            out[:, :, kx, ky] = x_ft[:, :, kx, ky] @ w[0, :, :, kx, ky]
            out[:, :, 12 - 4 + kx, ky] = x_ft[:, :, 12 - 4 + kx, ky] @ w[1, :, :, kx, ky]
    expected = torch.fft.irfft2(out, s=(12, 10))
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_3d_spectral_conv_uses_the_reference_corner_order():
    """fourier_3d.py: weights1..4 act on [:m1, :m2, :m3], [-m1:, :m2], [:m1, -m2:] and
    [-m1:, -m2:]; they are corners 0..3 here."""
    m1, m2, m3 = 2, 3, 2
    conv = randomized(SpectralConv(2, 3, (m1, m2, m3), dim=3))
    x = torch.randn(2, 2, 6, 8, 5)
    w = torch.view_as_complex(conv.weight.detach())
    x_ft = torch.fft.rfftn(x, dim=(-3, -2, -1))
    out = torch.zeros(2, 3, 6, 8, 3, dtype=torch.cfloat)
    for c, (sx, sy) in enumerate([(slice(None, m1), slice(None, m2)),
                                  (slice(-m1, None), slice(None, m2)),
                                  (slice(None, m1), slice(-m2, None)),
                                  (slice(-m1, None), slice(-m2, None))]):
        out[:, :, sx, sy, :m3] = torch.einsum("bixyz,ioxyz->boxyz", x_ft[:, :, sx, sy, :m3], w[c])
    expected = torch.fft.irfftn(out, s=(6, 8, 5), dim=(-3, -2, -1))
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_a_single_fourier_mode_is_scaled_and_shifted_by_its_weight():
    """1-D: input channel i = c_i cos(2 pi k x) has rfft coefficient n c_i / 2 at k only, so
    output o = sum_i c_i (a_io cos(2 pi k x) - b_io sin(2 pi k x)) with W[i, o, k] = a + ib,
    whatever the weights of the other modes."""
    n, k = 32, 3
    conv = randomized(SpectralConv(2, 3, 5, dim=1))
    x = torch.arange(n) / n
    c = torch.tensor([0.7, -1.3])
    u = c[None, :, None] * torch.cos(2 * math.pi * k * x)
    a, b = conv.weight.detach()[0, :, :, k].unbind(-1)  # [in, out] each
    expected = (torch.einsum("i,io->o", c, a)[:, None] * torch.cos(2 * math.pi * k * x)
                - torch.einsum("i,io->o", c, b)[:, None] * torch.sin(2 * math.pi * k * x))
    assert torch.allclose(conv(u)[0], expected, atol=1e-5)


def test_a_negative_frequency_uses_the_high_corner():
    """2-D: cos(2 pi (-2 x + y)) lives at rfft2 index (n - 2, 1) only: weight block 1 (the
    negative frequencies of axis 0), position m1 - 2 in it."""
    n, m = 16, 4
    conv = randomized(SpectralConv(1, 1, m, dim=2))
    x = torch.arange(n) / n
    phase = 2 * math.pi * (-2 * x[:, None] + x[None, :])
    a, b = conv.weight.detach()[1, 0, 0, m - 2, 1]
    expected = a * torch.cos(phase) - b * torch.sin(phase)
    assert torch.allclose(conv(torch.cos(phase)[None, None])[0, 0], expected, atol=1e-5)


def band_limited(n: int, dim: int, freqs: int, seed: int = 0) -> torch.Tensor:
    """Sum of cos/sin waves with |k_j| < freqs on the grid x_j = i / n: [1, 2, n, ...]."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.arange(n, dtype=torch.float64) / n
    coords = torch.meshgrid(*[x] * dim, indexing="ij")
    channels = []
    for _ in range(2):
        field = torch.zeros([n] * dim, dtype=torch.float64)
        for k in torch.cartesian_prod(*[torch.arange(-freqs + 1, freqs)] * dim).reshape(-1, dim):
            phase = 2 * math.pi * sum(int(kj) * xj for kj, xj in zip(k, coords, strict=True))
            a, b = torch.randn(2, generator=gen, dtype=torch.float64)
            field += a * torch.cos(phase) + b * torch.sin(phase)
        channels.append(field)
    return torch.stack(channels)[None].float()


@pytest.mark.parametrize("dim, coarse", [(1, 16), (2, 12)])
def test_spectral_conv_is_resolution_invariant(dim, coarse):
    """A band-limited input (frequencies below the kept modes) sampled on a grid twice as
    fine gives the coarse output at the shared nodes: the layer is a map between functions."""
    conv = randomized(SpectralConv(2, 3, 4, dim=dim))
    out_coarse = conv(band_limited(coarse, dim, freqs=4))
    out_fine = conv(band_limited(2 * coarse, dim, freqs=4))
    shared = (..., *[slice(None, None, 2)] * dim)
    assert out_coarse.abs().max() > 1.0
    assert torch.allclose(out_fine[shared], out_coarse, atol=1e-5 * out_coarse.abs().max().item())


def test_too_small_1d_grid_is_named():
    with pytest.raises(ValueError, match=r"grid 10 is too small for 7 Fourier modes \(need a "
                                         r"grid of at least 12\)"):
        SpectralConv(1, 1, 7, dim=1)(torch.randn(1, 1, 10))


def test_bad_modes_are_named():
    with pytest.raises(ValueError, match=r"modes=\[4, 4\], dim=3"):
        SpectralConv(1, 1, (4, 4), dim=3)
    with pytest.raises(ValueError, match=r"modes=\[0\]"):
        SpectralConv(1, 1, 0, dim=1)


def test_one_activation_table_with_every_name_both_families_took():
    assert set(ACTIVATIONS) == {"gelu", "relu", "tanh", "silu", "sin"}
    x = torch.linspace(-2, 2, 9)
    assert torch.equal(activation("sin")(x), torch.sin(x))
    assert torch.allclose(activation("silu")(x), x * torch.sigmoid(x), atol=1e-6)
    with pytest.raises(ValueError, match=r"branch.activation='elu' is not supported"):
        activation("elu", owner="branch.activation")


def test_grouped_linear_is_g_separate_affine_maps():
    torch.manual_seed(0)
    layer = GroupedLinear(3, 4, 5, initializer="default")
    x = torch.randn(7, 3, 4)
    expected = torch.stack([x[:, g] @ layer.weight[g] + layer.bias[g] for g in range(3)], 1)
    assert torch.allclose(layer(x, shared=False), expected, atol=1e-6)
    shared = torch.randn(7, 4)
    assert torch.allclose(layer(shared, shared=True),
                          layer(shared[:, None].expand(7, 3, 4), shared=False), atol=1e-6)


def test_glorot_uniform_bound_and_zero_bias():
    """Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); the bias is zeroed."""
    torch.manual_seed(0)
    weight, bias = torch.empty(200, 300), torch.ones(300)
    initialize(weight, bias, 200, 300, "glorot_uniform")
    a = math.sqrt(6 / 500)
    assert weight.abs().max() <= a and weight.abs().max() > 0.99 * a
    assert weight.var().item() == pytest.approx(a * a / 3, rel=0.02)
    assert not bias.any()
    with pytest.raises(ValueError, match="initializer='lecun' is not supported"):
        initialize(weight, bias, 200, 300, "lecun")


def test_deeponet_reexports_the_moved_layers():
    for name in ("Sin", "GroupedLinear", "GroupedMLP", "FourierFeatures", "CNNBranch",
                 "INITIALIZERS"):
        assert getattr(deeponet, name) is getattr(layers, name)
