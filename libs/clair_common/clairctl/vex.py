"""VEX documents (OpenVEX, CycloneDX VEX): which findings a vendor or the user has cleared.

A statement clears a finding when it names the finding's advisory, its status is OpenVEX
`not_affected`/`fixed` or CycloneDX `not_affected`/`false_positive`/`resolved`, and one of its
products is the package (a purl without a version matches every version; qualifiers given
must match) or the image itself (`pkg:oci/...@<digest>`, or the bare digest), optionally
narrowed to subcomponents. Later statements about the same advisory and product win.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from clair_common.clairctl.findings import Finding

_OPENVEX_CLEARS = frozenset({"not_affected", "fixed"})
_CYCLONEDX_CLEARS = frozenset({"not_affected", "false_positive", "resolved"})


class VexError(ValueError):
    """A VEX file that cannot be read; the message names the file and field."""


@dataclass(frozen=True)
class Statement:
    vulnerability: str  # lower-cased advisory name
    products: tuple[str, ...]
    subcomponents: tuple[str, ...]
    clears: bool


def _purl(text: str) -> PackageURL | None:
    try:
        return PackageURL.from_string(text)
    except ValueError:
        return None


def purl_matches(pattern: str, purl: str) -> bool:
    want, have = _purl(pattern), _purl(purl)
    if want is None or have is None:
        return pattern == purl
    if (want.type, want.namespace or "", want.name) != (have.type, have.namespace or "", have.name):
        return False
    if want.version and want.version != have.version:
        return False
    have_q = have.qualifiers if isinstance(have.qualifiers, dict) else {}
    want_q = want.qualifiers if isinstance(want.qualifiers, dict) else {}
    return all(have_q.get(k) == v for k, v in want_q.items())


def _is_image(product: str, digest: str) -> bool:
    if product == digest:
        return True
    parsed = _purl(product)
    return parsed is not None and parsed.type == "oci" and parsed.version == digest


class VexDocument:
    def __init__(self, statements: Iterable[Statement]) -> None:
        self.statements = list(statements)

    def clears(self, finding: Finding, image_digest: str) -> bool:
        verdict = False
        for st in self.statements:
            if st.vulnerability != finding.advisory.lower():
                continue
            if self._applies(st, finding, image_digest):
                verdict = st.clears  # later statements win
        return verdict

    @staticmethod
    def _applies(st: Statement, finding: Finding, digest: str) -> bool:
        for product in st.products:
            if _is_image(product, digest):
                if not st.subcomponents or any(
                    purl_matches(sub, finding.purl) for sub in st.subcomponents
                ):
                    return True
            elif purl_matches(product, finding.purl):
                return True
        return False


def _ident(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("@id") or value.get("name") or "")
    return ""


def _openvex(path: Path, doc: dict[str, Any]) -> list[Statement]:
    out = []
    for i, st in enumerate(doc.get("statements") or []):
        where = f"{path}: statements[{i}]"
        if not isinstance(st, dict):
            raise VexError(f"{where}: expected an object")
        vuln = _ident(st.get("vulnerability"))
        status = st.get("status")
        if not vuln or not isinstance(status, str):
            raise VexError(f"{where}: needs `vulnerability` and `status`")
        products: list[str] = []
        subs: list[str] = []
        for product in st.get("products") or []:
            products.append(_ident(product))
            if isinstance(product, dict):
                subs.extend(_ident(s) for s in product.get("subcomponents") or [])
        subs.extend(_ident(s) for s in st.get("subcomponents") or [])  # OpenVEX 0.0.x
        out.append(Statement(vuln.lower(), tuple(products), tuple(subs), status in _OPENVEX_CLEARS))
    return out


def _cyclonedx(path: Path, doc: dict[str, Any]) -> list[Statement]:
    refs: dict[str, str] = {}

    def walk(components: Any) -> None:
        for comp in components or []:
            if isinstance(comp, dict) and comp.get("bom-ref") and comp.get("purl"):
                refs[str(comp["bom-ref"])] = str(comp["purl"])
            if isinstance(comp, dict):
                walk(comp.get("components"))

    walk(doc.get("components"))
    out = []
    for i, vuln in enumerate(doc.get("vulnerabilities") or []):
        where = f"{path}: vulnerabilities[{i}]"
        if not isinstance(vuln, dict) or not vuln.get("id"):
            raise VexError(f"{where}: needs an `id`")
        state = (vuln.get("analysis") or {}).get("state", "")
        products = tuple(
            refs.get(str(a.get("ref")), str(a.get("ref")))
            for a in vuln.get("affects") or []
            if isinstance(a, dict) and a.get("ref")
        )
        out.append(Statement(str(vuln["id"]).lower(), products, (), state in _CYCLONEDX_CLEARS))
    return out


def load_vex(path: Path) -> VexDocument:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise VexError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise VexError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise VexError(f"{path}: expected a JSON object")
    if "statements" in doc or "openvex" in str(doc.get("@context", "")):
        return VexDocument(_openvex(path, doc))
    if doc.get("bomFormat") == "CycloneDX":
        return VexDocument(_cyclonedx(path, doc))
    raise VexError(f"{path}: neither OpenVEX (`statements`) nor CycloneDX (`bomFormat`)")
