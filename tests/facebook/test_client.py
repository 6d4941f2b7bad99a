"""The Graph API edge: every error of channels.md table 1.8 (and the HTTP-level ones)
becomes the right error class, faked at httpx's transport in Graph's real shapes; page
tokens never leak into errors or logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors.errors import (
    AuthError,
    PermanentError,
    RateLimited,
    RecipientUnavailable,
    SendError,
    TransientError,
    WindowClosed,
)
from connectors.facebook.client import GraphClient, Profile, retry_after
from tests.facebook.helpers import API, PAGE, PSID, TOKEN

SEND = f"{API}/{PAGE}/messages"
BODY = {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "x"}}


def graph_error(
    code: int, message: str, subcode: int | None = None, **extra: Any
) -> dict[str, Any]:
    err: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGh123",
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    err.update(extra)
    return {"error": err}


@pytest.fixture
async def client() -> AsyncIterator[GraphClient]:
    graph = GraphClient(httpx.AsyncClient(), API)
    yield graph
    await graph.aclose()


# (HTTP status, Graph code, subcode, message, class, code string)
TABLE_1_8: list[tuple[int, int, int | None, str, type[SendError], str]] = [
    (400, 10, 2018278, "(#10) This message is sent outside of allowed window.",
     WindowClosed, "window_closed:10/2018278"),
    (400, 10, 2534022, "(#10) This message is sent outside of allowed window.",
     WindowClosed, "window_closed:10/2534022"),
    (400, 10, 2018065, "(#10) This message is sent outside of allowed window. You need "
     "page_messaging_subscriptions permission to be able to do it.",
     WindowClosed, "window_closed:10/2018065"),
    (400, 10, 2018108, "(#10) This person isn't receiving messages from you right now.",
     RecipientUnavailable, "recipient_unavailable:10/2018108"),
    (400, 551, 1545041, "This person isn't available right now.",
     RecipientUnavailable, "recipient_unavailable:551/1545041"),
    (400, 190, None, "Invalid OAuth access token.", AuthError, "auth_failed:190"),
    (400, 190, 460, "Error validating access token: The session has been invalidated because "
     "the user changed their password.", AuthError, "auth_failed:190/460"),
    (403, 200, None, "(#200) Requires pages_messaging permission to manage the object",
     PermanentError, "permission_denied:200"),
    (400, 100, 2018001, "(#100) No matching user found",
     RecipientUnavailable, "recipient_unavailable:100/2018001"),
    (400, 100, 2018047, "(#100) Upload attachment failure.",
     PermanentError, "invalid_parameter:100/2018047"),
    (400, 100, None, "(#100) Param recipient must be non-empty.",
     PermanentError, "invalid_parameter:100"),
    (500, 2, None, "An unexpected error has occurred. Please retry your request later.",
     TransientError, "transient:2"),
    (400, 4, None, "(#4) Application request limit reached", RateLimited, "rate_limited:4"),
    (400, 613, None, "(#613) Calls to this api have exceeded the rate limit.",
     RateLimited, "rate_limited:613"),
    (400, 32, None, "(#32) Page request limit reached", RateLimited, "rate_limited:32"),
    (500, 1200, None, "Temporary send message failure. Please try again later",
     TransientError, "transient:1200"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "code", "subcode", "message", "cls", "code_string"), TABLE_1_8)
async def test_table_1_8(
    client: GraphClient,
    status: int,
    code: int,
    subcode: int | None,
    message: str,
    cls: type[SendError],
    code_string: str,
) -> None:
    with respx.mock:
        route = respx.post(SEND).respond(status, json=graph_error(code, message, subcode))
        with pytest.raises(SendError) as exc:
            await client.send(PAGE, SecretStr(TOKEN), BODY)
    assert type(exc.value) is cls
    assert exc.value.code == code_string
    assert message in exc.value.reason
    assert "fbtrace_id AbCdEfGh123" in exc.value.reason
    # what Meta received: the page's token as access_token, the body as JSON
    request = route.calls.last.request
    assert request.url.params["access_token"] == TOKEN
    assert json.loads(request.content) == BODY
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "body", "cls", "code_string"),
    [
        (500, b"", TransientError, "transient:http_500"),
        (502, b"<html>Bad Gateway</html>", TransientError, "transient:http_502"),
        (429, b"", RateLimited, "rate_limited:http_429"),
        (404, b"<html>Not Found</html>", PermanentError, "graph_error:http_404"),
        (400, json.dumps(graph_error(9999, "Something new", is_transient=True)).encode(),
         TransientError, "transient:9999"),
        (400, json.dumps(graph_error(9999, "Something new")).encode(),
         PermanentError, "graph_error:9999"),
        (500, json.dumps(graph_error(1, "An unknown error occurred")).encode(),
         TransientError, "transient:1"),
        (400, json.dumps(graph_error(80006, "There have been too many messages")).encode(),
         RateLimited, "rate_limited:80006"),
        (400, json.dumps(graph_error(10, "(#10) Permission denied")).encode(),
         PermanentError, "permission_denied:10"),
        (400, json.dumps({"error": "a string"}).encode(), PermanentError, "graph_error:http_400"),
    ],
)  # fmt: skip
async def test_other_failures(
    client: GraphClient, status: int, body: bytes, cls: type[SendError], code_string: str
) -> None:
    with respx.mock:
        respx.post(SEND).respond(status, content=body)
        with pytest.raises(SendError) as exc:
            await client.send(PAGE, SecretStr(TOKEN), BODY)
    assert type(exc.value) is cls
    assert exc.value.code == code_string


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx.ConnectError("connection refused"), "network"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.RemoteProtocolError("server disconnected"), "network"),
    ],
)
async def test_network_failures_are_transient(
    client: GraphClient, error: Exception, code: str
) -> None:
    with respx.mock:
        respx.post(SEND).mock(side_effect=error)
        with pytest.raises(TransientError) as exc:
            await client.send(PAGE, SecretStr(TOKEN), BODY)
    assert exc.value.code == code
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert TOKEN not in str(exc.value)


async def test_rate_limits_carry_retry_after(client: GraphClient) -> None:
    usage = {PAGE: [{"type": "messenger", "call_count": 100, "estimated_time_to_regain_access": 5}]}
    with respx.mock:
        respx.post(SEND).mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": "30"}),
                httpx.Response(
                    400,
                    json=graph_error(613, "(#613) Calls to this api have exceeded the rate limit."),
                    headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
                ),
                httpx.Response(400, json=graph_error(4, "(#4) Application request limit reached")),
            ]
        )
        found = []
        for _ in range(3):
            with pytest.raises(RateLimited) as exc:
                await client.send(PAGE, SecretStr(TOKEN), BODY)
            found.append(exc.value.retry_after)
    assert found == [30.0, 300.0, None]


def test_retry_after_as_a_date() -> None:
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412480) == 30.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({"X-Business-Use-Case-Usage": "not json"}) is None


async def test_success_returns_the_mid(client: GraphClient) -> None:
    with respx.mock:
        respx.post(SEND).respond(200, json={"recipient_id": PSID, "message_id": "m_abc"})
        assert await client.send(PAGE, SecretStr(TOKEN), BODY) == "m_abc"
        respx.post(SEND).respond(200, content=b"not json")
        assert await client.send(PAGE, SecretStr(TOKEN), BODY) is None


async def test_profile(client: GraphClient) -> None:
    with respx.mock:
        route = respx.get(f"{API}/{PSID}").respond(
            200,
            json={
                "first_name": "Ngọc",
                "last_name": "Trần",
                "profile_pic": "https://platform-lookaside.fbsbx.com/p.jpg",
                "id": PSID,
            },
        )
        profile = await client.profile(PSID, SecretStr(TOKEN))
        assert profile == Profile(
            name="Ngọc Trần", avatar_url="https://platform-lookaside.fbsbx.com/p.jpg"
        )
        params = route.calls.last.request.url.params
        assert params["fields"] == "first_name,last_name,profile_pic"
        assert params["access_token"] == TOKEN
        route.respond(200, json={"id": PSID, "profile_pic": "javascript:alert(1)"})
        assert await client.profile(PSID, SecretStr(TOKEN)) == Profile(None, None)


async def test_profile_refuses_ids_that_are_not_psids(client: GraphClient) -> None:
    with respx.mock, pytest.raises(PermanentError):  # no route: a request would fail
        await client.profile("../me/accounts", SecretStr(TOKEN))


async def test_tokens_never_leak(client: GraphClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = f"Malformed access token {TOKEN} in access_token={TOKEN}&x=1"
    with respx.mock:
        respx.post(SEND).respond(400, json=graph_error(190, leaky))
        with pytest.raises(AuthError) as exc:
            await client.send(PAGE, SecretStr(TOKEN), BODY)
        respx.post(SEND).respond(200, json={"recipient_id": PSID, "message_id": "m_1"})
        await client.send(PAGE, SecretStr(TOKEN), BODY)
    assert TOKEN not in exc.value.reason and TOKEN not in str(exc.value)
    assert "HTTP Request" in caplog.text  # httpx logged its requests...
    assert TOKEN not in caplog.text  # ...without the token
    assert "access_token=***" in caplog.text
    assert TOKEN not in repr(client)


async def test_appsecret_proof(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    proof = hmac.new(b"the-app-secret", TOKEN.encode(), hashlib.sha256).hexdigest()
    signed_client = GraphClient(httpx.AsyncClient(), API, app_secret=SecretStr("the-app-secret"))
    plain_client = GraphClient(httpx.AsyncClient(), API)
    try:
        with respx.mock:
            route = respx.post(SEND).respond(200, json={"recipient_id": PSID, "message_id": "m"})
            await signed_client.send(PAGE, SecretStr(TOKEN), BODY)
            assert route.calls.last.request.url.params["appsecret_proof"] == proof
            await plain_client.send(PAGE, SecretStr(TOKEN), BODY)
            assert "appsecret_proof" not in route.calls.last.request.url.params
    finally:
        await signed_client.aclose()
        await plain_client.aclose()
    assert proof not in caplog.text and "appsecret_proof=***" in caplog.text
