"""The physics loss (opnet.physics, issue 18): relative terms, fixed and ReLoBRaLo weights,
float32 residuals under bf16 autocast, and the configuration mistakes it names."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data_gen.physics.darcy import DarcyResidual
from opnet.physics import PhysicsLoss, build_physics, physics_options, relative_terms

DARCY_IO = {"dataset": {"name": "darcy16", "pde": "darcy",
                        "generator_config": "name: darcy\nresolution: 16\nforcing: 1.0\n"}}


def test_terms_are_relative_mean_squares():
    """pde: (RMS r / RMS f)²; other terms in the same units; mean over the batch."""
    r = {"pde": torch.tensor([[3.0, 4.0], [0.0, 0.0]]), "bc": torch.tensor([[1.0], [1.0]])}
    scale = torch.tensor([5.0, 5.0])  # RMS of f
    out = relative_terms(r, scale)
    assert float(out["pde"]) == pytest.approx(((25 / 2) / 25 + 0) / 2)
    assert float(out["bc"]) == pytest.approx((1 / 25 + 1 / 25) / 2)


def test_fixed_weights_add_lambda_times_term_weights():
    loss = PhysicsLoss(DarcyResidual(), {"weight": 0.5, "terms": {"bc": 10.0}})
    terms = {"pde": torch.tensor(2.0), "bc": torch.tensor(3.0)}
    assert float(loss.combine(torch.tensor(1.0), terms)) == pytest.approx(1 + 0.5 * 2 + 5 * 3)
    assert float(loss.combine(None, terms)) == pytest.approx(0.5 * 2 + 5 * 3)  # no labels


def test_relobralo_raises_the_weight_of_the_term_that_falls_slowest():
    """Bischof & Kraus: ŵ = K softmax(L(t) / (T L(t'))); with alpha = 0 the weights are the
    last-step balance exactly; a term stuck at its first value ends up with the most."""
    loss = PhysicsLoss(DarcyResidual(), {"weight": 1.0, "balance": "relobralo", "alpha": 0.0,
                                         "rho": 0.0, "temperature": 1.0})
    seq = [(1.0, 1.0, 1.0), (0.5, 0.9, 0.25), (0.25, 0.81, 0.0625)]
    for data, pde, bc in seq:
        loss.combine(torch.tensor(data), {"pde": torch.tensor(pde), "bc": torch.tensor(bc)})
    ratios = np.array([0.25 / 0.5, 0.81 / 0.9, 0.0625 / 0.25])
    want = 3 * np.exp(ratios) / np.exp(ratios).sum()
    np.testing.assert_allclose(loss.weights.numpy(), want, rtol=1e-6)  # float32 losses in
    assert int(np.argmax(loss.weights.numpy())) == 1  # the physics term that barely fell
    assert math.isclose(float(loss.weights.sum()), 3.0)
    state = loss.state_dict()  # saved in checkpoints: a resumed run keeps its weights
    again = PhysicsLoss(DarcyResidual(), loss.options)
    again.load_state_dict(state)
    assert torch.equal(again.weights, loss.weights) and torch.equal(again.last, loss.last)


def test_residual_terms_are_float32_under_bf16_autocast():
    loss = PhysicsLoss(DarcyResidual(), {"weight": 1.0})
    a = torch.full((2, 1, 16, 16), 3.0)
    u = torch.rand(2, 1, 16, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = loss.terms(a, u.bfloat16())
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()


@pytest.mark.parametrize("options, match", [
    ({"weight": -1}, r"module.physics.weight=-1: expected a number >= 0"),
    ({"weight": 1, "balance": "gradnorm"}, r"module.physics.balance='gradnorm'"),
    ({"weight": 1, "pionts": 10}, r"unknown option\(s\) \['pionts'\]"),
    ({"weight": 1, "alpha": 2}, r"module.physics.alpha=2: expected a number in \[0, 1\]"),
])
def test_bad_options_are_named(options, match):
    with pytest.raises(ValueError, match=match):
        physics_options(options)


def test_physics_for_data_without_a_residual_or_with_an_unknown_term_is_refused():
    ns = {"dataset": {"name": "ns", "pde": "navier_stokes",
                      "generator_config": "name: navier_stokes\n"}}
    with pytest.raises(ValueError, match=r"module.physics.weight=1.0 but data 'ns' \(generator "
                                         r"'navier_stokes'\) has no residual"):
        build_physics({"weight": 1.0}, ns)
    assert build_physics({"weight": 0.0}, ns) is None  # off: nothing asked
    with pytest.raises(ValueError, match=r"terms: \['ic'\] are not terms"):
        build_physics({"weight": 1.0, "terms": {"ic": 1.0}}, DARCY_IO)
    assert isinstance(build_physics({"weight": 1.0}, DARCY_IO), PhysicsLoss)
