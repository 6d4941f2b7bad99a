"""Changing where a channel's credentials are sent (a mail server, a provider's API base)
through the admin API needs those credentials given again: an admin token alone must
not be able to point a stored password at a server of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.channels import credentials_to_give_again, merge_patch, revealed, validate
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

EMAIL = {
    "id": "mail",
    "type": "email",
    "address": "support@shop.example",
    "imap": {
        "host": "imap.shop.example",
        "security": "tls",
        "username": "support@shop.example",
        "password": "imap-password",
    },
    "smtp": {
        "host": "smtp.shop.example",
        "port": 587,
        "security": "starttls",
        "username": "support@shop.example",
        "password": "smtp-password",
    },
}
ZALO = {
    "id": "zalo",
    "type": "zalo",
    "oa_id": "579745863508352884",
    "app_id": "1847265093412765431",
    "app_secret": "zalo-app-secret",
    "oa_secret_key": "zalo-oa-secret",
    "access_token": "zalo-access",
    "refresh_token": "zalo-refresh",
}
FACEBOOK = {
    "id": "fb",
    "type": "facebook",
    "app_secret": "fb-app-secret",
    "verify_token": "fb-verify",
    "pages": [
        {"id": "104000000000001", "access_token": "page-one"},
        {"id": "104000000000002", "access_token": "page-two"},
    ],
}
WEBCHAT = {"id": "chat", "type": "webchat", "identity_secret": "hmac-secret"}
EMAIL_OAUTH = {
    **EMAIL,
    "imap": {k: v for k, v in EMAIL["imap"].items() if k != "password"},
    "smtp": {k: v for k, v in EMAIL["smtp"].items() if k != "password"},
    "oauth": {
        "token_url": "https://oauth2.googleapis.com/token",
        "client_id": "client.apps.googleusercontent.com",
        "client_secret": "oauth-client-secret",
        "refresh_token": "oauth-refresh-token",
    },
}
OAUTH_ALL = ["oauth.client_secret", "oauth.refresh_token"]

ZALO_ALL = ["access_token", "app_secret", "refresh_token"]
FB_ALL = ["app_secret", "pages[0].access_token", "pages[1].access_token"]


@pytest.mark.parametrize(
    ("settings", "patch", "endpoints", "missing"),
    [
        # the mail servers: host, port, how the connection is secured, whom it trusts
        (EMAIL, {"imap": {"host": "imap.evil.example"}}, ["imap"], ["imap.password"]),
        (EMAIL, {"imap": {"host": "IMAP.shop.example"}}, [], []),  # the same host
        (EMAIL, {"imap": {"port": 993}}, [], []),  # the port it used already (tls)
        (EMAIL, {"imap": {"port": 1993}}, ["imap"], ["imap.password"]),
        (EMAIL, {"imap": {"security": "none"}}, ["imap"], ["imap.password"]),
        (EMAIL, {"imap": {"ca_file": "/tmp/evil.pem"}}, ["imap"], ["imap.password"]),
        (EMAIL, {"smtp": {"host": "smtp.evil.example"}}, ["smtp"], ["smtp.password"]),
        (
            EMAIL,
            {"imap": {"host": "a.example"}, "smtp": {"host": "b.example"}},
            ["imap", "smtp"],
            ["imap.password", "smtp.password"],
        ),
        (EMAIL, {"imap": {"host": "a.example", "password": "imap-password"}}, ["imap"], []),
        # a relay without AUTH gets no credentials
        (
            EMAIL,
            {"smtp": {"host": "relay.local", "username": None, "password": None}},
            ["smtp"],
            [],
        ),
        # everything else keeps the credentials, as before
        (EMAIL, {"poll_interval_seconds": 30, "from_name": "Shop"}, [], []),
        (EMAIL, {"imap": {"folder": "Support"}}, [], []),
        # OAuth mail: the servers get tokens made from the refresh token, the token
        # endpoint gets both secrets
        (EMAIL_OAUTH, {"imap": {"host": "imap.evil.example"}}, ["imap"], ["oauth.refresh_token"]),
        (EMAIL_OAUTH, {"smtp": {"host": "smtp.evil.example"}}, ["smtp"], ["oauth.refresh_token"]),
        (EMAIL_OAUTH, {"oauth": {"token_url": "https://evil.example/token"}}, ["oauth"], OAUTH_ALL),
        (EMAIL_OAUTH, {"oauth": {"scope": "mail", "mechanism": "oauthbearer"}}, [], []),
        # Zalo: the access token goes to api_base, the refresh token and the app secret to
        # oauth_base, and a refreshed pair kept in the store to both
        (ZALO, {"api_base": "https://zalo.evil.example"}, ["zalo"], ZALO_ALL),
        (ZALO, {"oauth_base": "https://zalo.evil.example"}, ["zalo"], ZALO_ALL),
        (ZALO, {"api_base": "https://openapi.zalo.me/"}, [], []),  # the same, written so
        (
            ZALO,
            {"api_base": "https://proxy.example", "access_token": "a", "refresh_token": "r"},
            ["zalo"],
            ["app_secret"],
        ),
        (ZALO, {"max_body_bytes": 4096, "oa_secret_key": "new"}, [], []),
        # Messenger: the page tokens (and proofs made with the app secret) go to api_base
        (FACEBOOK, {"api_base": "https://graph.evil.example"}, ["graph"], FB_ALL),
        (
            FACEBOOK,
            {
                "api_base": "https://graph.evil.example",
                "app_secret": "s",
                "pages": [{"id": "104000000000001", "access_token": "t"}],
            },
            ["graph"],
            [],
        ),
        (FACEBOOK, {"human_agent_tag": True}, [], []),
        # webchat sends its secret nowhere
        (WEBCHAT, {"allowed_origins": ["https://shop.example"]}, [], []),
    ],
)
def test_which_credentials_a_change_needs_again(
    settings: dict[str, Any], patch: dict[str, Any], endpoints: list[str], missing: list[str]
) -> None:
    old = validate(settings)
    new = validate(merge_patch(revealed(old), patch))
    assert credentials_to_give_again(old, new, patch) == (endpoints, missing)


@dataclass
class Listener:
    """A TCP server that greets like IMAP and counts who connects to it."""

    port: int = 0
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)
    server: asyncio.Server | None = None

    async def start(self) -> Listener:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        try:
            while data := await reader.read(4096):
                self.received += data
        finally:
            writer.close()

    async def connected(self) -> bool:
        return self.connections > 0

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def listeners() -> AsyncIterator[tuple[Listener, Listener]]:
    shop, evil = await Listener().start(), await Listener().start()
    yield shop, evil
    await shop.close()
    await evil.close()


async def _patch(client: Client, body: Any) -> tuple[int, Any]:
    resp = await client.patch("/v1/channels/mail", json=body, headers=AUTH)
    return resp.status, await resp.json()


async def test_a_mailbox_is_not_pointed_elsewhere_without_its_password(
    make_gateway: GatewayFactory, listeners: tuple[Listener, Listener]
) -> None:
    shop, evil = listeners
    gw = await make_gateway()
    settings = {
        **EMAIL,
        "imap": {**EMAIL["imap"], "host": "127.0.0.1", "port": shop.port, "security": "none"},  # type: ignore[dict-item]
        "smtp": {"host": "127.0.0.1", "port": shop.port, "security": "none"},
        "timeout_seconds": 5,
    }
    async with TestClient(TestServer(gw.web_app())) as client:
        await post_json(client, "/v1/channels", settings, 201)
        await eventually(shop.connected)

        status, body = await _patch(client, {"imap": {"port": evil.port}})
        assert status == 422, body
        error = body["error"]
        assert error["code"] == "credentials_required"
        assert error["details"] == {"endpoints": ["imap"], "fields": ["imap.password"]}
        assert "imap.password" in error["message"]
        shown = await get_json(client, "/v1/channels/mail")
        assert shown["settings"]["imap"]["port"] == shop.port
        await asyncio.sleep(0.3)
        assert evil.connections == 0

        # given again, the change is made (and the mailbox goes where it was told)
        status, body = await _patch(
            client, {"imap": {"port": evil.port, "password": "imap-password"}}
        )
        assert status == 200, body
        assert body["secrets"] == ["imap.password"]
        await eventually(evil.connected)


@pytest.mark.parametrize(
    ("settings", "patch", "fields"),
    [
        (ZALO, {"oauth_base": "https://oauth.evil.example"}, ZALO_ALL),
        (FACEBOOK, {"api_base": "https://graph.evil.example/v25.0"}, FB_ALL),
    ],
)
async def test_a_provider_api_base_is_not_changed_without_the_credentials(
    make_gateway: GatewayFactory,
    settings: dict[str, Any],
    patch: dict[str, Any],
    fields: list[str],
) -> None:
    gw = await make_gateway()
    path = f"/v1/channels/{settings['id']}"
    async with TestClient(TestServer(gw.web_app())) as client:
        before = (await post_json(client, "/v1/channels", settings, 201))["settings"]
        resp = await client.patch(path, json=patch, headers=AUTH)
        body = await resp.json()
        assert resp.status == 422, body
        assert body["error"]["code"] == "credentials_required"
        assert body["error"]["details"]["fields"] == fields
        assert (await get_json(client, path))["settings"] == before
        again = {k: v for k, v in settings.items() if k not in ("id", "type")}
        resp = await client.patch(path, json={**again, **patch}, headers=AUTH)
        assert resp.status == 200, await resp.json()
