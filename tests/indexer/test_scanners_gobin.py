"""Go executables: build information read as the layer streams by (scanners/gobin*.py).

Real binaries: Debian's docker-registry (Go 1.19, built without module information), and
binaries the Debian Go toolchain builds here (modules, a replacement; ELF, PE and Mach-O).
The pre-1.18 pointer format comes from a hand-assembled ELF (no such toolchain on Debian 12).
"""

from __future__ import annotations

import io
import logging
import random
import struct
import tarfile
from pathlib import Path

import pytest

from clair_common.models import Package
from clair_indexer.layer import read_layer
from clair_indexer.scanners import GoBinaryScanner, default_scanners
from clair_indexer.scanners.gobin import parse_modinfo
from clair_indexer.scanners.gobin_probe import MAGIC, BuildInfoProbe
from tests.fixtures.gobuild import APP_DEPS, build_go_binary, go_app, go_cache  # noqa: F401
from tests.fixtures.images import Mode, build_layer

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
SENTINEL_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
SENTINEL_END = bytes.fromhex("f932433186182072008242104116d8f2")


def _scan(files: dict[str, Mode | bytes]) -> list[Package]:
    scanner = GoBinaryScanner()
    contents = read_layer(io.BytesIO(build_layer(files)), scanner.wants, prober=scanner.probe)
    return scanner.scan(contents).packages


def _names(packages: list[Package]) -> list[tuple[str, str]]:
    return [(p.name, p.version) for p in packages]


def test_debian_registry_binary_yields_its_toolchain() -> None:
    data = REGISTRY_BINARY.read_bytes()
    packages = _scan({"usr/bin/docker-registry": Mode(data, 0o755)})
    # Debian builds in GOPATH mode: the path is recorded, no module versions.
    assert _names(packages) == [("stdlib", "go1.19.8")]
    (stdlib,) = packages
    assert stdlib.package_db == "go:usr/bin/docker-registry"
    assert stdlib.filepath == "usr/bin/docker-registry"
    assert stdlib.normalized_version == "semver:0.1.19.8.0.0.0.0.0.0"
    assert stdlib.repository_hint == "https://pkg.go.dev/"


def test_only_executables_are_read() -> None:
    data = REGISTRY_BINARY.read_bytes()
    assert _scan({"usr/bin/docker-registry": Mode(data, 0o644)}) == []
    assert _scan({"usr/bin/tool": Mode(b"#!/bin/sh\n" + b"x" * 4096, 0o755)}) == []


def test_built_binary_modules_and_replacement(
    go_app: Path,  # noqa: F811
) -> None:
    packages = _scan({"app/server": Mode(go_app.read_bytes(), 0o755)})
    assert _names(packages) == [
        ("stdlib", "go1.19.8"),
        ("example.com/clairtest", "(devel)"),
        ("golang.org/x/net", "v0.7.0"),  # the replacement, not the v0.0.1 it replaces
        ("golang.org/x/text", "v0.3.6"),
    ]
    assert {p.package_db for p in packages} == {"go:app/server"}
    assert packages[1].normalized_version == ""
    assert packages[2].normalized_version == "semver:0.0.7.0.0.0.0.0.0.0"


@pytest.mark.parametrize("goos", ["windows", "darwin"])
def test_pe_and_macho_binaries(
    tmp_path: Path,
    go_cache: Path,  # noqa: F811
    goos: str,
) -> None:
    binary = build_go_binary(
        tmp_path, "example.com/clairtest", APP_DEPS[:1], go_cache, env={"GOOS": goos}
    )
    magic = binary.read_bytes()[:4]
    assert magic[:2] == b"MZ" if goos == "windows" else magic == b"\xcf\xfa\xed\xfe"
    packages = _scan({"bin/app": Mode(binary.read_bytes(), 0o755)})
    assert _names(packages)[2:] == [("golang.org/x/text", "v0.3.6")]


def _step(sizes: random.Random | int | None, whole: int) -> int:
    if isinstance(sizes, random.Random):
        return sizes.randint(1, 70_000)
    return sizes or whole


