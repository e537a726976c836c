"""Vulnerability feeds behind the `Updater` interface (base.py), one entry per feed.

A feed is a module (`alpine`, `aws`, `debian`, `oracle`, `osv`, `photon`, `suse`, `ubuntu`) or,
when it needs several, a package (`rhel_vex/`); each declares its `updaters.config.<name>`
blocks as frozen dataclasses. `registry` maps set names to factories. Helpers the feeds share
are private: `_conditional` (conditional download), `_config` (typed config blocks),
`_stream_json` (incremental JSON), `_severity`, `_oval/` (OVAL documents, fetch, rpm and dpkg
definitions).
"""

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
