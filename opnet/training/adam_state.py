"""Adam moments between the two layouts a DeepONet run may save: FlatAdam's (one flat
vector per state entry, kept under parameter 0) and torch Adam/AdamW's (one tensor per
parameter). ``module.fused`` picks the optimizer, so a checkpoint written with one value
and resumed with another (``resume.extend=true``, or a plain Lightning resume) holds
moments in the other layout; :func:`adapt_adam_state` converts them, so the run carries
its moments on instead of stepping with vectors of the wrong shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from opnet.training.module import ConfigError

MOMENTS = ("exp_avg", "exp_avg_sq")
TORCH_ONLY = ("amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused")


def _layout(state: Mapping[Any, Mapping[str, Any]], params: list[Tensor]) -> set[str]:
    """Which layouts ``state`` (an optimizer state_dict's ``state``) fits: "flat" and/or
    "per_param" (both when empty, or for one 1-D parameter)."""
    total = sum(p.numel() for p in params)
    found = set()
    if set(state) <= {0} and all(tuple(s[m].shape) == (total,) for s in state.values()
                                 for m in MOMENTS if m in s):
        found.add("flat")
    if set(state) <= set(range(len(params))) and all(
            tuple(s[m].shape) == tuple(params[i].shape) for i, s in state.items()
            for m in MOMENTS if m in s):
        found.add("per_param")
    return found


def adapt_adam_state(saved: dict[str, Any], params: list[Tensor], flat: bool,
                     fused: bool | None) -> dict[str, Any]:
    """``saved`` (an Adam/FlatAdam ``state_dict``) in the layout of the optimizer about to be
    built over ``params`` (in order): FlatAdam when ``flat``, else torch's Adam/AdamW with
    ``fused``. Unchanged when it already fits; a one-line :class:`ConfigError` naming
    ``module.fused`` when it fits neither layout."""
    state = saved.get("state") or {}
    want = "flat" if flat else "per_param"
    have = _layout(state, params)
    if want in have:
        return saved
    if not have:
        raise ConfigError(f"module.fused={fused}: the checkpoint's optimizer state matches "
                          f"neither FlatAdam's nor torch Adam's layout for these "
                          f"{len(params)} parameters; start a new run without ckpt_path")
    sizes = [p.numel() for p in params]
    groups = [dict(g) for g in saved["param_groups"]]
    if flat:  # per-parameter -> one flat vector each, under parameter 0
        step = next((float(s["step"]) for s in state.values() if "step" in s), 0.0)
        new = {"step": torch.tensor(step, dtype=torch.float64)}
        for m in MOMENTS:
            ref = next(iter(state.values()))[m]
            new[m] = torch.cat([state[i][m].reshape(-1) if i in state
                                else ref.new_zeros(n) for i, n in enumerate(sizes)])
        states: dict[int, Any] = {0: new}
        for g in groups:
            for key in TORCH_ONLY:
                g.pop(key, None)
    else:  # flat -> one tensor per parameter
        old = state[0]
        offsets = [0]
        for n in sizes:
            offsets.append(offsets[-1] + n)
        states = {i: {"step": torch.tensor(float(old["step"]), dtype=torch.float32),
                      **{m: old[m][offsets[i]:offsets[i + 1]].reshape(p.shape).clone()
                         for m in MOMENTS}}
                  for i, p in enumerate(params)}
        for g in groups:
            g["fused"] = bool(fused) or None
    return {**saved, "state": states, "param_groups": groups}
