"""Gaussian normalizers: statistics from the data, exact inverse, buffers in state_dict."""

import numpy as np
import pytest
import torch

from opnet.data.normalizers import GaussianNormalizer


def _data():
    rng = np.random.default_rng(0)
    scale = np.array([3.0, 0.5]).reshape(1, 2, 1, 1)
    shift = np.array([7.0, -2.0]).reshape(1, 2, 1, 1)
    return rng.normal(size=(200, 2, 6, 5)) * scale + shift


def test_scalar_normalizer_gives_zero_mean_unit_std_per_channel():
    x = _data()
    norm = GaussianNormalizer("scalar", channels=2, grid=(6, 5)).fit(x)
    z = norm.encode(torch.as_tensor(x, dtype=torch.float32))
    assert norm.mean.shape == (1, 2, 1, 1)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(2), atol=1e-4)
    assert torch.allclose(norm.decode(z), torch.as_tensor(x, dtype=torch.float32), atol=1e-5)


def test_pointwise_normalizer_has_per_point_statistics():
    x = _data()
    norm = GaussianNormalizer("pointwise", channels=2, grid=(6, 5)).fit(x)
    assert norm.mean.shape == (1, 2, 6, 5)
    np.testing.assert_allclose(norm.mean[0].numpy(), x.mean(0), rtol=1e-5, atol=1e-6)


def test_none_is_identity_and_statistics_survive_state_dict():
    x = torch.randn(4, 1, 3, 3)
    assert torch.equal(GaussianNormalizer("none", 1, (3, 3)).encode(x), x)
    fitted = GaussianNormalizer("scalar", 2, (6, 5)).fit(_data())
    fresh = GaussianNormalizer("scalar", 2, (6, 5))
    fresh.load_state_dict(fitted.state_dict())
    assert torch.equal(fresh.mean, fitted.mean) and torch.equal(fresh.std, fitted.std)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="normalizer kind 'minmax'"):
        GaussianNormalizer("minmax", 1, (2, 2))
