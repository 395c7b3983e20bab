"""FlatAdam: torch's Adam/AdamW update on one flat buffer (the DeepONet optimizer)."""

import copy

import pytest
import torch

from opnet.models.deeponet import DeepONet
from opnet.training.flat_adam import FlatAdam


def _net(seed: int = 0) -> DeepONet:
    torch.manual_seed(seed)
    return DeepONet(branch=[20, 16, 16], trunk=[1, 16, 16])


def _train(net: DeepONet, opt: torch.optim.Optimizer, steps: int = 30,
           sched: bool = False) -> list[float]:
    g = torch.Generator().manual_seed(1)
    u, y = torch.randn(8, 20, generator=g), torch.rand(12, 1, generator=g)
    s = torch.randn(8, 12, 1, generator=g)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k)) if sched else None
    losses = []
    for _ in range(steps):
        loss = (net(u, y) - s).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if lr_sched is not None:
            lr_sched.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("cls, decoupled", [(torch.optim.Adam, False),
                                            (torch.optim.AdamW, True)])
@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_same_trajectory_as_torch_adam(cls, decoupled, wd):
    """30 steps with an lr schedule: the parameters equal torch's Adam/AdamW to rounding."""
    ref, flat = _net(), _net()
    ref_losses = _train(ref, cls(ref.parameters(), lr=1e-2, weight_decay=wd), sched=True)
    losses = _train(flat, FlatAdam(flat.parameters(), lr=1e-2, weight_decay=wd,
                                   decoupled_weight_decay=decoupled), sched=True)
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    for a, b in zip(ref.parameters(), flat.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_are_views_of_one_buffer():
    net = _net()
    opt = FlatAdam(net.parameters())
    ptrs = [p.data_ptr() for p in net.parameters()]
    assert ptrs[0] == opt._flat.data_ptr()
    assert sum(p.numel() for p in net.parameters()) == opt._flat.numel()


def test_state_dict_round_trip_continues_identically():
    """Save after 10 steps, load into a fresh net + optimizer: the next 10 steps agree."""
    a = _net()
    opt_a = FlatAdam(a.parameters(), lr=1e-2)
    _train(a, opt_a, steps=10)
    b = _net(seed=5)
    b.load_state_dict(a.state_dict())
    opt_b = FlatAdam(b.parameters(), lr=1e-2)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as through torch.save
    assert _train(a, opt_a, steps=10) == _train(b, opt_b, steps=10)


def test_parameters_replaced_after_construction_are_reflattened():
    """E.g. ``module.to(device)`` after the optimizer: the step still trains the live
    parameters (re-flattened, state kept), not a stale buffer."""
    ref, net = _net(), _net()
    ref_opt, opt = FlatAdam(ref.parameters(), lr=1e-2), FlatAdam(net.parameters(), lr=1e-2)
    _train(ref, ref_opt, steps=5)
    _train(net, opt, steps=5)
    for p in net.parameters():
        p.data = p.data.clone()
    assert _train(net, opt, steps=5) == _train(ref, ref_opt, steps=5)


def test_mixed_dtypes_are_refused():
    net = _net()
    net.b0.data = net.b0.data.double()
    with pytest.raises(ValueError, match="one dtype and device"):
        FlatAdam(net.parameters())
