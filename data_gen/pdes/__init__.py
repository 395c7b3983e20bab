"""Registry of PDE generators: ``name -> module`` (see :mod:`data_gen.pdes.base`).

A generator outside opnet plugs in by config alone: ``pde: {_target_: mypkg.mypde, ...}``
(``python -m data_gen pde=custom pde._target_=mypkg.mypde +pde.k=3``) names a module (or
``module.attribute``) with ``Config``, ``sample(cfg, rngs)`` and ``coords(cfg)``.
:func:`get_pde` and :func:`make_config` take a registered name or such a dotted path.
"""

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


CONTRACT = ("Config", "sample", "coords")  # what the runner uses of a generator module


def get_pde(name: str) -> ModuleType:
    """The generator registered as ``name``, else the module (or ``module.attribute``) at the
    dotted path ``name`` (a ``pde._target_``), checked to provide :data:`CONTRACT`."""
    if name in PDES:
        return importlib.import_module(PDES[name])
    try:
        target = _import(name)
    except ImportError as err:
        raise KeyError(f"pde '{name}' is not a known generator; choose one of {sorted(PDES)}, "
                       f"or set pde._target_ to an importable generator module (pde._target_="
                       f"'{name}': {err})") from None
    missing = [a for a in CONTRACT if not hasattr(target, a)]
    if missing or not dataclasses.is_dataclass(target.Config):
        raise KeyError(f"pde._target_='{name}': lacks {missing or ['a dataclass Config']}; "
                       "expected a generator module defining a dataclass Config, "
                       "sample(cfg, rngs) and coords(cfg) (see data_gen.pdes.base)")
    return target


def _import(path: str):
    """``a.b.c`` as a module, else attribute ``c`` of module ``a.b`` (ImportError if neither)."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as err:
        module, _, attr = path.rpartition(".")
        if not module or err.name != path:  # a missing dependency inside the module: report it
            raise
        target = getattr(importlib.import_module(module), attr, None)
        if target is None:
            raise ImportError(f"module '{module}' has no attribute '{attr}'") from None
        return target


def generator_key(pde: Mapping[str, object]) -> str:
    """The generator of a ``pde`` mapping: its ``_target_`` (a dotted path) or its ``name``
    (both given: they must agree)."""
    target, name = pde.get("_target_"), pde.get("name")
    if target is None and name is None:
        raise KeyError(f"pde {dict(pde)}: expected 'name' (a registered generator: "
                       f"{sorted(PDES)}) or '_target_' (a generator module's dotted path)")
    if target is not None and name is not None and str(name) != str(target):
        raise KeyError(f"pde.name='{name}' and pde._target_='{target}' name different "
                       "generators; give one of them (e.g. pde=custom pde._target_=...)")
    return str(target if target is not None else name)


def stored_config(key: str, params: Mapping[str, object]) -> dict[str, object]:
    """The ``pde`` mapping recorded with a dataset, from which :func:`generator_key` and
    :func:`make_config` rebuild the generator: ``{name, **params}``, plus ``_target_`` for a
    generator that is not registered (its ``name`` is then the same dotted path)."""
    return {"name": key, **({} if key in PDES else {"_target_": key}), **params}


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
