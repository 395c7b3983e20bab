"""Operator families: one registry keyed by the kind of data a family trains on.

A family is what turns one kind of data into a trained operator and back into numbers:

=========  ======================================  ===========================================
kind       data (``io_spec()["kind"]``)            family
=========  ======================================  ===========================================
grid       fields on a grid (and trajectories:     MgNO / FNO (``OperatorModule``,
           one step per application)               ``Surrogate``, ``evaluate_grid``)
points     input functions at sensors, outputs     DeepONet / POD-DeepONet
           at query points                         (``DeepONetModule``, ``DeepONetSurrogate``)
prose      ODE trajectories + symbolic equations   PROSE (``ProseModule``, ``ProseSurrogate``)
=========  ======================================  ===========================================

Each :class:`Family` names, as dotted paths imported only when used (so
:func:`opnet.load_operator` imports neither Lightning nor Hydra): the LightningModule that
trains it (``module._target_`` when the config names none), the surrogate class
(``from_checkpoint(path, checkpoint, block)``), the evaluator (``(operator, data_dir, split,
stride, limit, keep, batch_size) -> Evaluation``) and the figure function that draws its
samples (:func:`opnet.plot.sample_figure`'s signature: what the module's ``figure_data`` and
the evaluator's :class:`~opnet.evaluate.Evaluation` hold). A fourth family is one
:func:`register_family` call (from the user's package; see ``tests/test_families.py``), its
LightningModule a subclass of :class:`opnet.training.base.OperatorLightningModule`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "Family", "family_of", "load_object", "register_family"]


@dataclass(frozen=True)
class Family:
    """One operator family (dotted paths; see the module docstring)."""

    kind: str
    module: str
    surrogate: str
    evaluator: str
    figure: str


FAMILIES: dict[str, Family] = {}


def register_family(family: Family, replace: bool = False) -> Family:
    """Add ``family`` under its data kind (an existing kind only with ``replace=True``)."""
    if family.kind in FAMILIES and not replace and FAMILIES[family.kind] != family:
        raise ValueError(f"operator family for data kind '{family.kind}' exists "
                         f"({FAMILIES[family.kind].module}); pass replace=True to replace it")
    FAMILIES[family.kind] = family
    return family


SAMPLE_FIGURE = "opnet.plot.sample_figure"
register_family(Family("grid", "opnet.training.module.OperatorModule",
                       "opnet.surrogate.grid.Surrogate", "opnet.evaluate.evaluate_grid",
                       SAMPLE_FIGURE))
register_family(Family("points", "opnet.training.deeponet_module.DeepONetModule",
                       "opnet.surrogate.deeponet.DeepONetSurrogate",
                       "opnet.evaluate.evaluate_points", SAMPLE_FIGURE))
register_family(Family("prose", "opnet.training.prose_module.ProseModule",
                       "opnet.surrogate.prose.ProseSurrogate", "opnet.evaluate.evaluate_prose",
                       SAMPLE_FIGURE))

#: The ``module`` names written by opnet before the block recorded its family (format 1).
_LEGACY_MODULES = {"OperatorModule": "grid", "DeepONetModule": "points", "ProseModule": "prose"}


def family_of(io_or_block: Mapping[str, Any]) -> Family:
    """The family of a data description (``io_spec()``: its ``kind``, ``grid`` when absent)
    or of a checkpoint's ``operator`` block (its ``family``, else its ``io``/``module``)."""
    kind = io_or_block.get("family")
    if kind is None and "io" in io_or_block:
        kind = _LEGACY_MODULES.get(io_or_block.get("module", ""),
                                   io_or_block["io"].get("kind", "grid"))
    if kind is None:
        kind = io_or_block.get("kind", "grid")
    if kind not in FAMILIES:
        raise ValueError(f"no operator family for data kind '{kind}' (registered: "
                         f"{', '.join(sorted(FAMILIES))}); register one with "
                         "opnet.families.register_family")
    return FAMILIES[kind]


def load_object(path: str, key: str = "family") -> Any:
    """Import the object at the dotted ``path`` (a ValueError naming ``key`` if it fails)."""
    module_name, _, name = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{key}: {path!r} cannot be imported ({err})") from err
