"""The grid datamodule: stride subsampling, train-only statistics, generation when missing."""

import numpy as np
import pytest

from opnet.data import h5
from opnet.data.datamodule import GridDataModule
from opnet.data.h5 import DatasetError


def test_stride_subsamples_every_grid_axis(darcy16):
    dm = GridDataModule(str(darcy16), stride=3)
    dm.setup("fit")
    full = h5.read_fields(darcy16 / "train.h5", "inputs", ["coeff"])
    np.testing.assert_array_equal(dm.splits["train"].x.numpy(), full[:, :, ::3, ::3])
    io = dm.io_spec()
    assert io["grid"] == [6, 6] and io["in_channels"] == 1 and io["out_channels"] == 1
    np.testing.assert_allclose(io["coords"]["x"], np.linspace(0, 1, 16)[::3])
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (8, 1, 6, 6) and batch["y"].shape == (8, 1, 6, 6)


def test_io_spec_records_provenance_and_limits(darcy16):
    dm = GridDataModule(str(darcy16), n_train=10, batch_size=4)
    dm.setup("fit")
    io = dm.io_spec()
    assert io["dataset"]["n_train"] == 10 and io["dataset"]["pde"] == "darcy"
    assert "resolution: 16" in io["dataset"]["generator_config"]
    assert len(dm.train_dataloader()) == 3


def test_missing_folder_is_generated_from_the_linked_config(tmp_path):
    gen = {"pde": {"name": "darcy", "resolution": 9}, "n_train": 4, "n_val": 2, "n_test": 2,
           "seed": 1, "progress": False}
    dm = GridDataModule(str(tmp_path / "new"), generate=gen)
    dm.prepare_data()
    dm.setup("test")
    assert dm.splits["test"].x.shape == (2, 1, 9, 9)
    assert h5.read_attrs(tmp_path / "new" / "train.h5")["seed"] == 1


def test_files_that_contradict_the_generator_config_are_refused(darcy16, tmp_path):
    gen = {"pde": {"name": "darcy", "resolution": 16}, "n_train": 64, "n_val": 16,
           "n_test": 16, "seed": 3, "progress": False}
    with pytest.raises(DatasetError, match=r"train\.h5: exists with another configuration.*"
                                           r"data\.generate"):
        GridDataModule(str(darcy16), generate=gen).prepare_data()


def test_unknown_field_is_named(darcy16):
    dm = GridDataModule(str(darcy16), input_fields=["permeability"])
    with pytest.raises(DatasetError, match="has no field 'inputs/permeability'"):
        dm.setup("fit")
