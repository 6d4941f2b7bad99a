from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver for webhook deliveries, on loopback."""
    r = await Receiver().start()
    yield r
    await r.stop()


# The Zalo fake (Zalo's OpenAPI and OAuth at httpx's transport), for the Zalo token pair
# a rotation must keep readable.
from tests.zalo.conftest import zalo as zalo  # noqa: E402
