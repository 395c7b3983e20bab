"""Relative L2 and the MgNO FFT-weighted H1 metric, against closed forms."""

import math

import pytest
import torch

from opnet.training.losses import get_loss, h1, h1_abs, reduce, rel_l2


def _mode(kx: int, ky: int, n: int = 64) -> torch.Tensor:
    x = torch.arange(n) / n
    return torch.cos(2 * math.pi * (kx * x[:, None] + ky * x[None, :]))[None, None]


def test_rel_l2_is_zero_for_exact_and_one_for_doubled():
    y = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    assert torch.all(rel_l2(y, y) == 0)
    assert torch.allclose(rel_l2(2 * y, y), torch.ones(3, dtype=torch.float32))


def test_rel_l2_is_per_sample():
    """Sample 0 exact, sample 1 off by 10%: the values are [0, 0.1], not a pooled ratio."""
    y = torch.randn(2, 1, 16, 16)
    pred = y.clone()
    pred[1] *= 1.1
    assert torch.allclose(rel_l2(pred, y), torch.tensor([0.0, 0.1]), atol=1e-6)


def test_h1_weights_a_fourier_mode_by_sqrt_one_plus_k2():
    """y = mode (1,0); pred = y + d*mode (3,0): H1 error = d*sqrt(1+9)/sqrt(1+1)."""
    d = 0.01
    y, e = _mode(1, 0), _mode(3, 0)
    assert h1(y + d * e, y).item() == pytest.approx(d * math.sqrt(10 / 2), rel=1e-4)
    assert h1(y, y).item() == 0.0


def test_h1_cutoff_drops_the_derivative_weight_of_high_modes():
    """Mode (25,0) lies above the cutoff 20: weight 1 instead of sqrt(1+625)."""
    d = 0.01
    y, e = _mode(1, 0), _mode(25, 0)
    assert h1(y + d * e, y).item() == pytest.approx(d / math.sqrt(2), rel=1e-4)
    assert h1(y + d * e, y, cutoff=None).item() == pytest.approx(d * math.sqrt(626 / 2), rel=1e-4)


def test_reduce_and_bad_names():
    v = torch.tensor([1.0, 3.0])
    assert reduce(v, "sum").item() == 4.0 and reduce(v, "mean").item() == 2.0
    with pytest.raises(ValueError, match="reduction 'max'"):
        reduce(v, "max")
    with pytest.raises(ValueError, match="loss 'l3'"):
        get_loss("l3")


def test_h1_abs_is_the_helmholtz_hsloss_d():
    """e = αx + βy on x = i/H: central and one-sided differences are exact, so the loss is
    √(Σ10e² + H·W(α² + β²)) — absolute, and independent of y."""
    H, W, alpha, beta = 12, 10, 0.3, -0.7
    x = torch.arange(H, dtype=torch.float64)[:, None] / H
    y = torch.arange(W, dtype=torch.float64)[None, :] / W
    e = (alpha * x + beta * y)[None, None]
    want = math.sqrt(10 * float((e**2).sum()) + H * W * (alpha**2 + beta**2))
    target = torch.randn(1, 1, H, W, dtype=torch.float64)
    assert h1_abs(target + e, target).item() == pytest.approx(want, rel=1e-5)
    assert get_loss("h1_abs") is h1_abs
