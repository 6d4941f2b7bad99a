"""What the secret key tests share: a config with a loopback webhook receiver allowed,
and short ways to add what the gateway seals (an API channel, an API webhook)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.helpers import post_json

CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "online"
capacity = { total = 100 }

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 0.05, 0.1, 0.2]
timeout = 1
"""

IDENTITY_SECRET = "shop-identity-secret-Qm4v"
KEY_A = "first-secret-key-for-tests-0123456789abcdef"
KEY_B = "second-secret-key-for-tests-0123456789abcdef"


async def add_channel(client: TestClient) -> dict[str, Any]:  # type: ignore[type-arg]
    """A webchat channel added through the API (its settings are sealed)."""
    body = {"id": "shop", "type": "webchat", "identity_secret": IDENTITY_SECRET}
    return await post_json(client, "/v1/channels", body, 201)  # type: ignore[no-any-return]


async def add_webhook(client: TestClient, url: str) -> dict[str, Any]:  # type: ignore[type-arg]
    """A webhook endpoint added through the API (its secret is sealed)."""
    body = {"url": url, "events": ["message.*"]}
    return await post_json(client, "/v1/webhooks", body, 201)  # type: ignore[no-any-return]
