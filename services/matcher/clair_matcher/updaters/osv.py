"""OSV (claircore `updater/osv/osv.go`): `ecosystems.txt`, then one `<Ecosystem>/all.zip` each.

PyPI (ECOSYSTEM ranges) and Go (SEMVER ranges; module paths, `stdlib` for the standard
library at semver versions, e.g. `1.21.0-rc.1`) are mapped, Go under Clair's repository
(`go`, `https://pkg.go.dev/`); the other language matchers are out of scope. Per advisory:
skipped when withdrawn, without affected entries, or with GIT ranges only; name = OSV id,
description = summary, issued = published, links = references then `https://osv.dev/vulnerability/<alias>`;
severity = the last parsable CVSS vector (qualitative), else `database_specific.severity`.
Each ECOSYSTEM range becomes one vulnerability whose fixed_in_version is the URL-encoded query
`fixed=..&introduced=..&lastAffected=..` (keys sorted, as Go's url.Values.Encode writes it).
"""

from __future__ import annotations

import logging
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, BinaryIO
from urllib.parse import quote, quote_plus, urljoin

import aiohttp
import orjson

from clair_common.models import ZERO_TIME, Package, Repository, Vulnerability, format_time
from clair_matcher.updaters._conditional import DocumentUpdater
from clair_matcher.updaters._config import (
    UrlConfig,
    read_config,
    setting,
    text,
    texts,
    with_trailing_slash,
)
from clair_matcher.updaters._severity import cvss_base_score, from_label, qualitative
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    Updater,
    UpdaterSetFactory,
)

log = logging.getLogger("clair.matcher.updaters.osv")

DEFAULT_URL = "https://osv-vulnerabilities.storage.googleapis.com/"
ALIAS_URL = "https://osv.dev/vulnerability/"
# Ecosystems with dedicated updaters or no container relevance (Clair's ignore list).
IGNORED = frozenset(
    {
        "almalinux",
        "alpine",
        "android",
        "chainguard",
        "debian",
        "github actions",
        "linux",
        "opensuse",
        "oss-fuzz",
        "red hat",
        "rocky linux",
        "suse",
        "ubuntu",
        "wolfi",
    }
)
# Ecosystems whose records we map; the rest of Clair's set (Maven, npm, ...) is out of scope.
SUPPORTED = frozenset({"pypi", "go"})
REPOSITORY_URIS = {"pypi": "https://pypi.org/", "go": "https://pkg.go.dev/"}
# The range type each ecosystem's versions come in (OSV: Go is SEMVER, PyPI ECOSYSTEM).
RANGE_TYPES = {"go": "SEMVER"}
_CVSS_TYPES = ("CVSS_V4", "CVSS_V3", "CVSS_V2")


def base_ecosystem(name: str) -> str:
    """`Debian:11` → `debian`: versioned ecosystems fold into one, lower-cased."""
    return name.split(":", 1)[0].strip().lower()


# Characters QueryEscape leaves alone: most versions need no escaping at all, and checking
# that is far cheaper than quote_plus (a measurable share of parsing a million records).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _query_escape(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote_plus(text)


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Go's url.Values.Encode: keys sorted, values in insertion order, QueryEscape'd."""
    ordered = sorted(pairs, key=lambda kv: kv[0])
    return "&".join(f"{_query_escape(k)}={_query_escape(v)}" for k, v in ordered)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ecosystem_ranges(events: Sequence[Mapping[str, Any]]) -> list[list[tuple[str, str]]]:
    """Clair's event walk for PyPI/Maven/RubyGems ECOSYSTEM ranges (aliasing kept: an entry
    appended twice stays one list, exactly as Go's shared pointer does)."""
    out: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    seen_introduced = False
    last = len(events) - 1
    for i, event in enumerate(events):
        introduced = str(event.get("introduced") or "")
        if introduced:
            if seen_introduced:
                current = []
            seen_introduced = True
            if introduced != "0":
                current.append(("introduced", introduced))
            if i == last:
                out.append(current)
            continue
        fixed = str(event.get("fixed") or "")
        last_affected = str(event.get("last_affected") or "")
        if fixed:
            current.append(("fixed", fixed))
        elif last_affected:
            current.append(("lastAffected", last_affected))
        out.append(current)
    return out


@dataclass(frozen=True, slots=True)
class OsvConfig:
    """`updaters.config.osv`: `url` (the bucket root holding `ecosystems.txt`) and `allowlist`
    (only these ecosystems, any case)."""

    url: str = setting(text, "")
    allowlist: tuple[str, ...] = setting(texts, ())


