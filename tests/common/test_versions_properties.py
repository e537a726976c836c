"""Property tests: each kind is a total order and agrees with an independent implementation.

The library turns versions into tuple keys; the references here walk the strings the way the
tools' C code does (rpmvercmp, apk's tokenizer) or come from another library (python-debian),
so a flaw in the key encoding shows up as a disagreement on generated versions.
"""

from __future__ import annotations

from collections.abc import Callable

from debian.debian_support import version_compare as debian_version_compare
from hypothesis import given, settings
from hypothesis import strategies as st

from clair_common import versions
from clair_common.versions import apk

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


def joined(pieces: list[str]) -> st.SearchStrategy[str]:
    """Short strings glued from pieces chosen so that near-equal versions are common."""
    return st.lists(st.sampled_from(pieces), min_size=0, max_size=6).map("".join)


@st.composite
def dpkg_versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "0:", "1:", "2:", "01:"]))
    upstream = draw(st.sampled_from("0129")) + draw(
        joined(["0", "1", "10", "00", ".", "~", "+", "a", "B", "~~", "-", ".0", "rc"])
    )
    if ":" in epoch and draw(st.booleans()):
        upstream += ":" + draw(st.sampled_from(["0", "1"]))
    revision = draw(joined(["0", "1", "2", ".", "~", "+", "a", "ubuntu", "deb"]))
    if revision or "-" in upstream:
        revision = revision or "0"
        return f"{epoch}{upstream}-{revision}"
    return epoch + upstream


@st.composite
def rpm_versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "0:", "1:", "3:", "00:"]))
    pieces = ["0", "1", "2", "10", "01", ".", "_", "~", "^", "a", "b", "rc", "el8", "+"]
    version = draw(st.sampled_from("0129ab~^")) + draw(joined(pieces))
    if draw(st.booleans()):
        return f"{epoch}{version}-{draw(joined(pieces))}"
    return epoch + version


@st.composite
def apk_versions(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(["0", "1", "2", "10", "01"]))
    text += draw(joined([".0", ".1", ".2", ".01", ".10", ".00"]))
    text += draw(st.sampled_from(["", "", "a", "b", "z"]))
    text += draw(joined(["_alpha", "_beta2", "_pre", "_rc1", "_p", "_p1", "_git", "_cvs10"]))
    text += draw(st.sampled_from(["", "", "~ab12", "~0f", "~ab"]))
    text += draw(st.sampled_from(["", "", "-r0", "-r1", "-r10"]))
    return text


# Mostly-grammatical apk strings with garbage mixed in, for apk's lenient ordering.
apk_anything = joined(["1", "0", ".", "_", "-r", "-", "a", "p", "pre", "~", "f", "x", "_p", "Z"])
pep440_versions = st.sampled_from(
    ["1.0", "1.0.0", "1.0a1", "1.0b2", "1.0rc1", "1.0.post1", "1.0.dev1", "1!0.1", "1.0+local",
     "1.0.post1.dev2", "2.0", "0.9", "1.0a1.dev1", "1.0+local.2", "1.1"]
)  # fmt: skip


def sign(number: int) -> int:
    return (number > 0) - (number < 0)


def rpmvercmp_reference(a: str, b: str) -> int:
    """rpm's rpmvercmp, walked character by character as in rpmio/rpmvercmp.c."""
    if a == b:
        return 0
    i = j = 0

    def is_alnum(char: str) -> bool:
        return char.isascii() and char.isalnum()

    while i < len(a) or j < len(b):
        while i < len(a) and not is_alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < len(b) and not is_alnum(b[j]) and b[j] not in "~^":
            j += 1
        at, bt = a[i : i + 1], b[j : j + 1]
        if at == "~" or bt == "~":
            if at != "~":
                return 1
            if bt != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if at == "^" or bt == "^":
            if not at:
                return -1
            if not bt:
                return 1
            if at != "^":
                return 1
            if bt != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (at and bt):
            break
        numeric = at.isdigit()
        same_class: Callable[[str], bool] = (
            (lambda c: c.isascii() and c.isdigit())
            if numeric
            else (lambda c: c.isascii() and c.isalpha())
        )
        i_end, j_end = i, j
        while i_end < len(a) and same_class(a[i_end]):
            i_end += 1
        while j_end < len(b) and same_class(b[j_end]):
            j_end += 1
        if j_end == j:
            return 1 if numeric else -1
        one, two = a[i:i_end], b[j:j_end]
        if numeric:
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return 1 if len(one) > len(two) else -1
        if one != two:
            return 1 if one > two else -1
        i, j = i_end, j_end
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def rpm_label_compare_reference(a: str, b: str) -> int:
    def split(evr: str) -> tuple[str, str, str | None]:
        epoch, _, rest = evr.rpartition(":") if ":" in evr.split("-")[0] else ("", "", evr)
        version, hyphen, release = rest.rpartition("-")
        return (epoch or "0", version, release) if hyphen else (epoch or "0", rest, None)

    (ea, va, ra), (eb, vb, rb) = split(a), split(b)
    result = rpmvercmp_reference(ea, eb) or rpmvercmp_reference(va, vb)
    if result or ra == rb:
        return result
    if ra is None or rb is None:
        return -1 if ra is None else 1
    return rpmvercmp_reference(ra, rb)


_APK_SUFFIXES = ["alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p"]
_APK_END, _APK_INVALID = 7, 8


