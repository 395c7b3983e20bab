"""opnet: operator learning for scientific machine learning.

``opnet.load_operator(path)`` loads a trained checkpoint as a surrogate.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_operator"]


def load_operator(path, **kwargs):
    """Load a checkpoint as a :class:`opnet.surrogate.Surrogate` (see that module)."""
    from opnet.surrogate import load_operator as _load

    return _load(path, **kwargs)
