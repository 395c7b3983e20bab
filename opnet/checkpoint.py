"""The checkpoint format: its version, reading a checkpoint safely, validating and writing
its ``operator`` block, a digest of its tensors, and which model classes it may name.

A leaf module (torch and the standard library only; no training code, no Lightning, no
Hydra): the LightningModules' checkpoint hooks and :mod:`opnet.surrogate` both use it.

* :data:`OPERATOR_FORMAT` -- the version of the ``operator`` block this opnet writes and
  reads; :func:`operator_block` checks a checkpoint's block against it (newer: upgrade
  opnet; older or missing: the opnet that wrote it reads it); :func:`write_operator` stores
  a module's block, stamped with the format and versions, and the digest;

* :func:`read_checkpoint` -- ``torch.load(weights_only=True)`` on the CPU (imports nothing a
  checkpoint names), a missing/unreadable file and a damaged one named as such;
* :func:`state_digest` / :func:`add_digest` / :func:`verify_digest` -- a SHA-256 over the
  ``state_dict``'s tensors (sorted keys, dtype, shape, raw bytes), stored under
  :data:`DIGEST_KEY` when a checkpoint is written and checked when it is read: a flipped
  bit is an error naming the file, never a NaN prediction (about 0.2 s per 100M float32
  parameters on one core, hashing at ~2 GB/s). Checkpoints without a digest (older opnet)
  still load;
* :func:`check_target` -- a checkpoint's ``model._target_`` must be an ``opnet.models`` class
  (or under a prefix the caller trusts) before anything is imported.
* :func:`checkpoint_file` -- the checkpoint to load from a file, a training run's folder or
  its task's ``latest`` link (its best checkpoint, else ``checkpoints/last.ckpt``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from opnet import __version__

OPERATOR_FORMAT = 2
"""Version of the checkpoint's ``operator`` block (``format_version``); raise it when a
change makes older opnet versions misread the block. 2: the grid and DeepONet weights are
those of the normalised operator (``operator.model.*``, ``operator.in_norm.*``, ...; format 1
had them at the top: ``model.*``, ``in_norm.*``), and the block names its ``family``."""
READABLE_FORMATS = (1, 2)
"""The formats this opnet reads (1 through :func:`upgrade_state`)."""
_FORMAT1_OPERATOR = ("model.", "in_norm.", "out_norm.", "sensors", "query")
"""Format 1's top-level state keys that format 2 keeps under ``operator.``."""
OPERATOR_KEY = "operator"
"""Top-level checkpoint key of the block :func:`opnet.load_operator` needs."""
DIGEST_KEY = "state_digest"
"""Top-level checkpoint key of the tensors' digest (``"sha256:<hex>"``)."""
ALGORITHM = "sha256"
MODEL_PREFIX = "opnet.models."
"""Model classes a checkpoint may name without the caller trusting it."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, damaged, or not what the caller expects."""


def state_digest(state: Mapping[str, Any]) -> str | None:
    """``"sha256:<hex>"`` over the tensors of ``state`` (a ``state_dict``): for each key in
    sorted order its name, dtype, shape and raw bytes (C-contiguous, on the CPU; no
    per-element Python work). Values that are not tensors are left out. None when a tensor
    has no plain bytes to hash (sparse, meta, quantized, a sharded/distributed subclass):
    such a state is not digested."""
    h = hashlib.new(ALGORITHM)
    for key in sorted(state, key=str):
        value = state[key]
        if not isinstance(value, torch.Tensor):
            continue
        if (type(value) not in (torch.Tensor, torch.nn.Parameter)
                or value.layout != torch.strided or value.is_meta or value.is_quantized):
            return None
        t = value.detach().resolve_conj().resolve_neg().cpu().contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return f"{ALGORITHM}:{h.hexdigest()}"


def add_digest(checkpoint: dict[str, Any]) -> None:
    """Store the digest of ``checkpoint["state_dict"]`` under :data:`DIGEST_KEY` (called by
    the modules' ``on_save_checkpoint``; a state that cannot be digested stores none)."""
    state = checkpoint.get("state_dict")
    digest = state_digest(state) if isinstance(state, Mapping) else None
    if digest is None:
        checkpoint.pop(DIGEST_KEY, None)
    else:
        checkpoint[DIGEST_KEY] = digest


