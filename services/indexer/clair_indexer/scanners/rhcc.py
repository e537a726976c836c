"""Red Hat container images as packages (claircore `rhel/rhcc`), for the rhcc matcher.

`rhel_containerscanner` reads the build Dockerfile Red Hat images carry,
`root/buildinfo/Dockerfile-<name>-<version>-<release>` (the first in path order):
- the version is `<version>-<release>` from the file name; an image whose version does not
  start with a number (after an optional `v`) is skipped, as claircore's rhctag parse does;
- the `com.redhat.component`, `name` and `architecture` labels must all be there;
- a source package named by the component and a binary package named by the `name` label
  (the image's repository path, `ubi8` or `openshift-logging/elasticsearch6-rhel8`, which
  is what Red Hat's VEX data names containers by), both with that version and architecture.
  claircore can also map a name to several repositories through Red Hat's
  container-name-repos map; that fetch is not done here, so the `name` label is the package.

`rhel_package_container_detector` reads `root/buildinfo/labels.json` (newer Konflux images):
`name`, `architecture` and `org.opencontainers.image.created` are required and the version is
the creation time in Unix seconds; source and binary are both named by `name`. Values
written with their quotes (`"\"x86_64\""`) are unquoted.

Both report the Red Hat Container Catalog repository (`rhcc-container-repository`) in the
same layer, and their packages name it in `repository_hint` so coalescing links them.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import shlex
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from clair_common.models import Package
from clair_common.vulnerable import rhcc

from .base import LayerFiles, Scanner, ScanResult

log = logging.getLogger("clair.indexer.rhcc")

BUILDINFO = "root/buildinfo"
LABELS_JSON = f"{BUILDINFO}/labels.json"
DOCKERFILE_PREFIX = f"{BUILDINFO}/Dockerfile-"
COMPONENT_LABEL = "com.redhat.component"
NAME_LABEL = "name"
ARCH_LABEL = "architecture"
CREATED_LABEL = "org.opencontainers.image.created"
# coalesce links a package to the layer's repositories whose name or URI equals its hint.
REPOSITORY_HINT = rhcc.REPOSITORY_URI
_VERSION_START = re.compile(r"v?[0-9]")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are dropped, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _expand(value: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _pairs(arguments: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """`key=value ...` (or the legacy `key value`) of a LABEL, ENV or ARG instruction."""
    try:
        words = shlex.split(arguments, posix=True)
    except ValueError:
        return []
    if words and "=" not in words[0]:
        return [(words[0], _expand(" ".join(words[1:]), env))]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if key:
            pairs.append((key, _expand(value, env) if eq else ""))
    return pairs


def dockerfile_labels(text: str) -> dict[str, str]:
    """The labels a Dockerfile sets, `$VAR`/`${VAR}` expanded from its ARG and ENV lines."""
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    for instruction, arguments in _instructions(text):
        if instruction in ("ARG", "ENV"):
            for key, value in _pairs(arguments, env):
                if instruction == "ENV" or key not in env:
                    env[key] = value
        elif instruction == "LABEL":
            labels.update(_pairs(arguments, env))
    return labels


def version_release(path: str) -> str | None:
    """`<version>-<release>` of a `Dockerfile-<name>-<version>-<release>` path."""
    base = posixpath.basename(path).removeprefix("Dockerfile-")
    if base.count("-") < 2:
        return None
    cut = base.rfind("-", 0, base.rfind("-"))
    return base[cut + 1 :]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def image_packages(component: str, name: str, version: str, arch: str, db: str) -> list[Package]:
    """The source package (component) and the binary package (image name) of one image."""
    source = Package(
        name=component,
        version=version,
        kind="source",
        arch=arch,
        package_db=db,
        repository_hint=REPOSITORY_HINT,
    )
    binary = Package(
        name=name,
        version=version,
        kind="binary",
        source=source,
        arch=arch,
        package_db=db,
        repository_hint=REPOSITORY_HINT,
    )
    return [source, binary]


def dockerfile_packages(path: str, data: bytes) -> list[Package]:
    version = version_release(path)
    if version is None or not _VERSION_START.match(version):
        return []  # claircore: not a Red Hat tag (rhctag), nothing to match it on
    labels = dockerfile_labels(data.decode("utf-8", "replace"))
    wanted = [labels.get(k) for k in (COMPONENT_LABEL, NAME_LABEL, ARCH_LABEL)]
    component, name, arch = (_unquote(v) if v is not None else None for v in wanted)
    if not component or not name or arch is None:
        log.info("%s: missing %s labels; not an rhcc image", path, COMPONENT_LABEL)
        return []
    return image_packages(component, name, version, arch, path)


def labels_json_packages(data: bytes) -> list[Package]:
    try:
        doc = json.loads(data)
    except ValueError as err:
        log.warning("%s: %s", LABELS_JSON, err)
        return []
    if not isinstance(doc, dict):
        return []
    values = {k: _unquote(v) for k, v in doc.items() if isinstance(v, str)}
    name, arch, created = (values.get(k, "") for k in (NAME_LABEL, ARCH_LABEL, CREATED_LABEL))
    if not name or not arch or not created:
        log.warning("%s: required labels not found", LABELS_JSON)
        return []
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        log.warning("%s: bad %s %r", LABELS_JSON, CREATED_LABEL, created)
        return []
    if when.tzinfo is None:
        return []  # RFC 3339 requires an offset
    return image_packages(name, name, str(int(when.timestamp())), arch, LABELS_JSON)


class RhccScanner(Scanner):
    name: ClassVar[str] = "rhel_containerscanner"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "rhcc"

    def wants(self, path: str) -> bool:
        return path.startswith(DOCKERFILE_PREFIX) and "/" not in path[len(BUILDINFO) + 1 :]

    def scan(self, layer: LayerFiles) -> ScanResult:
        paths = sorted(p for p in layer.files if self.wants(p))
        if not paths:
            return ScanResult()
        packages = dockerfile_packages(paths[0], layer.files[paths[0]])
        if not packages:
            return ScanResult()
        return ScanResult(packages=packages, repositories=[rhcc.gold_repository()])


class RhccLabelsScanner(Scanner):
    name: ClassVar[str] = "rhel_package_container_detector"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "package"
    ecosystem: ClassVar[str] = "rhcc"

    def wants(self, path: str) -> bool:
        return path == LABELS_JSON

    def scan(self, layer: LayerFiles) -> ScanResult:
        data = layer.files.get(LABELS_JSON)
        packages = labels_json_packages(data) if data is not None else []
        if not packages:
            return ScanResult()
        return ScanResult(packages=packages, repositories=[rhcc.gold_repository()])
