"""JSON Schemas (draft 2020-12) of the wire types, as components of our OpenAPI document.

They describe what `clair_common.models` emits, which is what Clair really sends (clair-api.md
1.6), not Clair's own schema files where the two differ: the `repository` key of reports is
singular, `detector`, `repository_ids`, a vulnerability's `package` and a diff's `added`/`removed`
may be null, `Package.kind` is lower case and `UpdateOperation.kind` is "". Types we emit forbid
unknown members so a renamed field fails the schema tests; request-only types (Manifest, Layer)
stay open because the server ignores members it does not know.
"""

from __future__ import annotations

from typing import Any

from clair_common.models import DISTRIBUTION_FIELDS

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_STRING_LIST: Schema = {"type": "array", "items": _STRING}


def ref(name: str) -> Schema:
    """A reference to another component of this document."""
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(name: str) -> Schema:
    return {"anyOf": [ref(name), {"type": "null"}]}


def _map_of(schema: Schema) -> Schema:
    return {"type": "object", "additionalProperties": schema}


def _record(
    description: str,
    required: dict[str, Schema],
    optional: dict[str, Schema] | None = None,
    *,
    closed: bool = True,
) -> Schema:
    """An object type: `required` members always present, `optional` ones omitted when empty."""
    schema: Schema = {
        "type": "object",
        "description": description,
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


_UUID: Schema = {"type": "string", "format": "uuid"}
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_DATE_TIME: Schema = {"type": "string", "format": "date-time"}

_PACKAGES = _map_of(ref("Package"))
_DISTRIBUTIONS = _map_of(ref("Distribution"))
_REPOSITORIES = _map_of(ref("Repository"))
_ENVIRONMENTS = _map_of({"type": "array", "items": ref("Environment")})

_NORMALIZED_VERSION: Schema = {
    "type": "string",
    "description": 'Either "" or `<kind>:<ten dot-separated integers>`.',
    "pattern": "^(|[a-z0-9]+:-?\\d+(\\.-?\\d+){9})$",
}
_VULN_STRINGS = ("id", "updater", "name", "description", "links", "severity", "fixed_in_version")
_PACKAGE_STRINGS = ("id", "name", "version", "kind", "module", "arch", "cpe", "normalized_version")


def _loose_object(strings: tuple[str, ...], **more: Schema) -> Schema:
    """An optional nested object of a request: its known members are strings when present
    (a `cpe` a valid CPE, since answers echo it)."""
    properties = {name: ref("CPE") if name == "cpe" else _STRING for name in strings}
    return {"type": ["object", "null"], "properties": {**properties, **more}}


COMPONENTS: dict[str, Schema] = {
    "Digest": {
        "type": "string",
        "description": "A content digest; only sha256 and sha512 are accepted.",
        "pattern": "^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$",
    },
    "CPE": {
        "type": "string",
        "description": 'A CPE 2.3 formatted string (2.2 URIs are normalized), or "" when unknown.',
        "pattern": "^(|cpe:2\\.3:.+|cpe:/.+)$",
    },
    "Layer": _record(
        "Where to fetch one layer blob, and the HTTP headers that fetch needs.",
        {"hash": ref("Digest"), "uri": {"type": "string", "format": "uri"}},
        {
            "headers": _map_of(_STRING_LIST),
            "media_type": {"type": "string", "description": "Accepted and ignored."},
        },
        closed=False,
    ),
    "Manifest": _record(
        "An image manifest to index: its digest and layers, base layer first.",
        {"hash": ref("Digest"), "layers": {"type": "array", "minItems": 1, "items": ref("Layer")}},
        closed=False,
    ),
    "Package": _record(
        "A piece of installed software, or the source package it was built from.",
        {
            "id": _STRING,
            "name": _STRING,
            "version": _STRING,
            "normalized_version": _NORMALIZED_VERSION,
            "cpe": ref("CPE"),
            "detector": {
                "type": ["string", "null"],
                "description": "`urn:claircore:detector:<name>:<version>:<kind>`, if known.",
            },
        },
        {
            "kind": {"enum": ["binary", "source", "layer", "ancestry"]},
            "source": ref("Package"),
            "module": _STRING,
            "arch": _STRING,
        },
    ),
    "Distribution": _record(
        "The operating system a package belongs to, as os-release describes it.",
        {name: ref("CPE") if name == "cpe" else _STRING for name in DISTRIBUTION_FIELDS},
    ),
    "Repository": _record(
        "A package repository; members other than `cpe` are omitted when empty.",
        {"cpe": ref("CPE")},
        {"id": _STRING, "name": _STRING, "key": _STRING, "uri": _STRING},
    ),
    "Environment": _record(
        "Where and in which layer a package was found.",
        {
            "package_db": _STRING,
            "introduced_in": ref("Digest"),
            "distribution_id": _STRING,
            "repository_ids": {"type": ["array", "null"], "items": _STRING},
        },
    ),
    "IndexState": _record(
        "An opaque token naming the indexer's configuration; it changes with the scanners.",
        {"state": _STRING},
    ),
    "IndexReport": _record(
        "What indexing found in a manifest. Map keys are document-local ids.",
        {
            "manifest_hash": ref("Digest"),
            "state": {
                "enum": [
                    "CheckManifest",
                    "FetchLayers",
                    "ScanLayers",
                    "Coalesce",
                    "IndexManifest",
                    "IndexFinished",
                    "IndexError",
                ]
            },
            "packages": _PACKAGES,
            "distributions": _DISTRIBUTIONS,
            "repository": _REPOSITORIES,
            "environments": _ENVIRONMENTS,
            "success": {"type": "boolean"},
            "err": _STRING,
        },
    ),
    "BulkDelete": {
        "type": "array",
        "description": "Digests of the manifests to delete.",
        "items": ref("Digest"),
    },
    "BulkDeleteResult": {
        "type": ["array", "null"],
        "description": "Digests actually deleted; null when none was.",
        "items": ref("Digest"),
    },
    "NormalizedSeverity": {
        "enum": ["Unknown", "Negligible", "Low", "Medium", "High", "Critical"],
    },
    "Range": {
        "type": "object",
        "description": "Affected versions: `[` lower bound inclusive, `)` upper bound exclusive.",
        "properties": {"[": _STRING, ")": _STRING},
        "minProperties": 1,
        "additionalProperties": False,
    },
    "Vulnerability": _record(
        "A flaw affecting a package, distribution or repository, as an updater recorded it.",
        {
            "id": _STRING,
            "updater": _STRING,
            "name": _STRING,
            "description": _STRING,
            "issued": {**_DATE_TIME, "description": "0001-01-01T00:00:00Z when unknown."},
            "links": {"type": "string", "description": "Space-separated URLs."},
            "severity": {"type": "string", "description": "The vendor's own severity."},
            "normalized_severity": ref("NormalizedSeverity"),
            "package": _nullable("Package"),
            "fixed_in_version": _STRING,
        },
        {
            "distribution": ref("Distribution"),
            "repository": ref("Repository"),
            "range": ref("Range"),
            "arch_op": {"enum": ["equals", "not equals", "pattern match"]},
        },
    ),
    "VulnerabilityReport": _record(
        "An index report's contents plus the vulnerabilities affecting each package.",
        {
            "manifest_hash": ref("Digest"),
            "packages": _PACKAGES,
            "distributions": _DISTRIBUTIONS,
            "repository": _REPOSITORIES,
            "environments": _ENVIRONMENTS,
            "vulnerabilities": _map_of(ref("Vulnerability")),
            "package_vulnerabilities": _map_of(_STRING_LIST),
            "enrichments": {
                **_map_of({"type": "array"}),
                "description": "Enricher output by media type; {} when there is none.",
            },
        },
    ),
    "PackageQuery": {
        **_loose_object(
            _PACKAGE_STRINGS,
            source=ref("PackageQuery"),
            kind={"enum": ["", "binary", "source", "layer", "ancestry"]},
            normalized_version=_NORMALIZED_VERSION,
        ),
        "description": "A package inside a VulnerabilityQuery.",
    },
    "VulnerabilityQuery": {
        "type": "object",
        "description": (
            "A vulnerability as a client sends it: members may be missing (Go's zero values) "
            "and unknown ones are ignored, but present ones must have the right type."
        ),
        "properties": {
            **dict.fromkeys(_VULN_STRINGS, _STRING),
            "issued": {"anyOf": [{"type": "null"}, {**_DATE_TIME, "pattern": _RFC3339}]},
            "normalized_severity": {"anyOf": [ref("NormalizedSeverity"), {"const": ""}]},
            "package": ref("PackageQuery"),
            "distribution": _loose_object(DISTRIBUTION_FIELDS),
            "repository": _loose_object(("id", "name", "key", "uri", "cpe")),
            "range": {"anyOf": [ref("Range"), {"type": "null"}]},
            "arch_op": {"enum": ["", "equals", "not equals", "pattern match"]},
        },
    },
    "AffectedManifestsRequest": {
        "description": (
            "Vulnerabilities whose affected manifests are wanted: the object Clair's code "
            "reads, or the bare array Clair's own OpenAPI document shows."
        ),
        "anyOf": [
            {
                "type": "object",
                "required": ["vulnerabilities"],
                "properties": {
                    "vulnerabilities": {"type": "array", "items": ref("VulnerabilityQuery")}
                },
            },
            {"type": "array", "items": ref("VulnerabilityQuery")},
        ],
    },
    "AffectedManifests": _record(
        "Manifests affected by some vulnerabilities; id lists are most severe first.",
        {
            "vulnerabilities": _map_of(ref("Vulnerability")),
            "vulnerable_manifests": _map_of(_STRING_LIST),
        },
    ),
    "UpdateOperation": _record(
        "One run of an updater that changed the vulnerability or enrichment data.",
        {
            "ref": _UUID,
            "updater": _STRING,
            "fingerprint": _STRING,
            "date": _DATE_TIME,
            "kind": {
                "enum": ["", "vulnerability", "enrichment"],
                "description": 'Always "" from the store, as in Clair.',
            },
        },
    ),
    "UpdateOperations": {
        **_map_of({"type": "array", "items": ref("UpdateOperation")}),
        "description": "Update operations per updater, newest first.",
    },
    "UpdateDiff": _record(
        "Vulnerabilities added and removed between two update operations of one updater.",
        {
            "prev": {
                **ref("UpdateOperation"),
                "description": "The all-zero operation when diffing from the beginning.",
            },
            "cur": ref("UpdateOperation"),
            "added": {"type": ["array", "null"], "items": ref("Vulnerability")},
            "removed": {"type": ["array", "null"], "items": ref("Vulnerability")},
        },
    ),
    "VulnSummary": _record(
        "The vulnerability a notification is about; `severity` is the normalized severity.",
        {
            "name": _STRING,
            "description": _STRING,
            "severity": ref("NormalizedSeverity"),
            "fixed_in_version": _STRING,
            "links": _STRING,
        },
        {
            "package": ref("Package"),
            "distribution": ref("Distribution"),
            "repo": ref("Repository"),
        },
    ),
    "Notification": _record(
        "A change in whether a manifest is affected by a vulnerability.",
        {
            "id": _UUID,
            "manifest": ref("Digest"),
            "reason": {"enum": ["added", "removed"]},
            "vulnerability": ref("VulnSummary"),
        },
    ),
    "NotificationPage": _record(
        "One page of a notification set; `page.next` is absent on the last page.",
        {
            "page": _record(
                "The requested page size and where the next page starts.",
                {"size": {"type": "integer", "minimum": 0}},
                {"next": _UUID},
            ),
            "notifications": {"type": "array", "items": ref("Notification")},
        },
    ),
    "NotificationWebhook": _record(
        "The webhook body announcing a new notification set.",
        {"notification_id": _UUID, "callback": {"type": "string", "format": "uri"}},
    ),
    "Error": _record(
        "Clair's error body.",
        {
            "code": {
                "enum": [
                    "bad-request",
                    "not-found",
                    "method-not-allowed",
                    "too-many-requests",
                    "internal-error",
                    "gone",
                ]
            },
            "message": _STRING,
        },
    ),
}

__all__ = ["COMPONENTS", "Schema", "ref"]
