"""Clair's JSON: each vulnerability report exactly as the server sent it, one per line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

import orjson

from clair_common.clairctl.findings import ImageResult


def write_json(results: Sequence[ImageResult], out: TextIO, color: bool = False) -> None:
    for result in results:
        out.write(orjson.dumps(result.report).decode() + "\n")
