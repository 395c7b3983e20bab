"""A newcomer's command line: ``--help`` that says what each command does, ``did you mean``
for a typo'd key, ``outputs/<task>/latest`` for the newest run, and commands that write only
where they are told (:mod:`opnet.cli`, :mod:`opnet.run_dir`, :mod:`opnet.checkpoint`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF, ROOT, tree_listing
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from opnet import load_operator
from opnet.checkpoint import checkpoint_file
from opnet.cli import check_overrides
from opnet.run_dir import link_latest, register_resolvers
from opnet.training.job import train

register_resolvers()  # ${run_id:}, ${temporary_dir:} when configs are composed here

COMMANDS = {  # command -> (argv, config folder, config name, its groups)
    "train": ([str(ROOT / "train.py")], CONF, "train",
              {"experiment", "data", "model", "module", "trainer", "callbacks", "logger",
               "paths", "debug"}),
    "data_gen": (["-m", "data_gen"], CONF, "datagen", {"pde"}),
    "evaluate": (["-m", "opnet.evaluate"], CONF / "evaluate", "evaluate", {"data"}),
    "predict": (["-m", "opnet.predict"], CONF / "predict", "predict", set()),
}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _has(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` is a config group of ``cfg``'s command or a key of it (also ``???``)."""
    if key in cfg.hydra.runtime.choices:
        return True
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node.keys()


def _section(text: str, title: str) -> list[str]:
    """The non-empty lines of the ``== <title> ... ==`` section of a help text."""
    part = text.split(f"== {title}", 1)[1].split("\n", 1)[1]
    return [line for line in part.split("\n==", 1)[0].splitlines() if line.strip()]


