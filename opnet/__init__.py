"""opnet: operator learning for scientific machine learning.

``opnet.load_operator(path)`` loads a trained checkpoint as a surrogate.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_operator"]


def load_operator(path, **kwargs):
    """Load a checkpoint (a ``.ckpt`` file, a run folder or ``outputs/<task>/latest``: its
    best checkpoint) as a surrogate (:func:`opnet.surrogate.load_operator`): keywords
    ``model`` (expected model class), ``device``, ``threads`` (torch threads; default
    automatic), ``trusted_targets`` (module prefixes of
    your own model classes that the checkpoint may name; by default only ``opnet.models``
    classes load). The file's tensor digest is checked first. Then ``.predict(...)`` takes
    and returns physical units; see ``help(op.predict)`` for the shapes."""
    from opnet.surrogate import load_operator as _load

    return _load(path, **kwargs)
