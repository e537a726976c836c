"""What goes wrong with an update file or its source."""

from __future__ import annotations


class AirgapError(Exception):
    """A malformed update file or an unusable source; the message names the line."""
