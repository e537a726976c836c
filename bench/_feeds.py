"""An OS-shaped feed of a million rows: the Debian Security Tracker's JSON and a mirror to match.

The real tracker holds about 40,000 source packages; here every source package this machine has
installed (its dpkg status is the layer bench/_layers.py builds, Debian 12) is in the feed with
its real version, beside synthetic sources that fill the feed up to the requested rows. Each
(source, CVE, release) is one row, as the `debian` updater stores it. Of an installed source's
CVEs, most were fixed before the installed version (not found); every other source has one
fixed in a later version and every third one still open (found), which gives a report of
about the size real Debian images get.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

RELEASES = {"bookworm": "12.15", "bullseye": "11.11"}
CVES_PER_SOURCE = 20
_URGENCIES = ("unimportant", "low", "medium", "high", "not yet assigned")


def installed_sources(status: Path) -> dict[str, str]:
    """Source package name -> installed version (of one of its binaries) from a dpkg status."""
    sources: dict[str, str] = {}
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" not in fields or "installed" not in fields.get("Status", ""):
            continue
        source, _, source_version = fields.get("Source", fields["Package"]).partition(" ")
        version = source_version.strip("()") or fields.get("Version", "")
        sources.setdefault(source, version)
    return sources


def _release_status(rng: random.Random, installed: str | None, k: int, n: int) -> dict[str, str]:
    """Status of the k-th CVE of the n-th source in one release."""
    urgency = _URGENCIES[rng.randrange(len(_URGENCIES))]
    if installed is None:
        if k % 3 == 2:
            return {"status": "open", "urgency": urgency}
        return {
            "status": "resolved",
            "fixed_version": f"{k}.{rng.randrange(9)}-1",
            "urgency": urgency,
        }
    if k == 0 and n % 2 == 0:  # fixed in a later version: found, fixable
        return {"status": "resolved", "fixed_version": installed + "+deb12u99", "urgency": urgency}
    if k == 1 and n % 3 == 0:  # open: found, no fix yet
        return {"status": "open", "urgency": urgency}
    return {"status": "resolved", "fixed_version": "0.0.1-1", "urgency": urgency}


def _sources(installed: dict[str, str], rows: int) -> Iterator[tuple[str, str | None]]:
    yield from installed.items()
    per_source = CVES_PER_SOURCE * len(RELEASES)
    for n in range(max(0, rows // per_source - len(installed))):
        yield f"benchsrc-{n:05d}", None


def write_debian_feed(directory: Path, rows: int, installed: dict[str, str], seed: int = 1) -> int:
    """Write the mirror (`debian/dists/<codename>/Release`) and `tracker.json` under `directory`;
    returns the rows the updater will store."""
    rng = random.Random(seed)
    for codename, number in RELEASES.items():
        release = directory / "debian" / "dists" / codename / "Release"
        release.parent.mkdir(parents=True, exist_ok=True)
        release.write_text(
            f"Origin: Debian\nLabel: Debian\nVersion: {number}\nCodename: {codename}\n"
        )
    written = cve = 0
    with (directory / "tracker.json").open("w") as out:
        out.write("{")
        for index, (source, version) in enumerate(_sources(installed, rows)):
            vulns = {}
            for k in range(CVES_PER_SOURCE):
                cve += 1
                vulns[f"CVE-2099-{cve:07d}"] = {
                    "description": f"Synthetic flaw {cve} in {source}: crafted input overflows",
                    "scope": "local" if cve % 5 else "remote",
                    "releases": {
                        codename: _release_status(rng, version, k, index) for codename in RELEASES
                    },
                }
                written += len(RELEASES)
            out.write(("," if index else "") + json.dumps(source) + ":" + json.dumps(vulns))
        out.write("}")
    return written


def debian_updater_config(base_url: str) -> dict[str, dict[str, str]]:
    """`updaters.config` for a feed written by `write_debian_feed` and served at `base_url`."""
    return {"debian": {"mirror_url": base_url + "debian/", "json_url": base_url + "tracker.json"}}
