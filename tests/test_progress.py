"""Progress you can read anywhere (opnet.training.progress).

* stdout not a terminal (a pipe, a log file, nohup, SLURM): one plain line per epoch with the
  epoch k/N, the step (DeepONet: iteration) k/N, the training loss, the validation metrics,
  the rate, elapsed time and ETA; no bar frames, no escape codes; the run folder's train.log
  holds the same lines and the final summary;
* DeepONet counts iterations (one Lightning step runs batches_per_step of them), in the
  lines and in Rich's bar; no "Epoch 1/-2";
* neither Lightning's manual-optimization checkpoint warning nor "Total FLOPs: 0" reaches
  the user.
"""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_MODEL, compose_train

from opnet.training import progress
from opnet.training.job import train
from opnet.training.progress import (
    EpochLines,
    IterationBar,
    ModelTable,
    epoch_line,
    progress_callback,
    report,
    share_run_log,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
# A child whose stdout is a pipe, as under nohup or SLURM: no variable that makes Rich
# treat it as a terminal.
CHILD_ENV = {k: v for k, v in os.environ.items()
             if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
CHILD_ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
CLOCK = r"\d+:\d\d:\d\d"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _train_py(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides,
                          f"paths.output_root={tmp_path / 'outputs'}",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         cwd=tmp_path, env=CHILD_ENV, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("epoch ")]


def test_a_pipe_gets_one_plain_line_per_epoch_and_train_log_the_same(darcy16, tmp_path):
    """MgNO, 3 epochs of 8 steps, stdout a pipe: three lines 'epoch k/3  step 8k/24  train/loss
    ...  val/... steps/s  elapsed  eta', each once on stdout and once in <run>/train.log;
    no Rich frames or escape codes; the summary (best checkpoint) is in train.log too."""
    done = _train_py(tmp_path, f"data.data_dir={darcy16}", "data.generate=null",
                     "data.batch_size=8", *TINY_MODEL, "trainer.max_epochs=3", "logger=none",
                     "~callbacks.val_figures")
    out, run = done.stdout, tmp_path / "run"
    lines = _epoch_lines(out)
    assert len(lines) == 3, out
    for k, line in enumerate(lines, 1):
        assert re.fullmatch(rf"epoch {k}/3  step {8 * k}/24  train/loss \S+(  val/\w+ \S+)+"
                            rf"  [\d.,]+ steps/s  elapsed {CLOCK}  eta {CLOCK}", line), line
        assert "val/rel_l2 " in line
    assert lines[-1].endswith("eta 0:00:00")
    assert not ANSI.search(out) and "\r" not in out and "━" not in out  # no bar frames
    assert "Epoch" not in out and "it/s" not in out
    log = (run / "train.log").read_text()
    for line in lines:
        assert out.count(line) == 1 and log.count(line) == 1, line
    assert f"best checkpoint: {run / 'checkpoints' / 'epoch_002.ckpt'}" in log
    assert "test/rel_l2: " in log and "`Trainer.fit` stopped" in log


def test_deeponet_lines_count_iterations_and_warnings_stay_hidden(antiderivative_small,
                                                                 tmp_path):
    """DeepONet, epochs of 100 iterations in Lightning steps of 50, max_steps=200 (max_epochs
    -1): 'epoch 1  iteration 100/200 ... it/s', never 'Epoch 1/-2'; Lightning's 12-line
    manual-optimization warning (step checkpoints every 100 iterations) and the model
    summary's 'Total FLOPs: 0' are not shown."""
    done = _train_py(tmp_path, "experiment=deeponet_antiderivative",
                     f"data.data_dir={antiderivative_small}", "data.generate=null",
                     "~extra_tests.chebyshev", "data.steps_per_epoch=100",
                     "trainer.max_steps=200", "callbacks.step_checkpoint.every_n_train_steps=100",
                     "logger=none", "~callbacks.val_figures")
    lines = _epoch_lines(done.stdout)
    assert [line.split("  train/loss")[0] for line in lines] == [
        "epoch 1  iteration 100/200", "epoch 2  iteration 200/200"], done.stdout
    assert all(re.search(rf"  [\d.,]+ it/s  elapsed {CLOCK}  eta {CLOCK}$", line)
               for line in lines)
    assert "/-" not in done.stdout and "Epoch" not in done.stdout
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "manual optimization" not in done.stderr, done.stderr
    assert "FLOPs" not in done.stdout
    assert "Total params: 7.4 K" in done.stdout


def test_rich_bar_counts_deeponet_iterations(antiderivative_small, tmp_path, capsys,
                                            monkeypatch):
    """The terminal bar (mode=bar): the epoch's bar runs over 100 iterations (not 2 Lightning
    steps), shows 'iteration: 200/200' and 'Epoch 2' without '/-2'; the epoch lines go to
    the log file only."""
    import rich

    monkeypatch.setenv("COLUMNS", "250")  # one line per frame: a fresh global console
    monkeypatch.setattr(rich, "_console", None)
    log_file = tmp_path / "train.log"
    handler = logging.FileHandler(log_file)  # as Hydra's job logging does
    logging.getLogger().addHandler(handler)
    try:
        train(compose_train("experiment=deeponet_antiderivative",
                            f"data.data_dir={antiderivative_small}", "data.generate=null",
                            "~extra_tests.chebyshev", "data.steps_per_epoch=100",
                            "trainer.max_steps=200", "logger=none", "~callbacks.val_figures",
                            "callbacks.progress_bar.mode=bar", "test=false",
                            f"paths.output_dir={tmp_path / 'run'}"))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    frames = re.split(r"[\r\n]", ANSI.sub("", capsys.readouterr().out))
    bars = [f for f in frames if f.startswith("Epoch ")]
    assert bars, frames
    assert re.search(r"Epoch 2 +━+ 100/100 .*\d+\.\d+it/s +iteration: 200/200", bars[-1]), \
        bars[-1]
    assert not any("Epoch 1/" in f or "Epoch 2/" in f for f in bars)
    assert not any(f.startswith("epoch ") for f in frames)
    logged = log_file.read_text()
    assert "epoch 1  iteration 100/200  train/loss" in logged
    assert "epoch 2  iteration 200/200  train/loss" in logged


def test_progress_callback_follows_the_terminal(monkeypatch):
    """auto: Rich's bar for an interactive terminal, epoch lines otherwise; mode forces one."""
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    assert isinstance(progress_callback(), IterationBar)
    assert isinstance(progress_callback(mode="lines"), EpochLines)
    monkeypatch.setenv("TTY_INTERACTIVE", "0")
    assert isinstance(progress_callback(), EpochLines)
    assert isinstance(progress_callback(mode="bar"), IterationBar)
    with pytest.raises(ValueError, match=r"callbacks.progress_bar.mode='tqdm': expected"):
        progress_callback(mode="tqdm")


def test_epoch_line_format():
    """Metrics to 4 significant digits, rate per unit, times as h:mm:ss; no /N when the
    run has no bound."""
    line = epoch_line(3, 25, "step", 24, 200, {"train/loss": 6.00412, "val/rel_l2": 0.624321},
                      97.24, 2.4, 18.1)
    assert line == ("epoch 3/25  step 24/200  train/loss 6.004  val/rel_l2 0.6243  97.2 steps/s"
                    "  elapsed 0:00:02  eta 0:00:18")
    line = epoch_line(7, None, "iteration", 7000, None, {}, 2385.2, 3725.0, None)
    assert line == "epoch 7  iteration 7000  2,385 it/s  elapsed 1:02:05  eta -"


def test_model_table_shows_flops_only_when_measured(capsys):
    """No FLOPs column and no 'Total FLOPs: 0' when nothing measured them (no
    example_input_array); both when measured."""
    data = [(" ", ["0"]), ("Name", ["model"]), ("Type", ["MgNO"]), ("Params", ["10.9 K"]),
            ("Mode", ["train"]), ("FLOPs", ["0"])]
    args = (10906, 10906, 0.044, {"train": 59, "eval": 0})
    ModelTable.summarize(data, *args, total_flops=0)
    out = capsys.readouterr().out
    assert "FLOPs" not in out and "MgNO" in out and "Total params: 10.9 K" in out
    ModelTable.summarize(data[:-1] + [("FLOPs", ["1.2 K"])], *args, total_flops=1234)
    assert "Total FLOPs: 1.2 K" in capsys.readouterr().out


def test_report_writes_to_the_current_run_log_only(tmp_path, capsys):
    """Hydra replaces the root file handler per job (multirun in one process): each line
    goes to the log of the run that printed it, and once to stdout."""
    root = logging.getLogger()
    first, second = (logging.FileHandler(tmp_path / name) for name in ("a.log", "b.log"))
    try:
        root.addHandler(first)
        report("epoch 1/1  run a")
        root.removeHandler(first)
        first.close()
        root.addHandler(second)
        report("epoch 1/1  run b")
        progress.log_to_file("summary b")
    finally:
        root.removeHandler(second)
        second.close()
    assert (tmp_path / "a.log").read_text() == "epoch 1/1  run a\n"
    assert (tmp_path / "b.log").read_text() == "epoch 1/1  run b\nsummary b\n"
    assert capsys.readouterr().out == "epoch 1/1  run a\nepoch 1/1  run b\n"


def test_lightning_notices_reach_the_run_log_only_during_the_run(tmp_path, monkeypatch):
    """Lightning's own (non-propagating) logger writes to the run's log between setup and
    teardown, and not after: the next job's notices never land in this run's file."""
    lightning_log = logging.getLogger("lightning.pytorch")
    monkeypatch.setattr(lightning_log, "propagate", False)
    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        share_run_log()
        lightning_log.info("`Trainer.fit` stopped: `max_epochs=3` reached.")
        share_run_log(False)
        lightning_log.info("Seed set to 0 (the next job)")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert handler not in lightning_log.handlers
    assert (tmp_path / "train.log").read_text() == \
        "`Trainer.fit` stopped: `max_epochs=3` reached.\n"


def test_epoch_lines_add_no_per_step_work():
    """The DeepONet fast path's cost per iteration is unchanged: the line callback overrides
    no per-batch hook (only epoch and run boundaries)."""
    import lightning as L

    per_batch = [name for name in dir(L.Callback)
                 if name.startswith("on_") and "batch" in name or name in (
                     "on_before_backward", "on_after_backward", "on_before_optimizer_step",
                     "on_before_zero_grad")]
    assert per_batch
    assert [name for name in per_batch
            if getattr(EpochLines, name) is not getattr(L.Callback, name)] == []
