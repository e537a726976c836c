"""Request bodies checked against the schema components the OpenAPI document declares, so the
document and the server cannot disagree about what a request may contain."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from clair_common.http.errors import bad_request
from clair_common.http.schemas import COMPONENTS

_URI = "urn:clair-py:openapi"
_MESSAGE_LIMIT = 200  # validation messages quote the offending value; clients see a prefix


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # Answers echo these; "0000-00-00T00:00:00Z" passes a pattern but is no date.
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return True


@functools.cache
def _validator(component: str) -> Draft202012Validator:
    document = {"components": {"schemas": COMPONENTS}}
    registry: Registry[Any] = Registry().with_resource(
        _URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{_URI}#/components/schemas/{component}"},
        registry=registry,
        format_checker=_FORMATS,
    )


def check_body(component: str, doc: Any, what: str) -> None:
    """Raise Clair's 400 naming the first offending member when `doc` breaks the schema."""
    error = best_match(_validator(component).iter_errors(doc))
    if error is None:
        return
    where = "/".join(str(part) for part in error.absolute_path) or "body"
    message = error.message
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "..."
    raise bad_request(f"failed to deserialize {what}: {where}: {message}")
