"""The notifier's API: which handler answers each route, and what the OpenAPI document says of
it (the handlers are in `clair_notifier.handlers`)."""

from __future__ import annotations

from clair_common.http.routes import Operation, Reply, ServiceOperation, bind
from clair_notifier.handlers import PAGE_TYPE, PREFIX, delete_notification, get_notification
from clair_notifier.service import NotifierService

__all__ = ["OPERATIONS", "PAGE_TYPE", "build_operations"]  # PAGE_TYPE: still importable from here

_NOTIFICATION = f"{PREFIX}/notification/{{id}}"

OPERATIONS: tuple[ServiceOperation[NotifierService], ...] = (
    ServiceOperation(
        "GET",
        _NOTIFICATION,
        get_notification,
        "GetNotification",
        "Retrieve pages of a notification set",
        "notifier",
        responses={
            200: Reply("A page of notifications", "NotificationPage", PAGE_TYPE),
            400: Reply("Malformed id, page_size or next", "Error"),
            415: Reply("No acceptable media type", "Error"),
        },
        query=(("page_size", "integer", False), ("next", "string", False)),
    ),
    ServiceOperation(
        "DELETE",
        _NOTIFICATION,
        delete_notification,
        "DeleteNotification",
        "Delete (acknowledge) a notification set",
        "notifier",
        responses={200: Reply("Deleted"), 400: Reply("Malformed id", "Error")},
    ),
)


def build_operations(service: NotifierService) -> list[Operation]:
    return bind(OPERATIONS, service)
