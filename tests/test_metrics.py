"""Evaluation metrics (opnet.metrics) against naive loops and closed forms."""

import itertools
import math

import numpy as np
import pytest
import torch

from opnet.metrics import grid_metrics, per_sample_rel_l2, point_metrics
from opnet.training.deeponet_module import exact_metrics
from opnet.training.losses import h1


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    true = 1.0 + rng.standard_normal(shape)
    return true + 0.2 + 0.3 * rng.standard_normal(shape), true


def _int_freq(i, n):
    return abs(i if i < (n + 1) // 2 else i - n)


def _naive_grid(pred, true, lengths, bands, cutoff=20.0):
    """Loop-by-loop transcription of the definitions, one (sample, channel) at a time."""
    nb, nc, *n = pred.shape
    d, npts = len(n), math.prod(n)
    e = pred - true
    rel = [np.sqrt(np.sum(e[b] ** 2) / np.sum(true[b] ** 2)) for b in range(nb)]
    rmse, nrmse, brmse, h1_num, h1_den = [], [], [], np.zeros(nb), np.zeros(nb)
    for b, c in itertools.product(range(nb), range(nc)):
        eb, tb = e[b, c], true[b, c]
        rmse.append(np.sqrt(np.mean(eb**2)))
        nrmse.append(rmse[-1] / np.sqrt(np.mean(tb**2)))
        if d == 1:
            brmse.append(np.sqrt((eb[0] ** 2 + eb[-1] ** 2) / 2))
        elif d == 2:
            s = (eb[0, :] ** 2).sum() + (eb[-1, :] ** 2).sum() + (eb[:, 0] ** 2).sum() \
                + (eb[:, -1] ** 2).sum()
            brmse.append(np.sqrt(s / (2 * n[0] + 2 * n[1])))
        else:
            s = sum((f**2).sum() for f in (eb[0], eb[-1], eb[:, 0], eb[:, -1], eb[:, :, 0],
                                           eb[:, :, -1]))
            brmse.append(np.sqrt(s / (2 * n[0] * n[1] + 2 * n[1] * n[2] + 2 * n[2] * n[0])))
        ehat, that = np.fft.fftn(eb), np.fft.fftn(tb)
        for idx in np.ndindex(*n):
            k2 = [_int_freq(i, m) ** 2 for i, m in zip(idx, n, strict=True)]
            w2 = 1 + sum(k for k in k2 if math.sqrt(k) < cutoff)
            h1_num[b] += w2 * abs(ehat[idx]) ** 2
            h1_den[b] += w2 * abs(that[idx]) ** 2
    crmse, bands_out = [], {"frmse_low": [], "frmse_mid": [], "frmse_high": []}
    for c in range(nc):
        crmse.append(np.sqrt(np.mean([(pred[b, c].sum() - true[b, c].sum()) ** 2
                                      for b in range(nb)])) / npts)
        if d == 1:
            power = np.array([np.abs(np.fft.rfft(pred[b, c]) - np.fft.rfft(true[b, c])) ** 2
                              for b in range(nb)])
        else:
            nshell = min(m // 2 for m in n)
            power = np.zeros((nb, nshell))
            for b in range(nb):
                diff = np.fft.fftn(pred[b, c]) - np.fft.fftn(true[b, c])
                for idx in itertools.product(*(range(m // 2) for m in n)):
                    s = math.floor(math.sqrt(sum(i * i for i in idx)))
                    if s < nshell:
                        power[b, s] += abs(diff[idx]) ** 2
        spec = np.sqrt(power.mean(axis=0)) / npts * math.prod(lengths)
        lo, hi = bands
        for key, part in zip(bands_out, (spec[:lo], spec[lo:hi], spec[hi:]), strict=True):
            bands_out[key].append(part.mean() if len(part) else np.nan)
    out = {"rel_l2": np.mean(rel), "mse": np.mean(e**2), "rmse": np.mean(rmse),
           "nrmse": np.mean(nrmse), "crmse": np.mean(crmse), "max_error": np.abs(e).max(),
           "h1": np.mean(np.sqrt(h1_num / h1_den)), "brmse": np.mean(brmse)}
    out.update({k: np.mean(v) for k, v in bands_out.items()})
    return out


@pytest.mark.parametrize("shape, lengths, bands", [
    ((3, 2, 40), (1.0,), (4, 12)),
    ((3, 2, 36, 30), (2.0, 0.5), (4, 12)),
    ((2, 2, 8, 10, 6), (1.0, 1.0, 1.0), (1, 2)),
    ((2, 1, 48, 44), (1.0, 1.0), (4, 30)),  # shells past 20: H1 cutoff active, high band empty
])
def test_grid_metrics_match_naive_loops(shape, lengths, bands):
    """Every grid metric equals its loop-by-loop definition in 1-D, 2-D and 3-D."""
    pred, true = _pair(shape)
    got = grid_metrics(pred, true, lengths=lengths, bands=bands)
    want = _naive_grid(pred, true, lengths, bands)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, err_msg=key)


def test_point_metrics_match_naive_loops():
    """Point metrics per (sample, output) over Q points, and MSE without the top 0.1 %."""
    pred, true = _pair((4, 300, 2), seed=1)
    pred[0, 5, 1] += 50.0  # two outliers among 2400 squared errors: both dropped
    pred[3, 7, 0] -= 40.0
    got = point_metrics(pred, true)
    e = pred - true
    nb, nq, nc = e.shape
    rmse = [[np.sqrt(np.mean(e[b, :, c] ** 2)) for c in range(nc)] for b in range(nb)]
    nrm = [[np.sqrt(np.mean(true[b, :, c] ** 2)) for c in range(nc)] for b in range(nb)]
    crmse = [np.sqrt(np.mean([e[b, :, c].sum() ** 2 for b in range(nb)])) / nq
             for c in range(nc)]
    want = {"rel_l2": np.mean([np.linalg.norm(e[b]) / np.linalg.norm(true[b])
                               for b in range(nb)]),
            "mse": np.mean(e**2), "rmse": np.mean(rmse),
            "nrmse": np.mean(np.array(rmse) / np.array(nrm)), "crmse": np.mean(crmse),
            "max_error": np.abs(e).max(),
            "mse_wo_outliers": np.sort((e**2).ravel())[:-2].mean()}
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, err_msg=key)
    assert got["mse_wo_outliers"] < got["mse"] / 10


def test_exact_metrics_is_point_metrics():
    """The DeepONet test metrics are point_metrics' mse, mse_wo_outliers, rel_l2 ([N, Q] too)."""
    pred, true = _pair((3, 500, 1), seed=2)
    m = point_metrics(pred, true)
    for p, t in ((pred, true), (pred[..., 0], true[..., 0])):
        assert exact_metrics(p, t) == {k: m[k] for k in ("mse", "mse_wo_outliers", "rel_l2")}


def test_per_sample_rel_l2_matches_naive_loop():
    """‖pred_b − true_b‖₂ / ‖true_b‖₂ over all non-batch dims, one value per sample."""
    pred, true = _pair((5, 2, 12, 10), seed=3)
    want = [np.linalg.norm(pred[b] - true[b]) / np.linalg.norm(true[b]) for b in range(5)]
    np.testing.assert_allclose(per_sample_rel_l2(pred, true), want, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 32), (2, 1, 32, 32), (2, 1, 8, 8, 8)])
def test_exact_prediction_gives_zero(shape):
    """pred == true: every error is exactly 0."""
    _, true = _pair(shape, seed=4)
    bands = (1, 2) if len(shape) == 5 else (4, 12)
    assert all(v == 0 for v in grid_metrics(true, true, bands=bands).values())
    points = true.reshape(2, -1, 1)
    assert all(v == 0 for v in point_metrics(points, points).values())


@pytest.mark.parametrize("shape", [(3, 2, 32), (3, 2, 32, 28)])
def test_constant_offset(shape):
    """e ≡ c: rmse = max = bRMSE = c, cRMSE = N·c/N = c; fRMSE only at k = 0 (value c),
    so low = c/4 (mean over k = 0..3) and mid = high = 0."""
    c = 0.25
    _, true = _pair(shape, seed=5)
    m = grid_metrics(true + c, true)
    for key in ("rmse", "max_error", "crmse", "brmse"):
        assert m[key] == pytest.approx(c, rel=1e-12), key
    assert m["mse"] == pytest.approx(c * c, rel=1e-12)
    assert m["frmse_low"] == pytest.approx(c / 4, rel=1e-12)
    assert m["frmse_mid"] == pytest.approx(0, abs=1e-14)
    assert m["frmse_high"] == pytest.approx(0, abs=1e-14)


@pytest.mark.parametrize("ndim", [1, 2])
def test_sine_error_lands_in_mid_band(ndim):
    """e = sin(2π·6x) on n = 64: |Ê_6| = N/2, spectrum 1/2 at k = 6 only, mid = (1/2)/8."""
    x = np.arange(64) / 64
    e = np.sin(2 * np.pi * 6 * x)
    if ndim == 2:
        e = np.broadcast_to(e[:, None], (64, 64))
    _, true = _pair((2, 1, *e.shape), seed=6)
    m = grid_metrics(true + e, true)
    assert m["frmse_mid"] == pytest.approx(1 / 16, rel=1e-12)
    assert m["frmse_low"] == pytest.approx(0, abs=1e-14)
    assert m["frmse_high"] == pytest.approx(0, abs=1e-14)


def test_error_scaling():
    """e → 2e: every RMSE-type metric (and max, rel. L2, H1) doubles, mse quadruples."""
    pred, true = _pair((3, 2, 32, 32), seed=7)
    m1, m2 = grid_metrics(pred, true), grid_metrics(true + 2 * (pred - true), true)
    assert m2["mse"] == pytest.approx(4 * m1["mse"], rel=1e-12)
    for key in set(m1) - {"mse"}:
        assert m2[key] == pytest.approx(2 * m1[key], rel=1e-12), key
    p1 = point_metrics(pred[:, 0], true[:, 0])
    p2 = point_metrics(true[:, 0] + 2 * (pred - true)[:, 0], true[:, 0])
    assert p2["mse"] == pytest.approx(4 * p1["mse"], rel=1e-12)
    assert p2["rmse"] == pytest.approx(2 * p1["rmse"], rel=1e-12)


def test_relative_errors_of_a_ten_percent_scaled_prediction():
    """pred = 1.1·true: relative L2 (and relative H1) = 0.1 for every sample."""
    _, true = _pair((4, 2, 16, 16), seed=8)
    assert grid_metrics(1.1 * true, true)["rel_l2"] == pytest.approx(0.1, rel=1e-12)
    assert grid_metrics(1.1 * true, true)["h1"] == pytest.approx(0.1, rel=1e-12)
    assert point_metrics(1.1 * true[:, 0], true[:, 0])["rel_l2"] == pytest.approx(0.1, rel=1e-12)
    np.testing.assert_allclose(per_sample_rel_l2(1.1 * true, true), 0.1, rtol=1e-12)


def test_h1_agrees_with_training_loss():
    """Evaluation H1 = mean of opnet.training.losses.h1 (cutoff 20 active on a 48×40 grid)."""
    g = torch.Generator().manual_seed(9)
    y = torch.randn(3, 2, 48, 40, generator=g)
    pred = y + 0.3 * torch.randn(3, 2, 48, 40, generator=g)
    assert grid_metrics(pred, y)["h1"] == pytest.approx(h1(pred, y).mean().item(), rel=1e-5)


def test_torch_tensors_are_accepted():
    """float32 and bfloat16 tensors give the float64 numpy result of the same values."""
    pred, true = _pair((2, 1, 32), seed=10)
    for dtype in (torch.float32, torch.bfloat16):
        tp, tt = torch.tensor(pred, dtype=dtype), torch.tensor(true, dtype=dtype)
        want = grid_metrics(tp.double().numpy(), tt.double().numpy())
        assert grid_metrics(tp, tt) == want


def test_shape_errors_name_the_shapes():
    """Mismatched shapes, a wrong layout or wrong lengths raise ValueError naming the shapes."""
    a = np.zeros((2, 3, 8))
    with pytest.raises(ValueError, match=r"\(2, 3, 8\).*\(2, 3, 9\)"):
        grid_metrics(a, np.zeros((2, 3, 9)))
    with pytest.raises(ValueError, match=r"\[B, C, \*spatial\].*\(2, 8\)"):
        grid_metrics(a[:, 0], a[:, 0])
    with pytest.raises(ValueError, match=r"\[B, C, \*spatial\].*\(1, 1, 2, 2, 2, 2\)"):
        grid_metrics(np.ones((1, 1, 2, 2, 2, 2)), np.ones((1, 1, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"lengths.*\(2, 3, 8\)"):
        grid_metrics(a, a, lengths=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"\[B, Q, C\].*\(2, 3, 8, 1\)"):
        point_metrics(a[..., None], a[..., None])
    with pytest.raises(ValueError, match=r"\(2, 3, 8\).*\(2, 3, 7\)"):
        per_sample_rel_l2(a, np.zeros((2, 3, 7)))