@dataclass(frozen=True, slots=True)
class OsvUpdaterConfig(UrlConfig):
    """`updaters.config.osv/<ecosystem>`: `url`, the ecosystem's `all.zip`."""


class OsvUpdater(DocumentUpdater):
    version = "1"
    config_type = OsvUpdaterConfig
    suffix = ".zip"

    def __init__(self, ecosystem: str, url: str) -> None:
        self.ecosystem = ecosystem
        self.url = url
        self.name = f"osv/{ecosystem}"
        self.repository = Repository(name=ecosystem, uri=REPOSITORY_URIS.get(ecosystem, ""))
        self.range_type = RANGE_TYPES.get(ecosystem, "ECOSYSTEM")

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        now = datetime.now(UTC)
        for data, where in _members(fetched, f"{self.name} ({fetched.url})"):
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise FeedError(f"{where}: invalid JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise FeedError(f"{where}: expected a JSON object")
            yield from self._advisory(doc, now, where)

    def _advisory(
        self, doc: Mapping[str, Any], now: datetime, where: object
    ) -> Iterator[Vulnerability]:
        withdrawn = doc.get("withdrawn")
        if withdrawn is not None:
            at = parse_time(withdrawn)
            if at is not None and now > at:
                return
        affected = [a for a in doc.get("affected") or () if isinstance(a, dict)]
        if not affected or _git_only(affected):
            return
        # Positional Vulnerability arguments below (updater, name, description, issued,
        # links, severity, normalized_severity, package, distribution, repository,
        # fixed_in_version): keywords cost a measurable share of a million-record parse.
        updater, repository, range_type = self.name, self.repository, self.range_type
        name = str(doc.get("id") or "")
        description = str(doc.get("summary") or "")
        issued = _issued(doc.get("published"))
        links = _links(doc)
        severity, normalized = _severity(doc, where)
        for entry in affected:
            package = entry.get("package") or {}
            if _base_ecosystem(str(package.get("ecosystem") or "")) != self.ecosystem:
                continue
            pkg = Package(
                "", str(package.get("name") or ""), "", "binary"
            )  # id, name, version, kind
            for rng in entry.get("ranges") or ():
                # One range type per ecosystem; GIT ranges need the sources.
                if not isinstance(rng, dict) or rng.get("type") != range_type:
                    continue
                for fixed_in in _fixed_in_versions(rng.get("events") or ()):
                    yield Vulnerability(
                        "",
                        updater,
                        name,
                        description,
                        issued,
                        links,
                        severity,
                        normalized,
                        pkg,
                        None,
                        repository,
                        fixed_in,
                    )


def _git_only(affected: list[dict[str, Any]]) -> bool:
    """True when every range is a GIT range (or there is none)."""
    for entry in affected:
        for rng in entry.get("ranges") or ():
            if rng.get("type") != "GIT":
                return False
    return True


def _fixed_in_versions(events: Any) -> Sequence[str]:
    """fixed_in_version of each range of an ECOSYSTEM events list."""
    # The common shape, `[{"introduced": a}, {"fixed": b}]` with strings, comes from a cache.
    if type(events) is list and len(events) == 2:
        first, second = events
        if type(first) is dict and type(second) is dict and len(first) == len(second) == 1:
            introduced, fixed = first.get("introduced"), second.get("fixed")
            if type(introduced) is str and type(fixed) is str and introduced and fixed:
                return _simple_range(introduced, fixed)
    pairs = ecosystem_ranges([e for e in events if isinstance(e, dict)])
    return [encode_query(p) if p else "" for p in pairs]


@lru_cache(maxsize=1 << 16)
def _simple_range(introduced: str, fixed: str) -> tuple[str]:
    """What the general walk makes of `[{introduced}, {fixed}]`: one range."""
    if introduced == "0":
        return (encode_query([("fixed", fixed)]),)
    return (encode_query([("introduced", introduced), ("fixed", fixed)]),)


_base_ecosystem = lru_cache(maxsize=256)(base_ecosystem)


def _issued(value: object) -> str:
    return _format_published(value) if isinstance(value, str) else ZERO_TIME


@lru_cache(maxsize=1 << 14)
def _format_published(value: str) -> str:
    return format_time(parse_time(value))


# -- reading all.zip ------------------------------------------------------------------------
# zipfile builds a ZipInfo per member up front: for a million-record feed that is over a second
# and most of the ingest's memory. The central directory is walked here instead, lazily, and
# members are sliced from large sequential reads; anything unusual (encryption, other methods,
# prepended data, a bad CRC) goes through zipfile, for its checks and error messages.


class _Where:
    """The position of a record, formatted only when a message needs it."""

    __slots__ = ("feed", "flags", "index", "name", "offset")

    def __init__(
        self, feed: str, index: int, name: str | bytes, offset: int, flags: int = 0
    ) -> None:
        self.feed, self.index, self.name, self.offset, self.flags = feed, index, name, offset, flags

    def __str__(self) -> str:
        name = self.name
        if isinstance(name, bytes):  # zipfile's rule: UTF-8 when flagged, else cp437
            name = name.decode("utf-8" if self.flags & 0x800 else "cp437", errors="replace")
        return f"{self.feed}: record {self.index} ({name!r} at byte offset {self.offset})"


def _members(fetched: FetchResult, feed: str) -> Iterator[tuple[bytes, _Where]]:
    """Each file member's bytes with its position, in central directory order."""
    with fetched.path.open("rb") as raw:
        directory = _central_directory(raw)
        if directory is None:
            yield from _zipfile_members(fetched, feed)
            return
        window = _Window(raw)
        archive: zipfile.ZipFile | None = None
        for index, (name, flags, method, crc, csize, usize, offset) in enumerate(directory):
            if name.endswith(b"/"):
                continue
            where = _Where(feed, index, name, offset, flags)
            data = _member_fast(window, offset, flags, method, crc, csize, usize)
            if data is None:
                if archive is None:
                    archive = _open_archive(fetched, feed)
                data = _member_slow(archive, archive.infolist()[index], where)
            yield data, where
        if archive is not None:
            archive.close()


def _open_archive(fetched: FetchResult, feed: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fetched.path)
    except (zipfile.BadZipFile, OSError) as exc:
        size = fetched.path.stat().st_size
        raise FeedError(f"{feed}: corrupt zip archive of {size} bytes: {exc}") from None


def _zipfile_members(fetched: FetchResult, feed: str) -> Iterator[tuple[bytes, _Where]]:
    with _open_archive(fetched, feed) as archive:
        for index, info in enumerate(archive.infolist()):
            if not info.is_dir():
                where = _Where(feed, index, info.filename, info.header_offset)
                yield _member_slow(archive, info, where), where


def _member_slow(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: _Where) -> bytes:
    try:
        with archive.open(info) as member:
            return member.read()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise FeedError(f"{where}: unreadable member: {exc}") from None


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4x2H4x3L3H8xL")
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
Entry = tuple[bytes, int, int, int, int, int, int]  # name, flags, method, crc, sizes, offset


def _central_directory(raw: BinaryIO) -> Iterator[Entry] | None:
    """The entries of a plain single-disk archive; None for anything else."""
    end = raw.seek(0, 2)
    tail_start = max(0, end - _EOCD.size - _MAX16)
    raw.seek(tail_start)
    tail = raw.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    _, disk, cd_disk, _, count, size, offset, _ = _EOCD.unpack_from(tail, at)
    eocd = tail_start + at
    if disk or cd_disk:
        return None
    if count == _MAX16 or size == _MAX32 or offset == _MAX32:
        if at < _ZIP64_LOCATOR.size:
            return None
        magic, _, zip64_at, _ = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
        raw.seek(zip64_at)
        record = raw.read(_ZIP64_EOCD.size)
        if magic != b"PK\x06\x07" or len(record) != _ZIP64_EOCD.size:
            return None
        magic, _, _, _, _, _, _, count, size, offset = _ZIP64_EOCD.unpack(record)
        if magic != b"PK\x06\x06":
            return None
        eocd = zip64_at
    if offset + size != eocd:  # data before the archive: zipfile knows how to shift offsets
        return None
    raw.seek(offset)
    directory = raw.read(size)
    if len(directory) != size:
        return None
    return _entries(directory, count, end)


def _entries(directory: bytes, count: int, file_size: int) -> Iterator[Entry]:
    pos = 0
    for index in range(count):
        if pos + _CENTRAL.size > len(directory):
            raise FeedError(f"corrupt zip archive of {file_size} bytes: entry {index} cut short")
        magic, flags, method, crc, csize, usize, nlen, elen, clen, offset = _CENTRAL.unpack_from(
            directory, pos
        )
        if magic != b"PK\x01\x02":
            raise FeedError(f"corrupt zip archive of {file_size} bytes: bad entry {index}")
        name_at = pos + _CENTRAL.size
        name = directory[name_at : name_at + nlen]
        if csize == _MAX32 or usize == _MAX32 or offset == _MAX32:
            extra = directory[name_at + nlen : name_at + nlen + elen]
            usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
        pos = name_at + nlen + elen + clen
        yield name, flags, method, crc, csize, usize, offset


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit values of the zip64 extra field that stand in for saturated ones."""
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, pos)
        if kind == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            if usize == _MAX32:
                usize = next(values, usize)
            if csize == _MAX32:
                csize = next(values, csize)
            if offset == _MAX32:
                offset = next(values, offset)
            break
        pos += 4 + length
    return usize, csize, offset


class _Window:
    """Slices of a file, read sequentially in large chunks (members are stored in order)."""

    CHUNK = 1 << 20

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.start = 0
        self.data = b""

    def read(self, offset: int, size: int) -> bytes:
        at = offset - self.start
        if at < 0 or at + size > len(self.data):
            self.raw.seek(offset)
            self.data = self.raw.read(max(size, self.CHUNK))
            self.start, at = offset, 0
        return self.data[at : at + size]


def _member_fast(
    window: _Window, offset: int, flags: int, method: int, crc: int, csize: int, usize: int
) -> bytes | None:
    """A stored or deflated member; None when anything looks unusual."""
    if flags & 0x1 or method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    header = window.read(offset, _LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        return None
    magic, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if magic != b"PK\x03\x04":
        return None
    payload = window.read(offset + _LOCAL_HEADER.size + name_length + extra_length, csize)
    try:
        data = zlib.decompress(payload, -15) if method == zipfile.ZIP_DEFLATED else payload
    except zlib.error:
        return None
    if len(data) != usize or zlib.crc32(data) != crc:
        return None
    return data


def _links(doc: Mapping[str, Any]) -> str:
    refs = [str(r.get("url") or "") for r in doc.get("references") or () if isinstance(r, dict)]
    aliases = [ALIAS_URL + str(a) for a in doc.get("aliases") or ()]
    return " ".join(refs + aliases)


def _severity(doc: Mapping[str, Any], where: object) -> tuple[str, str]:
    severity, normalized = "", "Unknown"
    for entry in doc.get("severity") or ():
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind not in _CVSS_TYPES:
            continue
        severity = str(entry.get("score") or "")
        label, problem = _cvss_label(str(kind), severity)
        if label is None:
            log.debug("%s: %s", where, problem)
        else:
            normalized = label
    if not severity:
        specific = doc.get("database_specific")
        label = specific.get("severity") if isinstance(specific, dict) else None
        if isinstance(label, str):
            severity, normalized = label, from_label(label)
    return severity, normalized


@lru_cache(maxsize=4096)
def _cvss_label(kind: str, vector: str) -> tuple[str | None, str]:
    """(qualitative severity, "") of a vector, or (None, why not): feeds repeat vectors."""
    try:
        return qualitative(cvss_base_score(kind, vector)), ""
    except ValueError as exc:
        return None, str(exc)


class OsvFactory(UpdaterSetFactory):
    name = "osv"

    def __init__(self) -> None:
        self.root = DEFAULT_URL
        self.allow: frozenset[str] | None = None
        self._etag = ""
        self._current: list[OsvUpdater] = []

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(OsvConfig, config, self.name)
        self.root = with_trailing_slash(settings.url) if settings.url else DEFAULT_URL
        allow = settings.allowlist
        self.allow = frozenset(a.lower() for a in allow) if allow else None

    async def updater_set(self, client: aiohttp.ClientSession) -> Sequence[Updater]:
        url = urljoin(self.root, "ecosystems.txt")
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            async with client.get(url, headers=headers) as resp:
                # Clair runs no osv updater on a 304; reusing the last set keeps them running.
                if resp.status == 304:
                    return list(self._current)
                if resp.status != 200:
                    raise FeedError(f"osv: GET {url}: unexpected status {resp.status}")
                text = await resp.text()
                etag = resp.headers.get("ETag", "")
        except aiohttp.ClientError as exc:
            raise FeedError(f"osv: GET {url}: {exc}") from exc
        found: dict[str, OsvUpdater] = {}
        for line in text.splitlines():
            key = line.strip()
            eco = base_ecosystem(key)
            if not eco or eco in found or eco in IGNORED:
                continue
            if self.allow is not None and eco not in self.allow:
                continue
            if eco not in SUPPORTED:
                log.debug("osv: ecosystem %s is not mapped; skipped", key)
                continue
            found[eco] = OsvUpdater(eco, urljoin(self.root, quote(key) + "/all.zip"))
        self._etag, self._current = etag, list(found.values())
        return list(self._current)
