"""Point data for DeepONets: layouts, batching, grid datasets as point sets, normalizers."""

import numpy as np
import pytest
import torch

from opnet.data import h5
from opnet.data.h5 import DatasetError
from opnet.data.normalizers import PointNormalizer
from opnet.data.points import PointBatches, PointDataModule, PointSplit, grid_points


def _read(folder, split, group, name):
    with h5.open_split(folder / f"{split}.h5") as f:
        return np.asarray(f[f"{group}/{name}"][()])


def test_aligned_full_batch_is_the_training_set(antiderivative_small):
    dm = PointDataModule(str(antiderivative_small))
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader) == 1  # one pass over the functions = one full batch
    batch = next(iter(loader))
    assert batch["u"].shape == (100, 100) and batch["y"].shape == (100, 1)
    assert batch["s"].shape == (100, 100, 1) and "idx" not in batch
    np.testing.assert_array_equal(batch["u"].numpy(), _read(antiderivative_small, "train",
                                                            "inputs", "u"))
    np.testing.assert_array_equal(batch["s"][..., 0].numpy(),
                                  _read(antiderivative_small, "train", "outputs", "s"))
    np.testing.assert_allclose(batch["y"][:, 0].numpy(), np.linspace(0, 1, 100), atol=1e-7)
    again = next(iter(loader))
    assert again["u"] is batch["u"]  # built once, handed out every step


def test_io_spec_describes_shapes_and_provenance(antiderivative_small):
    dm = PointDataModule(str(antiderivative_small), n_train=40, sensor_stride=2, query_stride=4)
    io = dm.io_spec()
    assert (io["kind"], io["n_sensors"], io["n_query"], io["query_dim"]) == ("points", 50, 25, 1)
    assert io["out_channels"] == 1 and io["dataset"]["n_train"] == 40
    assert io["dataset"]["pde"] == "antiderivative"
    sensors, query = dm.coordinates()
    np.testing.assert_allclose(sensors[:, 0], np.linspace(0, 1, 100)[::2])
    np.testing.assert_allclose(query[:, 0], np.linspace(0, 1, 100)[::4])
    u = next(iter(dm.train_dataloader()))["u"]
    np.testing.assert_array_equal(u.numpy(), _read(antiderivative_small, "train", "inputs",
                                                   "u")[:40, ::2])


def test_minibatches_cover_every_function_once_per_pass(antiderivative_small):
    """Batches of 30 from consecutive permutations: 10 batches = 3 full passes (wrapping)."""
    dm = PointDataModule(str(antiderivative_small), batch_size=30, steps_per_epoch=10,
                         batches_per_step=1)
    dm.setup("fit")
    u_all = dm.splits["train"].u
    seen = []
    for batch in dm.train_dataloader():
        assert batch["u"].shape == (30, 100)
        rows = (batch["u"][:, None, :] == u_all[None]).all(-1).float().argmax(1)
        seen.extend(rows.tolist())
    counts = np.bincount(seen, minlength=100)
    assert counts.tolist() == [3] * 100


def test_unaligned_points_are_the_labels_at_their_indices(antiderivative_small):
    dm = PointDataModule(str(antiderivative_small), layout="unaligned", batch_size=8,
                         points_per_batch=5, batches_per_step=1)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["y"].shape == (8, 5, 1) and batch["s"].shape == (8, 5, 1)
    assert batch["idx"].shape == (8, 5)
    query = torch.as_tensor(dm.geometry["query"], dtype=torch.float32)
    torch.testing.assert_close(batch["y"], query[batch["idx"]])
    s_all, u_all = dm.splits["train"].s, dm.splits["train"].u
    rows = (batch["u"][:, None, :] == u_all[None]).all(-1).float().argmax(1)
    for b in range(8):
        torch.testing.assert_close(batch["s"][b, :, 0], s_all[rows[b], batch["idx"][b], 0])


def test_aligned_point_subsets_are_shared_by_the_batch(antiderivative_small):
    dm = PointDataModule(str(antiderivative_small), points_per_batch=7)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    idx = batch["idx"]
    assert idx.shape == (7,) and len(set(idx.tolist())) == 7  # without replacement
    torch.testing.assert_close(batch["s"], dm.splits["train"].s[:, idx])


def test_unaligned_layout_with_all_points_repeats_the_query(antiderivative_small):
    aligned = PointDataModule(str(antiderivative_small))
    unaligned = PointDataModule(str(antiderivative_small), layout="unaligned")
    a, b = (next(iter(dm.train_dataloader())) for dm in (aligned, unaligned))
    assert b["y"].shape == (100, 100, 1)
    torch.testing.assert_close(b["y"], a["y"].expand(100, -1, -1))
    torch.testing.assert_close(b["s"], a["s"])


def test_batches_per_step_groups_iterations(antiderivative_small):
    dm = PointDataModule(str(antiderivative_small), steps_per_epoch=20, batches_per_step=5)
    loader = dm.train_dataloader()
    assert len(loader) == 4
    group = next(iter(loader))
    assert isinstance(group, list) and len(group) == 5
    with pytest.raises(ValueError, match="steps_per_epoch=20 is not a multiple of "
                                         "data.batches_per_step=3"):
        PointDataModule(str(antiderivative_small), steps_per_epoch=20,
                        batches_per_step=3).train_dataloader()


def test_sampler_is_reproducible_per_seed():
    split = PointSplit(torch.arange(40.0).reshape(20, 2), torch.zeros(20, 6, 1))
    query = torch.linspace(0, 1, 6)[:, None]
    draws = [[b["u"][:, 0].tolist() for b in PointBatches(split, query, batch_size=4,
                                                           points_per_batch=3, seed=s)]
             for s in (1, 1, 2)]
    assert draws[0] == draws[1] and draws[0] != draws[2]


