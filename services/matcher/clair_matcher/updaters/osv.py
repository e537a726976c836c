"""OSV (claircore `updater/osv/osv.go`): `ecosystems.txt`, then one `<Ecosystem>/all.zip` each.

Only PyPI is mapped (the other language matchers are out of scope). Per advisory: skipped when
withdrawn, without affected entries, or with GIT ranges only; name = OSV id, description =
summary, issued = published, links = references then `https://osv.dev/vulnerability/<alias>`;
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, BinaryIO
from urllib.parse import quote, quote_plus, urljoin

import aiohttp
import orjson

from clair_common.models import ZERO_TIME, Package, Repository, Vulnerability, format_time
from clair_matcher.updaters.base import (
    FeedError,
    FetchResult,
    UnchangedType,
    Updater,
    UpdaterSetFactory,
    conditional_download,
    config_str,
    config_str_list,
    with_trailing_slash,
)
from clair_matcher.updaters.severity import cvss_base_score, from_label, qualitative

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
# Ecosystems whose records we map; the rest of Clair's set (Go, Maven, npm, ...) is out of scope.
SUPPORTED = frozenset({"pypi"})
REPOSITORY_URIS = {"pypi": "https://pypi.org/"}
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


class OsvUpdater(Updater):
    version = "1"

    def __init__(self, ecosystem: str, url: str) -> None:
        self.ecosystem = ecosystem
        self.url = url
        self.name = f"osv/{ecosystem}"
        self.repository = Repository(name=ecosystem, uri=REPOSITORY_URIS.get(ecosystem, ""))

    def configure(self, config: Mapping[str, Any]) -> None:
        url = config_str(config, "url", self.name)
        if url:
            self.url = url

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        return await conditional_download(
            client, self.url, prev_fingerprint, feed=self.name, suffix=".zip"
        )

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        feed = f"{self.name} ({fetched.url})"
        try:
            archive = zipfile.ZipFile(fetched.path)
        except (zipfile.BadZipFile, OSError) as exc:
            size = fetched.path.stat().st_size
            raise FeedError(f"{feed}: corrupt zip archive of {size} bytes: {exc}") from None
        now = datetime.now(UTC)
        with archive, fetched.path.open("rb") as raw:
            for index, info in enumerate(archive.infolist()):
                if info.is_dir():
                    continue
                data = _member_fast(raw, info)
                if data is None:  # anything unusual: zipfile's checks and error messages
                    try:
                        with archive.open(info) as member:
                            data = member.read()
                    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                        where = _where(feed, index, info)
                        raise FeedError(f"{where}: unreadable member: {exc}") from None
                try:
                    doc = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise FeedError(f"{_where(feed, index, info)}: invalid JSON: {exc}") from None
                if not isinstance(doc, dict):
                    raise FeedError(f"{_where(feed, index, info)}: expected a JSON object")
                yield from self._advisory(doc, now, _LazyWhere(feed, index, info))

    def _advisory(
        self, doc: Mapping[str, Any], now: datetime, where: object
    ) -> Iterator[Vulnerability]:
        withdrawn = doc.get("withdrawn")
        if withdrawn is not None:
            at = parse_time(withdrawn)
            if at is not None and now > at:
                return
        affected = [a for a in doc.get("affected") or () if isinstance(a, dict)]
        if not affected or all(
            r.get("type") == "GIT" for a in affected for r in a.get("ranges") or ()
        ):
            return
        # Positional Vulnerability arguments below (updater, name, description, issued,
        # links, severity, normalized_severity, package, distribution, repository,
        # fixed_in_version): keywords cost a measurable share of a million-record parse.
        updater, repository = self.name, self.repository
        name = str(doc.get("id") or "")
        description = str(doc.get("summary") or "")
        issued = _issued(doc.get("published"))
        links = _links(doc)
        severity, normalized = _severity(doc, where)
        for entry in affected:
            package = entry.get("package") or {}
            if _base_ecosystem(str(package.get("ecosystem") or "")) != self.ecosystem:
                continue
            pkg = Package(name=str(package.get("name") or ""), kind="binary")
            for rng in entry.get("ranges") or ():
                # SEMVER ranges do not occur for PyPI; GIT ranges need the sources.
                if not isinstance(rng, dict) or rng.get("type") != "ECOSYSTEM":
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


def _fixed_in_versions(events: Iterable[Any]) -> list[str]:
    """fixed_in_version of each range of an ECOSYSTEM events list."""
    key = _simple_range_key(events)
    if key is not None:
        return [_encode_simple(*key)]
    pairs = ecosystem_ranges([e for e in events if isinstance(e, dict)])
    return [encode_query(p) if p else "" for p in pairs]


def _simple_range_key(events: Iterable[Any]) -> tuple[str, str] | None:
    """(introduced, fixed) of the common shape `[{introduced}, {fixed}]`, both non-empty
    strings; None for anything else (the general walk handles it)."""
    if not isinstance(events, list) or len(events) != 2:
        return None
    first, second = events
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return None
    if len(first) != 1 or len(second) != 1:
        return None
    introduced, fixed = first.get("introduced"), second.get("fixed")
    if type(introduced) is not str or type(fixed) is not str or not introduced or not fixed:
        return None
    return introduced, fixed


@lru_cache(maxsize=1 << 16)
def _encode_simple(introduced: str, fixed: str) -> str:
    """What the general walk gives `[{introduced}, {fixed}]`: one range."""
    pairs = (
        [("fixed", fixed)] if introduced == "0" else [("introduced", introduced), ("fixed", fixed)]
    )
    return encode_query(pairs)


_base_ecosystem = lru_cache(maxsize=256)(base_ecosystem)


def _issued(value: object) -> str:
    return _format_published(value) if isinstance(value, str) else ZERO_TIME


@lru_cache(maxsize=1 << 14)
def _format_published(value: str) -> str:
    return format_time(parse_time(value))


def _where(feed: str, index: int, info: zipfile.ZipInfo) -> str:
    return f"{feed}: record {index} ({info.filename!r} at byte offset {info.header_offset})"


class _LazyWhere:
    """The position of a record, formatted only when a message needs it."""

    __slots__ = ("feed", "index", "info")

    def __init__(self, feed: str, index: int, info: zipfile.ZipInfo) -> None:
        self.feed, self.index, self.info = feed, index, info

    def __str__(self) -> str:
        return _where(self.feed, self.index, self.info)


_LOCAL_HEADER = struct.Struct("<4s22xHH")


def _member_fast(raw: BinaryIO, info: zipfile.ZipInfo) -> bytes | None:
    """A stored or deflated member read straight from its offsets (zipfile's per-member
    set-up costs as much as parsing the advisory); None when anything looks unusual."""
    if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        return None
    magic, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if magic != b"PK\x03\x04":
        return None
    raw.seek(name_length + extra_length, 1)
    payload = raw.read(info.compress_size)
    try:
        data = (
            zlib.decompress(payload, -15) if info.compress_type == zipfile.ZIP_DEFLATED else payload
        )
    except zlib.error:
        return None
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
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
        url = config_str(config, "url", self.name)
        self.root = with_trailing_slash(url) if url else DEFAULT_URL
        allow = config_str_list(config, "allowlist", self.name)
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
