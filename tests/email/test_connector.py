"""The connector's own lifecycle, without a mail server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from connectors.base import ChannelHealth, HealthState
from connectors.email.connector import EmailConnector
from connectors.email.settings import EmailSettings

SETTINGS = EmailSettings.model_validate(
    {
        "id": "mail",
        "type": "email",
        "address": "support@shop.example",
        "imap": {"host": "127.0.0.1", "port": 9, "username": "u", "password": "p"},
        "smtp": {"host": "127.0.0.1", "port": 9, "security": "none"},
    }
)


class QuietSink:
    def __init__(self) -> None:
        self.states: list[HealthState] = []

    def health_changed(self, channel_id: str, health: ChannelHealth) -> None:
        self.states.append(health.state)

    async def claim(self, name: str) -> asyncio.Event:
        return asyncio.Event()


async def test_close_survives_a_swallowed_cancellation() -> None:
    """Python 3.11's wait_for can lose a cancel; closing must still end the session."""
    conn = EmailConnector(SETTINGS, b"k" * 32)
    entered = asyncio.Event()

    async def stubborn() -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # a lost cancellation
            await asyncio.sleep(60)
        await asyncio.sleep(60)  # e.g. still in IDLE until the next re-issue

    conn.run_once = stubborn  # type: ignore[method-assign]
    sink: Any = QuietSink()
    await conn.start(sink)
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.wait_for(conn.aclose(), 5)
    assert conn.health.state == HealthState.STOPPED
