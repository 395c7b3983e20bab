"""Checkpoint -> surrogate: :func:`load_operator` and the checks it makes first (the format
itself, :func:`~opnet.checkpoint.operator_block` included, is :mod:`opnet.checkpoint`'s; the
surrogate class is the checkpoint's family's, :mod:`opnet.families`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from opnet.checkpoint import (
    CheckpointError,
    check_target,
    checkpoint_file,
    operator_block,
    read_checkpoint,
    upgrade_state,
)
from opnet.families import family_of, load_object
from opnet.models import resolve_model_name
from opnet.threads import configure_threads


def load_operator(path: str | os.PathLike | Sequence[str | os.PathLike],
                  model: str | None = None, device: str | torch.device = "cpu",
                  trusted_targets: Sequence[str] = (), threads: int | None = None) -> Any:
    """Load a checkpoint written by opnet training as its family's surrogate
    (:mod:`opnet.families`): a :class:`~opnet.surrogate.Surrogate` (grid operators), a
    :class:`~opnet.surrogate.DeepONetSurrogate` (DeepONets) or a
    :class:`~opnet.surrogate.ProseSurrogate` (PROSE), on ``device``.

    Before anything is built the file is read with ``weights_only=True``, its tensor digest
    is checked (a damaged file is a :class:`CheckpointError` naming it) and its
    ``model._target_`` must be an ``opnet.models`` class: a checkpoint of your own model
    class loads only when you trust it, ``trusted_targets=("mypkg.",)`` (module prefixes or
    exact class paths), since loading imports and runs that class.
    ``model`` (e.g. ``"mgno"``), when given, must match the checkpoint's model class.
    ``path`` may also be a training run's folder or ``outputs/<task>/latest``: its best
    checkpoint (:func:`opnet.checkpoint.checkpoint_file`). A list/tuple of such paths, or a
    folder of run folders (a ``train.py -m seed=0,1,2`` sweep folder), loads an
    :class:`~opnet.surrogate.uncertainty.Ensemble` of them.
    ``threads``: torch CPU threads of this process (:func:`opnet.threads.configure_threads`);
    None: automatic, unless this process chose them already (``train``, ``evaluate``).
    """
    configure_threads(threads, "predict", keep=True)
    from opnet.surrogate.uncertainty import Ensemble, run_folders

    runs = list(path) if isinstance(path, (list, tuple)) else run_folders(path)
    if runs is not None:  # several checkpoints / a folder of runs: a deep ensemble
        if not runs:
            raise ValueError("load_operator: path is an empty list, expected checkpoints")
        return Ensemble([load_operator(p, model, device, trusted_targets, threads)
                         for p in runs])
    path = checkpoint_file(path)
    ckpt = read_checkpoint(path)
    block = operator_block(path, ckpt)
    target = check_target(path, block["model"].get("_target_"), trusted_targets)
    if model is not None and resolve_model_name(model) != target:
        raise CheckpointError(f"{path}: holds a {target} model, not the requested "
                              f"'{model}' ({resolve_model_name(model)})")
    upgrade_state(ckpt)  # an older layout of the same weights
    try:
        family = family_of(block)
        surrogate = load_object(family.surrogate, f"the {family.kind} family's surrogate")
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    op = surrogate.from_checkpoint(path, ckpt, block).to(device)
    op.source = str(path)  # the checkpoint file, named by Ensemble's errors
    return op
