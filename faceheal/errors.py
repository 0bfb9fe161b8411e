"""Failures a user can act on, one exception type each.

The CLI catches `FacehealError` once and prints ``path: message`` on one line; nothing else
in the library prints or exits.
"""
from __future__ import annotations


class FacehealError(Exception):
    """Base class: something about one input (or the setup) that the user can fix."""


class UnreadableImage(FacehealError):
    """The file is missing, empty, truncated, corrupt or not an image."""


class MaskMismatch(FacehealError):
    """A supplied mask does not have the size of its photo."""


class MissingMask(FacehealError):
    """`--masks DIR` was given but holds no mask for this photo."""


class NoFaceFound(FacehealError):
    """The detector found no face (above `--min-face`) in the photo."""


class OutputError(FacehealError):
    """The output could not be written (read-only folder, full disk, path outside -o)."""


class WeightsError(FacehealError):
    """Weights are missing, do not match their recorded SHA-256, or do not fit the model."""


class UsageError(FacehealError):
    """The command line asks for something impossible (exit code 2)."""
