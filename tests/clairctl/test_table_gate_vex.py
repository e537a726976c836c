"""The table (exact text, whatever the terminal), the gate and VEX matching, on a fixed report."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clair_common.clairctl.findings import ImageResult
from clair_common.clairctl.formats.table import write_table
from clair_common.clairctl.gate import Gate, apply_gate, gate_fails
from clair_common.clairctl.vex import VexError, load_vex, purl_matches

DIGEST = "sha256:" + "ab" * 32


def _report() -> dict[str, Any]:
    def vuln(name: str, sev: str, fixed: str) -> dict[str, Any]:
        return {
            "name": name,
            "normalized_severity": sev,
            "fixed_in_version": fixed,
            "links": f"https://example.invalid/{name} https://other.invalid",
        }

    return {
        "manifest_hash": DIGEST,
        "packages": {
            "1": {"id": "1", "name": "openssl", "version": "1.1.1", "arch": "x86_64"},
            "2": {"id": "2", "name": "zlib", "version": "1.2.11"},
        },
        "distributions": {"7": {"did": "alpine", "version_id": "3.6.0"}},
        "environments": {
            "1": [{"package_db": "lib/apk/db/installed", "distribution_id": "7"}],
            "2": [{"package_db": "lib/apk/db/installed", "distribution_id": "7"}],
        },
        "vulnerabilities": {
            "10": vuln("CVE-2020-0001", "High", "1.1.1g-r0"),
            "11": vuln("CVE-2020-0002", "Low", ""),
            "12": vuln("CVE-2020-0003", "Critical", "1.2.12-r0"),
        },
        "package_vulnerabilities": {"1": ["10", "11"], "2": ["12"]},
    }


def _result(gate: Gate | None = None) -> ImageResult:
    result = ImageResult("example/app:1", DIGEST, {}, _report())
    apply_gate(result, gate or Gate())
    return result


EXPECTED = f"""\
example/app:1 ({DIGEST}): 2 packages
SEVERITY  PACKAGE  INSTALLED  FIXED IN   ADVISORY       LINK
Critical  zlib     1.2.11     1.2.12-r0  CVE-2020-0003  https://example.invalid/CVE-2020-0003
High      openssl  1.1.1      1.1.1g-r0  CVE-2020-0001  https://example.invalid/CVE-2020-0001
Low       openssl  1.1.1      (no fix)   CVE-2020-0002  https://example.invalid/CVE-2020-0002
3 vulnerabilities (1 Critical, 1 High, 1 Low), 2 fixable
"""


def test_table_exact_text() -> None:
    out = io.StringIO()
    write_table([_result()], out, False)
    assert out.getvalue() == EXPECTED


def test_table_does_not_depend_on_the_terminal_width() -> None:
    """Rendered in fresh interpreters told the terminal is 20 and 300 columns wide."""
    script = (
        "import io, sys; sys.path[:0] = " + repr(sys.path) + "\n"
        "from tests.clairctl.test_table_gate_vex import _result\n"
        "from clair_common.clairctl.formats.table import write_table\n"
        "write_table([_result()], sys.stdout, False)\n"
    )
    outputs = set()
    for columns in ("20", "300"):
        env = {**os.environ, "COLUMNS": columns, "LINES": "10"}
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(proc.stdout)
    assert outputs == {EXPECTED}


def test_colour_only_when_asked() -> None:
    out = io.StringIO()
    write_table([_result()], out, True)
    assert "\x1b[1;31mCritical" in out.getvalue()


def test_gate_filters_and_fail_on() -> None:
    assert gate_fails([_result()], "Critical")
    only_low = _result(Gate(severities=frozenset({"Low"})))
    assert [f.advisory for f in only_low.findings] == ["CVE-2020-0002"]
    assert only_low.filtered == 2
    assert not gate_fails([only_low], "Medium")
    fixable = _result(Gate(ignore_unfixed=True))
    assert {f.advisory for f in fixable.findings} == {"CVE-2020-0001", "CVE-2020-0003"}


def test_purls() -> None:
    purls = {f.package: f.purl for f in _result().findings}
    assert purls == {
        "openssl": "pkg:apk/alpine/openssl@1.1.1?arch=x86_64&distro=alpine-3.6.0",
        "zlib": "pkg:apk/alpine/zlib@1.2.11?distro=alpine-3.6.0",
    }


def test_purl_matching() -> None:
    have = "pkg:apk/alpine/zlib@1.2.11?distro=alpine-3.6.0"
    assert purl_matches("pkg:apk/alpine/zlib", have)
    assert purl_matches("pkg:apk/alpine/zlib@1.2.11", have)
    assert not purl_matches("pkg:apk/alpine/zlib@1.2.12", have)
    assert purl_matches("pkg:apk/alpine/zlib?distro=alpine-3.6.0", have)
    assert not purl_matches("pkg:apk/alpine/zlib?distro=alpine-3.7.0", have)
    assert not purl_matches("pkg:deb/debian/zlib", have)


def test_openvex_image_product_and_later_statements(tmp_path: Path) -> None:
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "statements": [
            {
                "vulnerability": {"name": "CVE-2020-0003"},
                "products": [
                    {
                        "@id": f"pkg:oci/app@{DIGEST}",
                        "subcomponents": [{"@id": "pkg:apk/alpine/zlib"}],
                    }
                ],
                "status": "not_affected",
            },
            {"vulnerability": "CVE-2020-0001", "products": [DIGEST], "status": "fixed"},
            {"vulnerability": "CVE-2020-0001", "products": [DIGEST], "status": "affected"},
        ],
    }
    path = tmp_path / "v.json"
    path.write_text(json.dumps(doc))
    result = _result(Gate(vex=[load_vex(path)]))
    assert result.suppressed == 1  # the later "affected" statement wins for CVE-2020-0001
    assert {f.advisory for f in result.findings} == {"CVE-2020-0001", "CVE-2020-0002"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "expected a JSON object"),
        ("{", "not JSON"),
        ('{"statements": [{"products": []}]}', r"statements\[0\]: needs"),
        ('{"hello": 1}', "neither OpenVEX"),
    ],
)
def test_bad_vex_names_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VexError, match=message):
        load_vex(path)


KEV_TYPE = (
    "message/vnd.clair.map.vulnerability; enricher=clair.kev"
    " schema=https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities_schema.json"
)
EPSS_TYPE = (
    "message/vnd.clair.map.vulnerability; enricher=clair.epss schema=https://example.invalid"
)


def _exploited() -> ImageResult:
    report = _report()
    report["enrichments"] = {
        KEV_TYPE: [{"12": [{"cve": "CVE-2020-0003", "date_added": "2024-01-01"}]}],
        EPSS_TYPE: [
            {
                "10": [{"cve": "CVE-2020-0001", "epss": 0.42, "percentile": 0.9}],
                "12": [{"cve": "CVE-2020-0003", "epss": 0.97, "percentile": 0.99}],
            }
        ],
    }
    return ImageResult("example/app:1", DIGEST, {}, report)


def test_kev_and_epss_filters() -> None:
    result = _exploited()
    apply_gate(result, Gate(kev_only=True))
    assert [(f.advisory, f.kev) for f in result.findings] == [("CVE-2020-0003", True)]
    result = _exploited()
    apply_gate(result, Gate(min_epss=0.4))
    assert [(f.advisory, f.epss) for f in result.findings] == [
        ("CVE-2020-0003", 0.97),
        ("CVE-2020-0001", 0.42),
    ]
    assert result.filtered == 1  # CVE-2020-0002 has no EPSS score
    result = _exploited()
    apply_gate(result, Gate(min_epss=0.5, fail_on="High"))
    assert gate_fails([result], "High")  # the Critical KEV one remains


def test_table_shows_exploit_data_only_when_present() -> None:
    result = _exploited()
    apply_gate(result, Gate())
    out = io.StringIO()
    write_table([result], out, False)
    lines = out.getvalue().splitlines()
    assert lines[1].split() == [
        "SEVERITY",
        "PACKAGE",
        "INSTALLED",
        "FIXED",
        "IN",
        "ADVISORY",
        "EXPLOIT",
        "LINK",
    ]
    assert "KEV epss=0.97" in lines[2]
    assert "epss=0.42" in lines[3] and "KEV" not in lines[3]
    assert lines[4].split()[6] == "-"
    assert "EXPLOIT" not in EXPECTED
