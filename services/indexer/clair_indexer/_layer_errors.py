"""Errors raised while reading a container layer blob."""

from __future__ import annotations


class LayerFormatError(ValueError):
    """The layer blob is not a readable (compressed) tar archive, or it breaks a limit."""


class LayerLimitError(LayerFormatError):
    """The layer is well formed but exceeds one of the configured `LayerLimits`."""
