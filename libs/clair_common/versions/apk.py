"""Alpine (apk-tools) version parsing and ordering.

Grammar (apk-tools src/version.c): ``digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}``.
The tokenizer below mirrors apk's: each token has a type, and a type may only follow types
that come before it in the grammar. apk compares two versions token by token while both
have the same token type; when the types differ, a pre-release suffix (``_alpha``, ``_beta``,
``_pre``, ``_rc``) sorts lowest, otherwise the version whose token comes *later* in the
grammar (ending counts as latest) is the smaller one.

That rule is a total order over token sequences, so every token becomes a small tuple whose
first element is its rank at a point of divergence; a version's key is the tuple of its
tokens, which Python compares natively. ``sort_key`` rejects invalid versions;
``compare_any`` reproduces apk's (defined but meaningless) ordering of invalid strings too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeAlias

__all__ = ["compare_any", "is_valid", "sort_key"]

# Token types, in grammar order (apk's enum PARTS).
_INITIAL_DIGIT, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _COMMIT_HASH, _REVISION_NO = range(7)
_END, _INVALID = 7, 8

# Suffix values; _NONE (no suffix) is the pivot between pre- and post-release words.
_SUFFIXES = {
    "alpha": 1,
    "beta": 2,
    "pre": 3,
    "rc": 4,
    "cvs": 6,
    "svn": 7,
    "git": 8,
    "hg": 9,
    "p": 10,
}
_NONE = 5

# Rank of a token where two versions first differ in token type; higher rank = newer version.
_RANK_PRE_SUFFIX = 0
_RANK = {
    _INVALID: 1,
    _END: 2,
    _REVISION_NO: 3,
    _COMMIT_HASH: 4,
    _SUFFIX_NO: 5,
    _SUFFIX: 6,  # post-release suffixes; pre-release ones take _RANK_PRE_SUFFIX
    _LETTER: 7,
    _DIGIT: 8,
    _INITIAL_DIGIT: 9,
}
# apk parses numbers into a uint64_t and lets them wrap.
_UINT64 = 2**64 - 1

Token: TypeAlias = tuple[int] | tuple[int, int] | tuple[int, str] | tuple[int, int, str | int]
ApkKey: TypeAlias = tuple[Token, ...]


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _in_suffix_class(char: str) -> bool:
    # apk's ctype table only covers ASCII; bytes >= 0x80 never stop a span.
    return "a" <= char <= "z" or char >= "\x80"


def _in_hex_class(char: str) -> bool:
    return "0" <= char <= "9" or "a" <= char <= "f" or char >= "\x80"


def _span(text: str, pos: int, predicate: Callable[[str], bool]) -> int:
    end = pos
    while end < len(text) and predicate(text[end]):
        end += 1
    return end


def _number_token(token_type: int, digits: str) -> Token:
    number = int(digits) & _UINT64
    if token_type == _DIGIT and digits[0] == "0":
        # A leading zero switches apk to plain string comparison for this token; every such
        # string starts with "0" and so sorts below every number without one.
        return (_RANK[_DIGIT], 0, digits)
    if token_type == _DIGIT:
        return (_RANK[_DIGIT], 1, number)
    return (_RANK[token_type], number)


def _next_token(version: str, pos: int, previous: int) -> tuple[int, Token | None, int]:
    """apk's token_next: the type, key and end of the token at ``pos`` (None if invalid)."""
    char = version[pos]
    if "a" <= char <= "z" and previous <= _DIGIT:
        return _LETTER, (_RANK[_LETTER], ord(char)), pos + 1
    if (char == "." and previous <= _DIGIT) or (_is_digit(char) and previous == _SUFFIX):
        # "." starts another release number; digits right after a suffix word number it.
        token_type = _DIGIT if char == "." else _SUFFIX_NO
        start = pos + 1 if char == "." else pos
        end = _span(version, start, _is_digit)
        if end > start:
            return token_type, _number_token(token_type, version[start:end]), end
    elif char == "_" and previous <= _SUFFIX_NO:
        end = _span(version, pos + 1, _in_suffix_class)
        suffix = _SUFFIXES.get(version[pos + 1 : end])
        if suffix is not None:
            rank = _RANK_PRE_SUFFIX if suffix < _NONE else _RANK[_SUFFIX]
            return _SUFFIX, (rank, suffix), end
    elif char == "~" and previous < _COMMIT_HASH:
        end = _span(version, pos + 1, _in_hex_class)
        if end > pos + 1:
            return _COMMIT_HASH, (_RANK[_COMMIT_HASH], version[pos + 1 : end]), end
    elif version.startswith("-r", pos) and previous < _REVISION_NO:
        end = _span(version, pos + 2, _is_digit)
        if end > pos + 2:
            return _REVISION_NO, _number_token(_REVISION_NO, version[pos + 2 : end]), end
    return _INVALID, None, pos


def _tokens(version: str) -> tuple[ApkKey, bool]:
    """Tokenize like apk; returns the comparison key and whether the version is valid."""
    pos = _span(version, 0, _is_digit)
    if pos == 0:
        return ((_RANK[_INVALID],),), False
    key: list[Token] = [_number_token(_INITIAL_DIGIT, version[:pos])]
    previous = _INITIAL_DIGIT
    while pos < len(version):
        previous, token, pos = _next_token(version, pos, previous)
        if token is None:
            # apk stops at the first invalid token; what follows never affects the order.
            key.append((_RANK[_INVALID],))
            return tuple(key), False
        key.append(token)
    key.append((_RANK[_END],))
    return tuple(key), True


@lru_cache(maxsize=65536)
def _any_key(version: str) -> tuple[ApkKey, bool]:
    return _tokens(version)


@lru_cache(maxsize=65536)
def sort_key(version: str) -> ApkKey:
    """A tuple ordering versions like ``apk version -t``; raises ValueError if invalid."""
    key, valid = _any_key(version)
    if not valid:
        raise ValueError(f"invalid apk version {version!r}")
    return key


def is_valid(version: str) -> bool:
    """``apk_version_validate``: whether ``version`` follows apk's version grammar."""
    return _any_key(version)[1]


def compare_any(a: str, b: str) -> int:
    """apk's ``apk_version_compare`` on arbitrary strings, valid or not (-1, 0 or 1).

    apk orders invalid strings by their valid prefix; this exists to check that claim
    against apk's own test table, not for matching (use :func:`sort_key` there).
    """
    key_a, key_b = _any_key(a)[0], _any_key(b)[0]
    return (key_a > key_b) - (key_a < key_b)
