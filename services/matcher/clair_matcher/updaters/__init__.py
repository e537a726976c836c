"""Vulnerability feeds: one module per source behind the `Updater` interface (see base.py)."""

from __future__ import annotations

from clair_matcher.updaters.base import (
    ConfigProblem,
    FeedError,
    FetchResult,
    Unchanged,
    UnchangedType,
    Updater,
    UpdaterSetFactory,
)
from clair_matcher.updaters.registry import build_factories, discover, known_sets, register

__all__ = [
    "ConfigProblem",
    "FeedError",
    "FetchResult",
    "Unchanged",
    "UnchangedType",
    "Updater",
    "UpdaterSetFactory",
    "build_factories",
    "discover",
    "known_sets",
    "register",
]