def test_grid_fields_become_points_in_c_order(darcy16):
    """Darcy [N, 1, 16, 16]: query point q = i*16 + j is (x_i, y_j) and label q is
    sol[n, 0, i, j]; the vector branch gets the flattened coefficient, the image branch
    the image."""
    vec = PointDataModule(str(darcy16), input_field="coeff", output_fields=["sol"])
    img = PointDataModule(str(darcy16), input_field="coeff", output_fields=["sol"],
                          branch="image", sensor_stride=3)
    vec.setup("fit")
    img.setup("fit")
    coeff = _read(darcy16, "train", "inputs", "coeff")
    sol = _read(darcy16, "train", "outputs", "sol")
    x, y = _read(darcy16, "train", "coords", "x"), _read(darcy16, "train", "coords", "y")
    _, query = vec.coordinates()
    assert query.shape == (256, 2)
    np.testing.assert_allclose(query[5 * 16 + 7], [x[5], y[7]])
    np.testing.assert_array_equal(vec.splits["train"].s[:, 5 * 16 + 7, 0], sol[:, 0, 5, 7])
    np.testing.assert_array_equal(vec.splits["train"].u, coeff.reshape(len(coeff), -1))
    io = img.io_spec()
    assert io["input_shape"] == [1, 6, 6] and io["input_grid"] == [6, 6]
    assert io["n_query"] == 256 and io["sensor_points"] == 36
    np.testing.assert_array_equal(img.splits["train"].u, coeff[:, :, ::3, ::3])


def test_grid_points_helper():
    pts = grid_points([np.array([0.0, 1.0]), np.array([10.0, 20.0, 30.0])])
    assert pts.tolist() == [[0, 10], [0, 20], [0, 30], [1, 10], [1, 20], [1, 30]]


def test_bad_data_is_named(antiderivative_small, darcy16, tmp_path):
    with pytest.raises(DatasetError, match="has no field 'inputs/v'"):
        PointDataModule(str(antiderivative_small), input_field="v").setup("fit")
    with pytest.raises(DatasetError, match=r"branch='image' needs a grid field"):
        PointDataModule(str(antiderivative_small), branch="image").setup("fit")
    with pytest.raises(ValueError, match="data.layout='diagonal'"):
        PointDataModule(str(antiderivative_small), layout="diagonal")
    with pytest.raises(DatasetError, match="lacks train.h5, val.h5, test.h5"):
        PointDataModule(str(tmp_path / "none")).setup("fit")
    with pytest.raises(ValueError, match="num_workers=2"):
        PointDataModule(str(antiderivative_small), num_workers=2)


def test_splits_with_other_sensors_are_refused(antiderivative_small, tmp_path):
    import shutil

    from data_gen import generate

    other = tmp_path / "mixed"
    generate("antiderivative", out=other, n_train=4, n_val=2, n_test=2, n_sensors=50,
             progress=False)
    shutil.copy(antiderivative_small / "train.h5", other / "train.h5")
    with pytest.raises(DatasetError, match=r"val\.h5: inputs have per-function shape \[50\], "
                                           r"train\.h5 has \[100\]"):
        PointDataModule(str(other)).setup("fit")


# ------------------------------------------------------------------------------ normalizers
def test_pointwise_normalizer_is_a_per_point_standard_scaler():
    """Labels [N, Q, C]: mean/std per (point, channel); zero spread (s(0) = 0 for every
    function) keeps std 0: that point decodes to its constant whatever the network says."""
    rng = np.random.default_rng(0)
    s = rng.normal(size=(50, 4, 2)) * [1.0, 2.0] + [3.0, -1.0]
    s[:, 0, :] = 0.0
    norm = PointNormalizer("pointwise", [4, 2], channel_dim=1).fit(s)
    np.testing.assert_allclose(norm.mean.numpy(), s.mean(0), atol=1e-6)
    std = s.std(0)
    std[0] = 0.0
    np.testing.assert_allclose(norm.std.numpy(), std, rtol=1e-6)
    x = torch.as_tensor(s, dtype=torch.float32)
    z = norm.encode(x)
    assert torch.allclose(z[:, 1:].mean(0), torch.zeros(3, 2), atol=1e-5)
    assert torch.equal(z[:, 0], torch.zeros(50, 2))
    torch.testing.assert_close(norm.decode(z), x)
    assert torch.equal(norm.decode(z + 7.0)[:, 0], x[:, 0])  # the constant, exactly
    idx = torch.tensor([3, 1])  # a subset of the points picks their statistics
    torch.testing.assert_close(norm.encode(x[:, idx], idx), z[:, idx])
    idx2 = torch.tensor([[3, 1]] * 50)
    torch.testing.assert_close(norm.encode(x[:, idx], idx2), z[:, idx])


def test_scalar_normalizer_keeps_one_statistic_per_channel():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(20, 3, 5, 5)) * np.array([1.0, 2.0, 3.0])[:, None, None]
    norm = PointNormalizer("scalar", [3, 5, 5], channel_dim=0).fit(u)
    assert tuple(norm.mean.shape) == (3, 1, 1)
    np.testing.assert_allclose(norm.std.numpy().ravel(), u.std(axis=(0, 2, 3)), rtol=1e-6)
    vec = PointNormalizer("scalar", [7]).fit(rng.normal(size=(10, 7)) + 5)
    assert tuple(vec.mean.shape) == (1,) and abs(float(vec.mean) - 5) < 1
    assert PointNormalizer("none", [7]).encode(torch.ones(2, 7)).sum() == 14
