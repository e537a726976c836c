"""OVAL dpkginfo definitions to Vulnerability records (claircore `ovalutil.DpkgDefsToVulns`).

Per definition, every criterion (nested ones first) whose test is a `dpkginfo_test` on a
`dpkginfo_object` becomes one binary-package record per package name and per prototype record
of the caller. The object's name is either written out or, as Ubuntu does, a `var_ref` to a
constant variable listing every binary built from the source package. A test without a state
is a plain "is installed" check: its records carry no fixed version. With a state,
fixed_in_version is the state's EVR (Ubuntu writes `0:0` for "no fix yet", which the Ubuntu
matcher reads as unfixed); a state without an EVR, an EVR that is no Debian version at all, or
any dangling reference skips the criterion, as in Clair.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

from clair_common.models import Package, Vulnerability
from clair_matcher.updaters._oval.checks import package_checks
from clair_matcher.updaters._oval.document import Definition, OvalDocument

log = logging.getLogger("clair.matcher.updaters.oval_dpkg")

# ovalutil's validVersion: looser than deb-version(5) (underscores, non-digit starts), but
# enough to drop the prose Ubuntu has been seen to put where a version belongs.
VALID_VERSION = re.compile(r"([0-9]+:)?[-_A-Za-z0-9.+:~]+(-[A-Za-z0-9+.~]+)?")


def valid_version(text: str) -> bool:
    return VALID_VERSION.fullmatch(text) is not None


def dpkg_vulnerabilities(
    doc: OvalDocument, defn: Definition, protos: Sequence[Vulnerability]
) -> Iterator[Vulnerability]:
    """The records of one definition; `protos` carry everything but package and fix."""
    if not protos:
        return
    for check in package_checks(doc, defn, "dpkginfo"):
        names = [n for n in doc.values(check.name) if n]
        fixed = ""
        if check.evr is not None:
            # Clair checks the trimmed text but stores it untrimmed; a version with
            # surrounding blanks would never compare, so the trimmed one is kept.
            fixed = check.evr.body.strip()
            if not valid_version(fixed):
                log.debug("%s: %s: bogus version %r skipped", doc.feed, defn.id, check.evr.body)
                continue
        for name in names:
            package = Package(name=name, kind="binary", arch=check.arch)
            for proto in protos:
                yield replace(proto, package=package, fixed_in_version=fixed, arch_op=check.arch_op)
