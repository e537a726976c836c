"""Incremental decoding of one large top-level JSON object: one array of it, or its members.

Feeds such as Alpine's secdb are one object whose `packages` array holds everything. Decoding
the array item by item from a file keeps memory at the size of one item; errors carry the
line, column and character offset where the document went wrong (or ended too early).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from clair_matcher.updaters.base import FeedError

_READ_SIZE = 1 << 16
_COMPACT_AT = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class Cursor:
    def __init__(self, fp: IO[bytes], feed: str) -> None:
        self._fp = fp
        self._feed = feed
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._dropped_chars = 0
        self._dropped_lines = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        if self._pos > _COMPACT_AT:
            gone = self._buf[: self._pos]
            self._dropped_lines += gone.count("\n")
            self._dropped_chars += len(gone)
            self._buf = self._buf[self._pos :]
            self._pos = 0
        chunk = self._fp.read(_READ_SIZE)
        try:
            self._buf += self._utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise self.error(f"invalid UTF-8 ({exc.reason})", len(self._buf)) from None
        if not chunk:
            self._eof = True
        return True

    def where(self, index: int) -> str:
        line = self._dropped_lines + self._buf.count("\n", 0, index) + 1
        column = index - (self._buf.rfind("\n", 0, index) + 1) + 1
        return f"line {line} column {column} (character offset {self._dropped_chars + index})"

    def error(self, reason: str, index: int | None = None) -> FeedError:
        at = self._pos if index is None else index
        return FeedError(f"{self._feed}: {reason} at {self.where(at)}")

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the document)."""
        while True:
            m = _WHITESPACE.match(self._buf, self._pos)
            assert m is not None
            self._pos = m.end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, expected: str) -> None:
        ch = self.peek()
        if ch != expected:
            what = repr(ch) if ch else "end of document"
            raise self.error(f"expected {expected!r}, found {what}")
        self._pos += 1

    def value(self) -> Any:
        if not self.peek():
            raise self.error("unexpected end of document (truncated?)")
        while True:
            try:
                obj, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                # An error near the buffer's end may only mean the rest is not read yet.
                near_end = exc.pos >= len(self._buf) - 8 or exc.msg.startswith("Unterminated")
                if near_end and self._fill():
                    continue
                reason = exc.msg if not self._eof or not near_end else "unexpected end of document"
                raise self.error(reason, exc.pos) from None
            # A number or literal that ends the buffer may continue in the next chunk.
            if end == len(self._buf) and self._fill():
                continue
            self._pos = end
            return obj


def iter_array_items(fp: IO[bytes], key: str, *, feed: str) -> Iterator[tuple[int, Any]]:
    """Yields (index, item) for the items of the top-level member `key`; other members are
    decoded and dropped. A document without `key` yields nothing."""
    cur = Cursor(fp, feed)
    for name in _member_names(cur):
        if name == key and cur.peek() == "[":
            yield from _array(cur)
        else:
            cur.value()


def iter_members(fp: IO[bytes], *, feed: str) -> Iterator[tuple[str, Any]]:
    """(key, value) of each member of a top-level JSON object, decoded one at a time."""
    cur = Cursor(fp, feed)
    for name in _member_names(cur):
        yield name, cur.value()


def _member_names(cur: Cursor) -> Iterator[str]:
    """The keys of the top-level object, each yielded with `cur` at its value, which the
    caller reads before asking for the next key; then checks nothing follows the object."""
    cur.take("{")
    if cur.peek() == "}":
        cur.take("}")
    else:
        while True:
            name = cur.value()
            if not isinstance(name, str):
                raise cur.error("object key must be a string")
            cur.take(":")
            yield name
            if cur.peek() == ",":
                cur.take(",")
                continue
            cur.take("}")
            break
    if cur.peek():
        raise cur.error("trailing data after the document")


def _array(cur: Cursor) -> Iterator[tuple[int, Any]]:
    cur.take("[")
    if cur.peek() == "]":
        cur.take("]")
        return
    index = 0
    while True:
        yield index, cur.value()
        index += 1
        if cur.peek() == ",":
            cur.take(",")
            continue
        cur.take("]")
        return
