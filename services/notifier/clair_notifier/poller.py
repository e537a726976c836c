"""New update operations → affected manifests → notification sets (clair-api.md 8).

Each poll asks the matcher for every updater's newest vulnerability update operation and
processes those without a receipt: under the advisory lock of the operation's ref (so one
replica does it), diff it against the updater's previous operation, ask the indexer which
manifests the added and the removed vulnerabilities affect, and store the notifications and a
`created` receipt in one transaction. An operation affecting nothing gets a `delivered`
receipt, so it is not looked at again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from clair_common.clients import Indexer, Matcher
from clair_common.db.locks import AdvisoryLocks
from clair_common.errors import one_line
from clair_common.models import (
    SEVERITY_RANK,
    Notification,
    Vulnerability,
    VulnerabilitySummary,
)
from clair_notifier.store import Body, NotifierStore, Status

log = logging.getLogger("clair.notifier.poller")

KIND = "vulnerability"
CHUNK = 1000  # vulnerabilities per affected_manifest request, as Clair sends them
PROCESSORS = 4  # update operations processed at once

Reason = Literal["added", "removed"]
Outcome = Literal["notified", "nothing affected", "skipped", "superseded", "failed"]


@dataclass(slots=True)
class PollReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # by update operation ref
    sets: dict[str, str] = field(default_factory=dict)  # ref → notification set id
    errors: dict[str, str] = field(default_factory=dict)


def _rank(vuln: Vulnerability) -> int:
    return SEVERITY_RANK.get(vuln.normalized_severity, 0)


class Poller:
    def __init__(
        self,
        store: NotifierStore,
        locks: AdvisoryLocks,
        matcher: Matcher,
        indexer: Indexer,
        *,
        summary: bool = True,
    ) -> None:
        self.store = store
        self.locks = locks
        self.matcher = matcher
        self.indexer = indexer
        self.summary = summary

    async def run_once(self) -> PollReport:
        report = PollReport()
        latest = await self.matcher.update_operations(KIND, latest=True)
        # An updater without operations is skipped, not the end of the tick as in Clair.
        events = [(name, ops[0].ref) for name, ops in sorted(latest.items()) if ops]
        done = await self.store.receipted([ref for _, ref in events])
        gate = asyncio.Semaphore(PROCESSORS)

        async def one(updater: str, ref: str) -> None:
            async with gate:
                try:
                    report.outcomes[ref] = await self.process(updater, ref, report)
                except Exception as exc:  # one failing operation never stops the others
                    report.outcomes[ref] = "failed"
                    report.errors[ref] = one_line(exc)
                    log.error("update operation %s (%s): %s", ref, updater, one_line(exc))

        await asyncio.gather(*(one(name, ref) for name, ref in events if ref not in done))
        return report

    async def process(self, updater: str, ref: str, report: PollReport | None = None) -> Outcome:
        async with self.locks.try_hold(ref) as held:
            if not held or await self.store.receipted([ref]):
                return "skipped"
            ops = (await self.matcher.update_operations(KIND, updaters=[updater])).get(updater, [])
            if not ops or ops[0].ref != ref:  # a newer operation came meanwhile: that one counts
                return "superseded"
            prev = ops[1].ref if len(ops) > 1 else None  # None: everything is "added"
            counts: dict[Reason, int] = {"added": 0, "removed": 0}
            notifications = await self.notifications(
                self.matcher.update_diff_batches(prev, ref, CHUNK), counts
            )
            set_id = uuid.uuid4()
            bodies = [_body(n) for n in notifications]
            status: Status = "created" if bodies else "delivered"
            if not await self.store.put_notifications(set_id, ref, updater, bodies, status):
                return "skipped"
            if report is not None:
                report.sets[ref] = str(set_id)
            log.info(
                "update operation %s (%s): %d added, %d removed, %d notifications in %s",
                ref,
                updater,
                counts["added"],
                counts["removed"],
                len(bodies),
                set_id,
            )
            return "notified" if bodies else "nothing affected"

    async def notifications(
        self,
        batches: AsyncIterator[tuple[str, list[Vulnerability]]],
        counts: dict[Reason, int] | None = None,
    ) -> list[Notification]:
        """The diff's notifications, its vulnerabilities taken a batch at a time (a first update
        operation of a large feed is all "added": it is never held whole).

        Summary mode: one per manifest and reason, its most severe vulnerability, the first of
        them in diff order (Clair shares the manifest key between both passes, so a manifest
        with vulnerabilities both added and removed heard only of the added). Else one per
        (manifest, vulnerability, reason).
        """
        worst: dict[tuple[str, Reason], Vulnerability] = {}
        out: list[Notification] = []
        async for name, batch in batches:
            reason: Reason = "removed" if name == "removed" else "added"
            if counts is not None:
                counts[reason] += len(batch)
            affected = await self._affected(batch)
            for digest, found in affected.items():
                if not self.summary:
                    out.extend(_notification(digest, reason, v) for v in found)
                    continue
                best = max(found, key=_rank)  # first of the most severe
                known = worst.get((digest, reason))
                if known is None or _rank(best) > _rank(known):
                    worst[(digest, reason)] = best
        out.extend(_notification(digest, reason, v) for (digest, reason), v in worst.items())
        return out

    async def _affected(self, vulns: Sequence[Vulnerability]) -> dict[str, list[Vulnerability]]:
        """Manifest digest → the vulnerabilities affecting it, in the indexer's order."""
        out: dict[str, list[Vulnerability]] = {}
        if not vulns:
            return out
        answer = await self.indexer.affected_manifests(vulns)
        for digest, ids in answer.vulnerable_manifests.items():
            found = out.setdefault(digest, [])
            found.extend(answer.vulnerabilities[i] for i in ids if i in answer.vulnerabilities)
        return out


def _notification(digest: str, reason: Reason, vuln: Vulnerability) -> Notification:
    return Notification(str(uuid.uuid4()), digest, reason, VulnerabilitySummary.of(vuln))


def _body(n: Notification) -> Body:
    doc = n.to_json()
    del doc["id"]  # the row id is the notification id
    return Body(uuid.UUID(n.id), doc)