def _feed(
    data: bytes, sizes: random.Random | int | None, retain: int | None = None
) -> bytes | None:
    probe = (
        BuildInfoProbe("x", len(data)) if retain is None else BuildInfoProbe("x", len(data), retain)
    )
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        step = _step(sizes, len(data))
        wanted = probe.feed(offset, view[offset : offset + step])
        if wanted < 0:
            break
        offset = max(wanted, offset + step)
    return probe.result()


def test_streaming_in_any_chunk_sizes_reads_the_same(
    go_app: Path,  # noqa: F811
) -> None:
    data = go_app.read_bytes()
    whole = _feed(data, None)
    assert whole is not None
    for seed in range(5):
        assert _feed(data, random.Random(seed)) == whole


# -- the pointer format (Go 1.13-1.17), assembled by hand -----------------------------------


def _elf_pointer_format(version: bytes, modinfo: bytes, big_endian: bool = False) -> bytes:
    """An ELF64 with a read-only segment holding the strings and a writable one holding the
    build information header and two Go string headers pointing at them."""
    order = ">" if big_endian else "<"
    ro_vaddr, rw_vaddr = 0x400000, 0x600000
    rodata = bytearray(0x1000)
    ver_at, mod_at = 0x200, 0x300
    note = struct.pack(order + "III", 4, 8, 4) + b"Go\0\0" + b"build-id"  # .note.go.buildid
    rodata[0x100 : 0x100 + len(note)] = note
    rodata[ver_at : ver_at + len(version)] = version
    wrapped = SENTINEL_START + modinfo + SENTINEL_END
    rodata[mod_at : mod_at + len(wrapped)] = wrapped
    rw_off = len(rodata)
    data = bytearray(0x100)
    hdr_at, strings_at = 0x40, 0x80
    data[hdr_at : hdr_at + 16] = MAGIC + bytes([8, 1 if big_endian else 0])
    struct.pack_into(
        order + "QQ", data, hdr_at + 16, rw_vaddr + strings_at, rw_vaddr + strings_at + 16
    )
    struct.pack_into(
        order + "QQQQ",
        data,
        strings_at,
        ro_vaddr + ver_at,
        len(version),
        ro_vaddr + mod_at,
        len(wrapped),
    )
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    header = struct.pack(
        order + "16sHHIQQQIHHHHHH", ident, 2, 62, 1, 0, 64, 0, 0, 64, 56, 3, 0, 0, 0
    )
    phdrs = struct.pack(order + "IIQQQQQQ", 1, 4, 0, ro_vaddr, ro_vaddr, rw_off, rw_off, 0x1000)
    phdrs += struct.pack(
        order + "IIQQQQQQ", 1, 6, rw_off, rw_vaddr, rw_vaddr, len(data), len(data), 0x1000
    )
    phdrs += struct.pack(
        order + "IIQQQQQQ", 4, 4, 0x100, ro_vaddr + 0x100, 0, len(note), len(note), 4
    )
    rodata[: len(header) + len(phdrs)] = header + phdrs
    return bytes(rodata + data)


MODINFO = (
    b"path\texample.com/old/cmd\nmod\texample.com/old\tv1.4.0\th1:x=\n"
    b"dep\tgithub.com/gorilla/websocket\tv1.4.0\th1:y=\n"
)


@pytest.mark.parametrize("big_endian", [False, True])
def test_pointer_format(big_endian: bool) -> None:
    elf = _elf_pointer_format(b"go1.16.5", MODINFO, big_endian)
    packages = _scan({"usr/local/bin/old": Mode(elf, 0o755)})
    assert _names(packages) == [
        ("stdlib", "go1.16.5"),
        ("example.com/old", "v1.4.0"),
        ("github.com/gorilla/websocket", "v1.4.0"),
    ]
    for seed in range(3):
        assert _feed(elf, random.Random(seed)) is not None


def test_pointer_format_beyond_the_look_back_window_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    elf = _elf_pointer_format(b"go1.16.5", MODINFO)
    with caplog.at_level(logging.INFO, "clair.indexer.scanners.gobin"):
        assert _feed(elf, 512, retain=700) is None  # the module information starts at 768
    assert "look-back window" in caplog.text


# -- hostile and corrupt files ----------------------------------------------------------------