# ------------------------------------------------------------------------------- --help
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_says_what_the_command_does_and_lists_only_its_groups(command, tmp_path):
    """``--help`` starts with what the command does, then the main keys (one line each, each a
    key of the command's composed config or a config group), exactly three examples, and
    only the config groups the command composes (Hydra's default listed every folder of
    conf/: pde/evaluate for train.py, trainer/model/data for data_gen). Writes nothing."""
    argv, conf, name, groups = COMMANDS[command]
    done = _run([*argv, "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    first = text.splitlines()[0]
    shown = "train.py" if command == "train" else " ".join(argv)
    assert first.startswith(f"python {shown}: ") and len(first) > len(shown) + 30
    examples = _section(text, "Examples")
    assert len(examples) == 3 and all(e.strip().startswith("python ") for e in examples)

    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(name, return_hydra_config=True)
    for line in _section(text, "Main keys"):
        if line.startswith("    "):  # a description's continuation line
            continue
        for key in re.findall(r"([\w.]+)=", re.split(r"\s{2,}", line.strip())[0]):
            assert _has(cfg, key), f"{command} --help names {key}=, which {name} has not"

    title = "data= names" if command == "evaluate" else "Config groups"
    listed = {m.group(1) for line in _section(text, title) if (m := re.match(r"  (\w+):", line))}
    assert listed == groups
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- unknown keys: did you mean
@pytest.mark.parametrize("command, argv, expected", [
    ("train", ["trainer.max_epoch=3"],
     "error: trainer.max_epoch: no such key; did you mean trainer.max_epochs?"),
    ("train", ["triner.max_epochs=3"],
     "error: triner.max_epochs: no such key; did you mean trainer.max_epochs?"),
    ("train", ["experiment=mgno_darcy_smooth_cpu", "model.widht=3"],
     "error: model.widht: no such key; did you mean model.width?"),
    ("train", ["-m", "seed=0,1", "trainer.max_epochz=1,2"],
     "error: trainer.max_epochz: no such key; did you mean trainer.max_epochs?"),
    ("train", ["~callbacks.progres_bar"],
     "error: ~callbacks.progres_bar: no such key; did you mean ~callbacks.progress_bar?"),
    ("train", ["model=mgnoo"], "error: model=mgnoo: no such model config; did you mean mgno? "
                               "(options: deeponet, "),
    ("train", ["trainer.foo=1"], "error: trainer.foo: no such key (to add a new one: "
                                 "+trainer.foo=1)"),
    ("data_gen", ["n_trian=5"], "error: n_trian: no such key; did you mean n_train?"),
    ("data_gen", ["pde.resolutoin=5"],
     "error: pde.resolutoin: no such key; did you mean pde.resolution?"),
    ("evaluate", ["ckpt=x", "stide=2"], "error: stide: no such key; did you mean stride?"),
])
def test_unknown_key_is_one_line_with_the_nearest_key(command, argv, expected, capsys):
    """Checked against the config composed with the other overrides (an experiment's keys
    count), before Hydra runs: one line on stderr, exit 2."""
    _, conf, name, _ = COMMANDS[command]
    with pytest.raises(SystemExit) as exit_:
        check_overrides(name, conf, argv=argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(expected), err


@pytest.mark.parametrize("argv", [
    [], ["+trainer.gradient_clip_val=1", "~callbacks.progress_bar"],
    ["-m", "model.width=4,8", "hydra/launcher=joblib"], ["--help"], ["--cfg", "job"],
    ["experiment=mgno_darcy_smooth_cpu", "trainer=gpu", "hydra.run.dir=somewhere"],
    ["model.width=4,8"],  # Hydra itself explains that a sweep needs -m
])
def test_valid_command_lines_pass_the_check(argv):
    check_overrides("train", CONF, argv=argv)


def test_train_py_typo_exits_2_with_one_line(tmp_path):
    """End to end: Hydra's own report was 3 lines and exit code 1."""
    done = _run([str(ROOT / "train.py"), "trainer.max_epoch=3"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: trainer.max_epoch: no such key; did you mean trainer.max_epochs?"]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------- writes only where told
def test_evaluate_without_ckpt_says_what_to_give_and_writes_nothing(tmp_path):
    done = _run(["-m", "opnet.evaluate"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: ckpt=<path to a .ckpt file or a run folder>: required"]
    assert list(tmp_path.iterdir()) == []  # Hydra made outputs/evaluate/<time>/ before


def test_evaluate_output_dir_is_the_only_folder_written(tmp_path):
    """``output_dir=X``: Hydra's .hydra/ and evaluate.log go there too, not to
    outputs/evaluate/<time>/ under the working directory."""
    cwd, out = tmp_path / "cwd", tmp_path / "X"
    cwd.mkdir()
    done = _run(["-m", "opnet.evaluate", f"ckpt={tmp_path / 'none.ckpt'}", f"output_dir={out}"],
                cwd)
    assert done.returncode == 2, done.stderr
    assert list(cwd.iterdir()) == []
    assert (out / ".hydra" / "config.yaml").is_file()


def test_tree_listing_sees_a_new_run_folder(tmp_path):
    """The session guard (conftest.no_stray_outputs) notices outputs/<task>/<run>."""
    (tmp_path / "outputs" / "task").mkdir(parents=True)
    before = tree_listing(tmp_path)
    (tmp_path / "outputs" / "task" / "2026-01-01_00-00-00_abcdef").mkdir()
    assert tree_listing(tmp_path) - before == {"outputs/task/2026-01-01_00-00-00_abcdef"}


# --------------------------------------------------------------- outputs/<task>/latest
def _ckpt(path: Path, mtime: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_checkpoint_file_picks_the_best_checkpoint_of_a_run_folder(tmp_path):
    """metrics.json's best_checkpoint (also after the run folder moved), else the newest
    epoch_*.ckpt (a run still training), else last.ckpt; a file is itself."""
    run = tmp_path / "run"
    last = _ckpt(run / "checkpoints" / "last.ckpt", 300)
    assert checkpoint_file(run) == last
    _ckpt(run / "checkpoints" / "epoch_000.ckpt", 100)
    newest = _ckpt(run / "checkpoints" / "epoch_004.ckpt", 200)
    assert checkpoint_file(run) == newest
    best = run / "checkpoints" / "epoch_000.ckpt"
    (run / "metrics.json").write_text(json.dumps(
        {"best_checkpoint": str(tmp_path / "elsewhere" / "checkpoints" / best.name)}))
    assert checkpoint_file(run) == best  # moved: found under the folder by its name
    assert checkpoint_file(last) == last
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=rf"^ckpt={empty}: a folder without"):
        checkpoint_file(empty, key="ckpt")


def test_latest_link_is_relative_and_falls_back_to_a_file(tmp_path, monkeypatch):
    home = tmp_path / "outputs" / "task"
    a, b = home / "a", home / "b"
    _ckpt(a / "checkpoints" / "last.ckpt", 100)
    _ckpt(b / "checkpoints" / "last.ckpt", 200)
    link = link_latest(a)
    assert link == home / "latest" and os.readlink(link) == "a"
    link_latest(b)  # replaces the link
    assert link.resolve() == b.resolve() and checkpoint_file(link) == link / "checkpoints" / \
        "last.ckpt"
    assert not [p for p in home.iterdir() if p.name.startswith(".latest")]

    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    link_latest(a)
    assert not link.is_symlink() and link.read_text().strip() == "a"
    assert checkpoint_file(link) == home / "a" / "checkpoints" / "last.ckpt"


@pytest.mark.usefixtures("one_thread")
def test_latest_points_at_the_newest_run_and_load_operator_takes_it(tiny_cfg, tmp_path):
    """Two runs of one task: ``outputs/<task>/latest`` -> the second, set at its first
    checkpoint (it crashes after epoch 0, before metrics.json); load_operator accepts the
    first run's folder (its best checkpoint) and ``latest`` (the newest epoch_*.ckpt)."""
    home = tmp_path / "outputs" / "t"
    common = [f"paths.output_root={tmp_path / 'outputs'}", "task_name=t", "logger=none"]
    train(tiny_cfg(*common, "trainer.max_epochs=1", f"paths.output_dir={home / 'first'}"))
    assert (home / "latest").resolve() == (home / "first").resolve()
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_cfg(*common, "+callbacks.crash._target_=conftest.CrashAtEpoch",
                       "+callbacks.crash.epoch=1", f"paths.output_dir={home / 'second'}"))
    latest = home / "latest"
    assert latest.is_symlink() and os.readlink(latest) == "second"
    assert not (home / "second" / "metrics.json").exists()

    best = json.loads((home / "first" / "metrics.json").read_text())["best_checkpoint"]
    x = torch.rand(2, 1, 16, 16)
    from_folder = load_operator(home / "first").predict(x)
    assert np.array_equal(from_folder, load_operator(best).predict(x))
    newest = home / "second" / "checkpoints" / "epoch_000.ckpt"
    assert checkpoint_file(latest) == latest / "checkpoints" / "epoch_000.ckpt"
    assert np.array_equal(load_operator(latest).predict(x), load_operator(newest).predict(x))


def test_latest_lives_in_the_task_folder_or_nowhere(tmp_path):
    """``<output_root>/<task>/latest`` for runs and sweep jobs inside it; a run given its own
    ``paths.output_dir`` elsewhere moves no link."""
    from opnet.training.latest import link_home

    root, task = tmp_path / "outputs", tmp_path / "outputs" / "t"
    assert link_home(task / "2026-01-01_00-00-00_abcdef", root, "t") == task
    assert link_home(task / "multirun_x" / "0", root, "t") == task
    assert link_home(tmp_path / "elsewhere" / "run", root, "t") is None
