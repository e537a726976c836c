"""How an error reads in a log line or a report's error field."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The message with its whitespace (newlines too) collapsed; the type's name if empty."""
    return " ".join(str(exc).split()) or type(exc).__name__
