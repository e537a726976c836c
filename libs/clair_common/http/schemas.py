"""JSON Schemas of the wire types, as components of our OpenAPI document."""

from __future__ import annotations

from typing import Any

COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
}
