"""Starts the notifier service for `clair serve` (entry point `clair.services: notifier`)."""

from __future__ import annotations

from typing import Any

from clair_common.runtime import ServiceContext


async def start(ctx: ServiceContext) -> Any:
    raise RuntimeError("the notifier is not implemented yet; remove notifier delivery settings")
