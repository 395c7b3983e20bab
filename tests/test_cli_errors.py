"""Expected errors of ``python train.py`` and ``python -m opnet.evaluate``: one line
``error: ...`` on stderr naming the key or file, exit code 2; ``HYDRA_FULL_ERROR=1`` and
unexpected errors keep the traceback (:mod:`opnet.cli`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_MODEL
from omegaconf import OmegaConf

from opnet.cli import error_line, run_reporting_errors

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _train(tmp_path: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    """``python train.py`` started in ``tmp_path`` (outputs and data stay there)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"paths.output_root={tmp_path / 'outputs'}",
         f"paths.data_dir={tmp_path / 'data'}", "data.generate=null", "trainer.max_epochs=1",
         *TINY_MODEL, *overrides],
        cwd=tmp_path, env=_env(**env), capture_output=True, text=True, timeout=300)


def _evaluate(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opnet.evaluate", *overrides], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single line on stderr of a run that failed with an expected error."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ------------------------------------------------------------------------------ train.py
@pytest.mark.parametrize("override, named", [
    ("+model.widht=3", "model.widht"),          # a typo added with +
    ("model.width=abc", "model.width='abc'"),   # a string for a number
    ("seed=abc", "seed='abc'"),
    ("seed=-1", "seed=-1"),                     # numpy seeds are in [0, 2**32 - 1]
])
def test_train_bad_value_is_one_line(tmp_path, override, named):
    """Refused before any data is read: one line naming the key and value, exit 2."""
    line = _one_error_line(_train(tmp_path, override))
    assert named in line
    assert not (tmp_path / "data").exists()


def test_train_missing_dataset_is_one_line(tmp_path):
    """data.generate=null and no files: one line naming the folder, not a traceback."""
    missing = tmp_path / "nowhere" / "darcy"
    line = _one_error_line(_train(tmp_path, f"data.data_dir={missing}"))
    assert str(missing) in line and "train.h5" in line


def test_train_missing_resume_checkpoint_is_one_line(tmp_path, darcy16):
    """``ckpt_path=`` to a file that does not exist: one line naming it, nothing trained."""
    missing = tmp_path / "gone" / "last.ckpt"
    line = _one_error_line(_train(tmp_path, f"data.data_dir={darcy16}", f"ckpt_path={missing}"))
    assert f"ckpt_path={missing}" in line
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_train_hydra_full_error_shows_the_traceback(tmp_path):
    """HYDRA_FULL_ERROR=1 is for debugging: the error keeps its traceback."""
    proc = _train(tmp_path, "model.width=abc", HYDRA_FULL_ERROR="1")
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ConfigError: model.width='abc'" in proc.stderr


# ----------------------------------------------------------------------- opnet.evaluate
@pytest.mark.parametrize("overrides, expected", [
    ((), "error: ckpt=<path to a .ckpt file or a run folder>: required"),
    (("ckpt=run/last.ckpt", "stride=0"), "error: stride=0: expected an integer >= 1"),
])
def test_evaluate_bad_value_is_one_line(tmp_path, overrides, expected):
    """Checked before the checkpoint is read: ``stride=0`` is no longer reported as a
    damaged data file (``n=-1``, which dropped the last sample silently, and the other keys:
    test_evaluate_run_names_the_bad_key)."""
    assert _one_error_line(_evaluate(tmp_path, *overrides)).startswith(expected)


def test_evaluate_missing_checkpoint_is_one_line(tmp_path):
    missing = tmp_path / "nowhere.ckpt"
    line = _one_error_line(_evaluate(tmp_path, f"ckpt={missing}"))
    assert line == f"error: ckpt={missing}: no such checkpoint file or run folder"


@pytest.mark.parametrize("key, value", [
    ("stride", 0), ("stride", 1.5), ("stride", "abc"), ("n", 0), ("n", -1), ("n", True),
    ("batch_size", 0), ("workers", 0), ("n_plot", -2), ("seed", -1), ("seed", 2**32),
    ("resolution", 0), ("resolution", [32, 32.5]), ("resolution", []), ("split", "tset"),
])
def test_evaluate_run_names_the_bad_key(tmp_path, key, value):
    """Every integer key of conf/evaluate/evaluate.yaml (and ``split``) is checked before
    the checkpoint is opened (here it does not even exist)."""
    from opnet.evaluate import run

    with pytest.raises(ValueError, match=rf"^{key}={value!r}: expected".replace("[", r"\[")):
        run({"ckpt": str(tmp_path / "missing.ckpt"), key: value})


def test_evaluation_api_refuses_stride_zero(tmp_path):
    """The Python API too: ``stride=0`` names the argument, before any file is opened."""
    from opnet.evaluate import evaluation

    with pytest.raises(ValueError, match=r"^stride=0: expected an integer >= 1$"):
        evaluation(tmp_path / "missing.ckpt", tmp_path, stride=0)


def test_evaluate_run_folder_without_checkpoint_is_named(tmp_path):
    """``ckpt=<run folder>`` takes its checkpoints/last.ckpt; a folder without one is named."""
    from opnet.evaluate import checkpoint_file

    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^ckpt={tmp_path}: a folder without"):
        checkpoint_file(tmp_path)
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert checkpoint_file(tmp_path) == tmp_path / "checkpoints" / "last.ckpt"


# -------------------------------------------------------------------- opnet.cli itself
def _report(exc: BaseException, capsys) -> str:
    def fail() -> None:
        raise exc

    with pytest.raises(SystemExit) as stop:
        run_reporting_errors(fail)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err.rstrip("\n")


def test_multiline_message_becomes_one_line(capsys):
    assert _report(ValueError("data.x: bad\n  expected y"), capsys) == \
        "error: data.x: bad expected y"


def test_key_error_loses_its_quotes(capsys):
    assert _report(KeyError("resolution=3: no such key"), capsys) == \
        "error: resolution=3: no such key"


@pytest.mark.parametrize("module, name", [
    ("opnet.training.module", "ConfigError"), ("opnet.data.h5", "DatasetError"),
    ("opnet.surrogate", "CheckpointError"), ("opnet.training.guards", "NonFiniteLossError"),
    ("data_gen.runner", "GenerationError"), ("data_gen.importers", "ImporterError"),
])
def test_own_errors_are_expected(capsys, module, name):
    """opnet's and data_gen's error classes (recognised by name, subclasses included, so
    opnet.cli imports none of them) are one line."""
    import importlib

    error = getattr(importlib.import_module(module), name)
    assert _report(error("f.h5: damaged"), capsys) == "error: f.h5: damaged"


def test_unusable_path_names_the_file(capsys, tmp_path):
    """A path that cannot be written (permissions, full disk): one line naming it."""
    import errno

    err = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out"))
    assert _report(err, capsys) == f"error: {tmp_path / 'out'}: Permission denied"
    err = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "train.h5"))
    assert _report(err, capsys) == f"error: {tmp_path / 'train.h5'}: No space left on device"


def test_omegaconf_unknown_key_names_the_full_key(capsys):
    cfg = OmegaConf.create({"model": {"width": 8}})
    OmegaConf.set_struct(cfg, True)
    with pytest.raises(Exception) as info:
        _ = cfg.model.widht
    assert _report(info.value, capsys) == "error: model.widht: Key 'widht' is not in struct"


def test_instantiation_error_names_the_target_and_argument():
    """Hydra's multi-line InstantiationException: the target and the constructor's complaint."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    with pytest.raises(InstantiationException) as info:
        instantiate({"_target_": "fractions.Fraction", "numerator": 1, "bogus": 2})
    line = error_line(info.value)
    assert "\n" not in line
    assert line.startswith("fractions.Fraction: ") and "'bogus'" in line


def test_unexpected_errors_keep_their_traceback():
    def bug() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_reporting_errors(bug)


def test_hydra_full_error_reraises(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")

    def bad() -> None:
        raise ValueError("n=-1: expected an integer >= 1")

    with pytest.raises(ValueError, match="n=-1"):
        run_reporting_errors(bad)
