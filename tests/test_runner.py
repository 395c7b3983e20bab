"""Dataset generation: worker-independent bytes, resume, shards, conflicts, the CLI."""

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

import data_gen.runner as runner
from data_gen import GenerationError, generate
from opnet.data import h5

SMALL = {"resolution": 12, "n_train": 7, "n_val": 3, "n_test": 2, "seed": 5, "progress": False}


def _arrays(folder):
    out = {}
    for split in h5.SPLITS:
        with h5.open_split(h5.split_path(folder, split)) as f:
            for key in ("inputs/coeff", "outputs/sol", "meta/global_index"):
                out[f"{split}/{key}"] = f[key][()]
    return out


def _crash_on_chunk(monkeypatch, n):
    """Make the n-th chunk of the next generation raise (a killed run); returns the real
    chunk function to restore."""
    real, calls = runner._run_chunk, []

    def crash(*args):
        calls.append(args)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(runner, "_run_chunk", crash)
    return real


def _assert_same_bytes(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key


def test_bytes_do_not_depend_on_workers_or_chunks(tmp_path):
    generate("darcy", out=tmp_path / "w1", workers=1, chunk_size=4, **SMALL)
    generate("darcy", out=tmp_path / "w2", workers=2, chunk_size=3, **SMALL)
    _assert_same_bytes(_arrays(tmp_path / "w1"), _arrays(tmp_path / "w2"))


def test_seed_and_split_change_the_samples(tmp_path):
    generate("darcy", out=tmp_path / "a", **SMALL)
    generate("darcy", out=tmp_path / "b", **{**SMALL, "seed": 6})
    a, b = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    assert not np.array_equal(a["train/inputs/coeff"], b["train/inputs/coeff"])
    assert not np.array_equal(a["train/inputs/coeff"][:2], a["val/inputs/coeff"][:2])


def test_interrupted_run_resumes_to_identical_bytes(tmp_path, monkeypatch):
    generate("darcy", out=tmp_path / "ref", chunk_size=2, **SMALL)
    real = _crash_on_chunk(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        generate("darcy", out=tmp_path / "run", chunk_size=2, **SMALL)
    assert not (tmp_path / "run" / "train.h5").exists()  # nothing looks finished
    monkeypatch.setattr(runner, "_run_chunk", real)
    summary = generate("darcy", out=tmp_path / "run", chunk_size=2, **SMALL)
    assert summary.resumed_chunks == 2
    assert not (tmp_path / "run" / ".partial").exists()
    _assert_same_bytes(_arrays(tmp_path / "ref"), _arrays(tmp_path / "run"))


def test_rerun_skips_complete_splits_and_other_config_needs_overwrite(tmp_path):
    generate("darcy", out=tmp_path, **SMALL)
    again = generate("darcy", out=tmp_path, **SMALL)
    assert again.skipped_splits == ["train", "val", "test"]
    with pytest.raises(GenerationError, match=r"train\.h5: exists with another configuration"):
        generate("darcy", out=tmp_path, **{**SMALL, "seed": 9})
    generate("darcy", out=tmp_path, overwrite=True, **{**SMALL, "seed": 9})
    assert h5.read_attrs(tmp_path / "train.h5")["seed"] == 9


def test_shards_are_stitched_into_one_virtual_split(tmp_path):
    generate("darcy", out=tmp_path / "one", **SMALL)
    generate("darcy", out=tmp_path / "sharded", shard_size=3, **SMALL)
    assert sorted(p.name for p in (tmp_path / "sharded").glob("train*.h5")) == [
        "train-00000.h5", "train-00001.h5", "train-00002.h5", "train.h5"]
    _assert_same_bytes(_arrays(tmp_path / "one"), _arrays(tmp_path / "sharded"))


def test_file_records_provenance(tmp_path):
    generate("darcy", out=tmp_path, **SMALL)
    with h5py.File(tmp_path / "val.h5") as f:
        assert f.attrs["pde"] == "darcy" and f.attrs["seed"] == 5 and f.attrs["split"] == "val"
        assert "resolution: 12" in f.attrs["generator_config"]
        assert f["inputs/coeff"].shape == (3, 1, 12, 12) and f["inputs/coeff"].dtype == np.float32
        assert f["inputs/coeff"].chunks == (1, 1, 12, 12)
        np.testing.assert_array_equal(f["coords/x"][()], np.linspace(0, 1, 12))


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(KeyError, match="unknown parameter.*'viscosity'"):
        generate("darcy", out=tmp_path, viscosity=1.0)
    with pytest.raises(KeyError, match="pde 'heat' is not a known generator"):
        generate("heat", out=tmp_path)


def test_cli_writes_the_dataset_and_a_summary(tmp_path):
    out = tmp_path / "cli"
    res = subprocess.run(
        [sys.executable, "-m", "data_gen", "pde=darcy", "n_train=4", "n_val=2", "n_test=2",
         "resolution=10", "seed=0", "workers=1", f"out={out}", "progress=false"],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    assert re.search(r"train\s+4 samples", res.stdout), res.stdout
    assert h5.read_fields(out / "test.h5", "outputs", ["sol"]).shape == (2, 1, 10, 10)


def test_machine_shards_merge_to_the_same_bytes(tmp_path):
    """Three 'machines' each write their shard of every split; the last one to finish
    stitches them (merge does the same by hand)."""
    generate("darcy", out=tmp_path / "one", **SMALL)
    for k in (2, 0, 1):
        assert not (tmp_path / "multi" / "train.h5").exists()
        summary = generate("darcy", out=tmp_path / "multi", shard=k, num_shards=3, **SMALL)
        assert [p.name for p in summary.files["train"]] == [f"train-{k:05d}.h5"]
        assert summary.merged == (k == 1)
    _assert_same_bytes(_arrays(tmp_path / "one"), _arrays(tmp_path / "multi"))
    merged = runner.merge(tmp_path / "multi")
    assert sorted(merged) == ["test", "train", "val"]
    _assert_same_bytes(_arrays(tmp_path / "one"), _arrays(tmp_path / "multi"))
    # test has 2 samples over 3 shards: one shard is empty and still merges
    assert h5.read_attrs(tmp_path / "multi" / "test-00000.h5")["n_samples"] == 0
    # a machine rerunning its shard finds it complete and leaves it alone
    again = generate("darcy", out=tmp_path / "multi", shard=1, num_shards=3, **SMALL)
    assert again.files["train"][0].name == "train-00001.h5"


def test_merge_names_missing_and_foreign_shards(tmp_path):
    generate("darcy", out=tmp_path, shard=0, num_shards=2, **SMALL)
    with pytest.raises(GenerationError, match=r"train has 1 of 2 shards; missing train-00001\.h5"):
        runner.merge(tmp_path)
    generate("darcy", out=tmp_path, shard=1, num_shards=2, **{**SMALL, "seed": 6})
    with pytest.raises(GenerationError, match=r"train-00001\.h5: seed=6 differs"):
        runner.merge(tmp_path)
    with pytest.raises(ValueError, match=r"shard=2: expected 0 <= shard < num_shards=2"):
        generate("darcy", out=tmp_path, shard=2, num_shards=2, **SMALL)
    with pytest.raises(GenerationError, match="no shard files"):
        runner.merge(tmp_path / "empty")


def test_non_finite_samples_are_reported_and_never_written(tmp_path, monkeypatch):
    import data_gen.pdes.darcy as darcy

    real = darcy.sample

    def broken(cfg, rngs):
        fields = real(cfg, rngs)
        fields["outputs"]["sol"][1, 0, 3, 3] = np.nan
        return fields

    monkeypatch.setattr(darcy, "sample", broken)
    bad = r"train samples 0..3 .*'outputs/sol' of sample\(s\) \[1\] is not finite"
    with pytest.raises(GenerationError, match=bad):
        generate("darcy", out=tmp_path, chunk_size=4, **SMALL)
    assert not (tmp_path / "train.h5").exists()


def test_merge_cli(tmp_path):
    for k in range(2):
        generate("darcy", out=tmp_path, shard=k, num_shards=2, **SMALL)
    res = subprocess.run([sys.executable, "-m", "data_gen.merge", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert "train" in res.stdout and (tmp_path / "train.h5").exists()
    assert h5.read_fields(tmp_path / "train.h5", "inputs", ["coeff"]).shape == (7, 1, 12, 12)


def test_a_tuple_parameter_run_resumes(tmp_path, monkeypatch):
    """Burgers' record_times is a tuple: the saved run.yaml reads back as a list and must
    still count as the same configuration."""
    small = {"n_train": 4, "n_val": 0, "n_test": 0, "progress": False, "resolution": 16,
             "solver_resolution": 32, "dt": 0.01, "T": 0.1, "record_times": (0.05, 0.1)}
    real = _crash_on_chunk(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        generate("burgers", out=tmp_path, chunk_size=2, **small)
    monkeypatch.setattr(runner, "_run_chunk", real)
    assert generate("burgers", out=tmp_path, chunk_size=2, **small).resumed_chunks == 1


def test_an_int_for_a_float_parameter_is_the_same_configuration(tmp_path):
    """high=12 from a command line and high: 12.0 from YAML name one dataset."""
    generate("darcy", out=tmp_path, high=12, **SMALL)
    assert generate("darcy", out=tmp_path, high=12.0, **SMALL).skipped_splits == [
        "train", "val", "test"]
    assert "high: 12.0" in h5.read_attrs(tmp_path / "train.h5")["generator_config"]


def test_an_empty_split_takes_its_shapes_without_a_solve(tmp_path, monkeypatch):
    """n_val=0: the empty val.h5 gets the fields of the others, no extra 1-sample solve."""
    import data_gen.pdes.darcy as darcy

    real, calls = darcy.sample, []
    monkeypatch.setattr(darcy, "sample", lambda cfg, rngs: calls.append(len(rngs)) or
                        real(cfg, rngs))
    generate("darcy", out=tmp_path, **{**SMALL, "n_val": 0})
    assert sum(calls) == SMALL["n_train"] + SMALL["n_test"]
    with h5py.File(tmp_path / "val.h5") as f:
        assert f["inputs/coeff"].shape == (0, 1, 12, 12)
    # and when the other splits are already complete files
    (tmp_path / "val.h5").unlink()
    calls.clear()
    generate("darcy", out=tmp_path, **{**SMALL, "n_val": 0})
    assert calls == []
    assert h5.read_attrs(tmp_path / "val.h5")["n_samples"] == 0
