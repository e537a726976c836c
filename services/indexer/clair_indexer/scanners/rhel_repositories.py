"""`rhel-repository-scanner`: the Red Hat repositories an image was built from, as CPEs.

Red Hat's build systems (OSBS, Konflux) leave a content manifest in the image,
`root/buildinfo/content_manifests/<nvr>.json` (RHCOS: `usr/share/buildinfo/<name>.json`), whose
`content_sets` name the rpm repositories used. Red Hat's repository-to-CPE mapping turns each
repository id into CPEs, and those CPEs are what the RHEL VEX data keys fixes by. Rules from
claircore `rhel/repositoryscanner.go`, `rhel/contentmanifest.go`, `rhel/repo2cpe/mappingfile.go`:
- the first manifest in path order is read (the `root/` directory before `usr/share/`);
  malformed JSON is logged and ignored, a manifest of the wrong shape is an error;
- CPEs of all content sets, deduplicated; unknown content sets are skipped;
- one Repository per CPE: `name` is the CPE exactly as the mapping writes it (URI binding,
  `cpe:/o:redhat:enterprise_linux:8::baseos`), `key` is `rhel-cpe-repository` and `cpe` the
  CPE 2.3 formatted string (what real Clair reports carry); invalid CPEs are skipped.

Not done here: claircore's fallback for images without a content manifest (asking Red Hat's
container catalog API about `root/buildinfo/Dockerfile-*` labels) and its newer DNF-database
path (`from_dnf_hint`). Such images get no CPE repositories.

The mapping comes from `repo2cpe_mapping_file` (read once at start-up), or from
`repo2cpe_mapping_url` (default Red Hat's URL, or `$REPO_TO_CPE_URL` as in Clair), fetched
when a content manifest first needs it and refreshed at most once a day with
If-Modified-Since. With both, the file is used until the URL answers. `scan` runs in a
worker thread, so the (rare, bounded by `timeout`) fetch blocks only that layer's scan.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import posixpath
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from clair_common.config.duration import coerce_duration
from clair_common.models import Repository
from clair_common.tls import client_context
from clair_common.vulnerable.cpe import CPEError, to_formatted_string

from ..fetch import is_private_address
from .base import LayerFiles, Scanner, ScanResult

log = logging.getLogger("clair.indexer.rhel")

REPOSITORY_KEY = "rhel-cpe-repository"
DEFAULT_MAPPING_URL = "https://security.access.redhat.com/data/metrics/repository-to-cpe.json"
MAPPING_URL_ENV = "REPO_TO_CPE_URL"
DEFAULT_TIMEOUT = timedelta(seconds=30)
REFRESH_INTERVAL = 24 * 3600.0  # seconds; Red Hat regenerates the file about daily
# Manifest directories, in the order claircore globs them.
MANIFEST_DIRS = ("root/buildinfo/content_manifests", "usr/share/buildinfo")
_CONFIG_KEYS = frozenset(
    {"repo2cpe_mapping_url", "repo2cpe_mapping_file", "timeout", "disable_api", "api"}
)
# A CPE 2.2 URI whose components hold only characters the URI binding allows unescaped.
_URI_CPE = re.compile(r"cpe:/[aho](?::[A-Za-z0-9._~%-]*){0,6}\Z")

CpeMap = Mapping[str, tuple[str, ...]]


class MappingUnavailable(RuntimeError):
    """No mapping could be loaded yet: the index fails and the next POST tries again."""


def parse_mapping(data: bytes | str) -> dict[str, tuple[str, ...]]:
    """`{"data": {"<repo id>": {"cpes": [...]}}}` → repo id → CPEs; malformed entries skipped."""
    doc = json.loads(data)
    entries = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ValueError('repository-to-cpe mapping: no "data" object')
    out: dict[str, tuple[str, ...]] = {}
    for repo_id, entry in entries.items():
        cpes = entry.get("cpes") if isinstance(entry, dict) else None
        if isinstance(cpes, list):
            out[repo_id] = tuple(c for c in cpes if isinstance(c, str))
    return out


def _host_is_private(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        addresses = [ipaddress.ip_address(host).compressed]
    except ValueError:
        try:
            addresses = [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
        except OSError:
            return False
    return bool(addresses) and all(is_private_address(a) for a in addresses)


class RepositoryCpeMapping:
    """The repository-to-CPE mapping: a local file, a refreshed URL, or both."""

    def __init__(
        self,
        *,
        url: str = "",
        file: str | Path = "",
        timeout: float = DEFAULT_TIMEOUT.total_seconds(),
        airgap: bool = False,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.airgap = airgap
        self.refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._data: dict[str, tuple[str, ...]] | None = None
        self._last_modified = ""
        self._next_fetch = 0.0  # monotonic time of the next allowed fetch
        if file:
            self._data = parse_mapping(Path(file).read_bytes())

    def get(self) -> CpeMap:
        """The current mapping, fetched first if the URL is due; raises MappingUnavailable."""
        if self.url and time.monotonic() >= self._next_fetch:
            with self._lock:
                if time.monotonic() >= self._next_fetch:  # another thread may have just done it
                    self._refresh()
        if self._data is None:
            raise MappingUnavailable(f"repository-to-cpe mapping not available from {self.url!r}")
        return self._data

    def _refresh(self) -> None:
        self._next_fetch = time.monotonic() + self.refresh_interval
        if self.airgap and not _host_is_private(self.url):
            # Clair treats an airgap-refused dial as "nothing found"; a file, if any, still works.
            log.warning("airgap mode: not fetching the repository-to-cpe mapping %s", self.url)
            self._data = self._data if self._data is not None else {}
            return
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        if self._last_modified:
            request.add_header("If-Modified-Since", self._last_modified)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=client_context()
            ) as resp:
                body = resp.read()
                last_modified = resp.headers.get("Last-Modified", "")
            self._data = parse_mapping(body)
            self._last_modified = last_modified
        except urllib.error.HTTPError as err:
            if err.code == 304:
                return
            self._fetch_failed(f"HTTP {err.code}")
        except (OSError, ValueError) as err:
            self._fetch_failed(str(err))

    def _fetch_failed(self, reason: str) -> None:
        if self._data is not None:
            log.warning("refreshing repository-to-cpe mapping %s: %s", self.url, reason)
            return
        self._next_fetch = 0.0  # nothing to serve: let the next scan try again
        raise MappingUnavailable(f"fetching repository-to-cpe mapping {self.url}: {reason}")


def is_manifest_path(path: str) -> bool:
    directory, name = posixpath.split(path)
    return directory in MANIFEST_DIRS and name.endswith(".json")


def _manifest_order(path: str) -> tuple[int, str]:
    return MANIFEST_DIRS.index(posixpath.dirname(path)), path


def content_sets(layer: LayerFiles) -> list[str] | None:
    """The first content manifest's `content_sets`; None when there is no usable manifest."""
    paths = sorted((p for p in layer.files if is_manifest_path(p)), key=_manifest_order)
    if not paths:
        return None
    try:
        doc = json.loads(layer.files[paths[0]])
    except ValueError as err:
        log.warning("could not unmarshal content manifest %s: %s", paths[0], err)
        return None
    if not isinstance(doc, dict):
        raise ValueError(f"content manifest {paths[0]}: not a JSON object")
    sets = doc.get("content_sets")
    if sets is None:
        return []
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise ValueError(f"content manifest {paths[0]}: content_sets is not a list of strings")
    return list(sets)


