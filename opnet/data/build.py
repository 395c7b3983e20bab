"""``instantiate_datamodule(data_cfg)``: the datamodule of a ``data`` config (``_target_``).

A data config is built one level deep: its ``_target_`` class is called with the config's
other keys as plain values (dicts, lists). Nested blocks are *not* instantiated by Hydra:
``generate.pde`` may carry its own ``_target_`` -- a generator module such as
``mypkg.heat``, which ``data_gen.generate`` imports and checks (``data_gen.pdes.get_pde``),
not a callable for Hydra to call -- and it reaches the datamodule untouched. A datamodule that
wants objects from nested ``_target_`` blocks builds them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["instantiate_datamodule"]


def instantiate_datamodule(data_cfg: Mapping[str, Any], **overrides: Any) -> Any:
    """The object named by ``data_cfg._target_`` (a LightningDataModule), called with the
    config's other keys resolved to plain containers, nested ``_target_`` blocks included as
    they are; ``overrides``: keyword arguments that replace config keys.

    Hydra's errors stay Hydra's (an ``InstantiationException`` naming ``full_key: data``),
    so the command line reports them in one line (:mod:`opnet.cli`).
    """
    from hydra.utils import instantiate  # lazy: opnet.data imports no Hydra at import time

    return instantiate(data_cfg, _convert_="all", _recursive_=False, **overrides)
