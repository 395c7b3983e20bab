"""Uncertainty (issue 21): deep ensembles of surrogates and split conformal bands. Train-free:
tiny untrained modules saved as checkpoints (tests/test_surrogate_safety.py), synthetic
HDF5 splits whose labels are the surrogate's own prediction plus noise of a known law, so
the conformal coverage is known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import erf
from test_surrogate_safety import MGNO, M, Q, grid_io, save

from opnet import load_operator
from opnet.data import h5
from opnet.surrogate import Bands, DeepONetSurrogate, Ensemble, Surrogate
from opnet.surrogate.uncertainty import conformal_index, conformal_quantile
from opnet.training.deeponet_module import DeepONetModule
from opnet.training.module import OperatorModule

pytestmark = pytest.mark.usefixtures("one_thread")
POINTS_IO = {"kind": "points", "input_field": "f", "input_fields": ["f"],
             "output_fields": ["u"], "branch": "vector", "input_shape": [M], "n_sensors": M,
             "sensor_points": M, "sensor_dim": 1, "n_query": Q, "query_dim": 1,
             "out_channels": 1, "input_grid": None, "output_grid": None, "layout": "aligned",
             "dataset": {"name": "toy", "path": "data/toy"}}


def grid_run(folder: Path, seed: int, **io) -> Path:
    """A run folder (checkpoints/last.ckpt) of an untrained tiny MgNO."""
    torch.manual_seed(seed)
    (folder / "checkpoints").mkdir(parents=True)
    save(OperatorModule(MGNO, grid_io(**io)), folder / "checkpoints" / "last.ckpt")
    return folder


def deeponet_ckpt(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    module = DeepONetModule({"_target_": "opnet.models.deeponet.DeepONet", "branch": [M, 8, 8],
                             "trunk": [1, 8, 8], "num_outputs": 1}, POINTS_IO)
    module.sensors.copy_(torch.linspace(0, 1, M)[:, None])
    module.query.copy_(torch.linspace(0, 1, Q)[:, None])
    return save(module, path)


def write_split(folder: Path, split: str, inputs: dict, outputs: dict, coords: dict) -> None:
    fields = {f"inputs/{k}": v for k, v in inputs.items()} | {
        f"outputs/{k}": v for k, v in outputs.items()}
    n = len(next(iter(fields.values())))
    specs = {k: (v.shape[1:], np.float32) for k, v in fields.items()}
    with h5.SplitWriter(h5.split_path(folder, split), n, specs, coords,
                        {"pde": "synthetic", "split": split}) as writer:
        writer.write(0, {k: v.astype(np.float32) for k, v in fields.items()}, np.arange(n))
        writer.commit()


# -- ensembles ------------------------------------------------------------------------------
def test_grid_ensemble_is_the_mean_and_std_of_its_members(tmp_path):
    runs = [grid_run(tmp_path / "sweep" / str(i), seed=i) for i in range(3)]
    (tmp_path / "sweep" / ".submitit").mkdir()  # Hydra's bookkeeping: not a run
    ens = load_operator(tmp_path / "sweep")
    assert isinstance(ens, Ensemble) and len(ens) == 3
    assert [Path(s).parent.parent for s in ens.sources] == runs  # numeric order
    a = np.random.default_rng(0).standard_normal((5, 8, 8)).astype(np.float32)
    preds = np.stack([load_operator(r).predict(a) for r in runs]).astype(np.float64)
    mean, std = ens.predict(a, return_std=True, batch_size=2)
    assert mean.shape == std.shape == (5, 8, 8)
    np.testing.assert_allclose(mean, preds.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(std, np.sqrt(((preds - preds.mean(0)) ** 2).mean(0)),
                               rtol=1e-5, atol=1e-7)
    assert float(std.min()) > 0  # the seeds differ
    np.testing.assert_allclose(ens.predict(a), mean, rtol=1e-5, atol=1e-7)  # batches
    assert ens.predict(a[0]).shape == (8, 8)  # a member's layouts
    listed = load_operator([r / "checkpoints" / "last.ckpt" for r in runs[:2]])
    assert isinstance(listed, Ensemble) and len(listed) == 2
    assert isinstance(load_operator(runs[0]), Surrogate)  # one run: as before


def test_deeponet_ensemble_forwards_query_points(tmp_path):
    ckpts = [deeponet_ckpt(tmp_path / f"d{i}.ckpt", seed=i) for i in range(2)]
    ens = load_operator(tuple(ckpts))
    members = [load_operator(c) for c in ckpts]
    assert isinstance(members[0], DeepONetSurrogate)
    u = np.random.default_rng(1).standard_normal((4, M)).astype(np.float32)
    y = np.linspace(0, 1, 5)[:, None]
    preds = np.stack([m.predict(u, y) for m in members]).astype(np.float64)
    mean, std = ens.predict(u, y, return_std=True, point_batch=2)
    assert mean.shape == (4, 5)
    np.testing.assert_allclose(mean, preds.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(std, np.abs(preds[0] - preds[1]) / 2, rtol=1e-5, atol=1e-7)


def test_incompatible_members_are_refused_in_one_line(tmp_path):
    good = grid_run(tmp_path / "a", 0)
    other = grid_run(tmp_path / "b", 1, output_fields=["p"])
    with pytest.raises(ValueError, match=r"^Ensemble: member .*b/checkpoints/last\.ckpt has "
                                         r"output_fields=\['p'\], member .*a/checkpoints"
                                         r"/last\.ckpt \['u'\]; members must be the same "
                                         r"family trained on the same data$"):
        load_operator([good, other])
    points = deeponet_ckpt(tmp_path / "d.ckpt", 0)
    with pytest.raises(ValueError, match=r"d\.ckpt has class='DeepONetSurrogate'") as err:
        load_operator([good, points])
    assert "\n" not in str(err.value)


# -- conformal ------------------------------------------------------------------------------
def test_conformal_quantile_is_the_finite_sample_rank():
    rng = np.random.default_rng(0)
    for n, coverage in [(1000, 0.9), (19, 0.9), (9, 0.9), (99, 0.95), (100, 0.07), (1, 0.5)]:
        scores = rng.permutation(n).astype(float)  # the k-th smallest is k - 1
        k = math.ceil((n + 1) * coverage - 1e-9)
        assert conformal_index(n, coverage) == k
        assert conformal_quantile(scores, coverage) == k - 1
    assert conformal_index(1000, 0.9) == 901 and conformal_index(100, 0.07) == 8
    with pytest.raises(ValueError, match=r"^coverage=0\.9: the calibration set has 8 samples, "
                                         r"too small for that coverage \(needs >= 9\)"):
        conformal_quantile(np.arange(8.0), 0.9)
    for bad in (0, 1, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match=r"expected a number in \(0, 1\)"):
            conformal_quantile(np.arange(10.0), bad)


def test_conformal_coverage_of_iid_scores_with_a_known_law():
    """Scores max_j |ε_j| over P = 64 i.i.d. N(0, 1) points: n = 1000 calibration, 2000 test
    samples; the 0.9 band covers ~90 % of test samples, and its exact coverage given the
    calibration, (2Φ(q) − 1)^P, too."""
    rng = np.random.default_rng(1)
    cal, test = (np.abs(rng.standard_normal((n, 64))).max(1) for n in (1000, 2000))
    q = conformal_quantile(cal, 0.9)
    assert q == np.sort(cal)[900]
    assert 0.88 <= float(np.mean(test <= q)) <= 0.92
    assert 0.88 <= erf(q / math.sqrt(2)) ** 64 <= 0.92


def _grid_data(folder: Path, op, sizes: dict, noise) -> dict:
    """Splits whose outputs are op's mean prediction + noise(mean, std, rng)."""
    rng, out = np.random.default_rng(2), {}
    for split, n in sizes.items():
        a = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
        if isinstance(op, Ensemble):
            mean, std = op.predict(a, return_std=True)
        else:
            mean, std = op.predict(a), None
        y = mean + noise(mean, std, rng)
        write_split(folder, split, {"a": a}, {"u": y}, {"x": np.arange(8) / 8,
                                                         "y": np.arange(8) / 8})
        out[split] = (a, y.astype(np.float32), mean)
    return out