def verify_digest(checkpoint: Any, path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` naming ``path`` when the stored digest does not match
    the tensors of ``checkpoint["state_dict"]``; no stored digest (a checkpoint of an older
    opnet) passes."""
    if not isinstance(checkpoint, Mapping) or DIGEST_KEY not in checkpoint:
        return
    stored = checkpoint[DIGEST_KEY]
    if not (isinstance(stored, str) and stored.startswith(f"{ALGORITHM}:")):
        raise CheckpointError(f"{path}: '{DIGEST_KEY}' is {stored!r}, expected "
                              f"'{ALGORITHM}:<hex>': the file is damaged or not opnet's")
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: has a '{DIGEST_KEY}' but no 'state_dict': the file is "
                              "damaged; restore it or use another checkpoint")
    digest = state_digest(state)
    if digest is not None and digest != stored:
        raise CheckpointError(f"{path}: tensors do not match the stored digest: the file is "
                              "damaged (bit rot or a partial copy); restore it or use another "
                              "checkpoint")


def read_checkpoint(path: str | os.PathLike, mmap: bool = False, verify: bool = True) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, its tensor digest checked
    (``verify``). A missing or unreadable file (not a torch checkpoint, truncated) or a
    damaged one is a :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({err}); a "
                              "truncated or corrupt file? Use another checkpoint of the run "
                              "(checkpoints/last.ckpt or the best epoch_*.ckpt)") from err
    if verify:
        verify_digest(ckpt, path)
    return ckpt


def operator_block(path: str | os.PathLike, ckpt: Any) -> dict[str, Any]:
    """The checkpoint's ``operator`` block after checking its ``format_version`` against
    :data:`OPERATOR_FORMAT` (a newer one: upgrade opnet; an older or missing one: the opnet
    that wrote it reads it) and that it names a model (``model``: ``_target_`` + kwargs);
    else a one-line :class:`CheckpointError` naming ``path``."""
    block = ckpt.get(OPERATOR_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(block, dict):
        raise CheckpointError(f"{path}: has no '{OPERATOR_KEY}' block; it was not written by "
                              "opnet training (keys: "
                              f"{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt)})")
    version, writer = block.get("format_version"), block.get("opnet_version", "unknown")
    if isinstance(version, int) and not isinstance(version, bool) and version > OPERATOR_FORMAT:
        raise CheckpointError(
            f"{path}: operator format_version {version} is newer than this opnet "
            f"({__version__}) reads (format_version {OPERATOR_FORMAT}); it was written by opnet "
            f"{writer}: upgrade opnet to load or resume it")
    if version not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path}: operator format_version {version!r}, expected {OPERATOR_FORMAT} (written "
            f"by opnet {writer}, this is {__version__}); load it with the opnet that wrote it, "
            "or retrain")
    if not isinstance(block.get("model"), dict):
        raise CheckpointError(f"{path}: its operator block has no 'model' dict (_target_ + "
                              "kwargs); the checkpoint is damaged or not opnet's")
    return block


def upgrade_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Move a format-1 grid or DeepONet checkpoint's weights to format 2's keys (in place,
    after :func:`verify_digest`, which hashes the keys as written): ``model.*`` ->
    ``operator.model.*`` and so on. PROSE kept ``model.*``. Returns ``ckpt``."""
    block = ckpt.get(OPERATOR_KEY) or {}
    state = ckpt.get("state_dict")
    if block.get("format_version") != 1 or block.get("module") == "ProseModule" or not state:
        return ckpt
    ckpt["state_dict"] = type(state)(
        (f"operator.{k}" if k.startswith(_FORMAT1_OPERATOR) else k, v) for k, v in state.items())
    return ckpt


def write_operator(checkpoint: dict[str, Any], block: Mapping[str, Any]) -> None:
    """Store a module's ``operator`` block (plain types: ``module``, ``model``, ``io``, ...)
    in ``checkpoint``, stamped with :data:`OPERATOR_FORMAT` and the opnet/torch versions, and
    the tensors' digest (:func:`add_digest`): the common part of every module's
    ``on_save_checkpoint``."""
    checkpoint[OPERATOR_KEY] = {**block, "format_version": OPERATOR_FORMAT,
                                "opnet_version": __version__,
                                "torch_version": str(torch.__version__)}
    add_digest(checkpoint)  # checked by every load: bit rot is an error


def check_target(path: str | os.PathLike, target: Any, trusted: Sequence[str] = ()) -> str:
    """``target`` (a checkpoint's ``model._target_``) when it names a class under
    :data:`MODEL_PREFIX` or under one of the ``trusted`` prefixes (``"mypkg."``, or an exact
    class path); else :class:`CheckpointError` naming it -- checked before anything is
    imported, so a checkpoint cannot make opnet import an arbitrary module."""
    if isinstance(trusted, str):
        trusted = (trusted,)
    if isinstance(target, str) and all(p.isidentifier() for p in target.split(".")):
        for prefix in (MODEL_PREFIX, *trusted):
            if target == prefix or target.startswith(prefix.rstrip(".") + "."):
                return target
    raise CheckpointError(
        f"{path}: model._target_={target!r} is not an opnet model class ({MODEL_PREFIX}*); "
        "opnet does not import what an untrusted checkpoint names. If the checkpoint is yours "
        "and holds your own model class, pass load_operator(..., trusted_targets=('"
        + (target.rpartition(".")[0] + "." if isinstance(target, str) and "." in target
           else "mypkg.") + "',))")


def loading_path(module: Any) -> str:
    """The checkpoint file a LightningModule is being restored from, for messages
    (``trainer.ckpt_path`` while resuming; ``"checkpoint"`` when unknown)."""
    trainer = getattr(module, "_trainer", None)
    path = getattr(trainer, "ckpt_path", None) if trainer is not None else None
    return str(path) if path else "checkpoint"


LATEST = "latest"
"""``outputs/<task>/latest``: a symlink to the newest run folder holding a checkpoint, or (where
symlinks are impossible) a small text file holding that folder's path relative to it."""


def _newest_checkpoint(folder: Path) -> Path | None:
    """The newest ``*.ckpt`` in ``folder`` other than ``last.ckpt`` (the monitored best:
    ``epoch_*.ckpt`` / ``step_*.ckpt``; with ``save_top_k=1``, the default, the only one)."""
    try:
        found = [p for p in folder.glob("*.ckpt") if p.name != "last.ckpt" and p.is_file()]
    except OSError:
        return None
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def checkpoint_file(path: str | os.PathLike, key: str | None = None) -> Path:
    """The checkpoint to load for ``path``: a file as it is (missing: :func:`read_checkpoint`
    names it); for a training run's folder (or ``outputs/<task>/latest``) its best checkpoint
    -- ``metrics.json``'s ``best_checkpoint`` (also found under the folder when the run was
    moved), else the newest ``checkpoints/epoch_*.ckpt`` (a run still training), else
    ``checkpoints/last.ckpt``. A folder without any is a ``FileNotFoundError`` naming it
    (``key=``, e.g. ``"ckpt"``, prefixes the message with ``ckpt=``)."""
    path = Path(path)
    if path.name == LATEST and path.is_file():  # the text form of the link
        try:
            path = path.parent / path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return path  # not a link file: read_checkpoint names what is wrong with it
    if not path.is_dir():
        return path
    folder = path / "checkpoints"
    candidates: list[Path | None] = []
    try:
        best = json.loads((path / "metrics.json").read_text()).get("best_checkpoint")
        if best:
            candidates += [Path(best), folder / Path(best).name]
    except (OSError, ValueError, AttributeError):  # no metrics.json yet (still training)
        pass
    candidates += [_newest_checkpoint(folder), folder / "last.ckpt"]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{f'{key}=' if key else ''}{path}: a folder without checkpoints/"
                            "*.ckpt (nor a best checkpoint in metrics.json); give a .ckpt file "
                            "or a training run's folder")
