"""The project's errors that callers show as they are: each a ``ValueError`` whose message says what is allowed, so
every caller shows ``str(err)`` unchanged. ``UnknownName``: a name that is not in a registry (a model, a baseline, an
example image, a layer); ``RestoreError``: a picture, kernel or noise level that ``restore`` cannot take."""

from __future__ import annotations


class UnknownName(ValueError):
    """A name that is not in its registry; the message lists the known names."""


class RestoreError(ValueError):
    """Input that cannot be restored: the message says why and what is allowed."""
