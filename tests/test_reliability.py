"""Reliability: killed runs resume exactly, damaged inputs fail with errors that name them,
seeded runs repeat bit for bit.

* training SIGKILLed mid-epoch resumes from ``last.ckpt`` to the uninterrupted run's weights,
  optimizer, schedule, normalizers, step count and test metrics;
* generation SIGKILLed mid-run (between chunks, or while assembling a split) resumes to the
  same arrays and the same file bytes (all but the ``created_utc`` timestamp attribute);
* truncated or overwritten HDF5 files, fields of the wrong dtype, checkpoints of a newer
  format, config typos and strings for numbers each fail with an error naming the
  file/field/key and what was expected;
* ``seed=`` + ``trainer.deterministic=true`` repeats MgNO and DeepONet runs exactly on a CPU.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, compose_train
from hydra.errors import ConfigCompositionException

from data_gen import generate
from opnet import load_operator
from opnet.data import h5
from opnet.data.datamodule import EpochShuffle, GridDataModule
from opnet.data.h5 import DatasetError
from opnet.surrogate import CheckpointError
from opnet.training.job import ConfigError, check_config, train
from opnet.training.module import OPERATOR_FORMAT

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*exists and is not empty",
                                         "ignore:.*could not find the monitored key")]

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# Children run like the test process: one BLAS/OpenMP thread, conftest importable (callbacks).
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
LEAN = ["logger=none", "~callbacks.val_figures", "~callbacks.progress_bar",
        "~callbacks.model_summary"]


def _grid_overrides(data_dir: Path) -> list[str]:
    """Tiny MgNO on 16x16 Darcy: 64 samples in batches of 8 = 8 steps per epoch."""
    return [f"data.data_dir={data_dir}", "data.generate=null", "data.batch_size=8",
            *TINY_MODEL, "trainer.log_every_n_steps=1", *LEAN]


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_tensors(a, b, where: str) -> None:
    """Nested dicts/lists of tensors and numbers, equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: max |diff| {(a.double() - b.double()).abs().max()}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ------------------------------------------------------------------ 1. training resumes exactly
def test_epoch_shuffle_is_a_function_of_seed_and_epoch(darcy16):
    """The training order is fixed by (seed, epoch) alone, not by the global RNG: a resumed
    process draws the permutations the uninterrupted one drew."""
    ds = GridDataModule(str(darcy16)).train_dataloader().dataset
    a, b, c = EpochShuffle(ds, seed=3), EpochShuffle(ds, seed=3), EpochShuffle(ds, seed=4)
    a.set_epoch(5)
    first = list(a)
    torch.manual_seed(123)  # the global RNG plays no part
    b.set_epoch(5)
    assert list(b) == first and sorted(first) == list(range(len(ds)))
    b.set_epoch(6)
    c.set_epoch(5)
    assert list(b) != first and list(c) != first


