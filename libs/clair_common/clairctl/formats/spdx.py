"""SPDX 2.3 JSON of what the indexer found, built and validated with spdx-tools.

The document describes each image (a CONTAINER package) which CONTAINS its packages; every
package carries its purl as a PACKAGE-MANAGER external reference.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from clair_common.clairctl.findings import ImageResult
from clair_common.clairctl.formats.image_ids import image_purl

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


def _id(*parts: str) -> str:
    return "SPDXRef-" + "-".join(_UNSAFE.sub("-", p) for p in parts)


def _purl_ref(purl: str) -> ExternalPackageRef:
    return ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)


def spdx_document(results: Sequence[ImageResult]) -> Document:
    name = results[0].name if len(results) == 1 else "images"
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=name,
        document_namespace=f"https://spdx.org/spdxdocs/clairctl-{uuid.uuid4()}",
        creators=[Actor(ActorType.TOOL, "clairctl")],
        created=datetime.now(UTC).replace(microsecond=0),
    )
    doc = Document(info)
    for n, result in enumerate(results):
        image_id = _id("Image", str(n))
        doc.packages.append(
            Package(
                image_id,
                result.name,
                SpdxNoAssertion(),
                version=result.digest,
                files_analyzed=False,
                primary_package_purpose=PackagePurpose.CONTAINER,
                external_references=[_purl_ref(image_purl(result))],
            )
        )
        doc.relationships.append(
            Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id)
        )
        purls = result.purls
        packages = result.report.get("packages") or {}
        for pkg_id in sorted(packages, key=lambda p: (packages[p].get("name", ""), p)):
            pkg = packages[pkg_id]
            spdx_id = _id("Package", str(n), str(pkg_id))
            refs = [_purl_ref(purls[pkg_id])] if purls.get(pkg_id) else []
            doc.packages.append(
                Package(
                    spdx_id,
                    str(pkg.get("name", "")) or str(pkg_id),
                    SpdxNoAssertion(),
                    version=str(pkg.get("version", "")) or None,
                    files_analyzed=False,
                    primary_package_purpose=PackagePurpose.LIBRARY,
                    external_references=refs,
                )
            )
            doc.relationships.append(Relationship(image_id, RelationshipType.CONTAINS, spdx_id))
    return doc


def write_spdx(results: Sequence[ImageResult], out: TextIO, color: bool = False) -> None:
    # spdx-tools validates the document before writing and refuses an invalid one.
    write_document_to_stream(spdx_document(results), out, validate=True)
    out.write("\n")
