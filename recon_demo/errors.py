"""The project's one error for a name that is not in a registry (a model, a baseline, an example image, a layer):
a ``ValueError`` whose message names the known ones, so every caller shows ``str(err)`` as it is."""

from __future__ import annotations


class UnknownName(ValueError):
    """A name that is not in its registry; the message lists the known names."""
