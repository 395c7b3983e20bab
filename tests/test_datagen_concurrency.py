"""Data generation under real use: parallel processes into one folder, shards as a Hydra
multirun, a full disk, killed parents, bad command-line values, damaged files."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from filelock import FileLock

from data_gen import generate
from data_gen.locking import FOLDER_LOCK
from opnet.data import h5
from opnet.data.datamodule import ensure_dataset
from opnet.data.h5 import DatasetError

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "HYDRA_FULL_ERROR": "0"}
SMALL = {"resolution": 12, "n_train": 7, "n_val": 3, "n_test": 2, "seed": 5}
# enough chunks that two processes started together overlap while writing
RACE = {"resolution": 20, "n_train": 48, "n_val": 8, "n_test": 8, "seed": 3, "chunk_size": 4}


def _cli(config: dict, out: Path, *extra: str, multirun: bool = False) -> list[str]:
    return [sys.executable, "-m", "data_gen", *(["-m"] if multirun else []),
            *(f"{k}={v}" for k, v in config.items()), "progress=false", f"out={out}", *extra]


def _everything(folder: Path) -> dict[str, object]:
    """Every dataset (fields, coords, meta) and attribute of every split, but created_utc."""
    out: dict[str, object] = {}
    for split in h5.SPLITS:
        with h5py.File(h5.split_path(folder, split), "r") as f:
            f.visititems(lambda name, obj, s=split: out.__setitem__(f"{s}/{name}", obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
            out.update({f"{split}@{k}": v for k, v in f.attrs.items()
                        if k not in ("created_utc", "n_shards")})
    return out


def _assert_same(a: Path, b: Path) -> None:
    x, y = _everything(a), _everything(b)
    assert x.keys() == y.keys()
    for key in x:
        assert np.asarray(x[key]).tobytes() == np.asarray(y[key]).tobytes(), key


def _no_leftovers(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.name]


# ------------------------------------------------------------------ one folder, many writers

def test_two_generations_at_once_write_the_bytes_of_a_solo_run(tmp_path):
    """Two `python -m data_gen` of one dataset started together: both succeed, the files hold
    exactly a solo run's arrays and attributes, nothing temporary is left."""
    generate("darcy", out=tmp_path / "solo", progress=False, **RACE)
    out = tmp_path / "shared"
    procs = [subprocess.Popen(_cli(RACE, out), cwd=tmp_path, env=CHILD_ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for rc, _, stderr in results:
        assert rc == 0, stderr[-3000:]
    _assert_same(tmp_path / "solo", out)
    _no_leftovers(out)


def test_a_second_generation_waits_for_the_lock_then_reuses_the_data(tmp_path):
    """While another process holds the folder, a generation says so in one line and waits;
    once the data are there it finds them complete and leaves them untouched."""
    generate("darcy", out=tmp_path / "done", progress=False, **SMALL)
    out = tmp_path / "busy"
    out.mkdir()
    with FileLock(out / FOLDER_LOCK):
        proc = subprocess.Popen(_cli(SMALL, out), cwd=tmp_path, env=CHILD_ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proc.stderr.readline()  # blocks until the child reports the wait
        assert line == f"waiting for {out} (locked by another generation)\n"
        for f in (tmp_path / "done").glob("*.h5"):  # "the other generation" finishes
            shutil.copy2(f, out / f.name)
        before = {f.name: f.stat().st_mtime_ns for f in out.glob("*.h5")}
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout.count("(already complete)") == 3, stdout
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("*.h5")} == before
    assert "waiting" not in stderr  # said once


def test_two_writers_of_one_file_use_their_own_temporary_names(tmp_path):
    """Two SplitWriters of one path at once: each writes its own temporary file, so the file
    that ends up under the final name is whole."""
    path = tmp_path / "train.h5"
    specs = {"inputs/a": ((1, 3), np.float32)}
    first = h5.SplitWriter(path, 4, specs, {}, {"pde": "toy"})
    second = h5.SplitWriter(path, 4, specs, {}, {"pde": "toy"})
    assert first.tmp != second.tmp
    for k, writer in enumerate((first, second)):
        writer.write(0, {"inputs/a": np.full((4, 1, 3), k + 1.0)}, np.arange(4))
    first.commit()
    np.testing.assert_array_equal(h5.read_fields(path, "inputs", ["a"]), np.ones((4, 1, 3)))
    second.commit()
    np.testing.assert_array_equal(h5.read_fields(path, "inputs", ["a"]), np.full((4, 1, 3), 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]


# ---------------------------------------------------------------------- damaged files named

def _damage_global_index(path: Path) -> None:
    with h5py.File(path, "a") as f:  # what two writers of one file left behind
        f["meta/global_index"][3:] = 0


def test_a_file_with_a_broken_global_index_is_named_as_damaged(tmp_path):
    generate("darcy", out=tmp_path, progress=False, **SMALL)
    _damage_global_index(tmp_path / "train.h5")
    with pytest.raises(DatasetError, match=r"train\.h5: damaged or incomplete: "
                       r"meta/global_index should be the consecutive range 0\.\.6"):
        h5.read_fields(tmp_path / "train.h5", "inputs", ["coeff"])
    h5.read_fields(tmp_path / "val.h5", "inputs", ["coeff"])  # the others are fine


def test_a_shard_checks_its_own_range_and_a_short_dataset_is_incomplete(tmp_path):
    generate("darcy", out=tmp_path, progress=False, shard_size=3, **SMALL)
    with h5py.File(tmp_path / "train-00001.h5", "a") as f:
        f["meta/global_index"][:] = np.arange(3)  # a shard must hold 3..5
    with pytest.raises(DatasetError, match=r"train-00001\.h5: damaged.*range 3\.\.5"):
        h5.read_attrs(tmp_path / "train-00001.h5")
    with pytest.raises(DatasetError, match=r"train\.h5: damaged.*range 0\.\.6"):
        h5.read_attrs(tmp_path / "train.h5")  # the virtual file sees it too
    with h5py.File(tmp_path / "val.h5", "a") as f:  # rewrite a field one sample short
        sol = f["outputs/sol"][:2]
        del f["outputs/sol"]
        f["outputs/sol"] = sol
    with pytest.raises(DatasetError, match=r"val\.h5: damaged or incomplete: 'outputs/sol' "
                       r"has shape \(2, 1, 12, 12\), expected 3 samples"):
        h5.read_fields(tmp_path / "val.h5", "outputs", ["sol"])


def test_a_flipped_byte_in_a_sample_fails_its_checksum(tmp_path):
    """Fields are written with Fletcher-32 chunk checksums: bit rot is an error naming the
    file, not a silently different sample."""
    generate("darcy", out=tmp_path, progress=False, **SMALL)
    path = tmp_path / "test.h5"
    with h5py.File(path, "r") as f:
        assert f["outputs/sol"].fletcher32
        offset = f["outputs/sol"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        byte = fh.read(1)
        fh.seek(offset + 100)
        fh.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(DatasetError, match=r"test\.h5: field 'outputs/sol' fails its "
                       r"Fletcher-32 checksum in 1 sample\(s\) \(first: \[1\]\)"):
        h5.read_fields(path, "outputs", ["sol"])
    with pytest.raises(DatasetError, match=r"test\.h5: not a readable HDF5 file"), \
            h5.open_split(path) as f:  # any other read names the file too
        f["outputs/sol"][1]


# ----------------------------------------------------------------------------- shards

def test_shards_run_beside_a_held_folder_lock_and_the_last_merges(tmp_path):
    """Shard runs take their own lock (a busy folder lock does not stop them); the last
    shard to finish merges, giving the arrays of a single-process run."""
    generate("darcy", out=tmp_path / "solo", progress=False, **SMALL)
    out = tmp_path / "sharded"
    out.mkdir()
    with FileLock(out / FOLDER_LOCK):
        procs = [subprocess.Popen(_cli(SMALL, out, f"shard={k}", "num_shards=3"),
                                  cwd=tmp_path, env=CHILD_ENV, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for k in (0, 1)]
        for p in procs:  # finish although .lock is held: no serialising on the folder
            assert p.wait(timeout=300) == 0, p.communicate()[1]
    last = subprocess.run(_cli(SMALL, out, "shard=2", "num_shards=3"), cwd=tmp_path,
                          env=CHILD_ENV, text=True, capture_output=True, timeout=300)
    assert last.returncode == 0, last.stderr
    assert "every shard is done; merged" in last.stdout
    _assert_same(tmp_path / "solo", out)
    _no_leftovers(out)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_shard_multirun_is_one_command(tmp_path, launcher):
    """`python -m data_gen -m shard='range(0,3)' num_shards=3` (Hydra's basic and joblib
    launchers) writes and merges the dataset; Hydra leaves nothing in the working folder."""
    generate("darcy", out=tmp_path / "solo", progress=False, **SMALL)
    work = tmp_path / "work"
    work.mkdir()
    cmd = _cli(SMALL, Path("ds"), "shard=range(0,3)", "num_shards=3",
               f"hydra/launcher={launcher}", multirun=True)
    res = subprocess.run(cmd, cwd=work, env=CHILD_ENV, text=True, capture_output=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(p.name for p in work.iterdir()) == ["ds"]  # no multirun/, no outputs/
    _assert_same(tmp_path / "solo", work / "ds")
    _no_leftovers(work / "ds")


# ------------------------------------------------------------------------- faults: disk

def _file_size_limit(limit: int):
    def limit_writes():  # writes past `limit` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


def test_a_full_disk_is_one_line_and_the_rerun_completes(tmp_path):
    """A write failing like ENOSPC while train.h5 is assembled: exit 2 with one line naming the
    folder (not a segfault); the same command then resumes to a solo run's bytes."""
    config = {**SMALL, "resolution": 24, "n_train": 64, "chunk_size": 8}
    generate("darcy", out=tmp_path / "solo", progress=False, **config)
    out = tmp_path / "full"
    # the 8 chunk files (~37 KB each) fit, train.h5 (~300 KB) does not
    res = subprocess.run(_cli(config, out), cwd=tmp_path, env=CHILD_ENV, text=True,
                         capture_output=True, timeout=300, preexec_fn=_file_size_limit(100_000))
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: cannot write train.h5: "), lines
    assert "rerun the same command" in lines[0]
    assert not (out / "train.h5").exists() and not list(out.glob("*.tmp"))
    again = subprocess.run(_cli(config, out), cwd=tmp_path, env=CHILD_ENV, text=True,
                           capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed 10 chunk(s)" in again.stdout  # 8 train + 1 val + 1 test
    _assert_same(tmp_path / "solo", out)
    _no_leftovers(out)


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: read-only by mode, or (as root, who
    ignores modes) /sys."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    folder = Path("/sys")
    with pytest.raises(OSError):
        (folder / "probe").touch()
    return folder


@pytest.mark.parametrize("case", ["read-only folder", "out is a file"])
def test_an_unusable_out_is_one_line(tmp_path, case):
    if case == "out is a file":
        out = tmp_path / "data.h5"
        out.write_text("not a folder")
        expected = f"error: out={out}: is an existing file, expected a dataset folder"
    else:
        out = _unwritable_folder(tmp_path)
        expected = f"error: {out}: cannot create the lock file .lock: permission denied"
    res = subprocess.run(_cli(SMALL, out), cwd=tmp_path, env=CHILD_ENV, text=True,
                         capture_output=True, timeout=300)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines


# ------------------------------------------------------------------ faults: killed parent

def _children(pid: int) -> list[int]:
    """Pool workers (spawned: their command line runs spawn_main) whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_die_with_their_killed_parent(tmp_path):
    code = ("import sys; from data_gen import generate; generate('darcy', out=sys.argv[1], "
            "n_train=400, n_val=0, n_test=0, resolution=32, workers=2, chunk_size=4, "
            "progress=False)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ds")],
                              env=CHILD_ENV, start_new_session=True, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            workers = _children(parent.pid)
            time.sleep(0.05)  # polling /proc: nothing to wait on
        assert len(workers) == 2, "the pool did not start"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5  # the watchdog thread polls every second
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers)), "orphaned workers still run"
    finally:
        for pid in [parent.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ------------------------------------------------------------------ command-line values

@pytest.mark.parametrize(("arg", "expected"), [
    ("resolution=abc", "error: resolution='abc': expected an integer >= 2"),
    ("resolution=32.5", "error: resolution=32.5: expected an integer >= 2"),
    ("n_train=1.5", "error: n_train=1.5: expected an integer >= 0"),
    ("seed=-1", "error: seed=-1: expected an integer >= 0"),
    ("workers=0", "error: workers=0: expected an integer >= 1"),
    ("chunk_size=x", "error: chunk_size='x': expected an integer >= 1"),
    ("resolution=100000", "error: resolution=100000: one chunk of darcy (7 samples on a "
                          "100000x100000 grid) needs at least"),
])
def test_bad_integer_values_are_one_line_naming_the_key(tmp_path, arg, expected):
    res = subprocess.run(_cli({k: v for k, v in SMALL.items() if k != "resolution"},
                              tmp_path / "out", arg),
                         cwd=tmp_path, env=CHILD_ENV, text=True, capture_output=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert not (tmp_path / "out").exists()  # refused before anything was made


# --------------------------------------------------------------- training's data.generate

def test_a_data_dir_of_another_configuration_offers_to_use_it_as_it_is(tmp_path):
    generate("darcy", out=tmp_path, progress=False, **SMALL)
    ask = {"pde": {"name": "darcy", "resolution": 12}, "n_train": 7, "n_val": 3, "n_test": 2,
           "seed": 6, "progress": False}
    with pytest.raises(DatasetError) as err:
        ensure_dataset(tmp_path, ask, None)
    message = str(err.value)
    assert "train.h5: exists with another configuration" in message
    assert "set data.generate=null" in message and "data.data_dir" in message
    assert "data.generate.overwrite=true, which DELETES the files" in message
    assert "\n" not in message
    assert h5.read_attrs(tmp_path / "train.h5")["seed"] == 5  # untouched