def _covered(bands: Bands, y: np.ndarray) -> float:
    inside = (bands.lower <= y) & (y <= bands.upper)
    return float(inside.reshape(len(y), -1).all(axis=1).mean())


def test_grid_surrogate_bands_cover_90_percent_of_test_fields(tmp_path):
    op = load_operator(grid_run(tmp_path / "run", 0))
    a = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"^predict: coverage=0\.9 needs calibration scores; "
                                         r"call op\.calibrate\(data=<dataset folder>"):
        op.predict(a, coverage=0.9)
    data = _grid_data(tmp_path / "data", op, {"val": 1000, "test": 2000},
                      lambda m, s, rng: 0.1 * rng.standard_normal(m.shape))
    assert op.calibrate(tmp_path / "data", batch_size=500) is op
    a_val, y_val, _ = data["val"]
    by_hand = np.abs(y_val.astype(np.float64) - op.predict(a_val)).reshape(1000, -1).max(1)
    np.testing.assert_allclose(op.calibration.scores, np.sort(by_hand), rtol=1e-6)
    op.to("cpu")  # the scores survive a move
    a_test, y_test, mean = data["test"]
    bands = op.predict(a_test, coverage=0.9)
    assert isinstance(bands, Bands) and bands.lower.shape == (2000, 1, 8, 8)
    q = np.sort(by_hand)[900]
    np.testing.assert_allclose(bands.upper - bands.mean, q, rtol=1e-5)
    assert 0.88 <= _covered(bands, y_test) <= 0.92
    with pytest.raises(ValueError, match=r"^coverage=0\.9991: the calibration set has 1000 "
                                         r"samples, too small"):
        op.predict(a_test, coverage=0.9991)


