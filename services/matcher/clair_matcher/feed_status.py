"""What the update loop says about feeds: one summary after the first run, then changes only.

Offline (an airgapped site, a laptop on a train) every feed fails on every run; a line per feed
per run reads as breakage and buries everything else. So the first run ends with one summary
naming the feeds that could not be reached and what that means, and later runs log a feed only
when its state changes (it starts failing, or it recovers).
"""

from __future__ import annotations

import logging
from datetime import timedelta

_SHOWN_NAMES = 8


class FeedStatusLog:
    def __init__(self, log: logging.Logger, period: timedelta) -> None:
        self._log = log
        self._period = period
        self._failing: dict[str, str] = {}  # name → reason, for feeds failing now
        self._known: set[str] = set()
        self._first_run = True
        self._first_failures: dict[str, str] = {}

    def failed(self, name: str, reason: str) -> None:
        was_failing = name in self._failing
        self._failing[name] = reason
        self._known.add(name)
        if self._first_run:
            self._first_failures[name] = reason
        elif not was_failing:
            self._log.error("updater %s failed: %s", name, reason)
        else:
            self._log.debug("updater %s still failing: %s", name, reason)

    def succeeded(self, name: str, *, counted: bool = True) -> None:
        """`counted=False` for an updater set whose discovery worked (its updaters count)."""
        if self._failing.pop(name, None) is not None and not self._first_run:
            self._log.info("updater %s: feed reachable again", name)
        if counted:
            self._known.add(name)

    def run_finished(self) -> None:
        """Ends a scheduler run; the first one logs the summary of what could not be reached."""
        if not self._first_run:
            return
        self._first_run = False
        failures, self._first_failures = self._first_failures, {}
        if not failures:
            return
        names = sorted(failures)
        shown = ", ".join(names[:_SHOWN_NAMES])
        if len(names) > _SHOWN_NAMES:
            shown += f" and {len(names) - _SHOWN_NAMES} more"
        loaded = len(self._known) - len(names)
        every = _human(self._period)
        meaning = (
            "vulnerability reports stay empty until a feed loads"
            if loaded <= 0
            else "reports miss the advisories of these feeds until they load"
        )
        self._log.warning(
            "%d of %d vulnerability feeds could not be reached: %s (first error: %s). Offline or"
            " airgapped this is expected: %s; `clairctl import-updaters FILE` loads an export"
            " made elsewhere with `clairctl export-updaters`. Retrying every %s; only changes"
            " are logged from now on.",
            len(names),
            len(self._known),
            shown,
            failures[names[0]],
            meaning,
            every,
        )


def _human(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
