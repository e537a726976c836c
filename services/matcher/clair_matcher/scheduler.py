"""Periodic updater runs (clair-api.md 7.1): at start, then every `matcher.period` plus jitter.

Every replica runs the loop; each updater runs under the advisory lock `updater:<name>`, so
one replica does the work and the others skip it. Per run: discover the enabled sets, run
the updaters with bounded concurrency, record each outcome in `updater_status`, then collect
garbage under `garbage-collection`. A failing updater is logged as one line and never stops
the others, the loop or the service.

An updater's run is bounded by `matcher.updater_timeout` and, while it downloads, by a floor of
`matcher.updater_min_rate` bytes/s per `matcher.updater_rate_window`. Rounds of the loop do not
wait for each other: an updater still running from an earlier round is skipped, the rest run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import aiohttp

from clair_common.aio import cancel_and_wait
from clair_common.config.views import MatcherView
from clair_common.db.locks import AdvisoryLocks
from clair_common.errors import one_line
from clair_common.progress import ByteCounter, TooSlow, at_least, counting_session
from clair_common.telemetry import annotate, traced
from clair_common.tls import client_session
from clair_matcher.enrichers import ENRICHMENT_SETS, Enricher, build_enrichers
from clair_matcher.feed_status import FeedStatusLog
from clair_matcher.store import KIND_ENRICHMENT, KIND_VULNERABILITY, MatcherStore
from clair_matcher.updaters import UnchangedType, Updater, UpdaterSetFactory
from clair_matcher.updaters.registry import build_factories, discover

log = logging.getLogger("clair.matcher.updates")

DEFAULT_CONCURRENCY = 10
JITTER_SECONDS = 0.06  # Clair's loop adds a tiny random delay too
USER_AGENT = "clair/v4 (clair-py)"
_CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)

Outcome = Literal["updated", "unchanged", "failed", "skipped"]


@dataclass(slots=True)
class RunReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    gc_ran: bool = False


class UpdateScheduler:
    def __init__(
        self,
        store: MatcherStore,
        locks: AdvisoryLocks,
        *,
        sets: Sequence[str],
        config: Mapping[str, Any],
        period: timedelta,
        retention: int,
        disabled: bool = False,
        disable_enrichment: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        factories: Sequence[UpdaterSetFactory] | None = None,
        updater_timeout: timedelta = timedelta(0),
        min_rate: float = 0,
        rate_window: timedelta = timedelta(0),
        on_update: Callable[[], None] | None = None,
    ) -> None:
        """`updater_timeout` of zero: no deadline; `min_rate` of zero: no rate floor;
        `on_update` is called after each new update operation is stored."""
        self.store = store
        self.locks = locks
        self.config = config
        self.period = period
        self.retention = retention
        self.disabled = disabled
        self.concurrency = max(1, concurrency)
        self._config_errors: dict[str, str] = {}
        enabled = [] if disabled else [s for s in sets if s not in ENRICHMENT_SETS]
        if factories is None:
            factories, self._config_errors = build_factories(enabled, config)
        self.factories = list(factories)
        # Enrichment sets (clair.cvss) run as updaters of kind "enrichment".
        self.enrichers: list[Enricher] = []
        if not disabled and not disable_enrichment:
            self.enrichers, problems = build_enrichers(sets, config)
            self._config_errors.update(problems)
        self.updater_timeout = updater_timeout.total_seconds() or None
        self.min_rate = min_rate
        self.rate_window = rate_window.total_seconds()
        self.on_update = on_update
        self._client: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.feed_status = FeedStatusLog(log, period)
        self._running: set[str] = set()  # updaters whose run has not finished yet
        self._discovered: dict[str, list[str]] = {}  # set → its updaters at the last discovery
        self._rounds: set[asyncio.Task[RunReport]] = set()

    @classmethod
    def from_config(
        cls,
        cfg: MatcherView,
        store: MatcherStore,
        locks: AdvisoryLocks,
        on_update: Callable[[], None] | None = None,
    ) -> UpdateScheduler:
        """From the matcher's view of the config (its `matcher` and `updaters` sections)."""
        return cls(
            store,
            locks,
            sets=cfg.updaters.sets,
            config=cfg.updaters.config,
            period=cfg.matcher.period,
            retention=cfg.matcher.update_retention,
            disabled=cfg.matcher.disable_updaters,
            disable_enrichment=cfg.matcher.disable_enrichment,
            updater_timeout=cfg.matcher.updater_timeout,
            min_rate=cfg.matcher.updater_min_rate,
            rate_window=cfg.matcher.updater_rate_window,
            on_update=on_update,
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            self._client = client_session(
                timeout=_CLIENT_TIMEOUT, headers={"User-Agent": USER_AGENT}
            )
        return self._client

    async def run_once(self) -> RunReport:
        report = RunReport()
        if self.disabled:
            return report
        for name, reason in self._config_errors.items():
            self.feed_status.failed(name, reason)
            report.errors[name] = reason
        client = self._session()
        found = await discover(self.factories, client, self.config)
        for name, reason in found.errors.items():
            self.feed_status.failed(name, reason)
            report.errors[name] = reason
            report.outcomes[name] = "failed"
        self._discovered.update(found.by_set)
        await self._record_discovery_failures(found.errors)
        for factory in self.factories:
            if factory.name not in found.errors:
                self.feed_status.succeeded(factory.name, counted=False)
        gate = asyncio.Semaphore(self.concurrency)

        async def run(updater: Updater | Enricher) -> None:
            if updater.name in self._running:
                log.info("updater %s: still running from an earlier round; skipped", updater.name)
                report.outcomes[updater.name] = "skipped"
                return
            self._running.add(updater.name)
            try:
                async with gate:
                    report.outcomes[updater.name] = await self.run_updater(updater, report)
            finally:
                self._running.discard(updater.name)

        jobs: list[Updater | Enricher] = [*found.updaters, *self.enrichers]
        await asyncio.gather(*(run(u) for u in jobs))
        self.feed_status.run_finished()
        if "updated" in report.outcomes.values():
            await self.store.refresh_statistics()
        async with self.locks.try_hold("garbage-collection") as held:
            if held:
                try:
                    remaining = await self.store.collect_garbage(self.retention)
                    report.gc_ran = True
                    if remaining:
                        log.info("gc: %d old update operations left for later runs", remaining)
                except Exception as exc:
                    log.error("garbage collection failed: %s", one_line(exc))
        return report

    async def _record_discovery_failures(self, errors: Mapping[str, str]) -> None:
        """A set whose discovery failed fails its updaters' status too, not only a log line:
        the set's own row and those of the updaters it found last time (since a restart: the
        rows whose names start with the set's) say why."""
        for name, reason in errors.items():
            if name not in self._discovered and not any(f.name == name for f in self.factories):
                continue  # an updater's config problem, not a set's discovery
            error = f"discovery failed: {reason}"
            known = self._discovered.get(name)
            if known is None:  # none since start: the rows named after the set
                with contextlib.suppress(Exception):
                    known = await self.store.status_names_under(name)
            for updater in [name, *(known or [])]:
                with contextlib.suppress(Exception):
                    prev = await self.store.latest_fingerprint(updater, KIND_VULNERABILITY)
                    await self.store.record_status(updater, fingerprint=prev, error=error)

    @traced("update run")
    async def run_updater(
        self, updater: Updater | Enricher, report: RunReport | None = None
    ) -> Outcome:
        annotate({"updater": updater.name})
        async with self.locks.try_hold(f"updater:{updater.name}") as held:
            if not held:
                return "skipped"
            prev = ""
            counter = ByteCounter()
            deadline = asyncio.timeout(self.updater_timeout)
            try:
                kind = KIND_ENRICHMENT if isinstance(updater, Enricher) else KIND_VULNERABILITY
                prev = await self.store.latest_fingerprint(updater.name, kind)
                client = counting_session(
                    counter, timeout=_CLIENT_TIMEOUT, headers={"User-Agent": USER_AGENT}
                )
                async with client, deadline:
                    return await self._update(updater, client, counter, prev)
            except Exception as exc:
                if deadline.expired():
                    reason = f"timed out after {self.updater_timeout:g}s (matcher.updater_timeout)"
                elif isinstance(exc, TooSlow):
                    reason = f"feed {exc} (matcher.updater_min_rate)"
                else:
                    reason = one_line(exc)
                self.feed_status.failed(updater.name, reason)
                if report is not None:
                    report.errors[updater.name] = reason
                with contextlib.suppress(Exception):
                    await self.store.record_status(updater.name, fingerprint=prev, error=reason)
                return "failed"

    async def _update(
        self,
        updater: Updater | Enricher,
        client: aiohttp.ClientSession,
        counter: ByteCounter,
        prev: str,
    ) -> Outcome:
        fetched = await at_least(
            updater.fetch(client, prev), counter, self.min_rate, self.rate_window
        )
        if isinstance(fetched, UnchangedType):
            await self.store.record_status(updater.name, fingerprint=prev, error=None)
            self.feed_status.succeeded(updater.name)
            return "unchanged"
        try:
            if isinstance(updater, Enricher):
                result = await self.store.update_enrichments(
                    updater.name, fetched.fingerprint, updater.parse(fetched)
                )
            else:
                result = await self.store.update_vulnerabilities(
                    updater.name, fetched.fingerprint, updater.parse(fetched)
                )
        finally:
            await asyncio.to_thread(fetched.discard)
        if self.on_update is not None:
            self.on_update()
        await self.store.record_status(updater.name, fingerprint=fetched.fingerprint, error=None)
        self.feed_status.succeeded(updater.name)
        log.info(
            "updater %s: new update operation %s (%d records, %d new)",
            updater.name,
            result.ref,
            result.records,
            result.inserted,
        )
        return "updated"

    async def _loop(self) -> None:
        # Each round runs in its own task: a round held up by a slow updater (until its
        # deadline) does not delay the next, which runs every other updater again.
        while True:
            round_task = asyncio.create_task(self._round())
            self._rounds.add(round_task)
            round_task.add_done_callback(self._rounds.discard)
            delay = self.period.total_seconds() + random.uniform(0, JITTER_SECONDS)
            await asyncio.sleep(delay)

    async def _round(self) -> RunReport:
        try:
            return await self.run_once()
        except Exception as exc:  # the loop outlives any single run
            log.error("update run failed: %s", one_line(exc))
            return RunReport()

    def start(self) -> None:
        """Starts the background loop (first run immediately); no-op when updaters are off."""
        if self.disabled or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="clair-updates")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        rounds = list(self._rounds)
        for round_task in rounds:
            round_task.cancel()
        await asyncio.gather(*rounds, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
