from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.notifier.receiver import WebhookReceiver


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
