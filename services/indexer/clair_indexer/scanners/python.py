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

# claircore pkg/pep440: the packaging regex, used unanchored (a search), lowercase labels only.
_PEP440 = re.compile(
    r"v?(?:(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?P<pre>[-_\.]?(?P<pre_l>(a|b|c|rc|alpha|beta|pre|preview))[-_\.]?(?P<pre_n>[0-9]+)?)?"
    r"(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_\.]?(?P<post_l>post|rev|r)[-_\.]?(?P<post_n2>[0-9]+)?))?"
    r"(?P<dev>[-_\.]?(?P<dev_l>dev)[-_\.]?(?P<dev_n>[0-9]+)?)?)"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?"
)
_PRE_LABELS = {"a": "a", "alpha": "a", "b": "b", "beta": "b"}  # everything else is "rc"
_PRE_RANK = {"a": -3, "b": -2, "rc": -1}
_INT32_MIN = -(2**31)


def _int32(n: int) -> int:
    """Go's int32(n) conversion: wrap around."""
    return (n - _INT32_MIN) % 2**32 + _INT32_MIN


def parse_pep440(text: str) -> tuple[str, str] | None:
    """claircore's (String(), Version()) of a PEP 440 version, or None when it does not parse.

    The second item is the normalized version: `pep440:` and ten int32 slots (epoch, five
    release numbers, pre label, pre number, post, dev).
    """
    m = _PEP440.search(text)
    if m is None:
        return None
    epoch = int(m["epoch"] or 0)
    release = [int(n) for n in m["release"].split(".")]
    pre_label = _PRE_LABELS.get(m["pre_l"], "rc") if m["pre_l"] else ""
    pre_n = int(m["pre_n"] or 0)
    post = int(m["post_n1"] or m["post_n2"] or 0)
    dev = int(m["dev_n"] or 0)

    text_out = f"{epoch}!" if epoch else ""
    text_out += ".".join(str(n) for n in release)
    if pre_label:
        text_out += f"{pre_label}{pre_n}"
    if post:
        text_out += f".post{post}"
    if dev:
        text_out += f".dev{dev}"

    slots = [0] * 10
    slots[0] = _int32(epoch)
    for i, n in enumerate(release[:5]):
        slots[1 + i] = _int32(n)
    slots[6] = _PRE_RANK.get(pre_label, 0)
    slots[7] = _int32(pre_n)
    slots[8] = _int32(post)
    if dev:
        if post or slots[6]:
            slots[9] = _int32(-dev)
        else:
            slots[6] = _int32(_INT32_MIN + dev)
    return text_out, "pep440:" + ".".join(str(n) for n in slots)


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
    version: ClassVar[str] = "1"
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