def test_loader_state_skips_the_batches_already_trained(darcy16):
    """A train loader restored from a mid-epoch state serves exactly the batches the
    interrupted epoch had left; one saved at an epoch's end restarts the next epoch whole."""
    def loader():
        dm = GridDataModule(str(darcy16), batch_size=8, seed=11)
        return dm.train_dataloader()

    full = loader()
    full.sampler.set_epoch(2)
    batches = [b["x"] for b in full]  # 64 samples in 8 batches
    killed = loader()
    killed.sampler.set_epoch(2)
    served = iter(killed)
    for _ in range(3):  # 3 batches trained, then the checkpoint
        next(served)
    state = killed.state_dict()
    assert state == {"epoch": 2, "batches": 3}
    resumed = loader()
    resumed.load_state_dict(state)
    rest = [b["x"] for b in resumed]
    assert len(rest) == 5
    assert all(torch.equal(x, y) for x, y in zip(rest, batches[3:], strict=True))
    whole = loader()
    whole.load_state_dict({"epoch": 2, "batches": 8})
    whole.sampler.set_epoch(3)
    assert len(list(whole)) == 8


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_exactly(darcy16, tmp_path):
    """``python train.py`` SIGKILLed in epoch 1 (step 12 of 24; last.ckpt from step 10, mid-
    epoch, via callbacks=[default,step_checkpoint]) and resumed with ckpt_path=last.ckpt ends
    with the uninterrupted run's weights, normalizer buffers, Adam moments, OneCycle state,
    step/epoch counters (bit for bit) and the same test metrics and best checkpoint."""
    common = [*_grid_overrides(darcy16), "trainer.max_epochs=3", "seed=3",
              "callbacks=[default,step_checkpoint]",
              "callbacks.step_checkpoint.every_n_train_steps=5"]
    run = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *common, f"hydra.run.dir={run}",
         "+callbacks.kill._target_=conftest.KillAtStep", "+callbacks.kill.step=12"],
        cwd=tmp_path, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    saved = _ckpt(last)
    assert saved["global_step"] == 10 and saved["epoch"] == 1  # mid-epoch: batch 2 of 8
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 2}]
    assert not (run / "metrics.json").exists()

    train(compose_train(*common, f"paths.output_dir={run}", f"ckpt_path={last}"))
    train(compose_train(*common, f"paths.output_dir={tmp_path / 'full'}"))
    full, resumed = _ckpt(tmp_path / "full" / "checkpoints" / "last.ckpt"), _ckpt(last)
    assert (resumed["global_step"], resumed["epoch"]) == (full["global_step"], 2) == (24, 2)
    assert any(k.startswith("operator.in_norm.") for k in resumed["state_dict"])
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        _assert_same_tensors(resumed[key], full[key], key)
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (run, tmp_path / "full"))
    assert a["test"] == b["test"] and a["steps"] == b["steps"] == 24
    assert Path(a["best_checkpoint"]).name == Path(b["best_checkpoint"]).name


def test_deeponet_minibatch_run_resumes_exactly(antiderivative_small, tmp_path):
    """DeepONet with sampled minibatches (20 of 100 functions): the batch sampler's generator
    and permutation travel in last.ckpt, so a run crashed at epoch 2 of 3 and resumed ends
    with the uninterrupted run's weights and Adam state, bit for bit."""
    common = ["experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
              "data.generate=null", "~extra_tests.chebyshev", *LEAN, "data.batch_size=20",
              "trainer.max_steps=60", "data.steps_per_epoch=20", "seed=5", "test=false"]
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash at epoch 2"):
        train(compose_train(*common, f"paths.output_dir={run}",
                            "+callbacks.crash._target_=conftest.CrashAtEpoch",
                            "+callbacks.crash.epoch=2"))
    last = run / "checkpoints" / "last.ckpt"
    assert _ckpt(last)["global_step"] == 40
    train(compose_train(*common, f"paths.output_dir={run}", f"ckpt_path={last}"))
    train(compose_train(*common, f"paths.output_dir={tmp_path / 'full'}"))
    full, resumed = _ckpt(tmp_path / "full" / "checkpoints" / "last.ckpt"), _ckpt(last)
    assert resumed["global_step"] == full["global_step"] == 60
    for key in ("state_dict", "optimizer_states"):
        _assert_same_tensors(resumed[key], full[key], key)


# ---------------------------------------------------------------- 2. generation resumes exactly
GEN = ["pde=darcy", "resolution=12", "n_train=9", "n_val=3", "n_test=2", "seed=5",
       "chunk_size=2", "workers=1", "progress=false"]

# `python -m data_gen ...` that SIGKILLs itself at a chosen point: after the 2nd chunk file was
# saved under .partial/, or while the train split is being assembled into train.h5.tmp.
KILLING_CLI = """
import os, runpy, signal, sys
import data_gen.runner as runner
from opnet.data import h5
where, calls = sys.argv.pop(1), []

def kill_after(real, n):
    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapped

if where == "chunks":
    runner._save_part = kill_after(runner._save_part, 2)
else:
    h5.SplitWriter.write = kill_after(h5.SplitWriter.write, 1)
sys.argv[0] = "data_gen"
runpy.run_module("data_gen", run_name="__main__", alter_sys=True)
"""


