"""`clairctl export-updaters`: every enabled updater run once, each run spooled, then written."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from clair_common.errors import one_line
from clair_common.tls import client_session
from clair_matcher.airgap._jsonblob import enrichment_lines, vulnerability_lines
from clair_matcher.airgap._progress import Progress
from clair_matcher.airgap._streams import READ_BUFFER
from clair_matcher.enrichers import ENRICHMENT_SETS, Enricher, build_enrichers
from clair_matcher.updaters import UnchangedType, Updater
from clair_matcher.updaters.registry import build_factories, discover


@dataclass(slots=True)
class ExportReport:
    records: dict[str, int] = field(default_factory=dict)  # updater → lines written
    errors: dict[str, str] = field(default_factory=dict)  # updater or set → reason


def _spool(lines: Iterator[bytes], spool: IO[bytes], progress: Progress) -> int:
    count = 0
    for line in lines:
        spool.write(line)
        count += 1
        if count % 1000 == 0:
            progress.add(1000)
    progress.add(count % 1000)
    return count


async def _export_one(
    updater: Updater | Enricher,
    client: aiohttp.ClientSession,
    spool: IO[bytes],
    progress: Progress,
) -> int:
    fetched = await updater.fetch(client, "")
    if isinstance(fetched, UnchangedType):  # no previous fingerprint: should not happen
        return 0
    try:
        lines: Iterator[bytes]
        if isinstance(updater, Enricher):
            records = ((r.tags, r.data) for r in updater.parse(fetched))
            lines = enrichment_lines(updater.name, fetched.fingerprint, records)
        else:
            lines = vulnerability_lines(updater.name, fetched.fingerprint, updater.parse(fetched))
        return await asyncio.to_thread(_spool, lines, spool, progress)
    finally:
        await asyncio.to_thread(fetched.discard)


async def export_updaters(
    sets: Sequence[str],
    config: dict[str, Any],
    out: IO[bytes],
    *,
    concurrency: int = 10,
    progress: Progress | None = None,
) -> ExportReport:
    """Runs the enabled updaters and writes every successful run to `out`, grouped by run."""
    from clair_matcher.scheduler import USER_AGENT

    progress = progress or Progress("exported", enabled=False)
    report = ExportReport()
    plain = [s for s in sets if s not in ENRICHMENT_SETS]
    factories, problems = build_factories(plain, config)
    report.errors.update(problems)
    enrichers, problems = build_enrichers(sets, config)
    report.errors.update(problems)
    gate = asyncio.Semaphore(max(1, concurrency))
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    with tempfile.TemporaryDirectory(prefix="clairctl-export-") as tmp:
        spools: dict[str, Path] = {}

        async def run(updater: Updater | Enricher, client: aiohttp.ClientSession) -> None:
            path = Path(tmp) / f"{len(spools)}.jsonl"
            spools[updater.name] = path
            async with gate:
                try:
                    with path.open("wb") as spool:
                        report.records[updater.name] = await _export_one(
                            updater, client, spool, progress
                        )
                except Exception as exc:
                    report.errors[updater.name] = one_line(exc)
                    spools.pop(updater.name, None)
                    progress.note(f"updater {updater.name} failed: {one_line(exc)}")

        headers = {"User-Agent": USER_AGENT}
        async with client_session(timeout=timeout, headers=headers) as client:
            found = await discover(factories, client, config)
            report.errors.update(found.errors)
            runs: list[Updater | Enricher] = [*found.updaters, *enrichers]
            await asyncio.gather(*(run(u, client) for u in runs))

        def concatenate() -> None:
            for name in sorted(spools):
                with spools[name].open("rb") as spool:
                    shutil.copyfileobj(spool, out, READ_BUFFER)

        await asyncio.to_thread(concatenate)
    progress.finish()
    return report
