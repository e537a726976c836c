"""`clairctl export-updaters` / `import-updaters`: updates carried across an airgap.

The file is Clair's (claircore libvuln/jsonblob): newline-delimited JSON, one line per record,
the lines of one updater run sharing a `Ref`::

    {"Updater":..,"Fingerprint":..,"Date":..,"Ref":"<uuid>","Vuln":{<Vulnerability>},"Kind":"vulnerability"}
    {"Updater":..,"Fingerprint":..,"Date":..,"Ref":"<uuid>","Enrichment":{"Tags":[..],"Enrichment":{..}},"Kind":"enrichment"}

Export runs every enabled updater, enrichers (clair.cvss, clair.kev, clair.epss) included,
with no database (no previous fingerprint, so delta feeds give full snapshots) and spools
each run to its own temporary file: a run that fails leaves nothing in the output, whose
groups are imported as complete snapshots. Import streams the
file (bounded memory): each (ref, kind) group is skipped when an update operation of that
updater and kind already has its fingerprint, else stored through the normal ingest path.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import aiohttp
import asyncpg
import orjson

from clair_common.errors import one_line
from clair_common.models import Vulnerability
from clair_common.tls import client_session
from clair_matcher.enrichers import ENRICHMENT_SETS, Enricher, build_enrichers
from clair_matcher.store import KIND_ENRICHMENT, KIND_VULNERABILITY, MatcherStore
from clair_matcher.updaters import UnchangedType, Updater
from clair_matcher.updaters.registry import build_factories, discover

log = logging.getLogger("clair.clairctl.airgap")

Compression = Literal["none", "gzip", "zstd"]
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_BUFFER = 1 << 20


class AirgapError(Exception):
    """A malformed update file or an unusable source; the message names the line."""


# -- progress ------------------------------------------------------------------------------
class Progress:
    """A live status line on a terminal (records/s, MB read); silent when not a TTY."""

    def __init__(self, verb: str, stream: IO[str] | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.verb = verb
        self.records = 0
        self.bytes_read = 0
        self._start = time.monotonic()
        self._drawn = 0.0

    def add(self, records: int) -> None:
        self.records += records
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.2:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.records / max(now - self._start, 1e-6)
        text = f"{self.verb} {self.records:,} records ({rate:,.0f}/s)"
        if self.bytes_read:
            text += f", {self.bytes_read / 1e6:,.1f} MB read"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()

    def note(self, message: str) -> None:
        """A permanent line (above the live one)."""
        if self.enabled:
            self.stream.write("\r\x1b[K" + message + "\n")
            self._draw(time.monotonic())
        else:
            log.info("%s", message)

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


# -- export --------------------------------------------------------------------------------
def _header(updater: str, fingerprint: str, date: datetime, ref: str, field_name: str) -> bytes:
    stamp = date.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return b"".join(
        (
            b'{"Updater":',
            orjson.dumps(updater),
            b',"Fingerprint":',
            orjson.dumps(fingerprint),
            b',"Date":',
            orjson.dumps(stamp),
            b',"Ref":',
            orjson.dumps(ref),
            b',"',
            field_name.encode(),
            b'":',
        )
    )


def vulnerability_lines(
    updater: str, fingerprint: str, vulns: Iterator[Vulnerability], date: datetime | None = None
) -> Iterator[bytes]:
    """One run's lines, in Go's field order (CommonEntry, Ref, Vuln, Kind)."""
    prefix = _header(updater, fingerprint, date or datetime.now(UTC), str(uuid.uuid4()), "Vuln")
    suffix = b',"Kind":"vulnerability"}\n'
    for v in vulns:
        if not v.updater:
            v.updater = updater
        yield prefix + orjson.dumps(v.to_json()) + suffix


def enrichment_lines(
    updater: str,
    fingerprint: str,
    records: Iterator[tuple[Sequence[str], Any]],
    date: datetime | None = None,
) -> Iterator[bytes]:
    """(tags, enrichment JSON) records as enrichment lines."""
    prefix = _header(
        updater, fingerprint, date or datetime.now(UTC), str(uuid.uuid4()), "Enrichment"
    )
    suffix = b',"Kind":"enrichment"}\n'
    for tags, data in records:
        body = orjson.dumps({"Tags": list(tags), "Enrichment": data})
        yield prefix + body + suffix


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
                    shutil.copyfileobj(spool, out, _READ_BUFFER)

        await asyncio.to_thread(concatenate)
    progress.finish()
    return report


# -- import --------------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """Counts the bytes read from the (possibly compressed) source, for the progress line."""

    def __init__(self, source: IO[bytes], progress: Progress) -> None:
        self.source = source
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.progress.bytes_read += n
        return n


def open_source(
    source: str, compression: Compression | None, progress: Progress
) -> tuple[IO[bytes], list[IO[bytes]]]:
    """A buffered, decompressed byte stream of FILE, URL or "-", and what to close after.

    Compression: the flag, else the name's suffix, else sniffed from the magic bytes.
    """
    if source == "-":
        raw: IO[bytes] = sys.stdin.buffer
    elif source.startswith(("http://", "https://")):
        try:
            raw = urllib.request.urlopen(source, timeout=300)
        except urllib.error.HTTPError as exc:
            raise AirgapError(f"{source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise AirgapError(f"{source}: {reason}") from None
    else:
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise AirgapError(f"{source}: {exc.strerror or exc}") from None
    counted = io.BufferedReader(_CountingReader(raw, progress), _READ_BUFFER)
    if compression is None:
        name = source.split("?", 1)[0]
        if name.endswith(".gz"):
            compression = "gzip"
        elif name.endswith(".zst"):
            compression = "zstd"
        else:
            magic = counted.peek(4)[:4]
            compression = (
                "gzip"
                if magic.startswith(_GZIP_MAGIC)
                else "zstd"
                if magic == _ZSTD_MAGIC
                else "none"
            )
    closers: list[IO[bytes]] = [raw] if raw is not sys.stdin.buffer else []
    if compression == "gzip":
        from isal import igzip

        stream: IO[bytes] = io.BufferedReader(igzip.open(counted, "rb"), _READ_BUFFER)  # type: ignore[no-untyped-call]
    elif compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(counted, read_across_frames=True)
        stream = io.BufferedReader(reader, _READ_BUFFER)
    else:
        stream = counted
    return stream, [stream, *closers]


@dataclass(frozen=True, slots=True)
class GroupHead:
    updater: str
    fingerprint: str
    ref: str
    kind: str


class UpdateFileReader:
    """The groups of an update file, one line at a time (runs in worker threads)."""

    def __init__(self, stream: IO[bytes], where: str, progress: Progress) -> None:
        self.stream = stream
        self.where = where
        self.progress = progress
        self.line_no = 0
        self._pending: dict[str, Any] | None = None
        self.current: GroupHead | None = None

    def _read(self) -> dict[str, Any] | None:
        if self._pending is not None:
            doc, self._pending = self._pending, None
            return doc
        while True:
            line = self.stream.readline()
            if not line:
                return None
            self.line_no += 1
            if line.strip():
                break
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AirgapError(f"{self.where}: line {self.line_no}: invalid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("Updater"), str):
            raise AirgapError(f"{self.where}: line {self.line_no}: not an update record")
        return doc

    def _head(self, doc: dict[str, Any]) -> GroupHead:
        return GroupHead(
            updater=doc["Updater"],
            fingerprint=str(doc.get("Fingerprint") or ""),
            ref=str(doc.get("Ref") or ""),
            kind=str(doc.get("Kind") or KIND_VULNERABILITY),
        )

    def next_group(self) -> GroupHead | None:
        """Skips what is left of the current group; the head of the next one, if any."""
        for _ in self._rest():
            pass
        doc = self._read()
        if doc is None:
            self.current = None
            return None
        self._pending = doc
        self.current = self._head(doc)
        return self.current

    def _rest(self) -> Iterator[dict[str, Any]]:
        """The remaining lines of the current group."""
        head = self.current
        if head is None:
            return
        while (doc := self._read()) is not None:
            if str(doc.get("Ref") or "") != head.ref or str(doc.get("Kind") or "") != head.kind:
                self._pending = doc
                break
            yield doc
        self.current = None

    def vulnerabilities(self) -> Iterator[Vulnerability]:
        count = 0
        for doc in self._rest():
            vuln = doc.get("Vuln")
            if not isinstance(vuln, dict):
                raise AirgapError(f"{self.where}: line {self.line_no}: Vuln: expected an object")
            count += 1
            if count == 1000:
                self.progress.add(count)
                count = 0
            yield Vulnerability.from_json(vuln)
        self.progress.add(count)

    def enrichments(self) -> Iterator[tuple[list[str], Any]]:
        for doc in self._rest():
            record = doc.get("Enrichment")
            tags = record.get("Tags") if isinstance(record, dict) else None
            if not isinstance(record, dict) or not isinstance(tags, list):
                raise AirgapError(f"{self.where}: line {self.line_no}: Enrichment: bad record")
            self.progress.add(1)
            yield [str(t) for t in tags], record.get("Enrichment")


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


# -- clairctl ------------------------------------------------------------------------------
def _load_config(args: argparse.Namespace) -> Any:
    """`--config` (default `config.yaml`, env CLAIR_CONF); a missing default file means all
    defaults, a missing named file is an error."""
    from clair_common.config import default_config, load_config

    path = getattr(args, "config", None)
    if path is None:
        path = os.environ.get("CLAIR_CONF") or "config.yaml"
        if not Path(path).exists():
            return default_config(os.environ)
    return load_config(path, os.environ)


def _compression_flag(args: argparse.Namespace) -> Compression | None:
    if args.gzip and args.zstd:
        raise AirgapError("--gzip and --zstd are mutually exclusive")
    return "gzip" if args.gzip else "zstd" if args.zstd else None


def _open_output(path: str | None, compression: Compression | None) -> tuple[IO[bytes], Any]:
    if compression is None and path:
        compression = "gzip" if path.endswith(".gz") else "zstd" if path.endswith(".zst") else None
    raw: IO[bytes] = open(path, "wb") if path else sys.stdout.buffer  # noqa: SIM115
    if compression == "gzip":
        from isal import igzip

        return igzip.open(raw, "wb", compresslevel=1), raw  # type: ignore[no-untyped-call]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False), raw
    return raw, None


def _export_command(args: argparse.Namespace) -> int:
    from clair_common.config import ConfigError

    try:
        cfg = _load_config(args)
        out, raw = _open_output(args.file, _compression_flag(args))
    except (ConfigError, AirgapError, OSError) as exc:
        print(f"clairctl: export-updaters: {exc}", file=sys.stderr)
        return 2
    progress = Progress("exported", enabled=None if args.file else sys.stderr.isatty())
    try:
        report = asyncio.run(
            export_updaters(
                list(cfg.updaters.sets), dict(cfg.updaters.config), out, progress=progress
            )
        )
    finally:
        out.close() if out is not sys.stdout.buffer else out.flush()
        if raw is not None and raw is not sys.stdout.buffer:
            raw.close()
    for name, reason in sorted(report.errors.items()):
        print(f"clairctl: updater {name}: {reason}", file=sys.stderr)
    total = sum(report.records.values())
    log.info("exported %d records from %d updaters", total, len(report.records))
    return 1 if args.strict and report.errors else 0


async def _import_async(
    dsn: str, migrations: bool, args: argparse.Namespace, compression: Compression | None
) -> ImportReport:
    from clair_common.db.migrate import migrate
    from clair_common.db.pool import create_pool

    if migrations:
        await migrate(dsn, "matcher", "clair_matcher")
    pool = await create_pool(dsn, schema="matcher", application_name="clairctl", max_size=2)
    progress = Progress("imported")
    stream, closers = open_source(args.source, compression, progress)
    try:
        return await import_updaters(
            MatcherStore(pool), stream, where=args.source, progress=progress
        )
    finally:
        for f in closers:
            f.close()
        await pool.close()


def _import_command(args: argparse.Namespace) -> int:
    from clair_common.config import ConfigError, resolve_connstring

    try:
        cfg = _load_config(args)
        compression = _compression_flag(args)
    except (ConfigError, AirgapError) as exc:
        print(f"clairctl: import-updaters: {exc}", file=sys.stderr)
        return 2
    dsn = resolve_connstring(cfg.matcher.dsn, os.environ)
    if dsn is None:
        print("clairctl: no matcher.connstring configured (nor PG* variables)", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_import_async(dsn, bool(cfg.matcher.migrations), args, compression))
    except (AirgapError, OSError, asyncpg.PostgresError) as exc:
        print(f"clairctl: import-updaters: {exc}", file=sys.stderr)
        return 1
    total = sum(n for _, n in report.imported)
    log.info(
        "imported %d operations (%d records), skipped %d",
        len(report.imported),
        total,
        len(report.skipped),
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the airgap subcommands to clairctl (entry point group `clair.clairctl`)."""
    config_help = "config file (default config.yaml, env CLAIR_CONF)"
    export = sub.add_parser("export-updaters", help="run the updaters and write their output")
    export.add_argument("file", nargs="?", help="output file (.gz/.zst compress); stdout if none")
    export.add_argument("-g", "--gzip", action="store_true", help="gzip the output")
    export.add_argument("-z", "--zstd", action="store_true", help="zstd the output")
    export.add_argument("--strict", action="store_true", help="exit 1 if any updater failed")
    export.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    export.set_defaults(func=_export_command)
    imp = sub.add_parser("import-updaters", help="store an export in the matcher's database")
    imp.add_argument("source", help="FILE, URL or - (stdin)")
    imp.add_argument("-g", "--gzip", action="store_true", help="the input is gzipped")
    imp.add_argument("-z", "--zstd", action="store_true", help="the input is zstd-compressed")
    imp.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    imp.set_defaults(func=_import_command)
