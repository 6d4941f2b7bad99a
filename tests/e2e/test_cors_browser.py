"""A helpdesk page on another origin, in a real headless Chromium against a real `omnigw
serve`: listed in `[server] cors_origins`, it reads the API with a bearer token and the
event stream through a ticket (EventSource sends no headers); the same page from an origin
not listed is refused by the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from tests.e2e.server import AUTH, GatewayProcess, astart_gateway
from tests.e2e.test_browser import eventually
from tests.e2e.test_browser import launch as launch  # the fixture

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>helpdesk</title></head>
<body><p>helpdesk</p>
<script>
window.received = [];
window.opened = false;
window.api = async (gateway, token, method, path, body) => {
  const init = {method, headers: {Authorization: "Bearer " + token}};
  if (body != null) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const resp = await fetch(gateway + path, init);
    return {
      status: resp.status,
      requestId: resp.headers.get("X-Request-Id"),
      body: await resp.json(),
    };
  } catch (err) {
    return {error: err.name, message: String(err.message)};
  }
};
window.listen = (gateway, ticket) => {
  const source = new EventSource(
    gateway + "/v1/events?types=agent.*&ticket=" + encodeURIComponent(ticket));
  source.onopen = () => { window.opened = true; };
  source.addEventListener("agent.presence_changed", (e) => {
    window.received.push(JSON.parse(e.data));
  });
  window.source = source;
};
</script></body></html>
"""


async def _page_server() -> tuple[web.AppRunner, str]:
    """A small server of the helpdesk page; its origin is its own port's."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[GatewayProcess, str, str]]:
    listed_runner, listed = await _page_server()
    other_runner, other = await _page_server()
    config = tmp_path / "omnigw.toml"
    config.write_text(
        f"""
[server]
cors_origins = ["{listed}/"]

[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "demo"
name = "Demo Agent"
presence = "online"
""",
        encoding="utf-8",
    )
    gateway = await astart_gateway(tmp_path / "data", tmp_path / "logs", config=config)
    try:
        yield gateway, listed, other
    finally:
        gateway.kill()
        await listed_runner.cleanup()
        await other_runner.cleanup()


async def _agent_token(gateway: GatewayProcess) -> str:
    async with aiohttp.ClientSession(base_url=gateway.base_url, headers=AUTH) as api:
        resp = await api.post(
            "/v1/tokens", json={"name": "helpdesk", "scopes": ["agent"], "agent_id": "demo"}
        )
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
        return token


async def _call(page: Page, gateway: GatewayProcess, token: str, *args: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        "([g, t, m, p, b]) => window.api(g, t, m, p, b)",
        [gateway.base_url, token, *args, *([None] * (3 - len(args)))],
    )
    return result


async def test_a_listed_origin_reads_the_api_and_the_stream(
    setup: tuple[GatewayProcess, str, str], launch: Callable[[], Awaitable[Browser]]
) -> None:
    gateway, listed, _ = setup
    token = await _agent_token(gateway)
    browser = await launch()
    page = await (await browser.new_context()).new_page()
    await page.goto(listed + "/")

    listing = await _call(page, gateway, token, "GET", "/v1/conversations")
    assert listing.get("status") == 200, listing
    assert isinstance(listing["body"]["items"], list)
    assert listing["requestId"]  # an exposed header the page may read

    made = await _call(page, gateway, token, "POST", "/v1/events/tickets")
    assert made.get("status") == 201, made
    ticket = made["body"]["ticket"]
    await page.evaluate("([g, t]) => window.listen(g, t)", [gateway.base_url, ticket])
    await eventually(lambda: page.evaluate("window.opened"), "the stream to open")

    # A real event, made by the page through the API (a PUT with JSON: preflighted).
    changed = await _call(
        page, gateway, token, "PUT", "/v1/agents/demo/presence", {"status": "away"}
    )
    assert changed.get("status") == 200, changed
    received = await eventually(lambda: page.evaluate("window.received"), "the event")
    (event,) = received
    assert event["type"] == "agent.presence_changed"
    assert event["data"]["agent_id"] == "demo"
    assert (event["data"]["status"], event["data"]["previous"]) == ("away", "online")

    # The ticket is used up: opened again, the stream is refused (EventSource gives up).
    await page.evaluate("window.source.close()")
    again = await page.evaluate(
        """async ([g, t]) => {
            const resp = await fetch(g + "/v1/events?ticket=" + encodeURIComponent(t));
            return {status: resp.status, body: await resp.json()};
        }""",
        [gateway.base_url, ticket],
    )
    assert again["status"] == 401
    assert again["body"]["error"]["code"] == "invalid_ticket"
    # the gateway's log has the requests, not the ticket
    logged = gateway.stderr_text() + gateway.stdout_path.read_text(encoding="utf-8")
    assert '"GET /v1/events" 401' in logged
    assert ticket not in logged


async def test_an_origin_not_listed_is_refused_by_the_browser(
    setup: tuple[GatewayProcess, str, str], launch: Callable[[], Awaitable[Browser]]
) -> None:
    gateway, _, other = setup
    token = await _agent_token(gateway)
    browser = await launch()
    page = await (await browser.new_context()).new_page()
    await page.goto(other + "/")
    for args in (("GET", "/v1/conversations"), ("POST", "/v1/events/tickets")):
        refused = await _call(page, gateway, token, *args)
        assert refused.get("error") == "TypeError", refused
        assert refused["message"] == "Failed to fetch", refused  # Chromium's word for CORS
        assert "status" not in refused
    # nothing was made by the refused POST: its preflight was answered 403
    async with aiohttp.ClientSession(base_url=gateway.base_url) as plain:
        resp = await plain.options(
            "/v1/events/tickets",
            headers={"Origin": other, "Access-Control-Request-Method": "POST"},
        )
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "origin_not_allowed"