def _split_arrays(folder: Path) -> dict[str, np.ndarray]:
    """Every dataset of every split file (fields, coords, meta) and every attribute."""
    out: dict[str, object] = {}
    for split in h5.SPLITS:
        with h5py.File(h5.split_path(folder, split), "r") as f:
            f.visititems(lambda name, obj, s=split: out.__setitem__(f"{s}/{name}", obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
            out.update({f"{split}@{k}": v for k, v in f.attrs.items() if k != "created_utc"})
    return out


def _bytes_but_timestamp(path: Path) -> bytes:
    stamp = h5.read_attrs(path)["created_utc"].encode()
    return path.read_bytes().replace(stamp, b"T" * len(stamp))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["chunks", "assemble"])
def test_generation_killed_mid_run_resumes_to_the_same_bytes(tmp_path, where):
    """``python -m data_gen`` SIGKILLed after its 2nd chunk (or in the middle of writing
    train.h5) leaves no file that looks finished; the same command run again resumes from the
    saved chunks and writes the arrays and attributes of an uninterrupted run, and the same
    file bytes except the ``created_utc`` timestamp."""
    ref = tmp_path / "ref"
    generate("darcy", out=ref, resolution=12, n_train=9, n_val=3, n_test=2, seed=5,
             chunk_size=2, progress=False)
    out = tmp_path / "run"
    args = [*GEN, f"out={out}"]
    killed = subprocess.run([sys.executable, "-c", KILLING_CLI, where, *args], cwd=tmp_path,
                            env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    parts = sorted((out / ".partial").rglob("*.npz"))
    assert not (out / "train.h5").exists()
    if where == "chunks":
        assert [p.name for p in parts] == ["000000000-000000002.npz", "000000002-000000004.npz"]
    else:  # every chunk saved, train.h5.tmp half written
        assert len(parts) == 5 + 2 + 1 and list(out.glob("train.h5.*.tmp"))  # <pid>-<random>

    again = subprocess.run([sys.executable, "-m", "data_gen", *args], cwd=tmp_path,
                           env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed {len(parts)} chunk(s)" in again.stdout, again.stdout
    assert not (out / ".partial").exists() and not list(out.glob("*.tmp"))
    a, b = _split_arrays(ref), _split_arrays(out)
    assert a.keys() == b.keys()
    for key in a:
        assert np.asarray(a[key]).tobytes() == np.asarray(b[key]).tobytes(), key
    for split in h5.SPLITS:
        path = h5.split_path(out, split)
        assert _bytes_but_timestamp(path) == _bytes_but_timestamp(h5.split_path(ref, split))


# ------------------------------------------------------ 3. damaged or wrong inputs are named
@pytest.fixture
def darcy_copy(darcy16, tmp_path) -> Path:
    """A private copy of the 16x16 Darcy folder to damage."""
    return Path(shutil.copytree(darcy16, tmp_path / "darcy16"))


def _overwrite(path: Path, offset: int, n: int = 64) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * n)


def test_truncated_split_is_named_with_what_to_do(darcy_copy, tmp_path):
    """val.h5 cut to half its size: reading it, and training on its folder, fail with a
    DatasetError that names val.h5, says truncated or corrupt, and how to regenerate it."""
    path = darcy_copy / "val.h5"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    message = r"val\.h5: not a readable HDF5 file: truncated or corrupt.*regenerate it"
    with pytest.raises(DatasetError, match=message):
        h5.read_fields(path, "inputs", ["coeff"])
    cfg = compose_train(*_grid_overrides(darcy_copy), "trainer.max_epochs=1",
                        f"paths.output_dir={tmp_path / 'out'}")
    with pytest.raises(DatasetError, match=message):
        train(cfg)


def test_overwritten_sample_bytes_are_caught_as_non_finite(darcy_copy):
    """0xFF bytes over the middle sample's data are NaNs (float32 0xFFFFFFFF), which the
    generators never write: the error names the file, the field and the sample."""
    path = darcy_copy / "train.h5"
    with h5py.File(path, "r") as f:
        offset = f["outputs/sol"].id.get_chunk_info(32).byte_offset  # sample 32 of 64
    _overwrite(path, offset + 100)
    # (files written since issue 15 carry Fletcher-32 checksums: caught before the NaN check)
    with pytest.raises(DatasetError, match=r"train\.h5: field 'outputs/sol' (holds NaN/Inf|fails "
                                           r"its Fletcher-32 checksum) in 1 sample\(s\) "
                                           r"\(first: \[32\]\).*corrupt"):
        h5.read_fields(path, "outputs", ["sol"])
    assert h5.read_fields(path, "inputs", ["coeff"]).shape == (64, 1, 16, 16)  # rest intact


def test_overwritten_metadata_is_named_as_corrupt(darcy_copy):
    """0xFF bytes over the object header of inputs/coeff: HDF5 cannot open the field, and the
    error (a KeyError/RuntimeError deep in h5py) becomes a DatasetError naming the file."""
    path = darcy_copy / "train.h5"
    with h5py.File(path, "r") as f:
        header = h5py.h5o.get_info(f["inputs/coeff"].id).addr
    _overwrite(path, header)
    with pytest.raises(DatasetError, match=r"train\.h5: not a readable HDF5 file: truncated "
                                           r"or corrupt \(\w+Error: .*\); regenerate it"):
        h5.read_fields(path, "inputs", ["coeff"])


def test_regenerating_over_a_corrupt_split_needs_overwrite(tmp_path):
    """A rerun of the generator over a truncated train.h5 names it (it is not taken for a
    finished split); with overwrite=true it is made again, equal to the original."""
    kwargs = {"resolution": 10, "n_train": 4, "n_val": 2, "n_test": 2, "progress": False}
    generate("darcy", out=tmp_path, **kwargs)
    before = h5.read_fields(tmp_path / "train.h5", "inputs", ["coeff"])
    path = tmp_path / "train.h5"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(DatasetError, match=r"train\.h5: .*truncated or corrupt.*overwrite=true"):
        generate("darcy", out=tmp_path, **kwargs)
    generate("darcy", out=tmp_path, overwrite=True, **kwargs)
    np.testing.assert_array_equal(h5.read_fields(path, "inputs", ["coeff"]), before)


def _replace_field(path: Path, key: str, values: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        del f[key]
        f.create_dataset(key, data=values)


@pytest.mark.parametrize("kind", ["int64", "complex64", "string"])
def test_field_of_the_wrong_dtype_is_named(darcy_copy, kind):
    """inputs/coeff stored as integers, complex numbers or text (the schema says float32):
    a DatasetError naming the file, the field, its dtype and the expected one (rather than a
    silent cast, a dropped imaginary part or a numpy conversion error)."""
    path = darcy_copy / "test.h5"
    x = h5.read_fields(path, "inputs", ["coeff"])
    values = {"int64": x.astype(np.int64), "complex64": x.astype(np.complex64),
              "string": x.astype(str).astype(object)}[kind]
    _replace_field(path, "inputs/coeff", values)
    with pytest.raises(DatasetError, match=r"test\.h5: field 'inputs/coeff' has \w[\w -]* "
                                           r"dtype .*expected real floating point \(float32"):
        GridDataModule(str(darcy_copy)).setup("test")


def test_point_field_of_the_wrong_dtype_is_named(antiderivative_small, tmp_path):
    """The DeepONet reader checks its fields the same way (inputs/u as int32)."""
    from opnet.data.points import read_point_split

    folder = Path(shutil.copytree(antiderivative_small, tmp_path / "anti"))
    with h5py.File(folder / "val.h5", "r") as f:
        u = f["inputs/u"][()]
    _replace_field(folder / "val.h5", "inputs/u", (100 * u).astype(np.int32))
    with pytest.raises(DatasetError, match=r"val\.h5: field 'inputs/u' has integer dtype "
                                           r"int32, expected real floating point"):
        read_point_split(folder / "val.h5", "u", ["s"])


def test_string_schema_version_is_named(darcy_copy):
    """A string where the schema's integer version goes: a DatasetError naming the file, the
    value found and the integer expected (not a ValueError from int())."""
    with h5py.File(darcy_copy / "train.h5", "a") as f:
        f.attrs["schema_version"] = "one"
    with pytest.raises(DatasetError, match=r"train\.h5: schema_version is 'one', expected 1 "
                                           r"\(an integer"):
        h5.read_attrs(darcy_copy / "train.h5")


# checkpoints: one tiny deterministic run shared by the checkpoint and determinism tests
@pytest.fixture(scope="module")
def mgno_twice(darcy16, tmp_path_factory):
    """The same seeded, deterministic 2-epoch MgNO run done twice (~2 s each)."""
    outs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"mgno_{name}")
        train(compose_train(*_grid_overrides(darcy16), "trainer.max_epochs=2", "seed=7",
                            "trainer.deterministic=true", f"paths.output_dir={out}"))
        outs.append(out)
    return outs


def _with_operator(src: Path, dst: Path, **changes) -> Path:
    ckpt = _ckpt(src)
    ckpt["operator"].update(changes)
    torch.save(ckpt, dst)
    return dst


def test_checkpoint_of_a_newer_format_is_refused_by_name(mgno_twice, darcy16, tmp_path):
    """operator.format_version above this code's: load_operator and resuming both say the
    checkpoint is newer, which opnet wrote it, and to upgrade (never a KeyError later)."""
    last = mgno_twice[0] / "checkpoints" / "last.ckpt"
    newer = _with_operator(last, tmp_path / "newer.ckpt", format_version=OPERATOR_FORMAT + 1,
                           opnet_version="9.0.0")
    message = (rf"newer\.ckpt: operator format_version {OPERATOR_FORMAT + 1} is newer than "
               rf"this opnet .* reads \(format_version {OPERATOR_FORMAT}\); it was written by "
               r"opnet 9\.0\.0: upgrade opnet")
    with pytest.raises(CheckpointError, match=message):
        load_operator(newer)
    cfg = compose_train(*_grid_overrides(darcy16), "trainer.max_epochs=3",
                        f"paths.output_dir={tmp_path / 'out'}",
                        f"ckpt_path={newer}")
    with pytest.raises(CheckpointError, match=message):
        train(cfg)


def test_checkpoint_of_an_older_or_missing_format_and_a_truncated_one_are_named(mgno_twice,
                                                                                 tmp_path):
    """format_version 0 or absent: named with the version expected; a checkpoint cut in half:
    'cannot be read as a torch checkpoint' with the file name."""
    last = mgno_twice[0] / "checkpoints" / "last.ckpt"
    older = _with_operator(last, tmp_path / "older.ckpt", format_version=0)
    with pytest.raises(CheckpointError, match=rf"older\.ckpt: operator format_version 0, "
                                              rf"expected {OPERATOR_FORMAT}"):
        load_operator(older)
    ckpt = _ckpt(last)
    del ckpt["operator"]["format_version"]
    torch.save(ckpt, tmp_path / "none.ckpt")
    with pytest.raises(CheckpointError, match=r"none\.ckpt: operator format_version None"):
        load_operator(tmp_path / "none.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: cannot be read as a torch "
                                              r"checkpoint .*truncated or corrupt"):
        load_operator(cut)


# config keys and values
@pytest.mark.parametrize("override", ["trainer.max_stepz=3", "model.widht=8",
                                      "data.batch_sise=4"])
def test_config_key_typo_is_refused_by_hydra_naming_the_key(override):
    """Hydra's strict mode: a key the config does not have fails at composition, naming it."""
    with pytest.raises(ConfigCompositionException, match=rf"override '{override[:-2]}'"):
        compose_train(override)


@pytest.mark.parametrize(("override", "message"), [
    ("+model.widht=8", r"model\.widht: MgNO has no such argument \(a typo\?\); it takes "
                       r"\[.*'width'"),
    ("+data.batch_sise=4", r"data\.batch_sise: GridDataModule has no such argument"),
    ("+module.learning_rate=1", r"module\.learning_rate: OperatorModule has no such argument"),
    ("+trainer.max_stepz=3", r"trainer\.max_stepz: Trainer has no such argument"),
    ("model.width=abc", r"model\.width='abc': expected a number \(MgNO\.width\)"),
    ("module.lr=fast", r"module\.lr='fast': expected a number \(OperatorModule\.lr\)"),
    ("data.batch_size=eight", r"data\.batch_size='eight': expected a number"),
    ("trainer.max_epochs=ten", r"trainer\.max_epochs='ten': expected a number"),
    ("seed=abc", r"seed='abc': expected an integer"),
])
def test_forced_unknown_key_or_string_for_a_number_is_named(darcy16, tmp_path, override,
                                                            message):
    """What strict mode lets through (keys added with +, strings where numbers go) stops
    train() before any work with a ConfigError naming the key and what was expected."""
    cfg = compose_train(*_grid_overrides(darcy16), f"paths.output_dir={tmp_path}", override)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not list(tmp_path.iterdir())  # nothing was started


@pytest.mark.slow
def test_every_shipped_config_passes_the_config_check():
    """No false alarms: every experiment and trainer config in conf/, and every model config
    no experiment uses (with the default data), passes check_config as composed."""
    import re

    from hydra import compose, initialize_config_dir

    conf = ROOT / "conf"
    experiments = sorted((conf / "experiment").glob("*.yaml"))
    used = {m for p in experiments for m in re.findall(r"override /model: (\w+)", p.read_text())}
    overrides = [f"experiment={p.stem}" for p in experiments]
    overrides += [f"trainer={p.stem}" for p in sorted((conf / "trainer").glob("*.yaml"))]
    overrides += [f"model={p.stem}" for p in sorted((conf / "model").glob("*.yaml"))
                  if p.stem not in used]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for override in overrides:
            check_config(compose("train", overrides=[override, "paths.output_dir=unused"]))


# ------------------------------------------------------------------------------ 4. determinism
def test_seeded_deterministic_mgno_runs_are_identical(mgno_twice):
    """seed=7 + trainer.deterministic=true twice: metrics.json test values equal exactly and
    the final weights (and normalizers, optimizer state) bit for bit."""
    a, b = mgno_twice
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["test"] == mb["test"] and ma["steps"] == mb["steps"] == 16
    ca, cb = (_ckpt(d / "checkpoints" / "last.ckpt") for d in (a, b))
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        _assert_same_tensors(ca[key], cb[key], key)


def test_seeded_deterministic_deeponet_runs_are_identical(antiderivative_small,
                                                          tmp_path):
    """The DeepONet antiderivative recipe with sampled minibatches (20 of 100 functions,
    seeded sampler), twice: identical metrics.json test values and final weights."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        train(compose_train("experiment=deeponet_antiderivative",
                            f"data.data_dir={antiderivative_small}", "data.generate=null",
                            "~extra_tests.chebyshev", *LEAN, "data.batch_size=20",
                            "trainer.max_steps=60", "data.steps_per_epoch=20", "seed=5",
                            "trainer.deterministic=true", f"paths.output_dir={out}"))
        runs.append((json.loads((out / "metrics.json").read_text()),
                     _ckpt(out / "checkpoints" / "last.ckpt")))
    (ma, ca), (mb, cb) = runs
    assert ma["test"] == mb["test"] and ma["steps"] == mb["steps"] == 60
    _assert_same_tensors(ca["state_dict"], cb["state_dict"], "state_dict")
    other = compose_train("experiment=deeponet_antiderivative", "seed=6")
    assert other.data.seed == 6  # the seed reaches the batch sampler
