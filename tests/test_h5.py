"""The HDF5 schema: atomic writes, schema checks, named-field errors, virtual shards."""

import h5py
import numpy as np
import pytest

from opnet.data import h5
from opnet.data.h5 import DatasetError


def _write(path, n=6, start=0, **attrs):
    x = np.arange(n * 16, dtype=np.float32).reshape(n, 1, 4, 4) + start * 16
    specs = {"inputs/coeff": ((1, 4, 4), np.float32), "outputs/sol": ((1, 4, 4), np.float32)}
    with h5.SplitWriter(path, n, specs, {"x": np.linspace(0, 1, 4)}, {"pde": "toy", **attrs}) as w:
        w.write(0, {"inputs/coeff": x, "outputs/sol": 2 * x}, np.arange(start, start + n))
        w.commit()
    return x


def test_round_trip_with_stride_and_attrs(tmp_path):
    x = _write(tmp_path / "train.h5")
    got = h5.read_fields(tmp_path / "train.h5", "inputs", ["coeff"], stride=2)
    np.testing.assert_array_equal(got, x[:, :, ::2, ::2])
    assert h5.read_attrs(tmp_path / "train.h5")["schema_version"] == h5.SCHEMA_VERSION
    assert h5.field_names(tmp_path / "train.h5")["outputs"] == ["sol"]
    np.testing.assert_array_equal(h5.read_coords(tmp_path / "train.h5", 2)["x"], [0, 2 / 3])


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "train.h5"
    with pytest.raises(RuntimeError), h5.SplitWriter(
            path, 2, {"inputs/a": ((1, 2, 2), np.float32)}, {}, {}):
        raise RuntimeError("crash mid-write")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_other_schema_version_is_rejected_by_name(tmp_path):
    path = tmp_path / "train.h5"
    _write(path)
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DatasetError, match=r"train\.h5: schema_version is 99, expected 1"):
        h5.open_split(path)


def test_missing_field_and_non_hdf5_file_are_named(tmp_path):
    _write(tmp_path / "train.h5")
    with pytest.raises(DatasetError, match=r"no field 'inputs/perm' \(it has inputs: \['coeff'\]"):
        h5.read_fields(tmp_path / "train.h5", "inputs", ["perm"])
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="bad.h5: not a readable HDF5 file"):
        h5.open_split(tmp_path / "bad.h5")


def test_virtual_file_stitches_shards_in_order(tmp_path):
    a = _write(tmp_path / "train-00000.h5", n=3, start=0)
    b = _write(tmp_path / "train-00001.h5", n=2, start=3)
    h5.write_virtual(tmp_path / "train.h5",
                     [tmp_path / "train-00000.h5", tmp_path / "train-00001.h5"], {"pde": "toy"})
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in tmp_path.glob("*.h5"):
        f.rename(moved / f.name)  # relative source names: the folder can move
    got = h5.read_fields(moved / "train.h5", "inputs", ["coeff"])
    np.testing.assert_array_equal(got, np.concatenate([a, b]))
    with h5.open_split(moved / "train.h5") as f:
        np.testing.assert_array_equal(f["meta/global_index"][()], np.arange(5))


def test_string_fields_are_utf8_and_survive_virtual_shards(tmp_path):
    """/symbols/<name>: numpy str arrays of any width are written as variable-length utf-8
    (so shards with different widths stitch) and read back as str."""
    parts = [np.array(["add u_0 u_1", "sin u_0 | cos u_1 é"]), np.array(["mul -2.72 u_2"])]
    paths = []
    for k, text in enumerate(parts):
        path = tmp_path / f"train-0000{k}.h5"
        specs = {"symbols/expr": (text.shape[1:], text.dtype)}
        with h5.SplitWriter(path, len(text), specs, {}, {"pde": "toy"}) as w:
            start = sum(len(p) for p in parts[:k])  # global_index runs on across shards
            w.write(0, {"symbols/expr": text}, np.arange(start, start + len(text)))
            paths.append(w.commit())
    h5.write_virtual(tmp_path / "train.h5", paths, {"pde": "toy"})
    got = h5.read_symbols(tmp_path / "train.h5", "expr")
    assert got.tolist() == [*parts[0].tolist(), *parts[1].tolist()]
    assert h5.field_names(tmp_path / "train.h5")["symbols"] == ["expr"]
    with pytest.raises(DatasetError, match=r"no field 'symbols/name' \(it has symbols: "):
        h5.read_symbols(tmp_path / "train.h5", "name")
