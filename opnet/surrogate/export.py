"""Export a surrogate to a file that runs without opnet (issue 21): TorchScript, ONNX or a
``torch.export`` program, normalisers included, so the file maps physical inputs to
physical outputs exactly like the surrogate's ``predict``.

* grid operators (MgNO, FNO; :class:`~opnet.surrogate.Surrogate`): ``x [B, C_in, *grid]`` ->
  ``[B, C_out, *grid]``, float32;
* DeepONets (:class:`~opnet.surrogate.DeepONetSurrogate`): the branch input ``u`` (``[B, m]``
  sensor values, or ``[B, C, H, W]`` for a CNN branch) -> the outputs at the *training query
  points* (``operator.query``, baked into the file as a constant): ``[B, Q]``, or
  ``[B, Q, C_out]`` with several outputs, as ``predict(u)`` returns them.

The batch axis is dynamic in every format; the grid (or sensor count) is the example's:
shapes decided in Python (padding, multigrid levels, FFT sizes) are fixed when the network is
traced. Load the files with ``torch.jit.load``, ``torch.export.load(path).module()`` or
``onnxruntime.InferenceSession`` (``pip install opnet[export]``).
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from opnet.files import unique_tmp
from opnet.models.operator import NormalisedOperator, PointOperator

FORMATS: tuple[str, ...] = ("torchscript", "onnx", "exported_program")
ONNX_OPSET = 17
"""ONNX opset of the exported graphs (torch's TorchScript-based exporter, ``dynamo=False``:
it needs no ``onnxscript``; the FFT of an FNO has no operator there, see :func:`export`)."""


class GridProgram(nn.Module):
    """``operator(x)`` as float32: physical ``x [B, C_in, *grid]`` -> ``[B, C_out, *grid]``."""

    def __init__(self, operator: nn.Module) -> None:
        super().__init__()
        self.operator = operator

    def forward(self, x: Tensor) -> Tensor:
        return self.operator(x).float()


class PointProgram(nn.Module):
    """A DeepONet at its training query points: physical ``u`` -> ``[B, Q]`` (one output)
    or ``[B, Q, C_out]``; ``query [Q, d]`` (float32) is a buffer of the module."""

    def __init__(self, operator: nn.Module, squeeze: bool) -> None:
        super().__init__()
        self.operator, self.squeeze = operator, squeeze
        self.register_buffer("query", operator.query.detach().float().clone())

    def forward(self, u: Tensor) -> Tensor:
        s = self.operator(u, self.query).float()
        return s[..., 0] if self.squeeze else s


def program(op: Any, example: np.ndarray | Tensor | None = None) -> tuple[nn.Module, Tensor,
                                                                              str, str]:
    """The module to export for surrogate ``op`` and its example batch (on ``op.device``,
    at least 2 samples so the batch axis stays dynamic), with the ONNX input/output names."""
    # by the operator it holds: this module imports no surrogate module (they import it)
    operator = getattr(op, "operator", None)
    if isinstance(operator, PointOperator):  # a DeepONet (checked first: a subclass)
        if example is None:
            x = torch.zeros(2, *op.io["input_shape"])
        else:
            x = op._as_inputs(example)[0]
        module = PointProgram(operator, int(op.io["out_channels"]) == 1)
        names = ("u", "s")
    elif isinstance(operator, NormalisedOperator):
        if example is None:
            x = torch.zeros(2, op.io["in_channels"], *op.io["grid"])
        else:
            x = op._as_batch(example, "export")[0]
        module, names = GridProgram(operator), ("x", "y")
    else:
        raise ValueError(f"export: {type(op).__name__} cannot be exported; export supports "
                         "grid operators (MgNO, FNO) and DeepONets")
    if len(x) == 0:
        raise ValueError(f"export: example has shape {tuple(x.shape)}, an empty batch; "
                         "expected at least one sample")
    if len(x) == 1:  # torch.export specialises a batch of one: repeat it
        x = x.expand(2, *x.shape[1:])
    # a copy without gradients: the file's parameters need none, the surrogate keeps its own
    module = copy.deepcopy(module).eval().requires_grad_(False)
    return module, x.float().contiguous().to(op.device), *names


def _onnx(module: nn.Module, x: Tensor, name_in: str, name_out: str, model: str) -> bytes:
    buffer = io.BytesIO()
    try:
        torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[name_in], output_names=[name_out],
                          dynamic_axes={name_in: {0: "batch"}, name_out: {0: "batch"}})
    except Exception as err:  # the exporter's errors have no common base class
        if "fft" not in str(err).lower():
            raise
        raise ValueError(f"export: format='onnx' cannot express the FFT of this {model} "
                         f"(torch.fft has no ONNX operator at opset {ONNX_OPSET}); use "
                         "format='torchscript' or 'exported_program'") from err
    return buffer.getvalue()


def _exported_program(module: nn.Module, x: Tensor) -> bytes:
    batch = torch.export.Dim("batch")
    ep = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(ep, buffer)
    return buffer.getvalue()


def _torchscript(module: nn.Module, x: Tensor) -> bytes:
    traced = torch.jit.trace(module, (x,), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and an
    atomic rename: readers see the old file or the new one, never a part."""
    tmp = unique_tmp(path, hidden=True)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export(op: Any, path: str | os.PathLike, format: str = "torchscript",
           example: np.ndarray | Tensor | None = None) -> Path:
    """Write surrogate ``op`` (grid operator or DeepONet) to ``path`` in ``format``; returns
    the path. See the module docstring for what the file maps.

    format: ``"torchscript"`` (``torch.jit.trace``; load with ``torch.jit.load``),
        ``"exported_program"`` (``torch.export.export`` + ``torch.export.save``, a ``.pt2``
        file; load with ``torch.export.load(path).module()``) or ``"onnx"`` (opset 17, the
        TorchScript-based ``torch.onnx.export(dynamo=False)``; input ``"x"`` (grid) or
        ``"u"`` (DeepONet), output ``"y"`` / ``"s"``). An FNO cannot go to ONNX: its
        ``torch.fft.rfftn``/``irfftn`` have no ONNX operator there (a one-line ValueError).
    example: one input batch in the layouts ``predict`` takes (physical units); default zeros
        ``[2, C_in, *grid]`` on the training grid / ``[2, *input_shape]`` at the training
        sensors. Its grid is the file's grid; the batch axis is dynamic (axis 0 of input and
        output, any size >= 1; an example of one sample is repeated to two, since
        ``torch.export`` would make a batch of one static).
    torch >= 2.9 deprecates TorchScript (``torch.jit.trace``/``save``/``load``) and the
    TorchScript-based ONNX exporter; both still work in torch 2.13 (tested), and
    ``"exported_program"`` is torch's successor. The dynamo ONNX exporter (``dynamo=True``)
    would need the ``onnxscript`` package and is not used.
    A copy of the network is traced in eval mode without gradients (its parameters do not
    require grad) on ``op.device``; the surrogate is not changed. The file is written
    atomically (temporary file in the same folder + rename).
    """
    if format not in FORMATS:
        raise ValueError(f"export: format={format!r}, expected one of {FORMATS}")
    path = Path(path)
    if format == "exported_program" and path.suffix != ".pt2":
        raise ValueError(f"export: path {str(path)!r} for format='exported_program' must end "
                         "in .pt2 (torch.export.save/load accept no other name)")
    module, x, name_in, name_out = program(op, example)
    model = type(op.operator.model).__name__
    with torch.no_grad(), warnings.catch_warnings():
        # the grid is fixed on purpose (module docstring); the deprecations of TorchScript
        # and of the exporter built on it are in the docstring, not repeated per call
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX",
                                DeprecationWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        if format == "onnx":
            data = _onnx(module, x, name_in, name_out, model)
        elif format == "exported_program":
            data = _exported_program(module, x)
        else:
            data = _torchscript(module, x)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, data)
