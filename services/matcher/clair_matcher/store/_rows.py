"""The rows of `vuln` and `enrichment`: records to rows on the way in, rows to records out.

A vulnerability's row carries a content hash of every identity field (clair-api.md 4.2), so a
re-run stores only what changed; see `_ingest` for how rows are stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from clair_common.models import (
    ZERO_TIME,
    Distribution,
    Package,
    Repository,
    Vulnerability,
    format_time,
)

# -- reading: the columns reports and diffs read, by position -------------------------------
VULN_COLUMNS = (
    "v.id, v.updater, v.name, v.description, v.issued, v.links, v.severity,"
    " v.normalized_severity, v.package_name, v.package_version, v.package_module,"
    " v.package_arch, v.package_kind, v.dist_id, v.dist_name, v.dist_version,"
    " v.dist_version_code_name, v.dist_version_id, v.dist_arch, v.dist_cpe, v.dist_pretty_name,"
    " v.repo_name, v.repo_key, v.repo_uri, v.fixed_in_version, v.arch_operation,"
    " v.version_kind, v.vulnerable_range"
)

_VULN_WIDTH = VULN_COLUMNS.count(",") + 1


def vuln_from_row(r: asyncpg.Record) -> Vulnerability:
    """A Vulnerability from a row whose first columns are VULN_COLUMNS (read by position:
    a report builds hundreds of these)."""
    (
        vuln_id, updater, name, description, issued, links, severity, normalized_severity,
        package_name, package_version, package_module, package_arch, package_kind,
        dist_id, dist_name, dist_version, dist_version_code_name, dist_version_id, dist_arch,
        dist_cpe, dist_pretty_name, repo_name, repo_key, repo_uri, fixed_in_version,
        arch_operation, _version_kind, vulnerable_range,
    ) = r[:_VULN_WIDTH]  # fmt: skip
    has_dist = (
        dist_id or dist_name or dist_version or dist_version_id or dist_pretty_name or dist_cpe
    )
    return Vulnerability(
        id=str(vuln_id),
        updater=updater,
        name=name,
        description=description,
        issued=format_time(issued),
        links=links,
        severity=severity,
        normalized_severity=normalized_severity,
        package=Package(
            name=package_name,
            version=package_version,
            module=package_module,
            arch=package_arch,
            kind=package_kind,
        ),
        distribution=Distribution(
            did=dist_id,
            name=dist_name,
            version=dist_version,
            version_code_name=dist_version_code_name,
            version_id=dist_version_id,
            arch=dist_arch,
            cpe=dist_cpe,
            pretty_name=dist_pretty_name,
        )
        if has_dist
        else None,
        repository=Repository(name=repo_name, key=repo_key, uri=repo_uri)
        if repo_name or repo_key or repo_uri
        else None,
        fixed_in_version=fixed_in_version,
        range=vulnerable_range,
        arch_op=arch_operation,
    )


# -- writing: the rows an update stores -----------------------------------------------------
# Content columns of `vuln` (all but id and updater), in row order after the hash.
STAGE_COLUMNS = (
    "hash",
    "name",
    "description",
    "issued",
    "links",
    "severity",
    "normalized_severity",
    "package_name",
    "package_version",
    "package_module",
    "package_arch",
    "package_kind",
    "dist_id",
    "dist_name",
    "dist_version",
    "dist_version_code_name",
    "dist_version_id",
    "dist_arch",
    "dist_cpe",
    "dist_pretty_name",
    "repo_name",
    "repo_key",
    "repo_uri",
    "fixed_in_version",
    "arch_operation",
    "version_kind",
    "vulnerable_range",
)
# A row is (updater, *STAGE_COLUMNS): a tuple of atoms, which the cyclic garbage collector
# stops tracking (lists of a million rows in flight made it a third of the parse cost).
Row = tuple[Any, ...]
ROW_COLUMNS = ("updater", *STAGE_COLUMNS)


@lru_cache(maxsize=4096)
def _timestamp(text: str) -> datetime | None:
    if not text or text == ZERO_TIME:
        return None
    return datetime.fromisoformat(text)


def _range_json(value: dict[str, str] | None) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value else ""


_NO_DIST = ("",) * 8
_NO_REPO = ("",) * 3


def vuln_row(v: Vulnerability, updater: str) -> Row | None:
    """The row of one record (see ROW_COLUMNS); None when it names no package."""
    pkg = v.package
    if pkg is None or not pkg.name:
        return None
    d, r = v.distribution, v.repository
    dist = (
        _NO_DIST
        if d is None
        else (
            d.did,
            d.name,
            d.version,
            d.version_code_name,
            d.version_id,
            d.arch,
            d.cpe,
            d.pretty_name,
        )
    )
    repo = _NO_REPO if r is None else (r.name, r.key, r.uri)
    # Every identity field (clair-api.md 4.2), plus the updater so that two feeds never
    # share a row; NUL-separated so that adjacent fields cannot run together.
    identity = (
        updater,
        v.name,
        v.description,
        v.issued,
        v.links,
        v.severity,
        v.normalized_severity,
        pkg.name,
        pkg.version,
        pkg.module,
        pkg.arch,
        pkg.kind,
        *dist,
        *repo,
        v.fixed_in_version,
        v.arch_op,
        "",
        _range_json(v.range),
    )
    digest = hashlib.blake2b("\0".join(identity).encode(), digest_size=16).digest()
    return (
        updater,
        digest,
        v.name,
        v.description,
        _timestamp(v.issued),
        *identity[4:-1],
        v.range or None,
    )


def enrichment_row(tags: Sequence[str], data: Any, updater: str) -> tuple[bytes, list[str], Any]:
    """The staged row of one record, content hash first (updater, tags and canonical JSON)."""
    tag_list = [str(t) for t in tags]
    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(
        b"\0".join([updater.encode(), "\x1f".join(tag_list).encode(), body]), digest_size=16
    ).digest()
    return digest, tag_list, data
