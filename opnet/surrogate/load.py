"""Checkpoint -> surrogate: :func:`load_operator` and the checks it makes first (the format
itself, :func:`~opnet.checkpoint.operator_block` included, is :mod:`opnet.checkpoint`'s)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from opnet.checkpoint import (
    CheckpointError,
    check_target,
    checkpoint_file,
    operator_block,
    read_checkpoint,
)
from opnet.data.normalizers import GaussianNormalizer, PointNormalizer
from opnet.models import build_model, resolve_model_name
from opnet.surrogate.deeponet import DeepONetSurrogate
from opnet.surrogate.grid import Surrogate
from opnet.surrogate.prose import ProseSurrogate
from opnet.threads import configure_threads


def load_operator(path: str | os.PathLike, model: str | None = None,
                  device: str | torch.device = "cpu", trusted_targets: Sequence[str] = (),
                  threads: int | None = None
                  ) -> Surrogate | DeepONetSurrogate | ProseSurrogate:
    """Load a checkpoint written by opnet training as a :class:`Surrogate` (grid operators),
    a :class:`DeepONetSurrogate` (checkpoints of the DeepONetModule) or a
    :class:`ProseSurrogate` (the ProseModule's), on ``device``.

    Before anything is built the file is read with ``weights_only=True``, its tensor digest
    is checked (a damaged file is a :class:`CheckpointError` naming it) and its
    ``model._target_`` must be an ``opnet.models`` class: a checkpoint of your own model
    class loads only when you trust it, ``trusted_targets=("mypkg.",)`` (module prefixes or
    exact class paths), since loading imports and runs that class.
    ``model`` (e.g. ``"mgno"``), when given, must match the checkpoint's model class.
    ``path`` may also be a training run's folder or ``outputs/<task>/latest``: its best
    checkpoint (:func:`opnet.checkpoint.checkpoint_file`).
    ``threads``: torch CPU threads of this process (:func:`opnet.threads.configure_threads`);
    None: automatic, unless this process chose them already (``train``, ``evaluate``).
    """
    configure_threads(threads, "predict", keep=True)
    path = checkpoint_file(path)
    ckpt = read_checkpoint(path)
    block = operator_block(path, ckpt)
    target = check_target(path, block["model"].get("_target_"), trusted_targets)
    if model is not None and resolve_model_name(model) != target:
        raise CheckpointError(f"{path}: holds a {target} model, not the requested "
                              f"'{model}' ({resolve_model_name(model)})")
    if block.get("module", "OperatorModule") == "DeepONetModule":
        return _load_deeponet(path, ckpt, block).to(device)
    if block.get("module") == "ProseModule":
        return _load_prose(path, ckpt, block).to(device)
    io = block["io"]
    net = build_model(block["model"])
    in_norm = GaussianNormalizer(io["in_normalizer"], io["in_channels"], io["grid"])
    out_norm = GaussianNormalizer(io["out_normalizer"], io["out_channels"], io["grid"])
    _load_state(path, ckpt["state_dict"], target,
                [("model.", net), ("in_norm.", in_norm), ("out_norm.", out_norm)])
    return Surrogate(net, in_norm, out_norm, block).to(device)


def _load_state(path: Path, state: Mapping[str, Tensor], target: str,
                parts: Sequence[tuple[str, torch.nn.Module]]) -> None:
    for prefix, module in parts:
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights under '{prefix}' do not fit {target} "
                                  f"built from the checkpoint's kwargs ({err})") from err


def _load_deeponet(path: Path, ckpt: Mapping[str, Any], block: Mapping[str, Any]
                   ) -> DeepONetSurrogate:
    io = block["io"]
    shape = list(io["input_shape"])
    net = build_model(block["model"])
    kinds = block.get("normalizers", {})
    in_norm = PointNormalizer(kinds.get("in", "none"), shape, 0 if len(shape) > 1 else None)
    out_norm = PointNormalizer(kinds.get("out", "none"), [io["n_query"], io["out_channels"]], 1)
    state = ckpt["state_dict"]
    _load_state(path, state, block["model"].get("_target_"),
                [("model.", net), ("in_norm.", in_norm), ("out_norm.", out_norm)])
    sensors = state.get("sensors", torch.tensor(block.get("sensors", []), dtype=torch.float64))
    query = state.get("query", torch.tensor(block.get("query", []), dtype=torch.float64))
    return DeepONetSurrogate(net, in_norm, out_norm, sensors, query, block)


def _load_prose(path: Path, ckpt: Mapping[str, Any], block: Mapping[str, Any]
                ) -> ProseSurrogate:
    net = build_model(block["model"])
    _load_state(path, ckpt["state_dict"], block["model"].get("_target_"), [("model.", net)])
    return ProseSurrogate(net, block)
