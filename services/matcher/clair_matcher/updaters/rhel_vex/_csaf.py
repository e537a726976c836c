"""The parts of a CSAF 2.0 document (and of package URLs) the Red Hat VEX updater reads.

A document is indexed once: products by id (from the branch tree and any
`full_product_name`), `default_component_of` relationships by the id they define, and the
per-product scores, threats and remediations of each vulnerability. Lookups then cost a dict
probe each, which matters: a single Red Hat document lists thousands of product ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

RELATIONSHIP = "default_component_of"
# Relationships nest (package → module → repository); deeper chains are not followed.
MAX_DEPTH = 5


class CsafError(ValueError):
    """A document that does not have CSAF's shape where the updater needs it."""


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CsafError(f"{where}: expected an object, found {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CsafError(f"{where}: expected an array, found {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CsafError(f"{where}: expected a string, found {type(value).__name__}")
    return value


@dataclass(slots=True)
class Vulnerability:
    """One entry of `vulnerabilities`, with its per-product data indexed."""

    cve: str
    release_date: str
    description: str
    links: list[str]
    product_status: dict[str, list[str]]
    # product id → first CVSS block of a `scores` entry naming it
    scores: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # product id → `details` of the first `impact` threat naming it
    impacts: dict[str, str] = field(default_factory=dict)
    # product id → URL of the first `vendor_fix` remediation naming it
    fixes: dict[str, str] = field(default_factory=dict)


class Document:
    """A parsed CSAF document (the JSON object), indexed for product lookups."""

    def __init__(self, doc: Any) -> None:
        root = _obj(doc, "document root")
        meta = _obj(root.get("document"), "document")
        tracking = _obj(meta.get("tracking"), "document.tracking")
        self.tracking_id = _str(tracking.get("id"), "document.tracking.id")
        self.status = _str(tracking.get("status"), "document.tracking.status")
        self.self_link = ""
        for i, ref in enumerate(_list(meta.get("references"), "document.references")):
            ref = _obj(ref, f"document.references[{i}]")
            if ref.get("category") == "self":
                self.self_link = _str(ref.get("url"), f"document.references[{i}].url")
        self.products: dict[str, Mapping[str, str]] = {}
        self.relationships: dict[str, tuple[str, str]] = {}
        tree = _obj(root.get("product_tree"), "product_tree")
        self._index_branches(tree, "product_tree")
        self._index_product(tree.get("full_product_names"), "product_tree.full_product_names")
        for i, rel in enumerate(_list(tree.get("relationships"), "product_tree.relationships")):
            where = f"product_tree.relationships[{i}]"
            rel = _obj(rel, where)
            if rel.get("category") != RELATIONSHIP:
                continue
            full = _obj(rel.get("full_product_name"), f"{where}.full_product_name")
            pid = _str(full.get("product_id"), f"{where}.full_product_name.product_id")
            self.relationships.setdefault(
                pid,
                (
                    _str(rel.get("product_reference"), f"{where}.product_reference"),
                    _str(
                        rel.get("relates_to_product_reference"),
                        f"{where}.relates_to_product_reference",
                    ),
                ),
            )
        self.vulnerabilities = [
            _vulnerability(v, f"vulnerabilities[{i}]")
            for i, v in enumerate(_list(root.get("vulnerabilities"), "vulnerabilities"))
        ]

    def _index_branches(self, node: Mapping[str, Any], where: str) -> None:
        # An explicit stack: branch trees are only a few levels deep, but need not be.
        stack = [(node, where)]
        while stack:
            current, at = stack.pop()
            self._index_product(current.get("product"), f"{at}.product")
            branches = _list(current.get("branches"), f"{at}.branches")
            for i, branch in reversed(list(enumerate(branches))):
                stack.append((_obj(branch, f"{at}.branches[{i}]"), f"{at}.branches[{i}]"))

    def _index_product(self, value: Any, where: str) -> None:
        for i, product in enumerate(value if isinstance(value, list) else [value]):
            if product is None:
                continue
            product = _obj(product, f"{where}[{i}]" if isinstance(value, list) else where)
            pid = _str(product.get("product_id"), f"{where}.product_id")
            helpers = _obj(product.get("product_identification_helper"), f"{where}.helper")
            self.products.setdefault(pid, {k: v for k, v in helpers.items() if isinstance(v, str)})

    def components(self, product_id: str) -> tuple[str, str, str] | None:
        """(package, module, repository) product ids of a status entry, or None when its
        relationships do not resolve to at least a package and a repository."""
        first = self.relationships.get(product_id)
        if first is None:
            return None
        parts = list(self._flatten(first[0], first[1], MAX_DEPTH - 1))
        if len(parts) < 2:
            return None
        return parts[0], parts[-2] if len(parts) > 2 else "", parts[-1]

    def _flatten(self, product: str, relates_to: str, depth: int) -> Iterator[str]:
        # Each side may itself be a relationship (`repo:module`); expand it, left to right.
        for side in (product, relates_to):
            nested = self.relationships.get(side) if depth > 0 else None
            if nested is None:
                yield side
            else:
                yield from self._flatten(nested[0], nested[1], depth - 1)


def _vulnerability(value: Any, where: str) -> Vulnerability:
    vuln = _obj(value, where)
    description = ""
    for i, note in enumerate(_list(vuln.get("notes"), f"{where}.notes")):
        note = _obj(note, f"{where}.notes[{i}]")
        if note.get("category") == "description":
            description = _str(note.get("text"), f"{where}.notes[{i}].text")
    links = [
        _str(_obj(ref, f"{where}.references[{i}]").get("url"), f"{where}.references[{i}].url")
        for i, ref in enumerate(_list(vuln.get("references"), f"{where}.references"))
    ]
    status: dict[str, list[str]] = {}
    for key, ids in _obj(vuln.get("product_status"), f"{where}.product_status").items():
        status[key] = [_str(p, f"{where}.product_status.{key}") for p in _list(ids, key)]
    out = Vulnerability(
        cve=_str(vuln.get("cve"), f"{where}.cve"),
        release_date=_str(vuln.get("release_date"), f"{where}.release_date"),
        description=description,
        links=links,
        product_status=status,
    )
    for i, score in enumerate(_list(vuln.get("scores"), f"{where}.scores")):
        score = _obj(score, f"{where}.scores[{i}]")
        for pid in _list(score.get("products"), f"{where}.scores[{i}].products"):
            out.scores.setdefault(pid, score)
    for i, threat in enumerate(_list(vuln.get("threats"), f"{where}.threats")):
        threat = _obj(threat, f"{where}.threats[{i}]")
        if threat.get("category") != "impact":
            continue
        details = _str(threat.get("details"), f"{where}.threats[{i}].details")
        for pid in _list(threat.get("product_ids"), f"{where}.threats[{i}].product_ids"):
            out.impacts.setdefault(pid, details)
    for i, rem in enumerate(_list(vuln.get("remediations"), f"{where}.remediations")):
        rem = _obj(rem, f"{where}.remediations[{i}]")
        if rem.get("category") != "vendor_fix" or not rem.get("url"):
            continue
        url = _str(rem.get("url"), f"{where}.remediations[{i}].url")
        for pid in _list(rem.get("product_ids"), f"{where}.remediations[{i}].product_ids"):
            out.fixes.setdefault(pid, url)
    return out


# -- package URLs --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PackageURL:
    type: str
    namespace: str
    name: str
    version: str
    qualifiers: dict[str, str]

    def without(self, *keys: str) -> str:
        """A canonical string of this purl minus the given qualifiers (a dedup key)."""
        kept = "&".join(f"{k}={v}" for k, v in sorted(self.qualifiers.items()) if k not in keys)
        return f"{self.type}/{self.namespace}/{self.name}@{self.version}?{kept}"


def parse_purl(text: str) -> PackageURL:
    """`pkg:type/namespace/name@version?qualifiers#subpath`; raises ValueError."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() != "pkg":
        raise ValueError(f"purl {text!r}: scheme is not pkg")
    rest = rest.split("#", 1)[0]
    rest, _, query = rest.partition("?")
    rest = rest.strip("/")
    # The version is after the last "@" of the last segment; "@" elsewhere is encoded.
    head, at, version = rest.rpartition("@")
    if not at or "/" in version:
        head, version = rest, ""
    type_, slash, path = head.partition("/")
    if not slash or not type_ or not path:
        raise ValueError(f"purl {text!r}: no type or name")
    namespace, _, name = path.rpartition("/")
    if not name:
        raise ValueError(f"purl {text!r}: empty name")
    qualifiers: dict[str, str] = {}
    for pair in query.split("&") if query else []:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"purl {text!r}: malformed qualifier {pair!r}")
        qualifiers[key.lower()] = unquote(value)
    return PackageURL(
        type=type_.lower(),
        namespace="/".join(unquote(s) for s in namespace.split("/")) if namespace else "",
        name=unquote(name),
        version=unquote(version),
        qualifiers=qualifiers,
    )


def escape_cpe_uri(cpe: str) -> str:
    """Red Hat writes wildcards into URI-bound CPEs (`openshift:4.*`); URI binding spells a
    trailing `*` as %02 and `?` as %01, and any other `*` is literal (%2a)."""
    parts = cpe.split(":")
    for i, part in enumerate(parts):
        part = part.replace("?", "%01")
        if part.endswith("*"):
            part = part[:-1].replace("*", "%2a") + "%02"
        parts[i] = part.replace("*", "%2a")
    return ":".join(parts)
