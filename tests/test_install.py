"""A non-editable install works from any working directory (issue 17, "Installable").

The wheel is built from a copy of the sources (the repository is left as it is) and unpacked
with ``pip install --no-deps --target``: its dependencies (torch, Lightning, Hydra, ...) come
from this environment, opnet and data_gen only from the wheel. Every command runs in a folder
outside the repository with the wheel's folder first on ``PYTHONPATH``, so a config looked up
beside the sources (``conf/`` at the repository root) would not be found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the wheel was installed into (``pip install --target``)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("opnet", "data_gen"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    # --no-build-isolation: this environment's setuptools, no network
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(src)], check=True, capture_output=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("opnet-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, cwd=tmp)
    shutil.rmtree(src)  # nothing of the sources is left but the wheel's files
    return site


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``args`` in ``cwd`` (outside the repository) with the installed wheel first."""
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "elsewhere"
    work.mkdir()
    return work


def test_the_packages_and_configs_come_from_the_wheel(installed, work):
    """opnet, data_gen and opnet.config.CONF resolve inside the install folder, the repository
    is not on sys.path, and train_config composes conf/train.yaml from there."""
    code = ("import sys, opnet, data_gen; from opnet.config import CONF, train_config; "
            "cfg = train_config('trainer.max_epochs=1', output_dir='x'); "
            "print(opnet.__file__, data_gen.__file__, CONF, cfg.trainer.max_epochs, "
            "cfg.paths.output_dir, sys.argv[1] in sys.path)")
    out = run(installed, work, sys.executable, "-c", code, str(ROOT))
    assert out.returncode == 0, out.stderr
    opnet_file, data_gen_file, conf, epochs, output_dir, repo_on_path = out.stdout.split()
    for path in (opnet_file, data_gen_file, conf):
        assert Path(path).is_relative_to(installed), path
    assert (Path(conf) / "train.yaml").is_file()
    assert (Path(conf) / "hydra" / "help" / "train.yaml").is_file()  # nested folders too
    assert epochs == "1" and Path(output_dir) == work / "x"
    assert repo_on_path == "False"


def test_data_gen_runs_from_another_directory(installed, work):
    out = run(installed, work, sys.executable, "-m", "data_gen", "pde=darcy", "resolution=16",
              "n_train=4", "n_val=2", "n_test=2", f"out={work / 'd'}", "progress=false")
    assert out.returncode == 0, out.stderr
    assert {p.name for p in (work / "d").glob("*.h5")} == {"train.h5", "val.h5", "test.h5"}


def test_opnet_train_console_script(installed, work):
    """``opnet-train --help`` lists the shipped config groups; a typo'd key is the one-line
    did-you-mean error (the overrides are checked against the installed conf/train.yaml)."""
    script = str(installed / "bin" / "opnet-train")
    out = run(installed, work, script, "--help")
    assert out.returncode == 0, out.stderr
    assert "mgno_small" in out.stdout and "experiment=NAME" in out.stdout
    out = run(installed, work, script, "trainer.max_epoch=1")
    assert out.returncode == 2
    assert out.stderr.strip() == \
        "error: trainer.max_epoch: no such key; did you mean trainer.max_epochs?"
    assert not (work / "outputs").exists()


def test_evaluate_without_ckpt_is_one_line(installed, work):
    out = run(installed, work, sys.executable, "-m", "opnet.evaluate")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ckpt="), out.stderr
