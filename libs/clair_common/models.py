"""Wire types shared by the services; their JSON is byte-for-byte Clair's (clair-api.md 1.6).

Plain slotted dataclasses: reports hold thousands of packages, and explicit `to_json`
functions keep the field order and Clair's omitempty rules in one visible place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")

ZERO_TIME = "0001-01-01T00:00:00Z"

SEVERITIES = ("Unknown", "Negligible", "Low", "Medium", "High", "Critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


class ModelError(ValueError):
    """Input that does not decode into a wire type; the message names the field."""


def parse_digest(value: object, where: str = "digest") -> str:
    """Validate a Clair digest (`sha256:<64 hex>` or `sha512:<128 hex>`)."""
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise ModelError(f"{where}: invalid digest {value!r}")
    return value


def is_digest(value: str) -> bool:
    return _DIGEST_RE.match(value) is not None


def format_time(value: datetime | None) -> str:
    """RFC 3339 with Go's zero time for unset values, as Clair's codec writes it."""
    if value is None:
        return ZERO_TIME
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


@dataclass(slots=True)
class Layer:
    hash: str
    uri: str
    headers: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "uri": self.uri, "headers": self.headers}


# RFC 9110 field names are tokens; values must not carry CR, LF, NUL or other controls (a
# header injection through the indexer's request, and a client error, not a server one).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_URI_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")


def _check_headers(headers: dict[str, list[str]], where: str) -> None:
    for name, values in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ModelError(f"{where}: invalid header name {name[:64]!r}")
        for value in values:
            if not _FIELD_VALUE.fullmatch(value):
                raise ModelError(f"{where}.{name}: control character in header value")


@dataclass(slots=True)
class Manifest:
    hash: str
    layers: list[Layer]

    @classmethod
    def from_json(cls, doc: object) -> Manifest:
        if not isinstance(doc, dict):
            raise ModelError("manifest: expected a JSON object")
        digest = parse_digest(doc.get("hash"), "hash")
        raw_layers = doc.get("layers")
        if not isinstance(raw_layers, list) or not raw_layers:
            raise ModelError("layers: a manifest needs at least one layer")
        layers = []
        for i, raw in enumerate(raw_layers):
            if not isinstance(raw, dict):
                raise ModelError(f"layers[{i}]: expected a JSON object")
            uri = raw.get("uri")
            if not isinstance(uri, str) or not uri:
                raise ModelError(f"layers[{i}].uri: missing")
            if _URI_CONTROL.search(uri):
                raise ModelError(f"layers[{i}].uri: whitespace or control character")
            headers = raw.get("headers") or {}
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
                for k, v in headers.items()
            ):
                raise ModelError(f"layers[{i}].headers: expected an object of string lists")
            _check_headers(headers, f"layers[{i}].headers")
            layers.append(Layer(parse_digest(raw.get("hash"), f"layers[{i}].hash"), uri, headers))
        return cls(digest, layers)

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "layers": [layer.to_json() for layer in self.layers]}


@dataclass(slots=True)
class Package:
    id: str = ""
    name: str = ""
    version: str = ""
    kind: str = ""
    source: Package | None = None
    normalized_version: str = ""
    module: str = ""
    arch: str = ""
    cpe: str = ""
    detector: str | None = None
    # Where the package was found; stored per layer, not part of Package's JSON.
    package_db: str = field(default="", compare=False)
    repository_hint: str = field(default="", compare=False)
    filepath: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "version": self.version}
        if self.kind:
            out["kind"] = self.kind
        if self.source is not None:
            out["source"] = self.source.to_json()
        out["normalized_version"] = self.normalized_version
        if self.module:
            out["module"] = self.module
        if self.arch:
            out["arch"] = self.arch
        out["cpe"] = self.cpe
        out["detector"] = self.detector
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Package:
        src = doc.get("source")
        return cls(
            id=str(doc.get("id", "")),
            name=doc.get("name", ""),
            version=doc.get("version", ""),
            kind=doc.get("kind", ""),
            source=cls.from_json(src) if isinstance(src, dict) else None,
            normalized_version=doc.get("normalized_version", ""),
            module=doc.get("module", ""),
            arch=doc.get("arch", ""),
            cpe=doc.get("cpe", ""),
            detector=doc.get("detector"),
        )


# Distribution's members in Clair's JSON order; all but `id` identify a distribution.
DISTRIBUTION_FIELDS = (
    "id",
    "did",
    "name",
    "version",
    "version_code_name",
    "version_id",
    "arch",
    "cpe",
    "pretty_name",
)


@dataclass(slots=True)
class Distribution:
    id: str = ""
    did: str = ""
    name: str = ""
    version: str = ""
    version_code_name: str = ""
    version_id: str = ""
    arch: str = ""
    cpe: str = ""
    pretty_name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in DISTRIBUTION_FIELDS}

    def key(self) -> tuple[str, ...]:
        """Identity without the row id, for dedupe."""
        return tuple(getattr(self, name) for name in DISTRIBUTION_FIELDS[1:])

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Distribution:
        return cls(**{k: str(doc.get(k, "")) for k in DISTRIBUTION_FIELDS})


@dataclass(slots=True)
class Repository:
    id: str = ""
    name: str = ""
    key: str = ""
    uri: str = ""
    cpe: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("id", "name", "key", "uri"):
            value = getattr(self, name)
            if value:
                out[name] = value
        out["cpe"] = self.cpe
        return out

    def key_tuple(self) -> tuple[str, str, str, str]:
        return (self.name, self.key, self.uri, self.cpe)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Repository:
        return cls(**{k: str(doc.get(k, "")) for k in ("id", "name", "key", "uri", "cpe")})


@dataclass(slots=True)
class Environment:
    package_db: str = ""
    introduced_in: str = ""
    distribution_id: str = ""
    repository_ids: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "package_db": self.package_db,
            "introduced_in": self.introduced_in,
            "distribution_id": self.distribution_id,
            "repository_ids": self.repository_ids,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Environment:
        ids = doc.get("repository_ids")
        return cls(
            package_db=doc.get("package_db", ""),
            introduced_in=doc.get("introduced_in", ""),
            distribution_id=str(doc.get("distribution_id", "")),
            repository_ids=[str(i) for i in ids] if ids else None,
        )


class IndexState:
    """Index report states (clair-api.md 5.1)."""

    CHECK_MANIFEST = "CheckManifest"
    FETCH_LAYERS = "FetchLayers"
    SCAN_LAYERS = "ScanLayers"
    COALESCE = "Coalesce"
    INDEX_MANIFEST = "IndexManifest"
    FINISHED = "IndexFinished"
    ERROR = "IndexError"


@dataclass(slots=True)
class IndexReport:
    manifest_hash: str
    state: str = IndexState.CHECK_MANIFEST
    packages: dict[str, Package] = field(default_factory=dict)
    distributions: dict[str, Distribution] = field(default_factory=dict)
    repositories: dict[str, Repository] = field(default_factory=dict)
    environments: dict[str, list[Environment]] = field(default_factory=dict)
    success: bool = False
    err: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_hash": self.manifest_hash,
            "state": self.state,
            "packages": {k: v.to_json() for k, v in self.packages.items()},
            "distributions": {k: v.to_json() for k, v in self.distributions.items()},
            "repository": {k: v.to_json() for k, v in self.repositories.items()},
            "environments": {k: [e.to_json() for e in v] for k, v in self.environments.items()},
            "success": self.success,
            "err": self.err,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> IndexReport:
        return cls(
            manifest_hash=doc["manifest_hash"],
            state=doc.get("state", ""),
            packages={k: Package.from_json(v) for k, v in (doc.get("packages") or {}).items()},
            distributions={
                k: Distribution.from_json(v) for k, v in (doc.get("distributions") or {}).items()
            },
            repositories={
                k: Repository.from_json(v) for k, v in (doc.get("repository") or {}).items()
            },
            environments={
                k: [Environment.from_json(e) for e in v or []]
                for k, v in (doc.get("environments") or {}).items()
            },
            success=bool(doc.get("success", False)),
            err=doc.get("err", ""),
        )


@dataclass(slots=True)
class Vulnerability:
    id: str = ""
    updater: str = ""
    name: str = ""
    description: str = ""
    issued: str = ZERO_TIME
    links: str = ""
    severity: str = ""
    normalized_severity: str = "Unknown"
    package: Package | None = None
    distribution: Distribution | None = None
    repository: Repository | None = None
    fixed_in_version: str = ""
    range: dict[str, str] | None = None
    arch_op: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "updater": self.updater,
            "name": self.name,
            "description": self.description,
            "issued": self.issued,
            "links": self.links,
            "severity": self.severity,
            "normalized_severity": self.normalized_severity,
            "package": self.package.to_json() if self.package is not None else None,
        }
        if self.distribution is not None:
            out["distribution"] = self.distribution.to_json()
        if self.repository is not None:
            out["repository"] = self.repository.to_json()
        out["fixed_in_version"] = self.fixed_in_version
        if self.range:
            out["range"] = self.range
        if self.arch_op:
            out["arch_op"] = self.arch_op
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Vulnerability:
        pkg, dist, repo = doc.get("package"), doc.get("distribution"), doc.get("repository")
        return cls(
            id=str(doc.get("id", "")),
            updater=doc.get("updater", ""),
            name=doc.get("name", ""),
            description=doc.get("description", ""),
            issued=doc.get("issued") or ZERO_TIME,
            links=doc.get("links", ""),
            severity=doc.get("severity", ""),
            normalized_severity=doc.get("normalized_severity") or "Unknown",
            package=Package.from_json(pkg) if isinstance(pkg, dict) else None,
            distribution=Distribution.from_json(dist) if isinstance(dist, dict) else None,
            repository=Repository.from_json(repo) if isinstance(repo, dict) else None,
            fixed_in_version=doc.get("fixed_in_version", ""),
            range=doc.get("range") or None,
            arch_op=doc.get("arch_op", ""),
        )


@dataclass(slots=True)
class VulnerabilityReport:
    index: IndexReport
    vulnerabilities: dict[str, Vulnerability] = field(default_factory=dict)
    package_vulnerabilities: dict[str, list[str]] = field(default_factory=dict)
    enrichments: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        index = self.index.to_json()
        return {
            "manifest_hash": index["manifest_hash"],
            "packages": index["packages"],
            "distributions": index["distributions"],
            "repository": index["repository"],
            "environments": index["environments"],
            "vulnerabilities": {k: v.to_json() for k, v in self.vulnerabilities.items()},
            "package_vulnerabilities": self.package_vulnerabilities,
            "enrichments": self.enrichments,
        }


@dataclass(slots=True)
class UpdateOperation:
    ref: str
    updater: str
    fingerprint: str
    date: datetime
    kind: str = ""

    def to_json(self) -> dict[str, Any]:
        # Clair's store never fills `kind`; clients see "" (clair-api.md 1.6).
        return {
            "ref": self.ref,
            "updater": self.updater,
            "fingerprint": self.fingerprint,
            "date": format_time(self.date),
            "kind": "",
        }


@dataclass(slots=True)
class AffectedManifests:
    vulnerabilities: dict[str, Vulnerability] = field(default_factory=dict)
    vulnerable_manifests: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "vulnerabilities": {k: v.to_json() for k, v in self.vulnerabilities.items()},
            "vulnerable_manifests": self.vulnerable_manifests,
        }


# Go's zero uuid.UUID: what Clair writes for "no such operation".
NIL_UUID = "00000000-0000-0000-0000-000000000000"
_ZERO_UPDATE_OPERATION = {
    "ref": NIL_UUID,
    "updater": "",
    "fingerprint": "",
    "date": ZERO_TIME,
    "kind": "",
}


@dataclass(slots=True)
class UpdateDiff:
    """Vulnerabilities added and removed between two update operations of one updater."""

    cur: UpdateOperation
    prev: UpdateOperation | None = None
    added: list[Vulnerability] = field(default_factory=list)
    removed: list[Vulnerability] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # A missing prev is Go's zero UpdateOperation; empty lists are null, as Clair sends.
        return {
            "prev": self.prev.to_json() if self.prev else dict(_ZERO_UPDATE_OPERATION),
            "cur": self.cur.to_json(),
            "added": [v.to_json() for v in self.added] or None,
            "removed": [v.to_json() for v in self.removed] or None,
        }


@dataclass(slots=True)
class VulnerabilitySummary:
    """What a notification says about its vulnerability (Clair's VulnSummary).

    Clair's real output, not its OpenAPI example: the normalized severity goes under
    `severity` and the repository under `repo` (clair-api.md 1.6).
    """

    name: str = ""
    description: str = ""
    package: Package | None = None
    distribution: Distribution | None = None
    repository: Repository | None = None
    normalized_severity: str = "Unknown"
    fixed_in_version: str = ""
    links: str = ""

    @classmethod
    def of(cls, vuln: Vulnerability) -> VulnerabilitySummary:
        return cls(
            name=vuln.name,
            description=vuln.description,
            package=vuln.package,
            distribution=vuln.distribution,
            repository=vuln.repository,
            normalized_severity=vuln.normalized_severity,
            fixed_in_version=vuln.fixed_in_version,
            links=vuln.links,
        )

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VulnerabilitySummary:
        pkg, dist, repo = doc.get("package"), doc.get("distribution"), doc.get("repo")
        return cls(
            name=doc.get("name", ""),
            description=doc.get("description", ""),
            package=Package.from_json(pkg) if isinstance(pkg, dict) else None,
            distribution=Distribution.from_json(dist) if isinstance(dist, dict) else None,
            repository=Repository.from_json(repo) if isinstance(repo, dict) else None,
            normalized_severity=doc.get("severity") or "Unknown",
            fixed_in_version=doc.get("fixed_in_version", ""),
            links=doc.get("links", ""),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.package is not None:
            out["package"] = self.package.to_json()
        if self.distribution is not None:
            out["distribution"] = self.distribution.to_json()
        if self.repository is not None:
            out["repo"] = self.repository.to_json()
        out["severity"] = self.normalized_severity
        out["fixed_in_version"] = self.fixed_in_version
        out["links"] = self.links
        return out


@dataclass(slots=True)
class Notification:
    """One manifest newly affected ("added") or no longer affected ("removed")."""

    id: str
    manifest: str
    reason: str
    vulnerability: VulnerabilitySummary

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Notification:
        vuln = doc.get("vulnerability")
        return cls(
            id=str(doc.get("id", "")),
            manifest=doc.get("manifest", ""),
            reason=doc.get("reason", ""),
            vulnerability=VulnerabilitySummary.from_json(vuln if isinstance(vuln, dict) else {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "manifest": self.manifest,
            "reason": self.reason,
            "vulnerability": self.vulnerability.to_json(),
        }
