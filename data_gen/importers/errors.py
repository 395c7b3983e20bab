"""The importers' error type."""

from __future__ import annotations

from opnet.data import h5


class ImporterError(h5.DatasetError):
    """A source file, key, shape, range or option that cannot be imported."""

