"""OVAL, shared by the oracle, photon, suse (rpminfo) and ubuntu (dpkginfo) updaters.

`document` reads an OVAL definitions document in two streaming passes; `fetch` downloads one
as claircore's ovalutil does (its fingerprint, decompression while downloading); `rpm` and
`dpkg` turn definitions into Vulnerability records.
"""

from clair_matcher.updaters._oval.document import Definition, OvalDocument, issued_time, links
from clair_matcher.updaters._oval.dpkg import dpkg_vulnerabilities
from clair_matcher.updaters._oval.rpm import OvalRpmUpdater, OvalUpdaterConfig, proto_vulnerability

__all__ = [
    "Definition",
    "OvalDocument",
    "OvalRpmUpdater",
    "OvalUpdaterConfig",
    "dpkg_vulnerabilities",
    "issued_time",
    "links",
    "proto_vulnerability",
]
