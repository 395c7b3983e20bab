"""Operator networks: plain ``torch.nn.Module`` classes built from keyword arguments.

The registry (:data:`MODELS`, short name -> class path) and :func:`build_model`, which both
training and :func:`opnet.load_operator` use to build a network from a checkpoint's or a
config's ``{"_target_": ..., **kwargs}``. Imports no training code, Lightning or Hydra.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

MODELS: dict[str, str] = {
    "mgno": "opnet.models.mgno.MgNO",
    "fno": "opnet.models.fno.FNO2d",
    "fno1d": "opnet.models.fno.FNO1d",
    "fno2d": "opnet.models.fno.FNO2d",
    "fno3d": "opnet.models.fno.FNO3d",
    "deeponet": "opnet.models.deeponet.DeepONet",
    "pod_deeponet": "opnet.models.deeponet.PODDeepONet",
    "prose": "opnet.models.prose.PROSE",
}


def resolve_model_name(name: str) -> str:
    """Short name (``"mgno"``) or dotted class path -> dotted class path."""
    if name in MODELS:
        return MODELS[name]
    if "." in name:
        return name
    raise ValueError(f"model '{name}': expected one of {sorted(MODELS)} or a dotted class path")


def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """``{"_target_": "opnet.models.mgno.MgNO", **kwargs}`` -> the module."""
    spec = dict(spec)
    target = spec.pop("_target_", None)
    if not isinstance(target, str) or "." not in target:
        raise ValueError(f"model config needs '_target_' naming a class (got {target!r})")
    module_name, _, cls_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model._target_={target!r} cannot be imported ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"model._target_={target!r} is not a torch.nn.Module class")
    return cls(**spec)
