"""What every surrogate checks before it runs: finite inputs, a batch size, a device that
exists, and out-of-memory named by the batch size."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

NonFinite = Literal["raise", "warn", "ignore"]
NONFINITE: tuple[str, ...] = ("raise", "warn", "ignore")
_OOM: tuple[type[BaseException], ...] = (
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), MemoryError)


def as_tensor(a: Any) -> Tensor:
    """A tensor of a numpy array, a tensor or nested lists (a view where the array is
    writable, a copy of a read-only one such as an h5py/mmap read)."""
    if isinstance(a, Tensor):
        return a
    arr = np.asarray(a)
    return torch.as_tensor(arr if arr.flags.writeable else arr.copy())


def check_nonfinite(name: str, x: Tensor, mode: str, unit: str = "sample",
                    where: str = "predict") -> None:
    """NaN/Inf in ``x`` (batch axis first: one ``unit`` per row) raise a ValueError naming
    ``name`` and the first bad row (``mode="raise"``), warn (``"warn"``) or pass
    (``"ignore"``)."""
    if mode not in NONFINITE:
        raise ValueError(f"{where}: nonfinite={mode!r}, expected one of {NONFINITE}")
    if mode == "ignore" or x.numel() == 0 or not (x.is_floating_point() or x.is_complex()):
        return
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        first, count = int(bad.nonzero()[0, 0]), int(bad.sum())
        message = (f"{where}: {name} has non-finite values (NaN/Inf) in {unit} {first} "
                   f"({count} of {len(bad)} {unit}s); pass nonfinite='warn' or 'ignore' to "
                   "predict anyway")
        if mode == "raise":
            raise ValueError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def check_count(name: str, value: Any, where: str = "predict") -> int:
    """``value`` as an int >= 1 (a batch size), else a ValueError naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or int(value) < 1):
        raise ValueError(f"{where}: {name}={value!r}, expected an integer >= 1 (items per "
                         "forward pass)")
    return int(value)


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device that exists on this machine, else one ValueError line."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r}: not a torch device; expected 'cpu', 'cuda', "
                         "'cuda:<i>' or 'mps'") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available on this machine; use "
                         "device='cpu'")
    return dev


@contextmanager
def memory_guard(batch_size: int, n: int, device: torch.device, where: str = "predict",
                 also: str = "") -> Iterator[None]:
    """Re-raise out-of-memory inside the block as one MemoryError line naming
    ``batch_size`` (and what else to lower, ``also``)."""
    try:
        yield
    except _OOM as err:
        raise MemoryError(
            f"{where}: out of memory on {device} with batch_size={batch_size} ({n} inputs); "
            f"pass a smaller batch_size (e.g. batch_size={max(1, batch_size // 4)}){also}"
        ) from err


class Movable:
    """What every surrogate shares: ``device`` and :meth:`to`, which moves the modules that
    :meth:`_modules` names (the network, and the normalizers where the family has them)."""

    device: torch.device

    def _modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.model,)

    def to(self, device: str | torch.device):
        """Move to ``device`` (``"cpu"``, ``"cuda"``, ...; one ValueError line when this
        machine has no such device). Returns the surrogate."""
        self.device = resolve_device(device)
        for m in self._modules():
            m.to(self.device)
        return self


class OperatorSurrogate(Movable):
    """The base of the families' surrogates: the checkpoint's ``operator`` block
    (:attr:`metadata`, its data description :attr:`io`), the device, and a ``repr`` naming
    the model class, what it maps (:meth:`describe`) and the training data."""

    weights_prefix = "operator."
    """Where the network's weights are in the checkpoint's ``state_dict``."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        self.metadata = dict(metadata)
        self.io = self.metadata["io"]
        self.device = torch.device("cpu")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, checkpoint: Mapping[str, Any],
                        block: Mapping[str, Any]) -> OperatorSurrogate:
        """The surrogate of a checkpoint read and checked by :func:`opnet.load_operator`:
        :meth:`build` from the block, weights under :attr:`weights_prefix`."""
        network = cls.build(block)
        load_weights(path, checkpoint["state_dict"], cls.weights_prefix, network)
        return cls(network, block)

    @staticmethod
    def build(block: Mapping[str, Any]) -> torch.nn.Module:
        """The (untrained) network the checkpoint's ``operator`` block describes."""
        raise NotImplementedError

    def export(self, path: str | os.PathLike, format: str = "torchscript",
               example: Any = None) -> os.PathLike:
        """Write the operator, normalisers included, to ``path`` as ``"torchscript"``,
        ``"onnx"`` or ``"exported_program"`` (``.pt2``): physical inputs -> physical outputs
        as :meth:`predict`, dynamic batch axis; ``example``: an input batch (default zeros
        on the training grid / sensors). Grid operators and DeepONets; see
        :func:`opnet.surrogate.export.export`."""
        from opnet.surrogate.export import export

        return export(self, path, format, example)

    def describe(self) -> str:
        """What the operator maps, for ``repr``."""
        return f"{self.io.get('input_fields')} -> {self.io.get('output_fields')}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.metadata['model'].get('_target_')}, "
                f"{self.describe()}, data {self.io['dataset'].get('name')})")


def load_weights(path: str | os.PathLike, state: Mapping[str, Tensor], prefix: str,
                 module: torch.nn.Module) -> None:
    """Load the entries of ``state`` under ``prefix`` into ``module`` (the network built
    from the checkpoint's kwargs), a :class:`~opnet.checkpoint.CheckpointError` naming
    ``path`` if they do not fit."""
    from opnet.checkpoint import CheckpointError

    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(part)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights under '{prefix}' do not fit the network built "
                              f"from the checkpoint's kwargs ({err})") from err
