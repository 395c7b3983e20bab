"""The hand-derived-gradient DeepONet iteration equals autograd + FlatAdam, and Lightning
training takes it (same weights as with ``module.fast_path=false``)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_train

from opnet.data.normalizers import PointNormalizer
from opnet.data.points import PointBatches, PointSplit, auto_group
from opnet.models.deeponet import DARCY_CNN_BRANCH, DeepONet, PODDeepONet
from opnet.training.deeponet_fastpath import MLPDeepONetStep, unsupported_reason
from opnet.training.flat_adam import FlatAdam
from opnet.training.job import train

pytestmark = pytest.mark.usefixtures("one_thread")


class _Module(torch.nn.Module):
    """What the fast path reads of a DeepONetModule: model, in_norm, out_norm."""

    def __init__(self, model, u, s, kind):
        super().__init__()
        self.model = model
        self.in_norm = PointNormalizer(kind, [u.shape[1]], None)
        self.out_norm = PointNormalizer(kind, list(s.shape[1:]), 1)
        self.in_norm.fit(u.numpy())
        self.out_norm.fit(s.numpy())
        self.double()


def _autograd_step(module, opt, u, y, s):
    z = module.model(module.in_norm.encode(u), y)
    loss = F.mse_loss(z, module.out_norm.encode(s))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@pytest.mark.parametrize("kw", [
    {"activation": "relu"},
    {"activation": "tanh", "trunk_last_activation": False},
    {"activation": "sin", "bias": False, "kind": "scalar"},
    {"activation": "relu", "branch": [20, 32, 32, 16], "kind": "none"},
    {"activation": "tanh", "features": {"name": "fourier", "periods": [1.0], "modes": 2}},
])
def test_fast_iterations_equal_autograd_and_flat_adam(kw):
    """Float64, 5 Adam(W) iterations with weight decay on random data: the same losses and
    parameters as autograd + FlatAdam.step to rounding."""
    kw = dict(kw)
    kind, branch = kw.pop("kind", "pointwise"), kw.pop("branch", [20, 32, 16])
    torch.manual_seed(0)
    u = torch.randn(8, 20, dtype=torch.float64)
    y = torch.rand(30, 2, dtype=torch.float64)
    s = torch.randn(8, 30, 1, dtype=torch.float64) + 3.0
    model = DeepONet(branch, [2, 24, 16], **kw)
    assert unsupported_reason(model, "mse") is None
    ref = _Module(model, u, s, kind)
    fast = copy.deepcopy(ref)
    opt_ref = FlatAdam(ref.parameters(), lr=1e-2, weight_decay=1e-3, decoupled_weight_decay=True)
    opt_fast = FlatAdam(fast.parameters(), lr=1e-2, weight_decay=1e-3,
                        decoupled_weight_decay=True)
    step = MLPDeepONetStep(fast, opt_fast)
    for _ in range(5):
        expected = _autograd_step(ref, opt_ref, u, y, s)
        torch.testing.assert_close(step({"u": u, "y": y, "s": s}), expected,
                                   rtol=1e-13, atol=0)
    for a, b in zip(ref.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert opt_fast.state_dict()["state"][0]["step"] == 5


def test_new_batch_tensors_are_encoded_again_and_the_cache_does_not_go_stale():
    torch.manual_seed(1)
    u, y, s = torch.randn(6, 10), torch.rand(12, 1), torch.randn(6, 12, 1)
    module = _Module(DeepONet([10, 16, 8], [1, 16, 8]), u.double(), s.double(), "scalar").float()
    step = MLPDeepONetStep(module, FlatAdam(module.parameters(), lr=0.0))
    first = step({"u": u, "y": y, "s": s})
    torch.testing.assert_close(step({"u": u.clone(), "y": y, "s": s * 2}),
                               F.mse_loss(module.model(module.in_norm.encode(u), y),
                                          module.out_norm.encode(s * 2)))
    s.mul_(2)  # in place: same object, new version
    torch.testing.assert_close(step({"u": u, "y": y, "s": s}),
                               F.mse_loss(module.model(module.in_norm.encode(u), y),
                                          module.out_norm.encode(s)))
    assert first != step({"u": u, "y": y, "s": s})


def test_batches_outside_the_fast_form_are_handed_back():
    u, s = torch.randn(4, 10), torch.randn(4, 12, 1)
    module = _Module(DeepONet([10, 8], [1, 8]), u.double(), s.double(), "none").float()
    step = MLPDeepONetStep(module, FlatAdam(module.parameters()))
    assert step({"u": u, "y": torch.rand(4, 12, 1), "s": s}) is None  # unaligned
    assert step({"u": u, "y": torch.rand(12, 1), "s": s, "idx": torch.arange(12)}) is None
    with pytest.raises(ValueError, match=r"u has shape \(4, 9\), the branch expects \[B, 10\]"):
        step({"u": u[:, :9], "y": torch.rand(12, 1), "s": s})


@pytest.mark.parametrize("model, loss, reason", [
    (lambda: DeepONet([10, 8], [1, 8]), "rel_l2", "loss 'rel_l2'"),
    (lambda: DeepONet([10, 8], [1, 8], activation="gelu"), "mse", "activation GELU"),
    (lambda: DeepONet([10, 8], [1, 8], stacked=True), "mse", "branch is not one plain MLP"),
    (lambda: DeepONet([10, 8], [1, 8], num_outputs=2, strategy="split_both"), "mse",
     "multiple outputs"),
    (lambda: DeepONet(DARCY_CNN_BRANCH, [2, 128]), "mse", "branch is not one plain MLP"),
    (lambda: PODDeepONet([10, 4], n_points=12, n_modes=4), "mse", "not a DeepONet"),
])
def test_other_forms_keep_autograd(model, loss, reason):
    assert reason in unsupported_reason(model(), loss)


def test_auto_group_is_the_largest_divisor_up_to_50():
    assert [auto_group(n) for n in (1000, 20, 120, 97, 1)] == [50, 20, 40, 1, 1]
    split = PointSplit(torch.zeros(10, 3), torch.zeros(10, 4, 1))
    loader = PointBatches(split, torch.zeros(4, 1), steps=300, group=None)
    assert loader.group == 50 and len(loader) == 6


def test_lightning_training_takes_the_fast_path_with_the_same_result(antiderivative_small,
                                                                     tmp_path, monkeypatch):
    """Same seed, 30 iterations (auto group 20: the run stops inside its second group) with and
    without the fast path: the same weights to float32 rounding, global_step exact. (Also:
    ``logger=none`` with the default callbacks, LearningRateMonitor included, runs.)"""
    taken = []
    call = MLPDeepONetStep.__call__
    monkeypatch.setattr(MLPDeepONetStep, "__call__",
                        lambda self, batch: taken.append(1) or call(self, batch))
    weights = {}
    for fast in (True, False):
        out = tmp_path / str(fast)
        train(compose_train(
            "experiment=deeponet_antiderivative", f"data.data_dir={antiderivative_small}",
            "data.generate=null", "~extra_tests.chebyshev", "~callbacks.progress_bar",
            "~callbacks.model_summary", f"paths.output_dir={out}", "trainer.max_steps=30",
            "data.steps_per_epoch=20", "test=false", "logger=none",
            f"module.fast_path={str(fast).lower()}"))
        ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == 30
        weights[fast] = ckpt["state_dict"]
        assert len(taken) == (30 if fast else 0)
        taken.clear()
    for key, value in weights[True].items():
        torch.testing.assert_close(value, weights[False][key], rtol=1e-4, atol=1e-6)
