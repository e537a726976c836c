"""OVAL rpminfo definitions to Vulnerability records (claircore `ovalutil.RPMDefsToVulns`).

Shared by the photon, oracle and suse updaters. Per definition, every criterion (nested ones
first) whose test is an `rpminfo_test` on an `rpminfo_object` becomes one binary-package record
per enabled module (from "Module X is enabled" comments anywhere in the definition) and per
prototype record of the caller: fixed_in_version is the state's EVR verbatim, the package arch
and arch operation come from the state's arch. A state without an EVR (signature key,
release version, arch-only checks) or any dangling reference skips the criterion, as in Clair.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from clair_common.models import Package, Vulnerability
from clair_matcher.updaters._config import read_config, setting, text
from clair_matcher.updaters._oval.checks import package_checks
from clair_matcher.updaters._oval.document import Definition, OvalDocument, issued_time, links
from clair_matcher.updaters._oval.fetch import compression_setting, fetch_oval
from clair_matcher.updaters.base import FetchResult, UnchangedType, Updater

_MODULE_COMMENT = re.compile(r"Module (.*) is enabled")

ProtoVulns = Callable[[Definition], Sequence[Vulnerability]]


def enabled_modules(defn: Definition) -> list[str]:
    found = []
    for criterion in defn.criteria.walk():
        match = _MODULE_COMMENT.search(criterion.comment)
        if match and match[1]:
            found.append(match[1])
    return found or [""]


def proto_vulnerability(
    updater: str, defn: Definition, normalize: Callable[[str], str]
) -> Vulnerability:
    """The fields every rpminfo updater takes from the definition itself."""
    return Vulnerability(
        updater=updater,
        name=defn.title,
        description=defn.description,
        issued=issued_time(defn.advisory.issued),
        links=links(defn),
        severity=defn.advisory.severity,
        normalized_severity=normalize(defn.advisory.severity),
    )


def rpm_vulnerabilities(
    doc: OvalDocument, defn: Definition, protos: Sequence[Vulnerability]
) -> Iterator[Vulnerability]:
    """The records of one definition; `protos` carry everything but package and fix."""
    if not protos:
        return
    modules = enabled_modules(defn)
    for check in package_checks(doc, defn, "rpminfo"):
        name = check.name.body
        if not name:
            continue  # no package to match against
        fixed = check.evr.body if check.evr is not None else ""
        for module in modules:
            package = Package(name=name, kind="binary", module=module, arch=check.arch)
            for proto in protos:
                yield replace(proto, package=package, fixed_in_version=fixed, arch_op=check.arch_op)


@dataclass(frozen=True, slots=True)
class OvalUpdaterConfig:
    """`updaters.config.<OVAL updater>`: the document's `url` and its `compression`
    (auto, none, gzip, bzip2, zstd)."""

    url: str = setting(text, "")
    compression: str = setting(compression_setting, "")


class OvalRpmUpdater(Updater):
    """One OVAL rpminfo document; `updaters.config.<name>` takes `url` and `compression`."""

    def __init__(self, name: str, url: str, compression: str) -> None:
        self.name = name
        self.url = url
        self.compression = compression

    def configure(self, config: Mapping[str, Any]) -> None:
        settings = read_config(OvalUpdaterConfig, config, self.name)
        if settings.url:
            self.url = settings.url
        if settings.compression:
            self.compression = settings.compression

    async def fetch(
        self, client: aiohttp.ClientSession, prev_fingerprint: str
    ) -> FetchResult | UnchangedType:
        return await fetch_oval(
            client, self.url, prev_fingerprint, feed=self.name, compression=self.compression
        )

    def parse(self, fetched: FetchResult) -> Iterator[Vulnerability]:
        doc = OvalDocument(fetched.path, f"{self.name} ({fetched.url})")
        for defn in doc.definitions():
            yield from rpm_vulnerabilities(doc, defn, self.prototypes(defn))

    @abc.abstractmethod
    def prototypes(self, defn: Definition) -> Sequence[Vulnerability]:
        """The records a definition stands for, before package and fix are filled in."""
