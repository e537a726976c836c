"""RFC 7386 JSON merge patch and RFC 6902 JSON patch, for config drop-ins.

Documents are plain JSON values (dict, list, str, int, float, bool, None). Inputs are never
mutated: both functions return new documents.

Merge patches are the `json-merge-patch` library's. JSON patches are applied here: the
`jsonpatch` library's `test` operation takes `1` and `true` as equal (Python equality) where JSON,
and so Clair's Go patcher, does not, and its errors name neither the operation nor its index.
"""

from __future__ import annotations

import copy
from typing import Any

import json_merge_patch

__all__ = ["PatchError", "apply_json_patch", "merge_patch"]


class PatchError(ValueError):
    """A JSON patch could not be decoded or applied."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, `null` deletes a member."""
    # The library merges into its first argument and keeps the patch's objects: copy both.
    return json_merge_patch.merge(copy.deepcopy(target), copy.deepcopy(patch))


def _parse_pointer(pointer: Any) -> list[str]:
    """RFC 6901: "" is the whole document, otherwise "/"-separated, "~1" is "/", "~0" is "~"."""
    if not isinstance(pointer, str):
        raise PatchError(f"JSON pointer must be a string, got {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"JSON pointer {pointer!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _array_index(token: str, length: int, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"bad array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchError(f"array index {index} out of range")
    return index


def _resolve(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"member {token!r} not found")
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), allow_end=False)]
        else:
            raise PatchError(f"cannot descend into {type(node).__name__} at {token!r}")
    return node


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchError(f"cannot add to {type(parent).__name__}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    """Remove the target; returns (document, removed value)."""
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"member {last!r} not found")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(last, len(parent), allow_end=False))
    raise PatchError(f"cannot remove from {type(parent).__name__}")


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: numbers compare by value, but booleans are not numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return type(left) is type(right) and left == right


def _member(op: dict[str, Any], name: str) -> Any:
    if name not in op:
        raise PatchError(f"missing {name!r}")
    return op[name]


def _apply_one(doc: Any, op: dict[str, Any]) -> Any:
    kind = _member(op, "op")
    tokens = _parse_pointer(_member(op, "path"))
    if kind == "add":
        return _add(doc, tokens, copy.deepcopy(_member(op, "value")))
    if kind == "remove":
        return _remove(doc, tokens)[0]
    if kind == "replace":
        value = copy.deepcopy(_member(op, "value"))
        if not tokens:
            return value
        doc, _ = _remove(doc, tokens)
        return _add(doc, tokens, value)
    if kind in ("move", "copy"):
        source = _parse_pointer(_member(op, "from"))
        if kind == "move":
            if tokens[: len(source)] == source and tokens != source:
                raise PatchError("cannot move a value into one of its own children")
            doc, value = _remove(doc, source)
        else:
            value = copy.deepcopy(_resolve(doc, source))
        return _add(doc, tokens, value)
    if kind == "test":
        if not json_equal(_resolve(doc, tokens), _member(op, "value")):
            raise PatchError("test failed: value differs")
        return doc
    raise PatchError(f"unknown op {kind!r}")


def apply_json_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 6902 patch (a list of operations) atomically; raises PatchError."""
    if not isinstance(patch, list):
        raise PatchError("a JSON patch must be an array of operations")
    result = copy.deepcopy(doc)
    for number, op in enumerate(patch):
        if not isinstance(op, dict):
            raise PatchError(f"operation {number}: not an object")
        try:
            result = _apply_one(result, op)
        except PatchError as err:
            raise PatchError(
                f"operation {number} ({op.get('op')} {op.get('path')}): {err}"
            ) from None
    return result
