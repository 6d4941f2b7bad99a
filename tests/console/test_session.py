"""Signing in to the console and what a session may do: no page without one, every change
with its CSRF token, a revoked token ends it, and the cookie never holds the token."""

from __future__ import annotations

import asyncio
import re

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, AUTH
from tests.console.conftest import ConsoleClient

Client = TestClient  # type: ignore[type-arg]
BOT = """
[[bots]]
id = "b1"
url = "https://bot.example/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""


async def _token(client: Client, scopes: list[str], **more: str) -> tuple[str, str]:
    resp = await client.post(
        "/v1/tokens", json={"name": "t", "scopes": scopes, **more}, headers=AUTH
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return body["id"], body["token"]


async def test_no_page_without_a_session(client: Client) -> None:
    for path in ("/console/inbox", "/console/events", "/console/anything/else"):
        resp = await client.get(path, allow_redirects=False)
        if path.endswith("else"):
            assert resp.status == 404
            continue
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/signin?next=")
    # htmx asks for fragments: it is told where to go instead
    resp = await client.get("/console/inbox", headers={"HX-Request": "true"}, allow_redirects=False)
    assert resp.status == 401
    assert resp.headers["HX-Redirect"].startswith("/console/signin")
    resp = await client.post("/console/signout", data={"csrf": "x"}, allow_redirects=False)
    assert resp.status == 303


async def test_sign_in_sets_a_strict_httponly_cookie_without_the_token(
    console: ConsoleClient,
) -> None:
    resp = await console.signin()
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/inbox"
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("omnigw_console="))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert ADMIN not in cookie
    page = await console.get("/console/inbox")
    assert page.status == 200
    html = await page.text()
    assert ADMIN not in html
    assert console.csrf and console.csrf in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["X-Frame-Options"] == "DENY"


async def test_a_wrong_token_or_a_stale_form_is_refused(console: ConsoleClient) -> None:
    resp = await console.signin("ogw_not-a-token")
    assert resp.status == 401
    assert "not valid" in await resp.text() or "không hợp lệ" in await resp.text()
    # the form's own value missing (another site posting it): refused before any check
    resp = await console.client.post(
        "/console/signin", data={"token": ADMIN, "csrf": "forged"}, allow_redirects=False
    )
    assert resp.status == 403
    assert "omnigw_console=" not in " ".join(resp.headers.getall("Set-Cookie", []))


async def test_failed_sign_ins_are_throttled_like_api_logins(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(**{"server.login_failures_burst": 2})
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        statuses = [(await console.signin(f"ogw_guess{n}")).status for n in range(4)]
        assert statuses[:2] == [401, 401]
        assert statuses[-1] == 429
        # even the right token waits now
        assert (await console.signin()).status == 429


async def test_every_change_needs_the_csrf_token(console: ConsoleClient) -> None:
    await console.signin()
    for given in (None, "", "wrong"):
        data = {} if given is None else {"csrf": given}
        resp = await console.post("/console/signout", data, csrf=False)
        assert resp.status == 403, given
        assert "csrf_failed" in await resp.text()
    # the header htmx sends works like the field
    resp = await console.client.post(
        "/console/signout", headers={"X-CSRF-Token": console.csrf}, allow_redirects=False
    )
    assert resp.status == 303


async def test_a_change_from_another_origin_is_refused(console: ConsoleClient) -> None:
    await console.signin()
    resp = await console.post("/console/signout", headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    # the session still works
    assert (await console.get("/console/inbox")).status == 200


async def test_signing_out_ends_the_session(console: ConsoleClient) -> None:
    await console.signin()
    resp = await console.post("/console/signout")
    assert resp.status == 303
    resp = await console.get("/console/inbox")
    assert resp.status == 303


async def test_a_revoked_token_ends_its_session_at_once(console: ConsoleClient) -> None:
    client = console.client
    resp = await client.put("/v1/agents/ag1", json={"name": "An"}, headers=AUTH)
    assert resp.status in (200, 201), await resp.text()
    token_id, token = await _token(client, ["agent"], agent_id="ag1")
    assert (await console.signin(token)).status == 303
    assert (await console.get("/console/inbox")).status == 200
    resp = await client.delete(f"/v1/tokens/{token_id}", headers=AUTH)
    assert resp.status == 204
    resp = await console.get("/console/inbox")
    assert resp.status == 303
    assert "ended=1" in resp.headers["Location"]


async def test_a_bot_token_cannot_open_the_console(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(BOT)
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        _id, token = await _token(client, ["bot"], bot_id="b1")
        resp = await console.signin(token)
        assert resp.status == 403
        assert "omnigw_console=" not in " ".join(resp.headers.getall("Set-Cookie", []))


async def test_after_sign_in_only_console_paths_are_followed(console: ConsoleClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/v1/tokens", "/\\evil.example"):
        console.client.session.cookie_jar.clear()
        page = await console.client.get("/console/signin")
        nonce = re.search(r'name="csrf" value="([^"]*)"', await page.text())
        assert nonce is not None
        resp = await console.client.post(
            "/console/signin",
            data={"csrf": nonce.group(1), "token": ADMIN, "next": target},
            allow_redirects=False,
        )
        assert resp.status == 303
        assert resp.headers["Location"] == "/console/inbox", target


async def test_the_console_event_stream_follows_the_session(console: ConsoleClient) -> None:
    await console.signin()
    resp = await console.client.get("/console/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    assert first.startswith(b"retry:")
    resp.close()


async def test_the_cookie_is_secure_behind_an_https_public_url(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(**{"server.public_url": "https://help.example"})
    async with TestClient(TestServer(gw.web_app())) as client:
        # (the client keeps Secure cookies for https only: the sign-in form's is read here)
        resp = await client.get("/console/signin")
        cookie = next(
            c for c in resp.headers.getall("Set-Cookie") if c.startswith("omnigw_console_signin=")
        )
        assert "Secure" in cookie
        assert "HttpOnly" in cookie


async def test_the_pages_speak_vietnamese_and_english(console: ConsoleClient) -> None:
    page = await console.client.get("/console/signin", headers={"Accept-Language": "vi-VN"})
    assert "Đăng nhập" in await page.text()
    page = await console.client.get("/console/signin?lang=en")
    assert "Sign in" in await page.text()
    # the choice is kept for the next pages
    page = await console.client.get("/console/signin", headers={"Accept-Language": "vi-VN"})
    assert "Sign in to the console" in await page.text()


async def test_a_page_takes_one_request_of_the_tokens_rate(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """However many API operations a page runs to answer, it counts as one request; past
    the token's rate the console answers 429 like the API."""
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(**{"server.api_rate_burst": 3, "server.api_rate_per_second": 0.01})
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        await console.signin()  # sign-in itself reads no API; the inbox it lands on: 1
        assert (await console.get("/console/inbox")).status == 200  # 2 (two lists, ...)
        assert (await console.get("/console/agents")).status == 200  # 3
        resp = await console.get("/console/inbox")
        assert resp.status == 429
        assert "too many requests" in await resp.text()


async def test_the_console_can_be_turned_off(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(**{"server.console": False})
    async with TestClient(TestServer(gw.web_app())) as client:
        for path in ("/console", "/console/signin", "/console/static/console.js"):
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 404, path
        assert (await client.get("/v1/conversations", headers=AUTH)).status == 200


async def test_static_files_are_served_and_nothing_beside_them(client: Client) -> None:
    resp = await client.get("/console/static/vendor/htmx.min.js")
    assert resp.status == 200
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for path in (
        "/console/static/%2e%2e/session.py",
        "/console/static/..%2fsession.py",
        "/console/static/vendor/../../session.py",
        "/console/static/vendor",
    ):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404, path
        assert "Sessions" not in await resp.text()
