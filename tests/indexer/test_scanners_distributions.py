"""Distribution scanners against claircore's test data and `want` files, and real images.

Where claircore keeps no sample (Amazon Linux 2/2023, Photon 3/4/5, SLES 15), the os-release
text below is what those images ship (as documented by their vendors), written out here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clair_common.distributions import (
    debian_distribution,
    oracle_distribution,
    rhel_distribution,
    ubuntu_distribution,
)
from clair_common.models import Distribution
from clair_common.vulnerable.cpe import to_formatted_string
from clair_indexer.scanners import (
    AlpineScanner,
    AwsScanner,
    DebianScanner,
    OracleScanner,
    PhotonScanner,
    RhelScanner,
    Scanner,
    SuseScanner,
    UbuntuScanner,
    default_scanners,
    osrelease,
)
from clair_indexer.scanners.distributions import alpine_distribution
from tests.indexer.test_scanners_base import layer_from_dir, layer_of

CC = "layers/claircore"


def found(
    root: Path, scanner: Scanner, symlinks: dict[str, str] | None = None
) -> list[Distribution]:
    return scanner.scan(layer_from_dir(root, [scanner], symlinks)).distributions


def txtar(data: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    name = ""
    for line in data.splitlines(keepends=True):
        if line.startswith("-- ") and line.rstrip().endswith(" --"):
            name = line.strip()[3:-3]
            sections[name] = ""
        elif name:
            sections[name] += line
    return sections


def _osrelease_cases() -> list[Path]:
    from tests.conftest import data_root

    return sorted((data_root() / CC / "osrelease/testdata").glob("*.txtar"))


@pytest.mark.parametrize("case", _osrelease_cases(), ids=lambda p: p.stem)
def test_osrelease_parse_and_generic_distribution(case: Path) -> None:
    sections = txtar(case.read_text())
    kv = osrelease.parse(sections["os-release"].encode())
    assert kv == json.loads(sections["Parsed"])
    want = json.loads(sections["Distribution"])
    got = osrelease.to_distribution(kv).to_json()
    for key in ("did", "name", "version", "version_code_name", "version_id", "pretty_name"):
        assert got[key] == want.get(key, ""), key
    if "cpe" in want:
        # The URI binding in the file comes out as the 2.3 formatted string, padded with ANY.
        uri = want["cpe"]
        assert uri.startswith("cpe:/")
        assert got["cpe"].startswith("cpe:2.3:" + uri[len("cpe:/") :] + ":*")
    else:
        assert got["cpe"] == ""


def test_osrelease_malformed_line() -> None:
    with pytest.raises(osrelease.OsReleaseError):
        osrelease.parse(b"ID=debian\nnot a pair\n")


def _alpine_cases() -> list[Path]:
    from tests.conftest import data_root

    return sorted((data_root() / CC / "alpine/testdata").iterdir())


@pytest.mark.parametrize("case", _alpine_cases(), ids=lambda p: p.name)
def test_alpine_want_files(case: Path) -> None:
    want = [Distribution.from_json(d) for d in json.loads((case / "want").read_text())]
    assert found(case, AlpineScanner()) == want
    # Each file alone gives the same answer.
    for name in ("etc/os-release", "etc/issue"):
        layer = layer_of({name: (case / name).read_bytes()})
        assert AlpineScanner().scan(layer).distributions == want, name


@pytest.mark.parametrize(
    ("image", "release"),
    [
        ("alpine-3.6.0-docker", "3.6"),
        ("alpine-3.14.0-minirootfs", "3.14"),
        ("alpine-3.15.0-armv7", "3.15"),
        ("alpine-3.16.0-armv7", "3.16"),
    ],
)
def test_alpine_images(shared_data: Path, image: str, release: str) -> None:
    assert found(shared_data / "layers" / image, AlpineScanner()) == [alpine_distribution(release)]


DEBIAN = {7: "wheezy", 8: "jessie", 9: "stretch", 10: "buster", 11: "bullseye", 12: "bookworm"}


@pytest.mark.parametrize("kind", ["dist", "distroless_dist"])
def test_debian_dist_dirs(shared_data: Path, kind: str) -> None:
    dirs = sorted((shared_data / CC / "debian/testdata" / kind).iterdir())
    assert dirs
    for d in dirs:
        major = int(d.name)
        assert found(d, DebianScanner()) == [debian_distribution(DEBIAN[major], major)], d


def test_debian_12_image_via_symlink(shared_data: Path) -> None:
    root = shared_data / "layers/debian-12-bookworm-minbase-debootstrap"
    want = Distribution(
        did="debian",
        name="Debian GNU/Linux",
        version="12 (bookworm)",
        version_code_name="bookworm",
        version_id="12",
        pretty_name="Debian GNU/Linux 12 (bookworm)",
    )
    # In the image etc/os-release -> ../usr/lib/os-release; Clair reads etc/os-release only.
    assert found(root, DebianScanner(), {"etc/os-release": "../usr/lib/os-release"}) == [want]
    assert found(root, DebianScanner()) == []


UBUNTU = {
    "10.04": "lucid", "12.04": "precise", "12.10": "quantal", "13.04": "raring",
    "13.10": "saucy", "14.04": "trusty", "14.10": "utopic", "15.04": "vivid",
    "15.10": "wily", "16.04": "xenial", "16.10": "yakkety", "17.04": "zesty",
    "17.10": "artful", "18.04": "bionic", "18.10": "cosmic", "19.04": "disco",
    "19.10": "eoan", "20.04": "focal", "20.10": "groovy", "21.04": "hirsute",
    "21.10": "impish", "22.04": "jammy", "22.10": "kinetic", "23.04": "lunar",
    "23.10": "mantic",
}  # fmt: skip


def test_ubuntu_dist_dirs(shared_data: Path) -> None:
    dirs = sorted((shared_data / CC / "ubuntu/testdata/dist").iterdir())
    for d in dirs:
        if d.name not in UBUNTU:  # "11" holds a Debian os-release: not Ubuntu
            assert found(d, UbuntuScanner()) == [], d
            continue
        want = [ubuntu_distribution(d.name, UBUNTU[d.name])]
        assert found(d, UbuntuScanner()) == want, d
        for name in ("etc/lsb-release", "etc/os-release"):
            if (d / name).exists():
                layer = layer_of({name: (d / name).read_bytes()})
                assert UbuntuScanner().scan(layer).distributions == want, (d, name)


def test_ubuntu_2004_image_matches_clair_report(shared_data: Path) -> None:
    report = shared_data / "other/claircore/datastore/postgres/testdata"
    doc = json.loads((report / "docker.io-library-ubuntu-20.04.index.json").read_text())
    (clair,) = doc["distributions"].values()
    clair["id"] = ""
    got = found(shared_data / "layers/ubuntu-20.04-base-jason416", UbuntuScanner())
    assert [d.to_json() for d in got] == [clair]
    assert clair["version"] == "20.04 (Focal)"


RELEASEFILES = f"{CC}/rhel/testdata/releasefiles"


@pytest.mark.parametrize(
    ("case", "rhel", "oracle"),
    [
        ("7", 7, None),
        ("8", 8, None),
        ("9", 9, None),
        ("atomichost-7", 7, None),
        ("hummingbird", None, None),
        ("oracle-6", None, 6),
        ("oracle-7", None, 7),
        ("oracle-8", None, 8),
        ("oracle-9", None, 9),
    ],
)
def test_rhel_and_oracle_release_files(
    shared_data: Path, case: str, rhel: int | None, oracle: int | None
) -> None:
    root = shared_data / RELEASEFILES / case
    assert found(root, RhelScanner()) == ([rhel_distribution(rhel)] if rhel else [])
    assert found(root, OracleScanner()) == ([oracle_distribution(oracle)] if oracle else [])


def test_rhel_matches_clair_report(shared_data: Path) -> None:
    report = shared_data / "other/claircore/datastore/postgres/testdata"
    doc = json.loads((report / "registry.access.redhat.com-ubi8-ubi.index.json").read_text())
    (clair,) = doc["distributions"].values()
    clair["id"] = ""
    assert rhel_distribution(8).to_json() == clair


def test_amazon_linux_1_matches_clair_report(shared_data: Path) -> None:
    report = shared_data / "other/claircore/datastore/postgres/testdata"
    doc = json.loads((report / "docker.io-library-amazonlinux-1.index.json").read_text())
    (clair,) = doc["distributions"].values()
    clair["id"] = ""
    al1 = (
        'NAME="Amazon Linux AMI"\nVERSION="2018.03"\nID="amzn"\nID_LIKE="rhel fedora"\n'
        'VERSION_ID="2018.03"\nPRETTY_NAME="Amazon Linux AMI 2018.03"\nANSI_COLOR="0;33"\n'
        'CPE_NAME="cpe:/o:amazon:linux:2018.03:ga"\nHOME_URL="http://aws.amazon.com/amazon-linux-ami/"\n'
    )
    (got,) = AwsScanner().scan(layer_of({"etc/os-release": al1})).distributions
    assert got.to_json() == clair


# Documented os-release files (no sample in the shared data).
AL2 = """NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"
HOME_URL="https://amazonlinux.com/"
"""
AL2023 = """NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.6.20241212"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
SUPPORT_END="2029-06-30"
"""


@pytest.mark.parametrize(("text", "ver"), [(AL2, "2"), (AL2023, "2023")])
def test_amazon_linux_2_and_2023(text: str, ver: str) -> None:
    # AL2023 ships etc/os-release as a symlink into usr/lib.
    layer = layer_of({"usr/lib/os-release": text}, {"etc/os-release": "../usr/lib/os-release"})
    (got,) = AwsScanner().scan(layer).distributions
    assert got == Distribution(
        did="amzn",
        name="Amazon Linux",
        version=ver,
        version_id=ver,
        pretty_name=f"Amazon Linux {ver}",
        cpe=f"cpe:2.3:o:amazon:amazon_linux:{ver}:*:*:*:*:*:*:*",
    )


def photon(ver: str) -> str:
    return (
        f'NAME="VMware Photon OS"\nVERSION="{ver}"\nID=photon\nVERSION_ID={ver}\n'
        'PRETTY_NAME="VMware Photon OS/Linux"\nANSI_COLOR="1;34"\n'
        'HOME_URL="https://vmware.github.io/photon/"\n'
    )


@pytest.mark.parametrize("ver", ["3.0", "4.0", "5.0"])
def test_photon(ver: str) -> None:
    (got,) = PhotonScanner().scan(layer_of({"etc/os-release": photon(ver)})).distributions
    assert got == Distribution(
        did="photon",
        name="VMware Photon OS",
        version=ver,
        version_id=ver,
        pretty_name="VMware Photon OS/Linux",
    )
    release = layer_of({"etc/photon-release": f"VMware Photon OS {ver}\nPHOTON_BUILD_NUMBER=1\n"})
    assert PhotonScanner().scan(release).distributions == [got]


SLES15 = """NAME="SLES"
VERSION="15-SP4"
VERSION_ID="15.4"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP4"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15:sp4"
DOCUMENTATION_URL="https://documentation.suse.com/"
"""


def test_suse(shared_data: Path) -> None:
    (sles,) = SuseScanner().scan(layer_of({"etc/os-release": SLES15})).distributions
    assert sles == Distribution(
        did="sles",
        name="SLES",
        version="15",
        version_id="15",
        pretty_name="SUSE Linux Enterprise Server 15",
    )
    leap_text = txtar((shared_data / CC / "osrelease/testdata/OpenSUSe.txtar").read_text())
    (leap,) = (
        SuseScanner().scan(layer_of({"etc/os-release": leap_text["os-release"]})).distributions
    )
    assert leap == Distribution(
        did="opensuse-leap",
        name="openSUSE Leap",
        version="15.1",
        version_id="15.1",
        pretty_name="openSUSE Leap 15.1",
    )
    old = layer_of({"etc/SuSE-release": "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\n"})
    assert [d.version_id for d in SuseScanner().scan(old).distributions] == ["11"]


def test_only_the_right_scanner_answers(shared_data: Path) -> None:
    """Every distribution scanner sees every sample; only the owner reports a distribution."""
    samples = {
        "debian": shared_data / CC / "debian/testdata/dist/12",
        "ubuntu": shared_data / CC / "ubuntu/testdata/dist/22.04",
        "alpine": shared_data / CC / "alpine/testdata/3.18",
        "rhel": shared_data / RELEASEFILES / "9",
        "oracle": shared_data / RELEASEFILES / "oracle-8",
    }
    dist_scanners = [s for s in default_scanners() if s.kind == "distribution"]
    for owner, root in samples.items():
        layer = layer_from_dir(root, dist_scanners)
        answered = {s.name for s in dist_scanners if s.scan(layer).distributions}
        assert answered == {owner}, root


def test_cpe_binding_matches_clair_report(shared_data: Path) -> None:
    """Clair's own report pairs each repository's CPE URI with its 2.3 formatted string."""
    report = shared_data / "other/claircore/datastore/postgres/testdata"
    doc = json.loads((report / "registry.access.redhat.com-ubi8-ubi.index.json").read_text())
    repos = [r for r in doc["repository"].values() if r.get("name", "").startswith("cpe:/")]
    assert repos
    for repo in repos:
        assert to_formatted_string(repo["name"]) == repo["cpe"]
