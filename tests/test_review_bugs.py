"""The bugs found in review (issue 17), one test each: a DeepONetModule fitted twice, resume
with another ``module.fused``, PROSE validity at the checkpoint's expression points, the h1
loss on 1-D data, the point data's ``batches_per_step`` default, and the one use of
Lightning's private loop state."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from conftest import compose_train

from opnet.data import h5
from opnet.data.datamodule import GridDataModule
from opnet.data.points import PointDataModule, auto_group
from opnet.training.adam_state import adapt_adam_state
from opnet.training.deeponet_module import DeepONetModule, lightning_step_counter
from opnet.training.flat_adam import FlatAdam
from opnet.training.job import train
from opnet.training.module import ConfigError, OperatorModule

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_DEEPONET = {"_target_": "opnet.models.deeponet.DeepONet", "branch": [None, 16, 16],
                  "trunk": [None, 16, 16]}


def _trainer(max_steps: int) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, max_epochs=1, accelerator="cpu", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)


# ----------------------------------------------------------------- 1. fitted twice
def test_a_deeponet_module_fitted_twice_counts_and_steps_with_the_second_trainer(
        antiderivative_small):
    """Second fit with a new Trainer: its global_step counts its 4 iterations, its own
    FlatAdam takes the 4 steps (before: the old trainer's counter and the old optimizer
    were cached for life, so the new trainer stayed at step 0)."""
    dm = PointDataModule(str(antiderivative_small), steps_per_epoch=4, batches_per_step=2)
    torch.manual_seed(0)
    module = DeepONetModule.from_data(SMALL_DEEPONET, dm)
    first = _trainer(4)
    first.fit(module, datamodule=dm)
    assert first.global_step == 4
    before = [p.detach().clone() for p in module.parameters()]
    second = _trainer(4)
    second.fit(module, datamodule=dm)
    assert second.global_step == 4
    opt = second.optimizers[0]
    assert isinstance(opt, FlatAdam) and float(opt.state_dict()["state"][0]["step"]) == 4
    assert module._fast.optimizer is opt  # the fast path steps the new optimizer
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


# --------------------------------------------------------------- 2. another module.fused
def _adam_steps(opt: torch.optim.Optimizer, params: list[torch.Tensor],
                grads: list[list[torch.Tensor]]) -> None:
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize("to_flat", [True, False])
def test_adam_moments_convert_between_flat_adam_and_torch_adam(to_flat):
    """3 steps with one optimizer, its state converted and loaded into the other, 2 more
    steps: the same parameters (float64, to rounding) as 5 steps of either one."""
    torch.manual_seed(0)
    shapes = [(5, 3), (3,), (3, 2)]
    init = [torch.randn(s, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, dtype=torch.float64) for s in shapes] for _ in range(5)]

    def make(flat: bool, params):
        return (FlatAdam(params, lr=1e-2, weight_decay=1e-3) if flat
                else torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3))

    ref = [t.clone().requires_grad_() for t in init]
    _adam_steps(make(to_flat, ref), ref, grads)
    params = [t.clone().requires_grad_() for t in init]
    old = make(not to_flat, params)
    _adam_steps(old, params, grads[:3])
    new = make(to_flat, params)
    new.load_state_dict(adapt_adam_state(old.state_dict(), params, to_flat, None))
    _adam_steps(new, params, grads[3:])
    for a, b in zip(params, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_adam_state_of_another_network_is_refused_naming_module_fused():
    params = [torch.zeros(4, 2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    saved = {"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(7),
                           "exp_avg_sq": torch.zeros(7)}}, "param_groups": [{"params": [0, 1]}]}
    with pytest.raises(ConfigError, match=r"^module.fused=False: the checkpoint's optimizer "
                                          r"state matches neither"):
        adapt_adam_state(saved, params, False, False)


def test_extend_with_another_fused_trains_on_with_the_moments(antiderivative_small, tmp_path):
    """FlatAdam run (module.fused=null) to step 20, then resume.extend=true with
    module.fused=false (torch Adam) to step 40: the moments are carried on (per-parameter
    state at step 40) and the run ends at step 40 (before: FlatAdam's flat vectors were loaded
    as the first parameter's moments and the first Adam step failed on their shape)."""
    common = ["experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
              "data.generate=null", "~extra_tests.chebyshev", "~callbacks.progress_bar",
              "~callbacks.model_summary", "logger=none", "test=false",
              "data.steps_per_epoch=10", "model.branch=[null,16,16]", "model.trunk=[null,16,16]"]
    train(compose_train(*common, "trainer.max_steps=20", f"paths.output_dir={tmp_path / 'a'}"))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    train(compose_train(*common, "trainer.max_steps=40", "module.fused=false",
                        "resume.extend=true", f"ckpt_path={last}",
                        f"paths.output_dir={tmp_path / 'b'}"))
    after = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 40
    state = after["optimizer_states"][0]["state"]
    shapes = [tuple(v.shape) for v in after["state_dict"].values() if v.dtype.is_floating_point]
    assert len(state) > 1 and {float(s["step"]) for s in state.values()} == {40.0}
    assert all(tuple(s["exp_avg"].shape) in shapes for s in state.values())


# ----------------------------------------------------- 3. PROSE validity points
class _StubProse(torch.nn.Module):
    """A data-only PROSE stand-in whose symbol decoder always writes ``tokens``."""

    symbol_input, symbol_output = False, True

    def __init__(self, tokens: list[int]) -> None:
        super().__init__()
        self.tokens = torch.tensor(tokens)

    def encode(self, t, u, *_):
        return u

    def decode_data(self, enc, q):
        return torch.zeros(len(enc), q.shape[1], enc.shape[2])

    def greedy(self, enc, max_len):
        return SimpleNamespace(tokens=self.tokens.expand(len(enc), -1))


@pytest.mark.parametrize(("points", "seed", "valid"), [(None, None, False), (3, 1, True),
                                                       (3, 4, False)])
def test_prose_validity_uses_the_checkpoints_expression_points(points, seed, valid):
    """u ↦ u^512 overflows float64 where |u| > 4.0: invalid at the default 50 points (seed 0:
    12 of them beyond 4), valid at 3 points of seed 1 (all |u| < 1.7), invalid at 3 points of
    seed 4 (one at 4.8). Before: the defaults were used whatever the checkpoint said."""
    from opnet.surrogate.prose import ProseSurrogate
    from opnet.symbolic import Vocabulary, encode, parse_prefix

    vocab = Vocabulary(3)
    ids = vocab.encode(encode(parse_prefix("pow2 " * 9 + "u_0")))
    meta = {"io": {"dataset": {}}, "symbols": "none", "max_dim": 3, "vocab": {"max_dim": 3},
            "t_in": [0.0, 0.5], "t_out": [1.0]}
    if points is not None:
        meta.update(expression_points=points, expression_seed=seed)
    out = ProseSurrogate(_StubProse(ids), meta).predict(None, np.zeros((2, 1)))
    assert out.prefix == "pow2 " * 9 + "u_0"
    assert out.valid is valid, out.error


# ----------------------------------------------------------------- 4. h1 on 1-D data
def _grid1d(folder: Path, n: int = 4, s: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for split in h5.SPLITS:
        u0 = rng.standard_normal((n, 1, s)).astype(np.float32)
        specs = {"inputs/u0": ((1, s), np.float32), "outputs/u": ((1, s), np.float32)}
        with h5.SplitWriter(h5.split_path(folder, split), n, specs, {"x": np.arange(s) / s},
                            {"pde": "synthetic", "split": split}) as writer:
            writer.write(0, {"inputs/u0": u0, "outputs/u": 0.5 * u0}, np.arange(n))
            writer.commit()
    return folder


@pytest.mark.parametrize("loss", ["h1", "h1_abs"])
def test_h1_on_1d_grid_data_is_refused_at_configuration(tmp_path, loss):
    """h1 needs [B, C, H, W]: a 1-D dataset is named when the module is made (before: a
    ValueError from inside the loss at the first training step)."""
    dm = GridDataModule(str(_grid1d(tmp_path / "g1")), input_fields=["u0"], output_fields=["u"],
                        batch_size=2)
    conv = {"_target_": "torch.nn.Conv1d", "in_channels": None, "out_channels": None,
            "kernel_size": 3, "padding": 1}
    with pytest.raises(ConfigError) as err:
        OperatorModule.from_data(conv, dm, loss=loss)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"module.loss={loss} needs 2-D grid data") and "1-D grid [16]" in \
        message and "module.loss=rel_l2" in message
    module = OperatorModule.from_data(conv, dm, loss="rel_l2")
    assert module(torch.zeros(2, 1, 16)).shape == (2, 1, 16)


# ------------------------------------------------------ 5. batches_per_step default
def test_point_data_batches_per_step_defaults_to_the_configs_automatic_choice(
        antiderivative_small):
    """conf/data/antiderivative.yaml says null (the largest divisor up to 50); the class
    default is the same: 10 iterations per epoch -> one Lightning step of 10 batches
    (before: the class default was 1, ten steps of one)."""
    cfg = compose_train("experiment=deeponet_antiderivative")
    assert cfg.data.batches_per_step is None
    assert inspect.signature(PointDataModule).parameters["batches_per_step"].default is None
    loader = PointDataModule(str(antiderivative_small), batch_size=30,
                             steps_per_epoch=10).train_dataloader()
    assert loader.group == auto_group(10) == 10 and len(loader) == 1


# --------------------------------------------- 6. Lightning's private loop state
def test_lightning_step_counter_is_what_global_step_reads(antiderivative_small):
    """The one place that reads Lightning's private loop state. If a Lightning release moves
    it, this fails (and pyproject pins lightning<2.7): the counter must exist on a Trainer,
    DeepONet iterations must run on it, and each completed increment is one global step."""
    dm = PointDataModule(str(antiderivative_small), steps_per_epoch=6, batches_per_step=3)
    module = DeepONetModule.from_data(SMALL_DEEPONET, dm)
    trainer = _trainer(6)
    counter = lightning_step_counter(trainer)
    assert counter is not None, f"lightning {L.__version__} moved the manual-optimization " \
        "step counter (fit_loop.epoch_loop.manual_optimization.optim_step_progress)"
    trainer.fit(module, datamodule=dm)
    assert module._direct is counter  # the direct iterations counted on it
    assert trainer.global_step == counter.total.completed == 6
    counter.increment_ready()
    counter.increment_completed()
    assert trainer.global_step == 7
