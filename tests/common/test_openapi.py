"""The OpenAPI document over the real indexer+matcher routes, and the wire types against it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from clair_common.config import validate_document
from clair_common.http.openapi import build_document
from clair_common.http.routes import Operation
from clair_common.http.schemas import COMPONENTS
from clair_common.models import (
    AffectedManifests,
    Distribution,
    Environment,
    IndexReport,
    IndexState,
    Layer,
    Manifest,
    Package,
    Repository,
    UpdateDiff,
    UpdateOperation,
    Vulnerability,
    VulnerabilityReport,
)
from clair_common.server import start_services
from tests.fixtures.postgres import create_test_database, drop_test_database

DOCUMENT_URI = "urn:clair-py:openapi"
LAYER = "sha256:" + "a1" * 32
MANIFEST = "sha256:" + "b2" * 32
OTHER_MANIFEST = "sha512:" + "c3" * 64
CLAIRCORE_TESTDATA = Path("other/claircore/datastore/postgres/testdata")


@pytest.fixture(scope="module")
async def operations(pg_server_dsn: str) -> AsyncIterator[list[Operation]]:
    """The operations `clair serve` mounts in combo mode, from the real service starters (the
    notifier included: a delivery mechanism is configured)."""
    dsn = await create_test_database(pg_server_dsn)
    hook = {"target": "http://127.0.0.1:9/", "callback": "http://clair/notifier/api/v1/"}
    config = validate_document({"notifier": {"webhook": hook}}, "test")
    names = ("indexer", "matcher", "notifier")
    services = await start_services(
        "combo", config, dict.fromkeys(names, dsn), dict.fromkeys(names, True)
    )
    try:
        yield [op for service in services for op in service.operations]
    finally:
        for service in reversed(services):
            await service.close()
        await drop_test_database(pg_server_dsn, dsn)


@pytest.fixture(scope="module")
def document(operations: list[Operation]) -> dict[str, Any]:
    return build_document(operations)


def validator(document: dict[str, Any], component: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#/components/schemas/{component}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def check(document: dict[str, Any], component: str, instance: Any) -> None:
    """Validate, failing with every problem listed rather than only the first."""
    errors = sorted(
        validator(document, component).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def rejects(document: dict[str, Any], component: str, instance: Any) -> bool:
    return not validator(document, component).is_valid(instance)


def walk_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_refs(item)


def resolve_pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"non-local $ref {ref}"
    node: Any = document
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref}: {token!r} is not inside an object"
        assert token in node, f"{ref}: no member {token!r}"
        node = node[token]
    return node


# -- realistic wire objects, built with the models ------------------------------------------


def ubuntu_index_report() -> IndexReport:
    source = Package(id="40", name="openssl", version="3.0.2-0ubuntu1.14", kind="source")
    libssl = Package(
        id="41",
        name="libssl3",
        version="3.0.2-0ubuntu1.14",
        kind="binary",
        source=source,
        arch="amd64",
        detector="urn:claircore:detector:dpkg:7:package",
    )
    wheel = Package(
        id="52",
        name="requests",
        version="2.31.0",
        kind="binary",
        normalized_version="pep440:0.2.31.0.0.0.0.0.0.0",
    )
    jammy = Distribution(
        id="3",
        did="ubuntu",
        name="Ubuntu",
        version="22.04.3 LTS (Jammy Jellyfish)",
        version_code_name="jammy",
        version_id="22.04",
        pretty_name="Ubuntu 22.04.3 LTS",
    )
    pypi = Repository(id="7", name="pypi", uri="https://pypi.org/simple")
    return IndexReport(
        manifest_hash=MANIFEST,
        state=IndexState.FINISHED,
        packages={"41": libssl, "52": wheel},
        distributions={"3": jammy},
        repositories={"7": pypi},
        environments={
            "41": [Environment("var/lib/dpkg/status", LAYER, "3", None)],
            "52": [Environment("usr/lib/python3/dist-packages/", LAYER, "", ["7"])],
        },
        success=True,
    )


def vulnerabilities() -> dict[str, Vulnerability]:
    report = ubuntu_index_report()
    ubuntu = Vulnerability(
        id="918273",
        updater="ubuntu/updater/jammy",
        name="CVE-2023-50782",
        description="A flaw was found in the python-cryptography package.",
        issued="2024-02-05T00:00:00Z",
        links="https://ubuntu.com/security/CVE-2023-50782 https://www.cve.org/CVERecord?id=CVE-2023-50782",
        severity="medium",
        normalized_severity="Medium",
        package=Package(name="libssl3", kind="binary"),
        distribution=report.distributions["3"],
        repository=Repository(),
        fixed_in_version="3.0.2-0ubuntu1.15",
        arch_op="equals",
    )
    osv = Vulnerability(
        id="918300",
        updater="osv/pypi",
        name="GHSA-j8r2-6x86-q33q",
        issued="2023-05-22T20:36:00Z",
        severity="CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:N/A:N",
        normalized_severity="Medium",
        package=Package(name="requests", kind="binary"),
        repository=report.repositories["7"],
        fixed_in_version="2.31.0",
        range={"[": "pep440:0.0.0.0.0.0.0.0.0.0", ")": "pep440:0.2.31.0.0.0.0.0.0.0"},
    )
    # A distribution-wide entry has no package at all: Clair writes `"package": null`.
    unpackaged = Vulnerability(
        id="918301",
        updater="rhel-vex",
        name="CVE-2024-0001",
        normalized_severity="Unknown",
        distribution=report.distributions["3"],
    )
    return {v.id: v for v in (ubuntu, osv, unpackaged)}


def update_operation(updater: str, ref: str, day: int) -> UpdateOperation:
    return UpdateOperation(
        ref=ref,
        updater=updater,
        fingerprint='"etag-1234"',
        date=datetime(2026, 11, day, 3, 4, 5, 123456, tzinfo=UTC),
        kind="vulnerability",
    )


# -- the document ----------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate_openapi(document, cls=OpenAPIV31SpecValidator)


def test_document_mounts_every_real_route(document: dict[str, Any]) -> None:
    routes = {(m, p) for p, item in document["paths"].items() for m in item}
    assert routes == {
        ("post", "/indexer/api/v1/index_report"),
        ("delete", "/indexer/api/v1/index_report"),
        ("get", "/indexer/api/v1/index_report/{digest}"),
        ("delete", "/indexer/api/v1/index_report/{digest}"),
        ("get", "/indexer/api/v1/index_state"),
        ("post", "/indexer/api/v1/internal/affected_manifest/"),
        ("get", "/matcher/api/v1/vulnerability_report/{digest}"),
        ("get", "/matcher/api/v1/internal/update_operation"),
        ("delete", "/matcher/api/v1/internal/update_operation/{ref}"),
        ("get", "/matcher/api/v1/internal/update_diff"),
        ("get", "/notifier/api/v1/notification/{id}"),
        ("delete", "/notifier/api/v1/notification/{id}"),
    }


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = set(walk_refs(document))
    assert "#/components/schemas/IndexReport" in refs
    assert "#/components/schemas/NotificationWebhook" in refs
    for ref in refs:
        resolve_pointer(document, ref)


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    items = [*document["paths"].values(), *document["webhooks"].values()]
    ids = [op["operationId"] for item in items for op in item.values()]
    assert len(ids) == len(set(ids)), ids


def test_components_are_valid_2020_12_schemas() -> None:
    for name, schema in COMPONENTS.items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as err:
            pytest.fail(f"{name}: {err}")


def test_document_is_json_serialisable(document: dict[str, Any]) -> None:
    assert orjson.loads(orjson.dumps(document)) == document


# -- model output against the schemas --------------------------------------------------------


def test_index_report_validates(document: dict[str, Any]) -> None:
    check(document, "IndexReport", ubuntu_index_report().to_json())


def test_manifest_and_request_bodies_validate(document: dict[str, Any]) -> None:
    layer = Layer(LAYER, "https://registry.example/v2/ns/app/blobs/" + LAYER, {"X-Token": ["t"]})
    check(document, "Manifest", Manifest(MANIFEST, [layer]).to_json())
    check(document, "BulkDelete", [MANIFEST, OTHER_MANIFEST])
    check(document, "BulkDeleteResult", None)
    vulns = [v.to_json() for v in vulnerabilities().values()]
    check(document, "AffectedManifestsRequest", {"vulnerabilities": vulns})


def test_vulnerability_report_validates(document: dict[str, Any]) -> None:
    vulns = vulnerabilities()
    cvss = [{"918273": [{"version": "3.1", "baseScore": 7.5, "baseSeverity": "HIGH"}]}]
    report = VulnerabilityReport(
        index=ubuntu_index_report(),
        vulnerabilities=vulns,
        package_vulnerabilities={"41": ["918273"], "52": ["918300"]},
        enrichments={"message/vnd.clair.map.vulnerability; enricher=clair.cvss": cvss},
    )
    doc = report.to_json()
    assert doc["vulnerabilities"]["918301"]["package"] is None
    check(document, "VulnerabilityReport", doc)
    check(document, "VulnerabilityReport", VulnerabilityReport(ubuntu_index_report()).to_json())


def test_affected_manifests_validate(document: dict[str, Any]) -> None:
    affected = AffectedManifests(
        vulnerabilities=vulnerabilities(),
        vulnerable_manifests={MANIFEST: ["918273", "918300"], OTHER_MANIFEST: ["918301"]},
    )
    check(document, "AffectedManifests", affected.to_json())
    check(document, "AffectedManifests", AffectedManifests().to_json())


def test_update_operations_and_diffs_validate(document: dict[str, Any]) -> None:
    first = update_operation("ubuntu/updater/jammy", "5b0c2ac4-6ab8-4a9a-9e0f-7b1d0e6b3c11", 1)
    second = update_operation("ubuntu/updater/jammy", "0d8a5c60-3f0e-4d2b-8c8e-2c9f7b5a4e22", 2)
    osv = update_operation("osv/pypi", "9e2f7a10-7c1b-4e7e-b1d4-4a6f0c3e8d33", 2)
    operations = {
        "ubuntu/updater/jammy": [second.to_json(), first.to_json()],
        "osv": [osv.to_json()],
    }
    check(document, "UpdateOperations", operations)
    vulns = list(vulnerabilities().values())
    from_scratch = UpdateDiff(cur=first, added=vulns).to_json()
    assert from_scratch["removed"] is None
    check(document, "UpdateDiff", from_scratch)
    check(document, "UpdateDiff", UpdateDiff(cur=second, prev=first, removed=vulns[:1]).to_json())
    check(document, "UpdateDiff", UpdateDiff(cur=second, prev=first).to_json())


def test_small_bodies_validate(document: dict[str, Any]) -> None:
    check(document, "IndexState", {"state": "399324d1901ec94cc1f0d1c2d6129cff"})
    check(document, "Error", {"code": "bad-request", "message": "malformed path"})


def test_notifier_payloads_validate(document: dict[str, Any]) -> None:
    """Shapes of clair-api.md 1.6a."""
    package = Package(id="41", name="libssl3", version="3.0.2", kind="binary").to_json()
    summary = {
        "name": "CVE-2023-50782",
        "description": "A flaw.",
        "package": package,
        "repo": {"cpe": ""},
        "severity": "High",
        "fixed_in_version": "1.2-3",
        "links": "https://example.com/CVE-2023-50782",
    }
    notification = {
        "id": "6e4b2a0c-2f0c-4c36-9b6a-1d8f3f0e7a11",
        "manifest": MANIFEST,
        "reason": "added",
        "vulnerability": summary,
    }
    check(document, "VulnSummary", summary)
    check(document, "Notification", notification)
    page = {"page": {"size": 2, "next": notification["id"]}, "notifications": [notification]}
    check(document, "NotificationPage", page)
    check(document, "NotificationPage", {"page": {"size": 500}, "notifications": []})
    webhook = {
        "notification_id": notification["id"],
        "callback": "http://clair:6060/notifier/api/v1/notification/" + str(notification["id"]),
    }
    check(document, "NotificationWebhook", webhook)


def test_claircore_index_reports_round_trip_and_validate(
    document: dict[str, Any], shared_data: Path
) -> None:
    paths = sorted((shared_data / CLAIRCORE_TESTDATA).glob("*.index.json"))
    assert len(paths) >= 10
    for path in paths:
        doc = IndexReport.from_json(orjson.loads(path.read_bytes())).to_json()
        try:
            validator(document, "IndexReport").validate(doc)
        except ValidationError as err:
            pytest.fail(f"{path.name}: {list(err.absolute_path)}: {err.message}")


def test_claircore_vulnerability_reports_validate(
    document: dict[str, Any], shared_data: Path
) -> None:
    paths = sorted((shared_data / CLAIRCORE_TESTDATA).glob("*.report.json"))
    assert paths
    for path in paths:
        raw = orjson.loads(path.read_bytes())
        report = VulnerabilityReport(
            index=IndexReport.from_json(raw),
            vulnerabilities={
                k: Vulnerability.from_json(v) for k, v in (raw["vulnerabilities"] or {}).items()
            },
            package_vulnerabilities=raw["package_vulnerabilities"] or {},
            enrichments=raw["enrichments"] or {},
        )
        try:
            validator(document, "VulnerabilityReport").validate(report.to_json())
        except ValidationError as err:
            pytest.fail(f"{path.name}: {list(err.absolute_path)}: {err.message}")


# -- the schemas are strict enough to catch drift --------------------------------------------


def test_schemas_reject_drifted_shapes(document: dict[str, Any]) -> None:
    good = ubuntu_index_report().to_json()
    assert not rejects(document, "IndexReport", good)

    plural = copy.deepcopy(good)
    plural["repositories"] = plural.pop("repository")
    assert rejects(document, "IndexReport", plural)

    no_detector = copy.deepcopy(good)
    del no_detector["packages"]["41"]["detector"]
    assert rejects(document, "IndexReport", no_detector)

    upper_kind = copy.deepcopy(good)
    upper_kind["packages"]["41"]["kind"] = "BINARY"
    assert rejects(document, "IndexReport", upper_kind)

    bad_digest = copy.deepcopy(good)
    bad_digest["manifest_hash"] = "sha256:abc"
    assert rejects(document, "IndexReport", bad_digest)

    op = update_operation("u", "5b0c2ac4-6ab8-4a9a-9e0f-7b1d0e6b3c11", 1).to_json()
    assert rejects(document, "UpdateOperation", {**op, "kind": "bogus"})
    assert rejects(document, "UpdateOperation", {**op, "ref": "not-a-uuid"})
    assert rejects(document, "UpdateOperation", {**op, "date": "2026-13-01"})
    assert rejects(document, "UpdateDiff", {"prev": op, "cur": op, "added": []})
    assert rejects(document, "Vulnerability", {**vulnerabilities()["918273"].to_json(), "dist": {}})
    assert rejects(document, "Error", {"message": "no code"})