def cpe_repositories(sets: list[str], mapping: CpeMap) -> list[Repository]:
    """One repository per distinct CPE of the content sets, in first-seen order."""
    seen: set[str] = set()
    out: list[Repository] = []
    for content_set in sets:
        for cpe in mapping.get(content_set, ()):
            if cpe in seen:
                continue
            seen.add(cpe)
            try:
                if not _URI_CPE.match(cpe):
                    raise CPEError(f"invalid CPE {cpe!r}")
                formatted = to_formatted_string(cpe)
            except CPEError:
                log.warning("invalid CPE %r in the repository-to-cpe mapping; skipped", cpe)
                continue
            out.append(Repository(name=cpe, key=REPOSITORY_KEY, cpe=formatted))
    return out


class RhelRepositoryScanner(Scanner):
    name: ClassVar[str] = "rhel-repository-scanner"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "repository"
    ecosystem: ClassVar[str] = "rhel"

    def __init__(self, mapping: RepositoryCpeMapping) -> None:
        self.mapping = mapping

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None = None, *, airgap: bool = False
    ) -> RhelRepositoryScanner:
        """From `indexer.scanner.repo.rhel-repository-scanner` (Clair's keys).

        `disable_api` and `api` are accepted and have no effect: the container-API fallback
        is not implemented. Raises ValueError (bad value) or OSError (unreadable file).
        """
        if config is not None and not isinstance(config, Mapping):
            raise ValueError("rhel-repository-scanner: options must be a mapping")
        cfg = dict(config or {})
        unknown = sorted(set(cfg) - _CONFIG_KEYS)
        if unknown:
            log.warning("rhel-repository-scanner: ignoring unknown keys %s", ", ".join(unknown))
        url, file = cfg.get("repo2cpe_mapping_url") or "", cfg.get("repo2cpe_mapping_file") or ""
        if not isinstance(url, str) or not isinstance(file, str):
            raise ValueError("rhel-repository-scanner: mapping url and file must be strings")
        if not url and not file:
            url = os.environ.get(MAPPING_URL_ENV) or DEFAULT_MAPPING_URL
        timeout = DEFAULT_TIMEOUT
        if cfg.get("timeout") is not None:
            try:
                timeout = coerce_duration(cfg["timeout"])
            except ValueError as err:
                raise ValueError(f"rhel-repository-scanner: timeout: {err}") from None
            if timeout <= timedelta(0):  # Clair: zero means the default
                timeout = DEFAULT_TIMEOUT
        mapping = RepositoryCpeMapping(
            url=url, file=file, timeout=timeout.total_seconds(), airgap=airgap
        )
        return cls(mapping)

    def wants(self, path: str) -> bool:
        return path.endswith(".json") and is_manifest_path(path)

    def scan(self, layer: LayerFiles) -> ScanResult:
        sets = content_sets(layer)
        if not sets:
            return ScanResult()
        return ScanResult(repositories=cpe_repositories(sets, self.mapping.get()))
