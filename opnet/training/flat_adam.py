"""Adam / AdamW over all parameters as one flat vector — for small networks.

A DeepONet has a dozen small tensors (7,401 numbers in the paper network); torch's Adam,
even ``fused``, costs ~0.2 ms per step on a CPU there, mostly per-tensor overhead — as much
as a quarter of a training iteration. :class:`FlatAdam` keeps the parameters as views of
one contiguous buffer, so one step is a handful of vector operations on that buffer
(the "contiguous parameters" trick of Apex's fused optimizers).

The update is torch's ``Adam`` (``decoupled_weight_decay=False``: L2 penalty added to the
gradient) or ``AdamW`` (``True``: ``p -= lr * wd * p``) with bias correction, ``eps`` added
after the square root; learning rates come from ``param_groups[0]["lr"]``, so the usual
``torch.optim.lr_scheduler`` classes work, and ``state_dict``/``load_state_dict`` round trip
(the checkpoint holds ``step``, ``exp_avg`` and ``exp_avg_sq`` as flat vectors).

If the parameters stop being views of the buffer (e.g. ``module.to(device)`` after the
optimizer was made), the next step notices it and re-flattens them, moving its state along.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor


class FlatAdam(torch.optim.Optimizer):
    """Adam (or AdamW with ``decoupled_weight_decay=True``) on one flat parameter buffer.

    All parameters must share one dtype and device and form one parameter group.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
        params = list(params)
        if not params:
            raise ValueError("FlatAdam got no parameters")
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("FlatAdam needs every parameter on one dtype and device, got "
                             f"{sorted({(str(p.dtype), str(p.device)) for p in params})}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("FlatAdam takes one parameter group")
        self._params: list[Tensor] = list(self.param_groups[0]["params"])
        self._flat = self._flatten()

    def _flatten(self) -> Tensor:
        """Copy the parameters into one buffer and make each a view of it."""
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self._params])
            offset = 0
            for p in self._params:
                n = p.numel()
                p.data = flat[offset:offset + n].view_as(p)
                offset += n
        return flat

    def is_flat(self) -> bool:
        """Are the parameters still views of the flat buffer?"""
        first = self._params[0]
        return (first.device == self._flat.device
                and first.data_ptr() == self._flat.data_ptr())

    def flat_parameters(self) -> Tensor:
        """The flat parameter buffer (re-flattened first if the parameters moved)."""
        if not self.is_flat():
            self._flat = self._flatten()
        return self._flat

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if all(p.grad is None for p in self._params):
            return loss
        self.flat_parameters()
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in self._params])
        self.step_with_gradient(grad)
        return loss

    @torch.no_grad()
    def step_with_gradient(self, grad: Tensor) -> None:
        """One update from the flat gradient ``grad`` (laid out as :meth:`flat_parameters`;
        it may be modified by the weight decay)."""
        self._opt_called = True  # what Optimizer.step's wrapper records for the LR schedulers
        group = self.param_groups[0]
        flat = self._flat
        state = self.state[self._params[0]]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            state["exp_avg"] = torch.zeros_like(flat)
            state["exp_avg_sq"] = torch.zeros_like(flat)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if m.device != flat.device or m.dtype != flat.dtype:
            state["exp_avg"] = m = m.to(flat)
            state["exp_avg_sq"] = v = v.to(flat)
        state["step"] += 1
        step = float(state["step"])
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        wd = group["weight_decay"]
        if wd:
            if group["decoupled_weight_decay"]:
                flat.mul_(1.0 - lr * wd)
            else:
                grad.add_(flat, alpha=wd)
        m.lerp_(grad, 1.0 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = (v.sqrt() / math.sqrt(1.0 - beta2 ** step)).add_(eps)
        flat.addcdiv_(m, denom, value=-lr / (1.0 - beta1 ** step))
