"""FNO-2D baseline: the reference parameter count, shapes, spectral truncation, training."""

import math

import pytest
import torch

from opnet.models.fno import FNO2d, SpectralConv2d


def test_parameter_count_matches_the_reference_fno2d():
    """fourier_2d.py with modes 12, width 32 and input (a, x, y): 2,368,001 parameters."""
    assert sum(p.numel() for p in FNO2d(modes=12, width=32).parameters()) == 2_368_001


@pytest.mark.parametrize("shape", [(32, 32), (33, 47), (29, 64)])
def test_output_has_the_input_grid(shape):
    net = FNO2d(in_channels=2, out_channels=3, modes=6, width=8)
    assert net(torch.randn(2, 2, *shape)).shape == (2, 3, *shape)


def test_spectral_conv_keeps_low_modes_and_drops_high_ones():
    """With identity weights on the kept modes, a low mode passes unchanged and a mode
    above the cut-off is removed."""
    conv = SpectralConv2d(1, 1, (4, 4))
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[..., 0] = 1.0
    n = 32
    x = torch.arange(n) / n
    low = torch.cos(2 * math.pi * (2 * x[:, None] + 3 * x[None, :]))[None, None]
    high = torch.cos(2 * math.pi * 9 * x[:, None]).expand(n, n)[None, None]
    assert torch.allclose(conv(low), low, atol=1e-5)
    assert conv(high).abs().max() < 1e-5


def test_too_small_grid_is_named():
    with pytest.raises(ValueError, match="too small for 12x12 Fourier modes"):
        FNO2d(modes=12, domain_padding=0)(torch.randn(1, 1, 16, 16))


def test_bf16_autocast_and_training_lower_the_loss():
    """A shift of band-limited fields is diagonal in Fourier space: learnable."""
    torch.manual_seed(0)
    net = FNO2d(modes=4, width=8, domain_padding=0)
    coeff = torch.zeros(4, 1, 16, 9, dtype=torch.cfloat)
    coeff[..., :3, :3] = torch.randn(4, 1, 3, 3, dtype=torch.cfloat)
    x = torch.fft.irfft2(coeff, s=(16, 16)) * 16
    y = torch.roll(x, 1, dims=-1) * 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    out.float().pow(2).mean().backward()
    assert torch.isfinite(out.float()).all()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = (net(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
