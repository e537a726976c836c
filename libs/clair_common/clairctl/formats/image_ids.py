"""How an image is named inside an SBOM: an OCI purl with its digest."""

from __future__ import annotations

from packageurl import PackageURL

from clair_common.clairctl.findings import ImageResult


def image_purl(result: ImageResult) -> str:
    name = result.name
    repository_url = ""
    if "@" in name:
        name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
        last = last.split(":", 1)[0]
    if "/" in name and not name.startswith(("/", ".")):
        repository_url = name
    qualifiers = {"repository_url": repository_url} if repository_url else None
    base = last.lower().removesuffix(".tar") or "image"
    return str(
        PackageURL(type="oci", name=base, version=result.digest, qualifiers=qualifiers).to_string()
    )
