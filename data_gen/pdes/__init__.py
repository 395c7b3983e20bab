"""Registry of PDE generators: ``name -> module`` (see :mod:`data_gen.pdes.base`)."""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Mapping
from types import ModuleType

PDES: dict[str, str] = {
    "navier_stokes": "data_gen.pdes.navier_stokes",
    "helmholtz": "data_gen.pdes.helmholtz",
    "darcy": "data_gen.pdes.darcy",
    "burgers": "data_gen.pdes.burgers",
    "antiderivative": "data_gen.pdes.antiderivative",
    "nonlinear_ode": "data_gen.pdes.nonlinear_ode",
    "pendulum": "data_gen.pdes.pendulum",
    "diffusion_reaction": "data_gen.pdes.diffusion_reaction",
    "advection": "data_gen.pdes.advection",
    "ode_systems": "data_gen.pdes.ode_systems",
}


def get_pde(name: str) -> ModuleType:
    """The generator module registered as ``name``."""
    if name not in PDES:
        raise KeyError(f"pde '{name}' is not a known generator; choose one of {sorted(PDES)}")
    return importlib.import_module(PDES[name])


def make_config(name: str, params: Mapping[str, object]):
    """Build the generator's ``Config`` dataclass from plain ``params``, naming bad keys."""
    config_cls = get_pde(name).Config
    allowed = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise KeyError(f"pde '{name}': unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
    hints = typing.get_type_hints(config_cls)
    return config_cls(**{k: _coerce(v, hints.get(k)) for k, v in params.items()})


def _coerce(value: object, hint: object) -> object:
    """Plain values as the field declares them, so ``omega=500`` from a command line and
    ``omega: 500.0`` from YAML give one configuration: int -> float, list -> tuple."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value