def _corrupt_cases() -> dict[str, tuple[bytes, str]]:
    good = _elf_pointer_format(b"go1.16.5", MODINFO)
    hdr = good.index(MAGIC)
    cases = {}
    bad_ptr = bytearray(good)
    struct.pack_into("<Q", bad_ptr, hdr + 16, 0xDEAD0000)
    cases["pointer outside"] = (bytes(bad_ptr), "not in the file")
    huge = bytearray(good)
    strings_at = struct.unpack_from("<Q", good, hdr + 16)[0] - 0x600000 + 0x1000
    struct.pack_into("<Q", huge, strings_at + 8, 1 << 40)
    cases["huge length"] = (bytes(huge), "build information string of")
    bad_size = bytearray(good)
    bad_size[hdr + 14] = 3
    cases["pointer size"] = (bytes(bad_size), "pointer size 3")
    phnum = bytearray(good)
    struct.pack_into("<H", phnum, 0x38, 2000)
    cases["program headers"] = (bytes(phnum), "beyond the first")
    segment = bytearray(good)
    struct.pack_into("<Q", segment, 64 + 56 + 32, 1 << 30)  # the RW segment's filesz
    cases["segment past end"] = (bytes(segment), "runs past the end")
    inline = bytearray(good)
    inline[hdr + 15] = 2
    inline[hdr + 32 : hdr + 42] = b"\xff" * 10
    cases["bad varint"] = (bytes(inline), "malformed string length")
    cut = good[: hdr + 20]
    cases["cut short"] = (cut + bytes(max(0, 1024 - len(cut))), "")
    return cases


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_corrupt_binaries_are_skipped_with_a_reason(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, reason = _corrupt_cases()[case]
    with caplog.at_level(logging.INFO, "clair.indexer.scanners.gobin"):
        packages = _scan({"bin/bad": Mode(data, 0o755), "bin/also-bad": Mode(data[:1500], 0o755)})
    assert packages == []
    assert "bin/bad skipped" in caplog.text or not reason
    assert reason in caplog.text


def test_random_garbage_behind_an_elf_magic_never_raises() -> None:
    rng = random.Random(7)
    for _ in range(200):
        size = rng.randint(1024, 8192)
        data = b"\x7fELF" + bytes([rng.choice((1, 2)), rng.choice((1, 2))]) + rng.randbytes(size)
        assert _feed(data, random.Random(size)) is None


def test_default_scanner_set_probes_go_binaries() -> None:
    names = [s.name for s in default_scanners()]
    assert "gobin" in names


def test_modinfo_parsing() -> None:
    info = parse_modinfo(
        "go1.22.1",
        "path\tx/cmd\nmod\tx\tv0.1.0\th1:a\n=>\tx\tv0.2.0\th1:b\n"
        "dep\ty\tv1.0.0\th1:c\n=>\t../local/y\t\t\ndep\tz\tv2.0.0+incompatible\th1:d\n"
        "build\tvcs=git\nbuild\tvcs.revision=0123456789012345678901234567890123456789\n",
    )
    assert info.main is not None and (info.main.path, info.main.version) == ("x", "v0.2.0")
    assert [(d.path, d.version) for d in info.deps] == [
        ("../local/y", ""),
        ("z", "v2.0.0+incompatible"),
    ]
    assert ("vcs", "git") in info.settings


def test_layer_tar_with_hardlinked_and_tiny_executables() -> None:
    """A tar made by tarfile directly: hard links to a binary are not probed twice."""
    data = REGISTRY_BINARY.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("usr/bin/registry")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("usr/bin/registry-link")
        link.type, link.linkname, link.mode = tarfile.LNKTYPE, "usr/bin/registry", 0o755
        tar.addfile(link)
        tiny = tarfile.TarInfo("usr/bin/tiny")
        tiny.size, tiny.mode = 4, 0o755
        tar.addfile(tiny, io.BytesIO(b"\x7fELF"))
    scanner = GoBinaryScanner()
    buf.seek(0)
    contents = read_layer(buf, scanner.wants, prober=scanner.probe)
    assert list(contents.probed) == ["usr/bin/registry"]
