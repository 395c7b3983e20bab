"""Trained operators as fast surrogates: ``load_operator(ckpt).predict(a)``.

Works from the checkpoint alone (no Hydra, no dataset): the ``operator`` block holds the
model class and kwargs, the data description, and the normalizer buffers are in the
``state_dict``. Loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from opnet.data.normalizers import GaussianNormalizer
from opnet.models import resolve_model_name
from opnet.training.module import OPERATOR_FORMAT, build_model


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not what the caller expects."""


class Surrogate:
    """A trained grid operator in physical units.

    ``predict(a)``: ``a`` numpy/tensor ``[*grid]``, ``[B, *grid]`` (one input channel) or
    ``[B, C_in, *grid]``; returns numpy float32 of the matching layout with ``C_out``
    output channels (the channel axis is dropped when the input had none and C_out = 1).
    """

    def __init__(self, model: torch.nn.Module, in_norm: GaussianNormalizer,
                 out_norm: GaussianNormalizer, metadata: Mapping[str, Any]) -> None:
        self.model, self.in_norm, self.out_norm = model.eval(), in_norm, out_norm
        self.metadata = dict(metadata)
        self.io = self.metadata["io"]
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> Surrogate:
        self.device = torch.device(device)
        for m in (self.model, self.in_norm, self.out_norm):
            m.to(self.device)
        return self

    def _as_batch(self, a: np.ndarray | Tensor) -> tuple[Tensor, bool, bool]:
        x = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a)
        dims, c_in = len(self.io["grid"]), self.io["in_channels"]
        single, channel_axis = False, True
        if x.ndim == dims:
            x, single, channel_axis = x[None, None], True, False
        elif x.ndim == dims + 1 and c_in == 1:
            x, channel_axis = x[:, None], False
        elif x.ndim != dims + 2:
            raise ValueError(f"predict: input of shape {tuple(x.shape)} does not fit "
                             f"[*grid], [B, *grid] or [B, {c_in}, *grid] ({dims}-D grid)")
        if x.shape[1] != c_in:
            raise ValueError(f"predict: input has {x.shape[1]} channel(s), the operator "
                             f"expects {c_in} ({self.io['input_fields']})")
        trained = tuple(self.io["grid"])
        if "pointwise" in (self.in_norm.kind, self.out_norm.kind) and tuple(x.shape[2:]) != trained:
            raise ValueError(f"predict: grid {tuple(x.shape[2:])} differs from the training "
                             f"grid {trained}, and a pointwise normalizer ties this operator "
                             "to that grid")
        return x.float(), single, channel_axis

    @torch.inference_mode()
    def predict(self, a: np.ndarray | Tensor, batch_size: int = 64) -> np.ndarray:
        x, single, channel_axis = self._as_batch(a)
        outs = []
        for chunk in torch.split(x, batch_size):
            z = self.model(self.in_norm.encode(chunk.to(self.device)))
            outs.append(self.out_norm.decode(z).float().cpu())
        y = torch.cat(outs).numpy()
        if not channel_axis and y.shape[1] == 1:
            y = y[:, 0]
        return y[0] if single else y

    @torch.inference_mode()
    def rollout(self, a: np.ndarray | Tensor, steps: int, batch_size: int = 64) -> np.ndarray:
        """Autoregressive prediction of a one-step (time-stepping) operator: the ``steps``
        frames after ``a``; ``[*grid]`` -> ``[steps, *grid]``, ``[B, *grid]`` ->
        ``[B, steps, *grid]``, ``[B, C, *grid]`` -> ``[B, steps·C, *grid]``."""
        if self.io["in_channels"] != self.io["out_channels"]:
            raise ValueError(f"rollout: the operator maps {self.io['in_channels']} to "
                             f"{self.io['out_channels']} channels; a rollout needs equal ones")
        if int(steps) < 1:
            raise ValueError(f"rollout: steps={steps}, expected >= 1")
        x, single, channel_axis = self._as_batch(a)
        outs = []
        for chunk in torch.split(x, batch_size):
            z, frames = chunk.to(self.device), []
            for _ in range(int(steps)):
                z = self.out_norm.decode(self.model(self.in_norm.encode(z))).float()
                frames.append(z.cpu())
            outs.append(torch.cat(frames, dim=1))
        y = torch.cat(outs).numpy()
        return y[0] if single else y

    def __repr__(self) -> str:
        io = self.io
        return (f"Surrogate({self.metadata['model'].get('_target_')}, "
                f"{io['input_fields']} -> {io['output_fields']}, grid {io['grid']}, "
                f"data {io['dataset'].get('name')})")


def load_operator(path: str | os.PathLike, model: str | None = None,
                  device: str | torch.device = "cpu") -> Surrogate:
    """Load a checkpoint written by opnet training as a :class:`Surrogate`.

    ``model`` (e.g. ``"mgno"``), when given, must match the checkpoint's model class.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({err})") from err
    block = ckpt.get("operator") if isinstance(ckpt, dict) else None
    if not isinstance(block, dict):
        raise CheckpointError(f"{path}: has no 'operator' block; it was not written by opnet "
                              "training (keys: "
                              f"{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt)})")
    if block.get("format_version") != OPERATOR_FORMAT:
        raise CheckpointError(f"{path}: operator format_version {block.get('format_version')}, "
                              f"expected {OPERATOR_FORMAT}")
    target = block["model"].get("_target_")
    if model is not None and resolve_model_name(model) != target:
        raise CheckpointError(f"{path}: holds a {target} model, not the requested "
                              f"'{model}' ({resolve_model_name(model)})")
    io = block["io"]
    net = build_model(block["model"])
    in_norm = GaussianNormalizer(io["in_normalizer"], io["in_channels"], io["grid"])
    out_norm = GaussianNormalizer(io["out_normalizer"], io["out_channels"], io["grid"])
    state = ckpt["state_dict"]
    for prefix, module in (("model.", net), ("in_norm.", in_norm), ("out_norm.", out_norm)):
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights under '{prefix}' do not fit {target} "
                                  f"built from the checkpoint's kwargs ({err})") from err
    return Surrogate(net, in_norm, out_norm, block).to(device)
