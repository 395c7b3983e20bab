"""``compile=true``: the network compiled with ``torch.compile``, where this machine can.

The network is compiled in place (``nn.Module.compile``), so checkpoints keep their keys and
load without it. Where torch.compile cannot work — no C++ compiler for the CPU backend, a
torch build without dynamo, a Python version dynamo does not support — training goes on
uncompiled with a warning saying why. (DeepONet's hand-derived-gradient iterations never
call the network's forward; compiling speeds up its validation and the autograd path.)
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

from torch import nn


def compile_unsupported_reason(device: str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot run here (None: it can)."""
    try:
        import torch._dynamo as dynamo
    except Exception as err:  # noqa: BLE001 - any import failure means no compile
        return f"torch._dynamo cannot be imported ({err})"
    if hasattr(dynamo, "is_dynamo_supported") and not dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]} on this build"
    if device == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        return "the CPU backend needs a C++ compiler (g++ or $CXX) on PATH"
    return None


def maybe_compile(model: nn.Module, enabled: bool, device: str = "cpu",
                  mode: str | None = None) -> bool:
    """Compile ``model`` in place when ``enabled`` and supported; returns whether it did."""
    if not enabled:
        return False
    reason = compile_unsupported_reason(device)
    if reason is not None:
        warnings.warn(f"compile=true: {reason}; training without torch.compile", stacklevel=2)
        return False
    model.compile(mode=mode)
    return True
