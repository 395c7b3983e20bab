"""Labelled and unlabelled samples (physics-informed training, issue 18): generators that skip
the solve (``solve=false``: inputs only), ``data.labels=N`` (only the first N train outputs
kept) and ``data.unlabelled_dir`` (another folder's train inputs appended without outputs)."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import compose_train

from data_gen import generate
from data_gen.pdes import darcy
from opnet.data import h5
from opnet.data.datamodule import GridDataModule
from opnet.data.h5 import DatasetError
from opnet.data.normalizers import gaussian_stats
from opnet.data.points import PointDataModule
from opnet.data.trajectory import TrajectoryDataModule

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = {"resolution": 12, "n_train": 20, "n_val": 4, "n_test": 4, "seed": 7,
        "progress": False}
SOLVERS = {  # small, fast configurations of the three generators with a solve option
    "darcy": {"resolution": 12},
    "antiderivative": {"n_sensors": 20, "n_query": 15},
    "diffusion_reaction": {"n_sensors": 20, "nx": 9, "nt": 5, "label_solver": "reference"},
}


@pytest.fixture(scope="module")
def darcy12(tmp_path_factory):
    """Labelled Darcy 12² (20/4/4) and unlabelled inputs (solve=false, 9 train, seed 8)."""
    root = tmp_path_factory.mktemp("unlabelled")
    generate("darcy", out=root / "labelled", **GRID)
    generate("darcy", out=root / "inputs", solve=False, **{**GRID, "n_train": 9, "n_val": 0,
                                                            "n_test": 0, "seed": 8})
    return root


@pytest.fixture(scope="module")
def anti(tmp_path_factory):
    """Labelled antiderivative points (30/5/5, m = 20, Q = 15) and 11 unlabelled inputs."""
    root = tmp_path_factory.mktemp("unlabelled_points")
    small = SOLVERS["antiderivative"]
    generate("antiderivative", out=root / "labelled", n_train=30, n_val=5, n_test=5, seed=2,
             progress=False, **small)
    generate("antiderivative", out=root / "inputs", n_train=11, n_val=0, n_test=0, seed=3,
             progress=False, solve=False, **small)
    return root


def _batches(loader, n: int = 3) -> list[dict[str, torch.Tensor]]:
    out = []
    for batch in loader:
        out.extend(batch if isinstance(batch, list) else [batch])
        if len(out) >= n:
            break
    return out[:n]


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# -- generators ------------------------------------------------------------------------------
@pytest.mark.parametrize("pde", sorted(SOLVERS))
def test_solve_false_writes_the_same_inputs_without_outputs(pde, tmp_path):
    """The solve draws no random numbers: with one seed, the inputs of solve=false are
    bitwise those of the solved data; the files hold no outputs and say so."""
    params = SOLVERS[pde]
    sizes = {"n_train": 5, "n_val": 2, "n_test": 0, "seed": 4, "progress": False}
    generate(pde, out=tmp_path / "solved", **sizes, **params)
    generate(pde, out=tmp_path / "inputs", solve=False, **sizes, **params)
    for split in ("train", "val"):
        with h5py.File(h5.split_path(tmp_path / "solved", split), "r") as a, \
                h5py.File(h5.split_path(tmp_path / "inputs", split), "r") as b:
            assert "outputs" in a and "outputs" not in b
            assert list(a["inputs"]) == list(b["inputs"])
            for name in a["inputs"]:
                np.testing.assert_array_equal(a[f"inputs/{name}"][()], b[f"inputs/{name}"][()])
            for axis in a["coords"]:
                np.testing.assert_array_equal(a[f"coords/{axis}"][()], b[f"coords/{axis}"][()])
        solved = h5.read_attrs(h5.split_path(tmp_path / "solved", split))
        inputs = h5.read_attrs(h5.split_path(tmp_path / "inputs", split))
        assert "labelled" not in solved and inputs["labelled"] is False
        assert yaml.safe_load(inputs["generator_config"])["solve"] is False
        assert "solve" not in yaml.safe_load(solved["generator_config"])  # as before the key


def test_solve_false_never_calls_the_solver(monkeypatch):
    def no_solve(*args, **kwargs):
        raise AssertionError("solve=false must not solve")

    monkeypatch.setattr(darcy, "solve_with", no_solve)
    rngs = [np.random.default_rng(i) for i in range(3)]
    fields = darcy.sample(darcy.DarcyConfig(resolution=9, solve=False), rngs)
    assert set(fields) == {"inputs"} and fields["inputs"]["coeff"].shape == (3, 1, 9, 9)


def test_bad_solve_value_is_named():
    with pytest.raises(ValueError, match=r"darcy: solve='no', expected true or false"):
        darcy.DarcyConfig(solve="no")


def test_unlabelled_shards_merge_and_resume_as_one_configuration(tmp_path):
    """Shards without outputs stitch into a virtual file that keeps labelled = False; a rerun
    finds the data complete."""
    out = tmp_path / "sharded"
    generate("darcy", out=out, resolution=9, n_train=10, n_val=0, n_test=0, solve=False,
             num_shards=2, progress=False)
    attrs = h5.read_attrs(h5.split_path(out, "train"))
    assert attrs["labelled"] is False and attrs["n_samples"] == 10 and attrs["n_shards"] == 2
    with h5.open_split(h5.split_path(out, "train")) as f:
        assert "outputs" not in f and f["inputs/coeff"].shape == (10, 1, 9, 9)
    again = generate("darcy", out=out, resolution=9, n_train=10, n_val=0, n_test=0,
                     solve=False, num_shards=2, progress=False)
    assert sorted(again.skipped_splits) == ["test", "train", "val"]


def test_cli_writes_inputs_only(tmp_path):
    """``python -m data_gen pde=darcy pde.solve=false ...`` (the key is in conf/pde)."""
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "data_gen", "pde=darcy", "resolution=8",
                           "pde.solve=false", "n_train=6", "n_val=0", "n_test=0",
                           "progress=false", f"out={out}"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert h5.read_attrs(h5.split_path(out, "train"))["labelled"] is False
    assert h5.field_names(h5.split_path(out, "train"))["outputs"] == []


def test_an_inputs_only_split_is_not_read_as_labelled_data(darcy12):
    dm = GridDataModule(str(darcy12 / "inputs"))
    with pytest.raises(DatasetError, match=r"has no outputs \(made with solve=false"):
        dm.setup("fit")


# -- grid datamodule -------------------------------------------------------------------------
@pytest.mark.parametrize("in_memory", [True, False])
def test_labels_keep_the_outputs_of_the_first_n_train_samples(darcy12, in_memory):
    """labels=6 of 20: items >= 6 have y = 0 and labelled False, the others are the file's
    samples; the output statistics are those of the first 6 outputs."""
    path = darcy12 / "labelled"
    dm = GridDataModule(str(path), labels=6, batch_size=20, shuffle=False,
                        in_memory=in_memory)
    dm.setup("fit")
    x = h5.read_fields(h5.split_path(path, "train"), "inputs", ["coeff"])
    y = h5.read_fields(h5.split_path(path, "train"), "outputs", ["sol"])
    (batch,) = list(dm.train_dataloader())
    assert batch["labelled"].dtype == torch.bool
    np.testing.assert_array_equal(batch["labelled"].numpy(), np.arange(20) < 6)
    np.testing.assert_array_equal(batch["x"].numpy(), x)
    np.testing.assert_array_equal(batch["y"][:6].numpy(), y[:6])
    assert not batch["y"][6:].any() and y[6:].any()
    x_fit, y_fit = dm.train_arrays()
    np.testing.assert_array_equal(x_fit, x)
    np.testing.assert_array_equal(y_fit, y[:6])
    (in_mean, in_std), (out_mean, out_std) = dm.normalizer_stats("scalar", "scalar")
    want_mean, want_std = gaussian_stats(y[:6], "scalar")
    torch.testing.assert_close(out_mean, want_mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(out_std, want_std, rtol=1e-12, atol=0)
    assert not torch.allclose(out_std, gaussian_stats(y, "scalar")[1])
    torch.testing.assert_close(in_mean, gaussian_stats(x, "scalar")[0], rtol=1e-12, atol=0)
    io = dm.io_spec()
    assert io["labels"] == 6 and io["unlabelled"] == 14
    val = next(iter(dm.val_dataloader()))
    assert "labelled" not in val and val["y"].any()


@pytest.mark.parametrize("in_memory", [True, False])
def test_unlabelled_dir_appends_its_train_inputs(darcy12, in_memory):
    """20 labelled + 9 appended: 29 training items, the last 9 the other folder's inputs with
    y = 0; input statistics over all 29, output statistics over the 20 outputs."""
    path = darcy12 / "labelled"
    dm = GridDataModule(str(path), unlabelled_dir=str(darcy12 / "inputs"), batch_size=29,
                        shuffle=False, in_memory=in_memory)
    dm.setup("fit")
    extra = h5.read_fields(h5.split_path(darcy12 / "inputs", "train"), "inputs", ["coeff"])
    x = h5.read_fields(h5.split_path(path, "train"), "inputs", ["coeff"])
    y = h5.read_fields(h5.split_path(path, "train"), "outputs", ["sol"])
    (batch,) = list(dm.train_dataloader())
    np.testing.assert_array_equal(batch["labelled"].numpy(), np.arange(29) < 20)
    np.testing.assert_array_equal(batch["x"].numpy(), np.concatenate([x, extra]))
    np.testing.assert_array_equal(batch["y"][:20].numpy(), y)
    assert not batch["y"][20:].any()
    x_fit, y_fit = dm.train_arrays()
    assert x_fit.shape == (29, 1, 12, 12) and y_fit.shape == (20, 1, 12, 12)
    (in_mean, _), (out_mean, _) = dm.normalizer_stats("scalar", "scalar")
    torch.testing.assert_close(in_mean, gaussian_stats(x_fit, "scalar")[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(out_mean, gaussian_stats(y, "scalar")[0], rtol=1e-12, atol=0)
    io = dm.io_spec()
    assert io["labels"] is None and io["unlabelled"] == 9 and io["dataset"]["n_train"] == 20


def test_defaults_leave_grid_batches_and_io_spec_unchanged(darcy12):
    """Null labels/unlabelled_dir (and labels = n_train: nothing unlabelled) serve bitwise the
    batches of a datamodule built without the keys, with no "labelled" key."""
    path = str(darcy12 / "labelled")
    plain = GridDataModule(path, batch_size=6)
    nulls = GridDataModule(path, batch_size=6, labels=None, unlabelled_dir=None)
    every = GridDataModule(path, batch_size=6, labels=20)
    for dm in (plain, nulls, every):
        dm.setup("fit")
    want = _batches(plain.train_dataloader())
    for dm in (nulls, every):
        for a, b in zip(want, _batches(dm.train_dataloader()), strict=True):
            assert a.keys() == b.keys() == {"x", "y"}
            assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert nulls.io_spec() == plain.io_spec()
    assert "labels" not in plain.io_spec() and "unlabelled" not in plain.io_spec()
    for a, b in zip(plain.normalizer_stats(), nulls.normalizer_stats(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_zero_labels_leave_the_output_normalizer_unfitted(darcy12):
    dm = GridDataModule(str(darcy12 / "labelled"), labels=0)
    dm.setup("fit")
    assert dm.normalizer_stats("scalar", "scalar")[1] is None
    assert dm.train_arrays()[1].shape == (0, 1, 12, 12)
    assert dm.io_spec()["unlabelled"] == 20


def test_label_and_unlabelled_dir_errors_are_one_line(darcy12, tmp_path):
    path = str(darcy12 / "labelled")
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match=r"data\.labels=.*expected an integer >= 0") as err:
            GridDataModule(path, labels=bad)
        _one_line(err)
    with pytest.raises(ValueError, match=r"data\.labels=21: the train split has only 20 "
                                         r"samples.*expected 0 <= labels <= 20") as err:
        GridDataModule(path, labels=21).setup("fit")
    _one_line(err)
    with pytest.raises(ValueError, match=r"data\.labels=5: the train split has only 4"):
        GridDataModule(path, labels=5, n_train=4).setup("fit")
    with pytest.raises(DatasetError, match=r"data\.unlabelled_dir=.*nowhere: no train\.h5"):
        GridDataModule(path, unlabelled_dir=str(tmp_path / "nowhere")).setup("fit")
    generate("darcy", out=tmp_path / "other", resolution=10, n_train=3, n_val=0, n_test=0,
             solve=False, progress=False)
    with pytest.raises(DatasetError, match=r"data\.unlabelled_dir=.*other: inputs \['coeff'\] "
                                           r"have per-sample shape \(1, 10, 10\)") as err:
        GridDataModule(path, unlabelled_dir=str(tmp_path / "other")).setup("fit")
    _one_line(err)
    renamed = tmp_path / "renamed"
    generate("darcy", out=renamed, resolution=12, n_train=2, n_val=0, n_test=0, solve=False,
             progress=False)
    with h5py.File(h5.split_path(renamed, "train"), "r+") as f:
        f.move("inputs/coeff", "inputs/perm")
    h5._WHOLE.clear()
    with pytest.raises(DatasetError, match=r"data\.unlabelled_dir=.*has no field "
                                           r"'inputs/coeff' \(it has inputs: \['perm'\]\)") as err:
        GridDataModule(path, unlabelled_dir=str(renamed)).setup("fit")
    _one_line(err)


def test_unlabelled_dir_on_another_grid_is_refused(darcy12, tmp_path):
    """Same shape, other coordinates (x on [0, 2]): coords/x named."""
    out = tmp_path / "moved"
    generate("darcy", out=out, resolution=12, n_train=2, n_val=0, n_test=0, solve=False,
             progress=False)
    with h5py.File(h5.split_path(out, "train"), "r+") as f:
        f["coords/x"][...] = np.linspace(0.0, 2.0, 12)
    h5._WHOLE.clear()
    with pytest.raises(DatasetError, match=r"data\.unlabelled_dir=.*coords/x differ"):
        GridDataModule(str(darcy12 / "labelled"), unlabelled_dir=str(out)).setup("fit")


def test_trajectory_data_refuse_labels(tmp_path):
    with pytest.raises(ValueError, match=r"data\.labels=3: trajectory data"):
        TrajectoryDataModule(str(tmp_path), labels=3)


def test_data_configs_take_labels_without_plus():
    cfg = compose_train("data=darcy32", "data.labels=100", "data.unlabelled_dir=/x")
    assert cfg.data.labels == 100 and cfg.data.unlabelled_dir == "/x"
    cfg = compose_train("data=diffusion_reaction", "data.labels=0")
    assert cfg.data.labels == 0 and cfg.data.unlabelled_dir is None


# -- point datamodule ------------------------------------------------------------------------
def test_point_labels_and_unlabelled_dir(anti):
    """labels=12 of 30 + 11 appended: full batch of 41 functions, s kept for the first 12,
    zeros elsewhere; minibatches carry the mask of their functions; the normalizers see the
    12 labelled outputs and all 41 inputs."""
    path = anti / "labelled"
    dm = PointDataModule(str(path), labels=12, unlabelled_dir=str(anti / "inputs"),
                         steps_per_epoch=2)
    dm.setup("fit")
    with h5py.File(h5.split_path(path, "train"), "r") as f:
        u, s = f["inputs/u"][()], f["outputs/s"][()]
    with h5py.File(h5.split_path(anti / "inputs", "train"), "r") as f:
        extra = f["inputs/u"][()]
    batch = _batches(dm.train_dataloader(), 1)[0]
    assert batch.keys() == {"u", "y", "s", "labelled"}
    np.testing.assert_array_equal(batch["labelled"].numpy(), np.arange(41) < 12)
    np.testing.assert_array_equal(batch["u"].numpy(), np.concatenate([u, extra]))
    np.testing.assert_array_equal(batch["s"][:12, :, 0].numpy(), s[:12])
    assert not batch["s"][12:].any()
    u_fit, s_fit = dm.train_arrays()
    assert u_fit.shape == (41, 20) and s_fit.shape == (12, 15, 1)
    np.testing.assert_array_equal(s_fit[..., 0], s[:12])
    assert dm.io_spec()["labels"] == 12 and dm.io_spec()["unlabelled"] == 29
    dm = PointDataModule(str(path), labels=12, unlabelled_dir=str(anti / "inputs"),
                         batch_size=8, points_per_batch=5, layout="unaligned", seed=3)
    dm.setup("fit")
    for batch in _batches(dm.train_dataloader(), 6):
        assert batch["labelled"].shape == (8,)
        labelled_rows = batch["s"].abs().sum(dim=(1, 2)) > 0
        assert torch.equal(labelled_rows, batch["labelled"])
    val = next(iter(dm.val_dataloader()))
    assert "labelled" not in val


@pytest.mark.parametrize("options", [{}, {"batch_size": 7, "points_per_batch": 4},
                                     {"batch_size": 7, "layout": "unaligned",
                                      "points_per_batch": 4}])
def test_defaults_leave_point_batches_unchanged(anti, options):
    path = str(anti / "labelled")
    plain = PointDataModule(path, steps_per_epoch=4, batches_per_step=1, **options)
    nulls = PointDataModule(path, steps_per_epoch=4, batches_per_step=1, labels=None,
                            unlabelled_dir=None, **options)
    every = PointDataModule(path, steps_per_epoch=4, batches_per_step=1, labels=30, **options)
    want = _batches(plain.train_dataloader(), 4)
    for dm in (nulls, every):
        for a, b in zip(want, _batches(dm.train_dataloader(), 4), strict=True):
            assert a.keys() == b.keys() and "labelled" not in b
            for key in a:
                assert torch.equal(a[key], b[key]), key
    assert nulls.io_spec() == plain.io_spec() and "labels" not in plain.io_spec()
    for a, b in zip(plain.train_arrays(), nulls.train_arrays(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_point_unlabelled_dir_with_other_sensors_is_refused(anti, tmp_path):
    generate("antiderivative", out=tmp_path / "m10", n_train=3, n_val=0, n_test=0,
             progress=False, solve=False, n_sensors=10, n_query=15)
    dm = PointDataModule(str(anti / "labelled"), unlabelled_dir=str(tmp_path / "m10"))
    with pytest.raises(DatasetError, match=r"data\.unlabelled_dir=.*m10: inputs/u has "
                                           r"per-function shape \[10\]") as err:
        dm.setup("fit")
    _one_line(err)
    with pytest.raises(ValueError, match=r"data\.labels=31: the train split has only 30"):
        PointDataModule(str(anti / "labelled"), labels=31).setup("fit")
