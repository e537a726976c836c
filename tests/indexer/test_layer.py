from __future__ import annotations

import io
import os
import posixpath
import random
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from isal import igzip

from clair_indexer._tar import normalize_path
from clair_indexer.layer import (
    LayerFormatError,
    LayerLimitError,
    LayerLimits,
    open_decompressed,
    read_layer,
    sniff_compression,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

DPKG_LAYER = (
    "layers/claircore/dpkg/testdata/"
    "sha256.3c9020349340788076971d5ea638b71e35233fd8e149e269d8eebfa17960c03f.replacethissuffix"
)
FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
LONG_DIR = "usr/share/" + "/".join(f"directory-{i:02d}" for i in range(8))  # > 100 chars


def _split(data: bytes, parts: int) -> list[bytes]:
    step = max(1, len(data) // parts)
    return [data[i : i + step] for i in range(0, len(data), step)]


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda data: data,
    "gzip": lambda data: igzip.compress(data, 1),
    "gzip-multi-member": lambda data: b"".join(igzip.compress(p) for p in _split(data, 3)),
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "zstd-multi-frame": lambda data: b"".join(
        zstandard.ZstdCompressor(write_checksum=True, write_content_size=False).compress(p)
        for p in _split(data, 3)
    ),
}


def _regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, b""


def build_tar(
    members: list[tuple[tarfile.TarInfo, bytes]], tar_format: int = tarfile.PAX_FORMAT
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def raw_member(info: tarfile.TarInfo, data: bytes) -> bytes:
    """One ustar member whose header and body may disagree (for crafted archives)."""
    header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    return header + data + bytes(-len(data) % 512)


def pax_record(key: str, value: str) -> bytes:
    text = f" {key}={value}\n".encode()
    length = len(text) + len(str(len(text)))
    length = len(text) + len(str(length))  # the length counts its own digits
    return str(length).encode() + text


def pax_member(records: dict[str, str], kind: bytes = tarfile.XHDTYPE) -> bytes:
    body = b"".join(pax_record(key, value) for key, value in records.items())
    info = tarfile.TarInfo("PaxHeader")
    info.type, info.size = kind, len(body)
    return raw_member(info, body)


def sample_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        _special("./", tarfile.DIRTYPE),
        _special("./etc", tarfile.DIRTYPE),
        _regular("./etc/os-release-real", b"ID=debian\n"),
        _special("./etc/os-release", tarfile.SYMTYPE, "../usr/lib/os-release"),
        _regular("./var/lib/dpkg/status", b"Package: bash\n" * 500),
        _regular("./var/lib/dpkg/unwanted", os.urandom(3000)),
        _special("./var/lib/dpkg/status.hard", tarfile.LNKTYPE, "./var/lib/dpkg/status"),
        _special("./var/lib/dpkg/unwanted.hard", tarfile.LNKTYPE, "var/lib/dpkg/unwanted"),
        _regular(f"./{LONG_DIR}/copyright", b"long name content"),
        _special(f"./{LONG_DIR}/link", tarfile.SYMTYPE, "copyright"),
        _regular("./opt/app/.wh.removed", b""),
        _regular("./opt/.wh..wh..opq", b""),
        _regular(".wh.toplevel", b""),
    ]


def wanted_sample(path: str) -> bool:
    return path.startswith(("var/lib/dpkg/status", "usr/share/")) or path.endswith("real")


@pytest.mark.parametrize("compression", COMPRESSORS)
@pytest.mark.parametrize("tar_format", FORMATS)
def test_reads_wanted_files_links_and_whiteouts(compression: str, tar_format: str) -> None:
    blob = COMPRESSORS[compression](build_tar(sample_members(), FORMATS[tar_format]))

    contents = read_layer(io.BytesIO(blob), wanted_sample)

    status = b"Package: bash\n" * 500
    assert contents.files == {
        "etc/os-release-real": b"ID=debian\n",
        "var/lib/dpkg/status": status,
        "var/lib/dpkg/status.hard": status,
        f"{LONG_DIR}/copyright": b"long name content",
    }
    assert contents.symlinks == {
        "etc/os-release": "../usr/lib/os-release",
        f"{LONG_DIR}/link": "copyright",
    }
    assert contents.hardlinks == {
        "var/lib/dpkg/status.hard": "var/lib/dpkg/status",
        "var/lib/dpkg/unwanted.hard": "var/lib/dpkg/unwanted",
    }
    assert contents.whiteouts == {"opt/app/removed", "toplevel"}
    assert contents.opaque_dirs == {"opt"}
    assert contents.dirs == {"etc"}
    assert contents.compression == compression.split("-")[0].replace("plain", "none")
    assert contents.member_count >= len(sample_members())


@pytest.mark.parametrize("tar_format", ["gnu", "pax"])
def test_long_link_targets(tar_format: str) -> None:
    long_target = f"{LONG_DIR}/" + "t" * 120
    blob = build_tar(
        [
            _regular(long_target, b"target"),
            _special("hard", tarfile.LNKTYPE, long_target),
            _special("soft", tarfile.SYMTYPE, "/" + long_target),
        ],
        FORMATS[tar_format],
    )
    contents = read_layer(io.BytesIO(igzip.compress(blob)), lambda _: True)
    assert contents.files == {long_target: b"target", "hard": b"target"}
    assert contents.hardlinks == {"hard": long_target}
    assert contents.symlinks == {"soft": "/" + long_target}


def test_real_dpkg_layer_matches_tarfile(shared_data: Path) -> None:
    layer = shared_data / DPKG_LAYER
    with tarfile.open(layer) as archive:
        member = archive.extractfile("./var/lib/dpkg/status")
        assert member is not None
        expected = member.read()
    plain = layer.read_bytes()
    for blob in (plain, igzip.compress(plain), zstandard.ZstdCompressor().compress(plain)):
        contents = read_layer(io.BytesIO(blob), lambda path: path == "var/lib/dpkg/status")
        assert contents.files == {"var/lib/dpkg/status": expected}
        assert contents.dirs == {"var", "var/lib", "var/lib/dpkg"}
        assert contents.member_count == 7
        # 7 headers, 3 padded files, the two-block trailer; tar's record padding is not read.
        padded = sum(-(-size // 512) * 512 for size in (67321, 67234, 59641))
        assert contents.uncompressed_size == 7 * 512 + padded + 1024 < len(plain)
    from_path = read_layer(layer, lambda path: path.startswith("var/lib/dpkg/"))
    assert set(from_path.files) == {
        "var/lib/dpkg/status",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/available",
    }


class TrickleReader(io.BytesIO):
    """A stream that returns short reads, as sockets do, so chunks straddle tar blocks."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self._step = step

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(self._step if size is None or size < 0 else min(size, self._step))

    def readinto(self, buffer: Buffer, /) -> int:
        view = memoryview(buffer).cast("B")
        return super().readinto(view[: self._step])


names = st.lists(
    st.text("abc./-_é", min_size=1, max_size=150).filter(lambda n: "\0" not in n),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(st.tuples(names, st.binary(max_size=3000)), min_size=1, max_size=6),
    step=st.integers(1, 1500),
    tar_format=st.sampled_from(list(FORMATS.values())),
    compression=st.sampled_from(["plain", "gzip", "zstd-multi-frame"]),
)
def test_matches_tarfile_for_arbitrary_members(
    entries: list[tuple[list[str], bytes]], step: int, tar_format: int, compression: str
) -> None:
    members = [_regular("/".join(parts), data) for parts, data in entries]
    try:
        plain = build_tar(members, tar_format)
    except ValueError:  # name not representable in this format (e.g. ustar limits)
        return
    expected: dict[str, bytes] = {}
    for info, data in members:
        normalized = os.path.normpath(info.name.lstrip("/"))
        if normalized not in (".", "..") and not normalized.startswith("../"):
            expected[normalized] = data
    blob = COMPRESSORS[compression](plain)

    contents = read_layer(TrickleReader(blob, step), lambda _: True)

    assert contents.files == expected


def test_big_member_straddles_chunks_and_source_stays_open(tmp_path: Path) -> None:
    big = os.urandom(3 << 20) + b"tail"
    blob = igzip.compress(build_tar([_regular("big.bin", big), _regular("after", b"x")]))
    source = io.BytesIO(blob)
    contents = read_layer(source, lambda path: True)
    assert contents.files == {"big.bin": big, "after": b"x"}
    assert not source.closed
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(blob)
    assert read_layer(path, lambda p: p == "after").files == {"after": b"x"}


def test_later_entry_replaces_earlier_one() -> None:
    blob = build_tar(
        [
            _regular("etc/os-release", b"first"),
            _special("etc/os-release", tarfile.SYMTYPE, "../usr/lib/os-release"),
            _regular("usr/lib/os-release", b"ID=a"),
            _regular("usr/lib/os-release", b"ID=b"),
        ]
    )
    contents = read_layer(io.BytesIO(blob), lambda _: True)
    assert contents.files == {"usr/lib/os-release": b"ID=b"}
    assert contents.symlinks == {"etc/os-release": "../usr/lib/os-release"}


def test_pax_records_override_header_fields() -> None:
    body = b"0123456789abcdef"
    info = tarfile.TarInfo("short-name")
    info.size = 0  # the PAX size wins
    blob = b"".join(
        [
            pax_member({"comment": "global", "path": "global/ignored"}, tarfile.XGLTYPE),
            pax_member({"path": "pax/" + "n" * 200, "size": str(len(body))}),
            raw_member(info, body),
            pax_member({"GNU.sparse.major": "1", "GNU.sparse.name": "sparse"}),
            raw_member(_regular("sparse-data", b"map")[0], b"map"),
            pax_member({"path": ""}, tarfile.XGLTYPE),  # empty value deletes the global path
            raw_member(_regular("plain", b"p")[0], b"p"),
            bytes(1024),
        ]
    )
    contents = read_layer(io.BytesIO(blob), lambda _: True)
    assert contents.files == {"pax/" + "n" * 200: body, "plain": b"p"}
    assert contents.skipped == {"global/ignored": "sparse files are not supported"}


def test_old_style_directories_and_aufs_metadata() -> None:
    old_dir = tarfile.TarInfo("olddir/")
    old_dir.type = tarfile.AREGTYPE
    sparse = tarfile.TarInfo("sparse")
    sparse.type, sparse.size = tarfile.GNUTYPE_SPARSE, 600
    blob = b"".join(
        [
            raw_member(old_dir, b""),
            raw_member(sparse, bytes(600)),
            raw_member(_regular(".wh..wh.aufs", b"")[0], b""),
            raw_member(_regular("a/.wh..hidden", b"")[0], b""),
            bytes(1024),
        ]
    )
    contents = read_layer(io.BytesIO(blob), lambda _: True)
    assert contents.dirs == {"olddir"}
    assert contents.files == {}
    assert contents.whiteouts == {"a/.hidden"}
    assert contents.skipped == {"sparse": "sparse files are not supported"}
    assert issubclass(LayerFormatError, ValueError)


def test_path_traversal_is_normalized_or_skipped() -> None:
    blob = build_tar(
        [
            _regular("../../etc/passwd", b"evil"),
            _regular("a/../../escape", b"evil"),
            _regular("/abs/path", b"abs"),
            _regular("./x/./y//z", b"xyz"),
            _regular("a/b/../c", b"c"),
            _special("link", tarfile.LNKTYPE, "../../etc/shadow"),
        ]
    )
    contents = read_layer(io.BytesIO(blob), lambda _: True)
    assert contents.files == {"abs/path": b"abs", "x/y/z": b"xyz", "a/c": b"c"}
    assert set(contents.skipped) == {"../../etc/passwd", "a/../../escape", "link"}
    assert contents.hardlinks == {}


def test_missing_trailer_is_tolerated_on_a_header_boundary() -> None:
    plain = build_tar([_regular("a", b"hello"), _regular("b", b"world")])
    stripped = plain[: 4 * 512]  # two headers + two data blocks, no zero blocks
    contents = read_layer(io.BytesIO(stripped), lambda _: True)
    assert contents.files == {"a": b"hello", "b": b"world"}
    assert read_layer(io.BytesIO(b""), lambda _: True).files == {}


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"./\0\0\0\0", "none"),
        (b"", "none"),
    ],
)
def test_sniff_compression(head: bytes, expected: str) -> None:
    assert sniff_compression(head) == expected


@pytest.mark.parametrize(
    ("head", "name"),
    [(b"BZh91AY&SY", "bzip2"), (b"\xfd7zXZ\x00\x00", "xz"), (b"\x04\x22\x4d\x18", "lz4")],
)
def test_unsupported_compression_is_named(head: bytes, name: str) -> None:
    with pytest.raises(LayerFormatError, match=f"unsupported layer compression: {name}"):
        read_layer(io.BytesIO(head + os.urandom(600)), lambda _: True)


def _payload() -> bytes:
    rng = random.Random(7)
    members = [_regular(f"f{i}", rng.randbytes(rng.randint(0, 40000))) for i in range(40)]
    return build_tar(members)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("compression", ["gzip", "zstd", "zstd-multi-frame", "plain"])
def test_truncation_anywhere_is_an_error(compression: str) -> None:
    plain = _payload()
    blob = COMPRESSORS[compression](plain)
    cuts = [len(blob) * k // 17 for k in range(1, 17)]
    for cut in cuts:
        if compression == "plain":  # cut inside a block: a header boundary is a clean end
            cut = cut - cut % 512 + 100
        with pytest.raises(LayerFormatError, match="truncated"):
            read_layer(io.BytesIO(blob[:cut]), lambda _: True)


def test_zstd_truncated_on_a_block_boundary() -> None:
    # zstd emits whole blocks only, so a cut between blocks yields clean-looking tar data.
    plain = build_tar([_regular(f"f{i}", bytes(512 * 300)) for i in range(4)])
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    frames = compressor.compressobj()
    header_boundary = 2 * (512 + 512 * 300)
    blob = frames.compress(plain[:header_boundary]) + frames.flush(
        zstandard.COMPRESSOBJ_FLUSH_BLOCK
    )
    with pytest.raises(LayerFormatError, match="zstd stream truncated"):
        read_layer(io.BytesIO(blob), lambda _: True)


def test_garbage_is_not_a_tar() -> None:
    garbage = random.Random(1).randbytes(4096)
    with pytest.raises(LayerFormatError, match="not a tar archive"):
        read_layer(io.BytesIO(b"\x00\x01" + garbage), lambda _: True)
    with pytest.raises(LayerFormatError, match="gzip"):
        read_layer(io.BytesIO(b"\x1f\x8b\x08\x00" + garbage), lambda _: True)
    with pytest.raises(LayerFormatError, match="zstd"):
        read_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + garbage), lambda _: True)


def test_checksum_mismatch_names_the_offset() -> None:
    plain = bytearray(
        build_tar([_regular("a", b"x" * 10), _regular("b", b"y")], tarfile.GNU_FORMAT)
    )
    plain[1024] ^= 0x20  # first byte of the second header's name
    with pytest.raises(LayerFormatError, match="header checksum mismatch at offset 1024"):
        read_layer(io.BytesIO(igzip.compress(bytes(plain))), lambda _: True)


def test_malformed_headers_are_errors() -> None:
    bad_pax = pax_member({"path": "x"}).replace(pax_record("path", "x"), b"99 path=x\n")
    with pytest.raises(LayerFormatError, match="malformed PAX"):
        read_layer(io.BytesIO(bad_pax + bytes(1024)), lambda _: True)
    lone_zero = bytes(512) + raw_member(_regular("a", b"a")[0], b"a")
    with pytest.raises(LayerFormatError, match="lone zero block"):
        read_layer(io.BytesIO(lone_zero), lambda _: True)


def test_limits_are_enforced() -> None:
    blob = build_tar([_regular("big", bytes(5000)), _regular("small", bytes(100))])
    # Unwanted big members are fine; wanted ones are not.
    small_only = read_layer(io.BytesIO(blob), lambda p: p == "small", LayerLimits(200))
    assert small_only.files == {"small": bytes(100)}
    with pytest.raises(LayerLimitError, match="'big' is 5000 bytes"):
        read_layer(io.BytesIO(blob), lambda _: True, LayerLimits(max_member_size=4096))
    with pytest.raises(LayerLimitError, match="wanted files exceed"):
        read_layer(io.BytesIO(blob), lambda _: True, LayerLimits(max_total_wanted=5050))
    with pytest.raises(LayerLimitError, match="more than 1 tar members"):
        read_layer(io.BytesIO(blob), lambda _: True, LayerLimits(max_members=1))
    huge_pax = pax_member({"comment": "c" * 3000})
    with pytest.raises(LayerLimitError, match="metadata header"):
        read_layer(io.BytesIO(huge_pax), lambda _: True, LayerLimits(max_header_size=2048))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_decompression_bomb_stops_early(compression: str) -> None:
    header = tarfile.TarInfo("bomb")
    header.size = 1 << 30
    zeros = bytes(1 << 20)
    if compression == "gzip":  # 1 GiB of zeros as 1024 identical ~1 KiB gzip members
        blob = igzip.compress(header.tobuf()) + igzip.compress(zeros) * 1024
    else:
        compressor = zstandard.ZstdCompressor()
        blob = compressor.compress(header.tobuf()) + compressor.compress(zeros) * 1024
    assert len(blob) < 4 << 20
    limits = LayerLimits(max_uncompressed=16 << 20)
    start = time.perf_counter()
    with pytest.raises(LayerLimitError, match="decompressed size exceeds limit of 16777216"):
        read_layer(io.BytesIO(blob), lambda _: False, limits)
    assert time.perf_counter() - start < 2


def test_open_decompressed_feeds_tarfile() -> None:
    plain = build_tar(sample_members(), tarfile.GNU_FORMAT)
    with (
        open_decompressed(io.BytesIO(COMPRESSORS["zstd-multi-frame"](plain))) as reader,
        tarfile.open(fileobj=reader, mode="r|") as archive,
    ):
        assert reader.compression == "zstd"
        names = [member.name.rstrip("/") for member in archive]
    assert names == [info.name.rstrip("/") for info, _ in sample_members()]


@pytest.mark.parametrize(
    "name",
    [
        "a/b",
        "a/b/",
        "a/b//",
        "./a",
        "/a/b",
        "a/./b",
        "a/../b",
        "../a",
        "a/..",
        ".",
        "",
        "a./b",
        ".wh.x",
        "a/.wh.x",
        "a//b",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "a/b/.",
        "..a/b",
    ],
)
def test_normalize_path_agrees_with_posixpath(name: str) -> None:
    assert normalize_path(name) == _normalized_slowly(name)


@given(st.text(alphabet="ab./", max_size=12))
def test_normalize_path_fast_path_is_exact(name: str) -> None:
    assert normalize_path(name) == _normalized_slowly(name)


def _normalized_slowly(name: str) -> str | None:
    path = posixpath.normpath(name.lstrip("/"))
    return None if path == ".." or path.startswith("../") else ("" if path == "." else path)
