"""Python distributions: wheels' `.dist-info/METADATA`, eggs' `PKG-INFO` (claircore `python` v5).

Clair's rules: `.dist-info/METADATA` (skipped when the sibling INSTALLER names rpm, dpkg or
apk), `.egg-info/PKG-INFO`, a standalone `.egg-info` file, and `.egg/EGG-INFO/PKG-INFO`;
whiteout names are ignored; in a layer that also holds an rpm database the distribution's own
`usr/lib*/python[23].*` trees are skipped (`usr/lib*/python[23]` for a dpkg layer). The name is
only lower-cased (not PEP 503 normalized), the version is claircore's PEP 440 canonical string,
unparsable versions skip the package, and package_db is `python:` + the site directory.
Clair additionally drops files that its rpm database lists; that needs the rpm parser and is
left out here.
"""

from __future__ import annotations

import posixpath
import re
from typing import ClassVar

from clair_common.models import Package, Repository
from clair_common.versions import claircore_pep440

from .base import LayerFiles, Scanner, ScanResult

PYPI_URI = "https://pypi.org/simple"
PYPI = Repository(name="pypi", uri=PYPI_URI)

_METADATA = ".dist-info/METADATA"
_INSTALLER = ".dist-info/INSTALLER"
_EGG_INFO_DIR = ".egg-info/PKG-INFO"
_EGG_DIR = ".egg/EGG-INFO/PKG-INFO"
_EGG_INFO_FILE = ".egg-info"
_SUFFIXES = (_METADATA, _EGG_INFO_DIR, _EGG_DIR, _EGG_INFO_FILE)
RPM_DATABASES = frozenset(
    {"var/lib/rpm/Packages", "var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/Packages.db"}
)
DPKG_STATUS = "var/lib/dpkg/status"
_BLOCKED_INSTALLERS = frozenset({"rpm", "dpkg", "apk"})
_RPM_OWNED = re.compile(r"usr/lib[^/]*/python[23]\.[^/]*/")
_DPKG_OWNED = re.compile(r"usr/lib[^/]*/python[23]/")


def parse_pep440(text: str) -> tuple[str, str] | None:
    """claircore's (String(), Version()) of a PEP 440 version, or None when it does not parse.

    The second item is the normalized version: `pep440:` and ten int32 slots (epoch, five
    release numbers, pre label, pre number, post, dev).
    """
    version = claircore_pep440.search(text)
    if version is None:
        return None
    return version.canonical, version.normalized


def read_headers(data: bytes) -> dict[str, str]:
    """Email-style headers up to the first blank line, keys lower-cased, first value wins.

    Like Go's textproto.ReadMIMEHeader as Clair uses it: continuation lines join with a space
    and a malformed line ends the headers, keeping what was read before it.
    """
    out: dict[str, str] = {}
    last = ""
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = raw.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if last and last in out:
                out[last] = f"{out[last]} {line.strip()}".strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            break
        last = key.lower()
        if last in out:
            last = ""  # a repeated key: Get returns the first value, continuations included
            continue
        out[last] = value.strip()
    return out


def _is_candidate(path: str) -> bool:
    return path.endswith(_SUFFIXES)


def _package_db(path: str) -> str:
    up = ".." if path.endswith(_EGG_INFO_FILE) else "../.."
    return "python:" + posixpath.normpath(posixpath.join(path, up))


class PythonScanner(Scanner):
    name: ClassVar[str] = "python"
    version: ClassVar[str] = "5"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "python"

    def wants(self, path: str) -> bool:
        return (
            path.endswith(_SUFFIXES)
            or path.endswith(_INSTALLER)
            or path in RPM_DATABASES
            or path == DPKG_STATUS
        )

    def scan(self, layer: LayerFiles) -> ScanResult:
        files = layer.files
        owned: re.Pattern[str] | None = None
        if any(db in files for db in RPM_DATABASES):
            owned = _RPM_OWNED
        elif DPKG_STATUS in files:
            owned = _DPKG_OWNED
        packages: list[Package] = []
        # Directory-walk order, as Clair's fs.WalkDir gives it.
        for path in sorted((p for p in files if _is_candidate(p)), key=lambda p: p.split("/")):
            if posixpath.basename(path).startswith(".wh."):
                continue
            if owned is not None and owned.match(path):
                continue
            if path.endswith(_METADATA):
                installer = files.get(path[: -len("METADATA")] + "INSTALLER")
                if installer is not None and installer.strip().decode() in _BLOCKED_INSTALLERS:
                    continue
            headers = read_headers(files[path])
            parsed = parse_pep440(headers.get("version", ""))
            if parsed is None:
                continue  # Clair logs "couldn't parse the version, skipping"
            version, normalized = parsed
            packages.append(
                Package(
                    name=headers.get("name", "").lower(),
                    version=version,
                    kind="binary",
                    normalized_version=normalized,
                    package_db=_package_db(path),
                    repository_hint=PYPI_URI,
                    filepath=path,
                )
            )
        repositories = [Repository(name=PYPI.name, uri=PYPI.uri)] if packages else []
        return ScanResult(packages=packages, repositories=repositories)
