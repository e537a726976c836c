"""`clairctl import-updaters`: each group of an update file stored through the matcher's store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import IO

from clair_matcher.airgap._errors import AirgapError
from clair_matcher.airgap._jsonblob import GroupHead, UpdateFileReader
from clair_matcher.airgap._progress import Progress
from clair_matcher.store import KIND_ENRICHMENT, KIND_VULNERABILITY, MatcherStore


@dataclass(slots=True)
class ImportReport:
    imported: list[tuple[GroupHead, int]] = field(default_factory=list)  # head, records
    skipped: list[GroupHead] = field(default_factory=list)


async def import_updaters(
    store: MatcherStore,
    stream: IO[bytes],
    *,
    where: str = "input",
    progress: Progress | None = None,
) -> ImportReport:
    """Stores each group of `stream` as a new update operation unless already present."""
    progress = progress or Progress("imported", enabled=False)
    reader = UpdateFileReader(stream, where, progress)
    report = ImportReport()
    while (head := await asyncio.to_thread(reader.next_group)) is not None:
        if head.kind not in (KIND_VULNERABILITY, KIND_ENRICHMENT):
            raise AirgapError(f"{where}: line {reader.line_no}: unknown Kind {head.kind!r}")
        if await store.has_fingerprint(head.updater, head.kind, head.fingerprint):
            report.skipped.append(head)
            progress.note(f"{head.updater} ({head.kind}): fingerprint already present, skipped")
            continue
        if head.kind == KIND_VULNERABILITY:
            result = await store.update_vulnerabilities(
                head.updater, head.fingerprint, reader.vulnerabilities()
            )
            records = result.records
        else:
            result = await store.update_enrichments(
                head.updater, head.fingerprint, reader.enrichments()
            )
            records = result.records
        report.imported.append((head, records))
        progress.note(f"{head.updater} ({head.kind}): imported {records:,} records")
    if report.imported:
        await store.refresh_statistics()
    progress.finish()
    return report
