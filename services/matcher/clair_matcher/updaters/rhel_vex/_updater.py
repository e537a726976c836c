"""Red Hat VEX (CSAF) feed (claircore `rhel/vex/`): the `rhel-vex` set and delta updater.

Fetch: on the first run (or when the updater version changes) the archive named by
`archive_latest.txt` is the base; its Last-Modified is the starting point. Then every
`changes.csv` entry (`path,RFC3339`) at or after that time is fetched as a document, and every
`deletions.csv` entry becomes a deletion notice; archive members that changed are skipped, so
each document is spooled once. Later runs only look at changes.csv and deletions.csv (sending
their ETags back) since the previous run's time. Documents before 2015 are skipped. The
fingerprint is `changesEtag\\deletionsEtag\\RFC3339 request time\\version`. As in Clair, fetch
never answers Unchanged: every run makes an update operation, carrying the previous one over.

Parse (one record per vulnerability and product status, `_records.py` rules below):
`fixed` products give a binary package with fixed_in_version `epoch:version` of the purl,
`known_affected` products the source package without a fix; both carry the repository
`{name: <CPE>, key: rhel-cpe-repository, cpe}` the product tree names, and a module from the
relationships or the purl's `rpmmod`. Container (`pkg:oci`) products give records of the
image's repository path in the Red Hat Container Catalog repository, fixed at the purl's
`tag`, for the rhcc matcher (`_rhcc.py`). Documents marked deleted (and documents
without records) replace their earlier records with nothing (store.DeltaRecords).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email.utils
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson

from clair_common.models import Vulnerability
from clair_matcher.store import DeltaRecords
from clair_matcher.updaters._conditional import CHUNK
from clair_matcher.updaters._config import (
    duration,
    optional_flag,
    read_config,
    refused,
    setting,
    text,
    with_trailing_slash,
)
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    Updater,
    UpdaterSetFactory,
)
from clair_matcher.updaters.rhel_vex._csaf import CsafError, Document
from clair_matcher.updaters.rhel_vex._records import RecordMaker
from clair_matcher.updaters.rhel_vex._spool import (
    SpoolError,
    SpoolWriter,
    archive_documents,
    deletion_notice,
    read_spool,
)

log = logging.getLogger("clair.matcher.updaters.rhel_vex")

UPDATER_NAME = "rhel-vex"
DEFAULT_URL = "https://security.access.redhat.com/data/csaf/v2/vex/"
UPDATER_VERSION = "6"
LOOK_BACK_TO_YEAR = 2015
DEFAULT_ARCHIVE_TIMEOUT = timedelta(minutes=2)
LATEST_FILE = "archive_latest.txt"
CHANGES_FILE = "changes.csv"
DELETIONS_FILE = "deletions.csv"


@dataclass(slots=True)
class Fingerprint:
    changes_etag: str = ""
    deletions_etag: str = ""
    request_time: datetime | None = None
    version: str = ""

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        if not text:
            return cls()
        fields = text.split("\\")
        if len(fields) != 4:
            raise FeedError(f"{UPDATER_NAME}: could not parse fingerprint {text!r}")
        try:
            when = _rfc3339(fields[2])
        except ValueError:
            raise FeedError(f"{UPDATER_NAME}: bad request time in fingerprint {text!r}") from None
        return cls(fields[0], fields[1], when, fields[3])

    def __str__(self) -> str:
        when = self.request_time or datetime(1, 1, 1, tzinfo=UTC)
        stamp = when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return "\\".join((self.changes_etag, self.deletions_etag, stamp, self.version))


def _rfc3339(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return value


def _year(path: str, where: str) -> int:
    directory = path.rpartition("/")[0]
    if not directory.isdigit():
        raise FeedError(f"{UPDATER_NAME}: {where}: cannot tell the year of {path!r}")
    return int(directory)


@dataclass(frozen=True, slots=True)
class RhelVexConfig:
    """`updaters.config.rhel-vex`, the set's and its one updater's (they share the name):
    `url` (the VEX directory), `ignore_kernel_packages`, `compressed_file_timeout` (how long
    the archive download may take)."""

    url: str = setting(text, "")
    ignore_kernel_packages: bool | None = setting(optional_flag, None)
    fixed_in_version_cel: None = setting(refused("CEL rewriting is not supported"), None)
    compressed_file_timeout: timedelta | None = setting(duration, None)


class RhelVexUpdater(Updater):
    name = UPDATER_NAME
    version = UPDATER_VERSION

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        ignore_kernel_packages: bool = False,
        archive_timeout: timedelta = DEFAULT_ARCHIVE_TIMEOUT,
    ) -> None:
        self.url = with_trailing_slash(url)
        self.ignore_kernel_packages = ignore_kernel_packages
        self.archive_timeout = archive_timeout

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(RhelVexConfig, config, self.name)
        if settings.url:
            self.url = with_trailing_slash(settings.url)
        if settings.ignore_kernel_packages is not None:
            self.ignore_kernel_packages = settings.ignore_kernel_packages
        if settings.compressed_file_timeout is not None:
            self.archive_timeout = settings.compressed_file_timeout

    @property
    def fingerprint_version(self) -> str:
        # A different version (or kernel option) forces the archive to be read again.
        return UPDATER_VERSION + ("+ignore_kernel" if self.ignore_kernel_packages else "")

    # -- fetch -----------------------------------------------------------------------------
    async def fetch(self, client: aiohttp.ClientSession, prev_fingerprint: str) -> FetchResult:
        fp = Fingerprint.parse(prev_fingerprint)
        fd, name = tempfile.mkstemp(prefix="clair-rhel-vex-", suffix=".spool")
        os.close(fd)
        path = Path(name)
        spool = SpoolWriter(path)
        try:
            archive_url = ""
            if not fp.changes_etag or fp.version != self.fingerprint_version:
                archive_url = await self._archive_url(client)
                fp.request_time = await self._last_modified(client, archive_url)
            changed: set[str] = set()
            fp.changes_etag = await self._changes(client, spool, fp, changed)
            fp.deletions_etag = await self._deletions(client, spool, fp, changed)
            if archive_url:
                await self._spool_archive(client, spool, archive_url, changed)
            spool.close()
        except BaseException:
            with contextlib.suppress(Exception):
                spool.close()
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - a quick local cleanup
            raise
        fp.version = self.fingerprint_version
        fp.request_time = datetime.now(UTC)
        log.info("%s: spooled %d documents", self.name, spool.entries)
        return FetchResult(path=path, fingerprint=str(fp), url=self.url)

    async def _get_text(self, client: aiohttp.ClientSession, url: str) -> str:
        try:
            async with client.get(url) as resp:
                if resp.status != 200:
                    raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                return await resp.text(errors="replace")
        except aiohttp.ClientError as exc:
            raise FeedError(f"{self.name}: GET {url}: {exc or type(exc).__name__}") from exc

    async def _archive_url(self, client: aiohttp.ClientSession) -> str:
        latest = (await self._get_text(client, urljoin(self.url, LATEST_FILE))).strip()
        if not latest or any(c.isspace() for c in latest):
            raise FeedError(f"{self.name}: {LATEST_FILE}: no archive name in {latest[:80]!r}")
        return urljoin(self.url, latest)

    async def _last_modified(self, client: aiohttp.ClientSession, url: str) -> datetime:
        try:
            async with client.head(url) as resp:
                if resp.status != 200:
                    raise FeedError(f"{self.name}: HEAD {url}: unexpected status {resp.status}")
                header = resp.headers.get("Last-Modified", "")
        except aiohttp.ClientError as exc:
            raise FeedError(f"{self.name}: HEAD {url}: {exc or type(exc).__name__}") from exc
        try:
            return email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            raise FeedError(f"{self.name}: HEAD {url}: bad Last-Modified {header!r}") from None

    async def _csv(
        self, client: aiohttp.ClientSession, name: str, etag: str
    ) -> tuple[str, list[tuple[int, str, datetime]]] | None:
        """(new ETag, rows of (line, path, time)) of a changed CSV; None when unchanged."""
        url = urljoin(self.url, name)
        headers = {"If-None-Match": etag} if etag else {}
        try:
            async with client.get(url, headers=headers) as resp:
                if resp.status == 304:
                    return None
                if resp.status != 200:
                    raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                new_etag = resp.headers.get("ETag", "")
                if etag and new_etag == etag:
                    return None
                text = await resp.text(errors="replace")
        except aiohttp.ClientError as exc:
            raise FeedError(f"{self.name}: GET {url}: {exc or type(exc).__name__}") from exc
        rows: list[tuple[int, str, datetime]] = []
        reader = csv.reader(io.StringIO(text))
        for record in reader:
            where = f"{name} line {reader.line_num}"
            if len(record) != 2:
                raise FeedError(f"{self.name}: {where}: expected 2 fields, found {len(record)}")
            try:
                rows.append((reader.line_num, record[0], _rfc3339(record[1])))
            except ValueError as exc:
                raise FeedError(f"{self.name}: {where}: bad time: {exc}") from None
        return new_etag, rows

    def _is_new(self, fp: Fingerprint, when: datetime) -> bool:
        return fp.request_time is None or when >= fp.request_time

    async def _changes(
        self, client: aiohttp.ClientSession, spool: SpoolWriter, fp: Fingerprint, changed: set[str]
    ) -> str:
        listing = await self._csv(client, CHANGES_FILE, fp.changes_etag)
        if listing is None:
            return fp.changes_etag
        etag, rows = listing
        for line, path, when in rows:
            if _year(path, f"{CHANGES_FILE} line {line}") < LOOK_BACK_TO_YEAR:
                continue
            if not self._is_new(fp, when):
                continue
            changed.add(path.rpartition("/")[2])
            url = urljoin(self.url, path)
            try:
                async with client.get(url) as resp:
                    if resp.status != 200:
                        raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                    body = await resp.read()
            except aiohttp.ClientError as exc:
                raise FeedError(f"{self.name}: GET {url}: {exc or type(exc).__name__}") from exc
            spool.add(url, body)
        return etag

    async def _deletions(
        self, client: aiohttp.ClientSession, spool: SpoolWriter, fp: Fingerprint, changed: set[str]
    ) -> str:
        listing = await self._csv(client, DELETIONS_FILE, fp.deletions_etag)
        if listing is None:
            return fp.deletions_etag
        etag, rows = listing
        for line, path, when in rows:
            if not self._is_new(fp, when):
                continue
            changed.add(path.rpartition("/")[2])
            notice = deletion_notice(path)
            if notice is None:
                log.warning(
                    "%s: %s line %d: not a CVE path: %r", self.name, DELETIONS_FILE, line, path
                )
                continue
            spool.add(f"{DELETIONS_FILE} line {line}", notice)
        return etag

    async def _spool_archive(
        self, client: aiohttp.ClientSession, spool: SpoolWriter, url: str, changed: set[str]
    ) -> None:
        fd, name = tempfile.mkstemp(prefix="clair-rhel-vex-", suffix=".archive")
        path = Path(name)
        try:
            timeout = aiohttp.ClientTimeout(total=self.archive_timeout.total_seconds())
            with os.fdopen(fd, "wb") as out:
                async with client.get(url, timeout=timeout) as resp:
                    if resp.status != 200:
                        raise FeedError(f"{self.name}: GET {url}: unexpected status {resp.status}")
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        out.write(chunk)
            await asyncio.to_thread(self._copy_archive, path, spool, url, changed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FeedError(f"{self.name}: GET {url}: {exc or type(exc).__name__}") from exc
        finally:
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - a quick local cleanup

    def _copy_archive(self, path: Path, spool: SpoolWriter, url: str, changed: set[str]) -> None:
        try:
            for member, body in archive_documents(path):
                if _year(member, url) < LOOK_BACK_TO_YEAR:
                    continue
                if member.rpartition("/")[2] in changed:
                    continue  # the changed copy is spooled already
                spool.add(f"{url}#{member}", body)
        except SpoolError as exc:
            raise FeedError(f"{self.name}: {url}: {exc}") from None

    # -- parse -----------------------------------------------------------------------------
    def parse(self, fetched: FetchResult) -> DeltaRecords:
        replaced: set[str] = set()
        return DeltaRecords(self._records(fetched, replaced), replaced)

    def _records(self, fetched: FetchResult, replaced: set[str]) -> Iterator[Vulnerability]:
        maker = RecordMaker(self.name, ignore_kernel_packages=self.ignore_kernel_packages)
        try:
            for source, body in read_spool(fetched.path):
                try:
                    doc = Document(orjson.loads(body))
                    if not doc.tracking_id:
                        raise CsafError("document.tracking.id is empty")
                    replaced.add(doc.tracking_id)
                    if doc.status == "deleted":
                        continue
                    yield from maker.records(doc)
                except (orjson.JSONDecodeError, CsafError) as exc:
                    raise FeedError(f"{self.name}: {source}: {exc}") from None
        except SpoolError as exc:
            raise FeedError(f"{self.name}: {exc}") from None


class RhelVexFactory(UpdaterSetFactory):
    name = UPDATER_NAME

    def __init__(self) -> None:
        self.updater = RhelVexUpdater()

    def configure(self, config: Mapping[str, Any]) -> None:
        self.updater.configure(config)

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        updater = RhelVexUpdater(
            self.updater.url,
            ignore_kernel_packages=self.updater.ignore_kernel_packages,
            archive_timeout=self.updater.archive_timeout,
        )
        return [updater]