def apk_reference_tokens(text: str) -> list[tuple[int, str, int]]:
    """apk's tokenizer: (type, raw value, suffix value) per token, then an end/invalid token."""
    out: list[tuple[int, str, int]] = []
    digits = len(text) - len(text.lstrip("0123456789"))
    if digits == 0:
        return [(_APK_INVALID, "", 0)]
    out.append((0, text[:digits], 0))
    pos, kind = digits, 0
    while True:
        if pos == len(text):
            return [*out, (_APK_END, "", 0)]
        char, new = text[pos], _APK_INVALID
        if "a" <= char <= "z" and kind <= 1:
            new, value, pos = 2, char, pos + 1
        elif (char == "." and kind <= 1) or (char.isdigit() and kind == 3):
            start = pos + 1 if char == "." else pos
            stop = start
            while stop < len(text) and "0" <= text[stop] <= "9":
                stop += 1
            if stop > start:
                new, value, pos = (1 if kind <= 1 else 4), text[start:stop], stop
        elif char == "_" and kind <= 4:
            stop = pos + 1
            while stop < len(text) and ("a" <= text[stop] <= "z" or text[stop] >= "\x80"):
                stop += 1
            if text[pos + 1 : stop] in _APK_SUFFIXES and text[pos + 1 : stop]:
                new, value, pos = 3, text[pos + 1 : stop], stop
        elif char == "~" and kind < 5:
            stop = pos + 1
            while stop < len(text) and text[stop] in "0123456789abcdef":
                stop += 1
            if stop > pos + 1:
                new, value, pos = 5, text[pos + 1 : stop], stop
        elif text.startswith("-r", pos) and kind < 6:
            stop = pos + 2
            while stop < len(text) and "0" <= text[stop] <= "9":
                stop += 1
            if stop > pos + 2:
                new, value, pos = 6, text[pos + 2 : stop], stop
        if new == _APK_INVALID:
            return [*out, (_APK_INVALID, "", 0)]
        out.append((new, value, _APK_SUFFIXES.index(value) + 1 if new == 3 else 0))
        kind = new


def apk_reference(a: str, b: str) -> int:
    """apk-tools' apk_version_compare as a straight token-by-token loop."""

    def token_compare(x: tuple[int, str, int], y: tuple[int, str, int]) -> int:
        kind = x[0]
        if (kind == 1 and (x[1][0] == "0" or y[1][0] == "0")) or kind == 5:
            return sign((x[1] > y[1]) - (x[1] < y[1]))
        if kind in (0, 1, 4, 6):
            return sign(int(x[1]) % 2**64 - int(y[1]) % 2**64)
        if kind == 2:
            return sign(ord(x[1]) - ord(y[1]))
        return sign(x[2] - y[2])

    ta, tb = apk_reference_tokens(a), apk_reference_tokens(b)
    index = 0
    while ta[index][0] == tb[index][0] and ta[index][0] < _APK_END:
        result = token_compare(ta[index], tb[index])
        if result:
            return result
        index += 1
    x, y = ta[index], tb[index]
    if x[0] == y[0]:
        return 0
    if x[0] == 3 and x[2] < 5:
        return -1
    if y[0] == 3 and y[2] < 5:
        return 1
    return -1 if x[0] > y[0] else 1


def assert_total_order(kind: str, a: str, b: str, c: str) -> None:
    assert versions.compare(kind, a, a) == 0
    ab, bc, ac = (versions.compare(kind, *pair) for pair in ((a, b), (b, c), (a, c)))
    assert ab == -versions.compare(kind, b, a)
    if ab <= 0 and bc <= 0:
        assert ac <= 0
        assert ac == (0 if ab == bc == 0 else -1)
    if ab >= 0 and bc >= 0:
        assert ac >= 0
    assert (versions.parse(kind, a) < versions.parse(kind, b)) is (ab < 0)


@PROPERTY_SETTINGS
@given(dpkg_versions(), dpkg_versions(), dpkg_versions())
def test_dpkg_total_order_and_python_debian(a: str, b: str, c: str) -> None:
    assert versions.is_valid("dpkg", a)
    assert_total_order("dpkg", a, b, c)
    assert versions.compare("dpkg", a, b) == sign(debian_version_compare(a, b))


@PROPERTY_SETTINGS
@given(rpm_versions(), rpm_versions(), rpm_versions())
def test_rpm_total_order_and_reference(a: str, b: str, c: str) -> None:
    assert_total_order("rpm", a, b, c)
    assert versions.compare("rpm", a, b) == rpm_label_compare_reference(a, b)


@PROPERTY_SETTINGS
@given(joined(["1", "01", "a", "Z", ".", "_", "~", "^", "-", "é", "rc"]), st.text(max_size=6))
def test_rpmvercmp_reference_on_any_text(a: str, b: str) -> None:
    from clair_common.versions import rpm

    assert rpm.vercmp(a, b) == rpmvercmp_reference(a, b)
    assert rpm.vercmp(a, a + b) == rpmvercmp_reference(a, a + b)


@PROPERTY_SETTINGS
@given(apk_versions(), apk_versions(), apk_versions())
def test_apk_total_order_and_reference(a: str, b: str, c: str) -> None:
    assert versions.is_valid("apk", a)
    assert_total_order("apk", a, b, c)
    assert versions.compare("apk", a, b) == apk_reference(a, b)


@PROPERTY_SETTINGS
@given(apk_anything, apk_anything)
def test_apk_lenient_order_matches_reference(a: str, b: str) -> None:
    assert apk.compare_any(a, b) == apk_reference(a, b)
    assert apk.is_valid(a) == (apk_reference_tokens(a)[-1][0] == _APK_END)


@PROPERTY_SETTINGS
@given(pep440_versions, pep440_versions, pep440_versions)
def test_pep440_total_order(a: str, b: str, c: str) -> None:
    assert_total_order("pep440", a, b, c)
