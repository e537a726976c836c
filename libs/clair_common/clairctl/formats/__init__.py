"""Output formats of `clairctl report` and `clairctl sbom`, one module each.

Every writer takes the results and a text stream; machine formats are built with the field's
maintained libraries (cyclonedx-python-lib, spdx-tools, junitparser) or checked against the
published schema (SARIF) in the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TextIO

from clair_common.clairctl.findings import ImageResult

Writer = Callable[[Sequence[ImageResult], TextIO, bool], None]

REPORT_FORMATS = ("table", "text", "json", "xml", "junit", "sarif", "cyclonedx")
SBOM_FORMATS = ("spdx", "cyclonedx")


def report_writer(name: str) -> Writer:
    if name in ("table", "text"):  # Clair's clairctl calls its human output `text`
        from clair_common.clairctl.formats.table import write_table

        return write_table
    if name == "json":
        from clair_common.clairctl.formats.clair_json import write_json

        return write_json
    if name in ("xml", "junit"):
        from clair_common.clairctl.formats.junit import write_junit

        return write_junit
    if name == "sarif":
        from clair_common.clairctl.formats.sarif import write_sarif

        return write_sarif
    if name == "cyclonedx":
        from clair_common.clairctl.formats.cyclonedx import write_cyclonedx_vulnerabilities

        return write_cyclonedx_vulnerabilities
    raise ValueError(f"unknown report format {name!r}")


def sbom_writer(name: str) -> Writer:
    if name == "spdx":
        from clair_common.clairctl.formats.spdx import write_spdx

        return write_spdx
    if name == "cyclonedx":
        from clair_common.clairctl.formats.cyclonedx import write_cyclonedx_sbom

        return write_cyclonedx_sbom
    raise ValueError(f"unknown SBOM format {name!r}")
