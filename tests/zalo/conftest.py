"""A gateway with a Zalo OA channel, and Zalo's OpenAPI and OAuth faked at httpx's
transport with respx, in Zalo's wire format: HTTP 200 with {"error", "message", "data"}."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from tests.conftest import GatewayFactory
from tests.providers import Json, ProviderGateway, Served
from tests.zalo.helpers import (
    ACCESS,
    API,
    APP_ID,
    APP_SECRET,
    CHANNEL,
    OAUTH,
    REFRESH,
    USER,
    config,
    dump,
    signed,
)

PROFILE = {
    "user_id": USER,
    "user_id_by_app": "7120556693485611272",
    "display_name": "Nguyễn Thị Thu",
    "avatar": "https://s120-ava-talk.zadn.vn/a/b/c/ava.jpg",
    "avatars": {
        "120": "https://s120-ava-talk.zadn.vn/a/b/c/ava.jpg",
        "240": "https://s240-ava-talk.zadn.vn/a/b/c/ava.jpg",
    },
    "user_is_follower": True,
    "user_last_interaction_date": "01/01/2026",
}


def zalo_error(code: int, message: str) -> httpx.Response:
    """How Zalo refuses: HTTP 200 with a negative error code."""
    return httpx.Response(200, json={"error": code, "message": message})


@dataclass
class ZaloFake:
    """Zalo as respx serves it. Calls must carry the currently valid access token (else
    -216); the token endpoint rotates the pair and spends the refresh token it got."""

    router: respx.MockRouter
    send: respx.Route
    upload: respx.Route
    profile: respx.Route
    getoa: respx.Route
    token: respx.Route
    access: str = ACCESS
    refresh: str = REFRESH
    # Scripted answers for the next sends, before the token check (None: normal answer).
    send_script: list[httpx.Response] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    generation: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(c.request.content) for c in self.send.calls]

    def _token_ok(self, request: httpx.Request) -> bool:
        return request.headers.get("access_token") == self.access

    def on_send(self, request: httpx.Request) -> httpx.Response:
        if self.send_script:
            return self.send_script.pop(0)
        if not self._token_ok(request):
            return zalo_error(-216, "Access token is invalid")
        body = json.loads(request.content)
        return httpx.Response(
            200,
            json={
                "error": 0,
                "message": "Success",
                "data": {
                    "message_id": f"zmsg{next(self.ids):04d}0123456789abcdef0123456789",
                    "user_id": body["recipient"]["user_id"],
                },
            },
        )

    def on_upload(self, request: httpx.Request) -> httpx.Response:
        if not self._token_ok(request):
            return zalo_error(-216, "Access token is invalid")
        n = next(self.ids)
        if request.url.path.endswith("/file"):
            return httpx.Response(
                200, json={"error": 0, "message": "Success", "data": {"token": f"ftoken{n}"}}
            )
        return httpx.Response(
            200, json={"error": 0, "message": "Success", "data": {"attachment_id": f"att{n}"}}
        )

    def on_profile(self, request: httpx.Request) -> httpx.Response:
        if not self._token_ok(request):
            return zalo_error(-216, "Access token is invalid")
        return httpx.Response(200, json={"error": 0, "message": "Success", "data": PROFILE})

    def on_getoa(self, request: httpx.Request) -> httpx.Response:
        if not self._token_ok(request):
            return zalo_error(-216, "Access token is invalid")
        return httpx.Response(
            200, json={"error": 0, "message": "Success", "data": {"oa_id": "1", "name": "Shop"}}
        )

    def on_token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if (
            request.headers.get("secret_key") != APP_SECRET
            or form.get("app_id") != APP_ID
            or form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh
        ):
            return httpx.Response(
                200,
                json={
                    "error_name": "Invalid parameter",
                    "error_reason": "Invalid refresh token",
                    "ref_doc": "https://developers.zalo.me/docs/api/official-account-api",
                    "error_description": "refresh token is invalid or expired",
                    "error": -14014,
                },
            )
        n = next(self.generation)
        self.access, self.refresh = f"zalo-access-token-{n}", f"zalo-refresh-token-{n}"
        return httpx.Response(
            200,
            json={
                "access_token": self.access,
                "refresh_token": self.refresh,
                "expires_in": "90000",
            },
        )

    def expire(self) -> None:
        """Zalo forgets the current access token (it expired or was removed)."""
        self.access = "no-longer-valid"


@pytest.fixture
def zalo() -> Iterator[ZaloFake]:
    with respx.mock(assert_all_called=False) as router:
        fake = ZaloFake(
            router=router,
            send=router.post(f"{API}/v3.0/oa/message/cs"),
            upload=router.post(url__regex=rf"^{API}/v2\.0/oa/upload/(image|gif|file)$"),
            profile=router.get(url__startswith=f"{API}/v3.0/oa/user/detail"),
            getoa=router.get(f"{API}/v2.0/oa/getoa"),
            token=router.post(f"{OAUTH}/v4/oa/access_token"),
        )
        fake.send.side_effect = fake.on_send
        fake.upload.side_effect = fake.on_upload
        fake.profile.side_effect = fake.on_profile
        fake.getoa.side_effect = fake.on_getoa
        fake.token.side_effect = fake.on_token
        yield fake


@dataclass
class Zl(ProviderGateway):
    """The gateway with the test Zalo channel; Zalo's side is ``zalo``."""

    zalo: ZaloFake

    channel: ClassVar[str] = CHANNEL

    def encode(self, payload: Json) -> bytes:
        return dump(payload)

    def signed_headers(self, body: bytes) -> dict[str, str]:
        return signed(body)


ZlFactory = Callable[..., Awaitable[Zl]]


@pytest.fixture
async def start_zl(zalo: ZaloFake, make_gateway: GatewayFactory) -> AsyncIterator[ZlFactory]:
    """Start a gateway with the test Zalo channel (options go to the channel)."""
    async with Served(make_gateway) as served:

        async def start(**options: Any) -> Zl:
            gw, client = await served.start(config(**options))
            return Zl(gw, client, zalo)

        yield start


@pytest.fixture
async def zl(start_zl: ZlFactory) -> Zl:
    return await start_zl()
