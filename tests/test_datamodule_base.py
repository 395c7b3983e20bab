"""The datamodules share one base (issue 17): data folder, generation when missing, the
splits of a stage, the ``io_spec()["dataset"]`` provenance block and the argument checks
live in :class:`opnet.data.base.OperatorDataModule`; data_gen imports no datamodule."""

from __future__ import annotations

import pytest

from opnet.data import h5
from opnet.data.base import PROVENANCE_KEYS, OperatorDataModule, stage_splits
from opnet.data.datamodule import GridDataModule
from opnet.data.points import PointDataModule
from opnet.data.prose import ProseDataModule
from opnet.data.trajectory import TrajectoryDataModule
from tests.conftest import write_trajectories
from tests.test_import_graph import _merged, import_graph

DATAMODULES = (GridDataModule, TrajectoryDataModule, PointDataModule, ProseDataModule)
SHARED = ("missing_splits", "prepare_data", "setup", "require", "provenance",
          "rank_and_world")


@pytest.fixture(scope="module")
def four(tmp_path_factory, darcy16, antiderivative_small):
    """One set-up datamodule of each kind, with its train split's size."""
    from data_gen import generate

    root = tmp_path_factory.mktemp("base")
    ode = root / "ode"
    generate("ode_systems", out=ode, types="lorenz_3d", n_train=4, n_val=2, n_test=2,
             ics_per_equation=2, eval_ics_per_equation=2, chunk_size=4, progress=False)
    traj = write_trajectories(root / "traj", n=6, frames=5)
    made = [(GridDataModule(str(darcy16), n_train=10), 10, "darcy"),
            (TrajectoryDataModule(str(traj), train_steps=2, rollout_steps=3), 6 * 2,
             "synthetic"),
            (PointDataModule(str(antiderivative_small), n_train=30), 30, "antiderivative"),
            (ProseDataModule(str(ode), batch_size=2), 4, "ode_systems")]
    for dm, _, _ in made:
        dm.setup("fit")
    return made


@pytest.mark.parametrize("cls", DATAMODULES)
def test_every_datamodule_is_an_operator_datamodule_with_the_shared_pieces(cls):
    """The shared logic has one home: no datamodule redefines it."""
    assert issubclass(cls, OperatorDataModule)
    for name in SHARED:
        assert getattr(cls, name) is getattr(OperatorDataModule, name), (cls.__name__, name)


def test_provenance_blocks_have_the_same_keys(four):
    """Each ``io_spec()["dataset"]`` holds the base's provenance keys, with the base's
    values: the folder, its name, the training samples used and the train file's generator
    record; only the kind's own details (strides, steps) come on top."""
    common = None
    for dm, n_train, pde in four:
        block = dm.io_spec()["dataset"]
        keys = set(block) & set(PROVENANCE_KEYS)
        common = keys if common is None else common & keys
        assert {k: block[k] for k in PROVENANCE_KEYS} == {
            k: dm.provenance()[k] for k in PROVENANCE_KEYS}
        attrs = h5.read_attrs(h5.split_path(dm.data_dir, "train"))
        assert block["path"] == str(dm.data_dir) and block["name"] == dm.data_dir.name
        assert block["n_train"] == n_train and block["pde"] == pde == attrs["pde"]
        assert block["seed"] == attrs.get("seed")
        assert block["generator_config"] == attrs.get("generator_config")
    assert common == set(PROVENANCE_KEYS)


def test_stages_read_train_first():
    assert stage_splits("fit") == ["train", "val"]
    assert stage_splits("test") == ["train", "test"]
    assert stage_splits(None) == list(h5.SPLITS)


@pytest.mark.parametrize("cls, why", [(PointDataModule, "point batches"),
                                      (ProseDataModule, "PROSE batches")])
def test_workers_are_refused_by_indexing_datamodules(cls, why, tmp_path):
    with pytest.raises(ValueError, match=f"data.num_workers=2: {why}.*\\(use 0\\)$"):
        cls(str(tmp_path), num_workers=2)
    assert GridDataModule(str(tmp_path), num_workers=2).num_workers == 2


def test_data_gen_imports_no_datamodule():
    """DESIGN: data_gen -> opnet.data.h5 only (the memory helper lives in opnet.memory)."""
    graph = _merged(import_graph())
    reached = sorted({b for a, targets in graph.items() if a.startswith("data_gen")
                      for b in targets if b.startswith("opnet.data.") and b != "opnet.data.h5"})
    assert not reached, f"data_gen imports {reached}"
