"""CPE names as Clair writes them: a WFN bound to the CPE 2.3 formatted string.

claircore keeps CPEs as WFNs and marshals them as formatted strings, so a distribution whose
os-release says `cpe:/o:redhat:enterprise_linux:8` is reported as
`cpe:2.3:o:redhat:enterprise_linux:8:*:*:*:*:*:*:*` (NISTIR 7695 unbinding and binding).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_FS_FIELDS = 11  # part, vendor, product, version, update, edition, language, sw_ed, tsw, thw, other
_FS_SPLIT = re.compile(r"(?<!\\):")
# In a formatted string these three stay bare; every other quoted punctuation keeps its backslash.
_BARE_IN_FS = frozenset("._-")


class CPEError(ValueError):
    pass


def _bind_value(value: str) -> str:
    out = []
    for char in value:
        out.append(char if char.isalnum() or char in _BARE_IN_FS else "\\" + char)
    return "".join(out)


def _from_uri(text: str) -> list[str]:
    body = text[len("cpe:/") :]
    raw = body.split(":")
    if len(raw) > 7:
        raise CPEError(f"too many components in {text!r}")
    raw += [""] * (7 - len(raw))
    part, vendor, product, version, update, edition, language = raw
    fields = [part, vendor, product, version, update]
    sw_edition = target_sw = target_hw = other = ""
    if edition.startswith("~"):
        # Packed edition: ~edition~sw_edition~target_sw~target_hw~other
        packed = (edition[1:].split("~") + [""] * 5)[:5]
        edition, sw_edition, target_sw, target_hw, other = packed
    fields += [edition, language, sw_edition, target_sw, target_hw, other]
    bound = []
    for value in fields:
        if value == "":
            bound.append("*")
        elif value == "-":
            bound.append("-")
        else:
            bound.append(_bind_value(unquote(value)))
    return bound


def to_formatted_string(text: str) -> str:
    """Bind a CPE given as a URI (`cpe:/...`) or formatted string (`cpe:2.3:...`) to FS form.

    Formatted strings with fewer than eleven attributes are padded with ANY, as claircore's
    unbinder does.
    """
    if text.startswith("cpe:/"):
        return "cpe:2.3:" + ":".join(_from_uri(text))
    if text.startswith("cpe:2.3:"):
        fields = _FS_SPLIT.split(text[len("cpe:2.3:") :])
        if len(fields) > _FS_FIELDS:
            raise CPEError(f"too many attributes in {text!r}")
        fields += ["*"] * (_FS_FIELDS - len(fields))
        return "cpe:2.3:" + ":".join(f if f else "*" for f in fields)
    raise CPEError(f"not a CPE: {text!r}")