@pytest.mark.parametrize("scale", ["sample", "pointwise", "none"])
def test_ensemble_bands_scale_with_the_members_spread(tmp_path, scale):
    """Labels = mean + std·ε: each scale gives bands mean ± q·σ with σ as documented
    (the sample's mean std, std + that mean, 1) covering ~90 % of the test fields."""
    ens = load_operator([grid_run(tmp_path / str(i), i) for i in range(3)])
    data = _grid_data(tmp_path / "data", ens, {"val": 1000, "test": 2000},
                      lambda m, s, rng: s * rng.standard_normal(m.shape))
    ens.calibrate(tmp_path / "data", split="val", scale=None if scale == "sample" else scale)
    assert ens.calibration.scale == scale
    a_test, y_test, _ = data["test"]
    bands = ens.predict(a_test, coverage=0.9)
    _, std = ens.predict(a_test, return_std=True)
    std = std.astype(np.float64)
    mean_std = std.reshape(len(std), -1).mean(1)[:, None, None, None]
    sigma = {"sample": mean_std + 0 * std, "pointwise": std + mean_std,
             "none": np.ones_like(std)}[scale]
    width = (bands.upper - bands.lower).astype(np.float64)
    np.testing.assert_allclose(width, 2 * ens.calibration.quantile(0.9) * sigma, rtol=1e-4)
    assert 0.88 <= _covered(bands, y_test) <= 0.92
    with pytest.raises(ValueError, match="return_std=True or coverage=, not both"):
        ens.predict(a_test, return_std=True, coverage=0.9)


class _Shifted:
    """A stand-in member: predicts a + shift inside the grid and a on its boundary, so the
    members of an ensemble of them agree exactly on the boundary (as Darcy MgNOs nearly do
    on the u = 0 boundary)."""

    def __init__(self, shift: float) -> None:
        self.shift, self.device, self.io = shift, torch.device("cpu"), grid_io()

    def predict(self, a, batch_size: int = 64, **_) -> np.ndarray:
        out = np.array(a, dtype=np.float32)
        out[..., 1:-1, 1:-1] += self.shift
        return out


def test_members_that_agree_somewhere_do_not_blow_the_bands_up(tmp_path):
    """Labels with error 0.1·N(0, 1) everywhere, members apart by ±0.1 inside and equal on the
    boundary: the default bands are about as wide as the error (q·mean std); dividing by the
    std at each point (the former rule) made q ~1e36 there. Coverage holds either way."""
    ens = Ensemble([_Shifted(-0.1), _Shifted(0.0), _Shifted(0.1)])
    data = _grid_data(tmp_path / "data", ens, {"val": 2000, "test": 2000},
                      lambda m, s, rng: 0.1 * rng.standard_normal(m.shape))
    a_test, y_test, _ = data["test"]
    for scale, limit in (("sample", 1.0), ("pointwise", 1.0), ("none", 0.5)):
        bands = ens.calibrate(tmp_path / "data", scale=scale).predict(a_test, coverage=0.9)
        assert float(np.max(bands.upper - bands.mean)) < limit, scale
        assert 0.88 <= _covered(bands, y_test) <= 0.92, scale
    with pytest.raises(ValueError, match=r"^calibrate: scale='std', expected one of"):
        ens.calibrate(tmp_path / "data", scale="std")
    with pytest.raises(ValueError, match=r"^calibrate: scale='sample', expected one of "
                                         r"\('none',\) \(an ensemble's std scales"):
        load_operator(grid_run(tmp_path / "one", 0)).calibrate(tmp_path / "data",
                                                               scale="sample")


def test_deeponet_calibrates_on_point_data(tmp_path):
    op = load_operator(deeponet_ckpt(tmp_path / "d.ckpt", 0))
    rng = np.random.default_rng(3)
    u = rng.standard_normal((20, M)).astype(np.float32)
    y = op.predict(u) + 0.05 * rng.standard_normal((20, Q))
    write_split(tmp_path / "data", "val", {"f": u}, {"u": y},
                {"sensors": np.linspace(0, 1, M)[:, None], "query": np.linspace(0, 1, Q)[:, None]})
    op.calibrate(tmp_path / "data")
    by_hand = np.abs(y.astype(np.float32).astype(np.float64) - op.predict(u)).max(1)
    np.testing.assert_allclose(op.calibration.scores, np.sort(by_hand), rtol=1e-5)
    bands = op.predict(u[:3], coverage=0.9)  # n = 20: k = 19
    np.testing.assert_allclose(bands.upper - bands.mean, np.sort(by_hand)[18], rtol=1e-5)
    with pytest.raises(ValueError, match=r"the calibration set has 20 samples, too small for "
                                         r"that coverage \(needs >= 99\)"):
        op.predict(u[:3], coverage=0.99)
