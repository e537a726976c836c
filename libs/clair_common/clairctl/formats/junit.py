"""Clair's JUnit XML (`-o xml`): a test suite per image, a test case per package.

A package with findings fails, its failure listing the advisories, as Clair's clairctl writes
it; the filters and VEX apply. Built with junitparser.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from typing import TextIO

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from clair_common.clairctl.findings import Finding, ImageResult


def write_junit(results: Sequence[ImageResult], out: TextIO, color: bool = False) -> None:
    xml = JUnitXml()
    for result in results:
        suite = TestSuite(result.name)
        suite.add_property("manifest", result.digest)
        by_package: dict[str, list[Finding]] = defaultdict(list)
        for finding in result.findings:
            by_package[finding.package_id].append(finding)
        packages = result.report.get("packages") or {}
        for pkg_id in sorted(packages, key=lambda p: (packages[p].get("name", ""), p)):
            pkg = packages[pkg_id]
            case = TestCase(f"{pkg.get('name', '')} {pkg.get('version', '')}", result.name)
            found = by_package.get(pkg_id)
            if found:
                text = "Found the following vulnerabilities:" + "".join(
                    f"\n\t{f.advisory}" for f in found
                )
                failure = Failure(f"{len(found)} vulnerabilities", "vulnerability")
                failure.text = text
                case.result = [failure]
            suite.add_testcase(case)
        suite.update_statistics()  # type: ignore[no-untyped-call]
        xml.add_testsuite(suite)
    xml.update_statistics()  # type: ignore[no-untyped-call]
    buf = io.BytesIO()
    xml.write(buf, pretty=True)
    out.write(buf.getvalue().decode())
