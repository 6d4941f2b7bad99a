"""The console's webhook pages against a real gateway and real local receivers: the
signing secret shown once (on the answer of the add or the rotation, never again), a dead
delivery seen in the log and replayed until delivered, the log's filter and paging, field
errors, removal with confirmation, and URLs shown as text."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser

from gateway.app import Gateway
from tests.api.helpers import eventually, get_json
from tests.conftest import ADMIN, AUTH, GatewayFactory
from tests.console.browser import served, signed_in
from tests.console.conftest import ConsoleClient, shot
from tests.webhooks.receiver import Delivery, Receiver
from tests.webhooks.test_delivery import say

CONFIG_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "online"
capacity = {{ total = 100 }}

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 0.05, 0.1, 0.2]
timeout = 1
rotation_overlap = 0.5

[[webhooks]]
id = "helpdesk"
url = "{url}"
events = ["conversation.created"]
secret = "{secret}"
"""
_SECRET = re.compile(r"data-secret>(whsec_[^<]+)</code>")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def started(
    make_gateway: GatewayFactory, receiver: Receiver
) -> AsyncIterator[tuple[Gateway, ConsoleClient]]:
    gw = await make_gateway(FAST.format(url=_elsewhere(receiver), secret=CONFIG_SECRET))
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        await console.signin()
        yield gw, console


def _elsewhere(receiver: Receiver) -> str:
    """The config file's endpoint: the same receiver, another path (kept apart)."""
    return receiver.url.replace("/hook", "/elsewhere")


async def _text(resp: ClientResponse) -> str:
    return await resp.text()


async def _add(console: ConsoleClient, url: str, **more: str) -> tuple[str, str, str]:
    """Add an endpoint through the console's form: (its id, its secret, the answer page)."""
    await console.get("/console/webhooks")
    resp = await console.post("/console/webhooks", {"url": url, **more})
    page = await resp.text()
    assert resp.status == 200, page
    assert "Location" not in resp.headers
    found = _SECRET.search(page)
    assert found is not None, page
    endpoint_id = re.search(r'/console/webhooks/(wh_[0-9A-Za-z]+)"', page)
    assert endpoint_id is not None
    return endpoint_id.group(1), found.group(1), page


async def _every_page(console: ConsoleClient, endpoint_id: str) -> list[str]:
    """Every page and fragment of the webhook section, as a browser would load them."""
    pages = []
    for path in (
        "/console/webhooks",
        "/console/webhooks/list",
        f"/console/webhooks/{endpoint_id}",
        f"/console/webhooks/{endpoint_id}?outcome=dead",
        f"/console/webhooks/{endpoint_id}/deliveries",
        f"/console/webhooks/{endpoint_id}/delete",
        "/console/webhooks/helpdesk",
        "/console/inbox",
    ):
        resp = await console.get(path)
        assert resp.status == 200, path
        pages.append(await resp.text())
        pages.append(" ".join(resp.headers.getall("Set-Cookie", [])))
    return pages


async def test_no_webhook_page_without_a_session(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/console/webhooks", "/console/webhooks/wh_x", "/console/webhooks/list"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/signin?next=")
    resp = await client.post(
        "/console/webhooks", data={"url": "https://x.example/h"}, allow_redirects=False
    )
    assert resp.status == 303
    listed = await get_json(client, "/v1/webhooks")
    assert listed["items"] == []


async def test_the_secret_is_shown_once_and_signs_the_deliveries(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    gw, console = started
    endpoint_id, secret, page = await _add(
        console, receiver.url, events="message.*, conversation.assigned", description="bàn hỗ trợ"
    )
    assert "will not be shown again" in page or "không bao giờ được hiển thị lại" in page
    assert page.count(secret) == 1
    # the endpoint is as typed, and the secret shown is the one that signs
    api = await get_json(console.client, f"/v1/webhooks/{endpoint_id}")
    assert api["events"] == ["message.*", "conversation.assigned"]
    assert api["description"] == "bàn hỗ trợ"
    await say(gw, "v1", 0)
    await eventually(lambda: _arrived(receiver, 1))
    [envelope] = [e for e in receiver.verified(secret) if e["type"] == "message.received"]
    assert envelope["data"]["message"]["parts"][0]["text"] == "xin chào"
    # never again: not on any page, fragment or cookie, nor the config file's secret
    for text in await _every_page(console, endpoint_id):
        assert secret not in text
        assert CONFIG_SECRET not in text


async def _arrived(receiver: Receiver, n: int) -> bool:
    return len(receiver.accepted()) >= n


async def test_rotating_shows_the_new_secret_once(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    gw, console = started
    endpoint_id, old, _page = await _add(console, receiver.url, events="message.received")
    await console.get(f"/console/webhooks/{endpoint_id}")
    resp = await console.post(f"/console/webhooks/{endpoint_id}/rotate")
    page = await resp.text()
    assert resp.status == 200, page
    found = _SECRET.search(page)
    assert found is not None
    new = found.group(1)
    assert new != old and old not in page
    assert "data-previous-until" in page
    await say(gw, "v1", 0)
    await eventually(lambda: _arrived(receiver, 1))
    for envelope in receiver.verified(new):  # the new secret signs (beside the old one)
        assert envelope["type"] == "message.received"
    for text in await _every_page(console, endpoint_id):
        assert new not in text and old not in text
    # an endpoint of the config file offers no rotation nor removal, and the API agrees
    helpdesk = await _text(await console.get("/console/webhooks/helpdesk"))
    assert 'data-action="rotate"' not in helpdesk and 'data-action="delete"' not in helpdesk
    assert 'data-source="config"' in await _text(await console.get("/console/webhooks"))
    resp = await console.post("/console/webhooks/helpdesk/rotate")
    assert resp.status == 409
    assert "managed_by_config" in await resp.text()


async def _failing(_d: Delivery, _n: int) -> web.StreamResponse:
    return web.Response(status=500, text="kho hàng <b>lỗi</b>")


async def _accepting(_d: Delivery, _n: int) -> web.StreamResponse:
    return web.Response(status=200)


async def _outcomes(console: ConsoleClient, endpoint_id: str, query: str = "") -> list[str]:
    page = await _text(await console.get(f"/console/webhooks/{endpoint_id}{query}"))
    return re.findall(r'data-outcome="(\w+)"', page)


async def test_a_dead_delivery_is_logged_and_replayed_until_delivered(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    gw, console = started
    receiver.behaviour = _failing
    endpoint_id, _secret, _page = await _add(console, receiver.url, events="message.received")
    await say(gw, "v1", 0)
    await eventually(lambda: _has_dead(console, endpoint_id), within=5)
    # every attempt of the schedule, newest first, with the status and the answer
    assert await _outcomes(console, endpoint_id) == ["dead", "retry", "retry", "retry"]
    page = await _text(await console.get(f"/console/webhooks/{endpoint_id}"))
    event_id = receiver.deliveries[0].id
    assert page.count(f'<td class="mono">{event_id}</td>') == 4
    assert "<td>500</td>" in page
    assert "kho hàng &lt;b&gt;lỗi&lt;/b&gt;" in page and "<b>lỗi</b>" not in page
    assert re.findall(r"<td>(\d)</td>\s*<td><span class=\"badge", page) == ["4", "3", "2", "1"]
    assert await _outcomes(console, endpoint_id, "?outcome=dead") == ["dead"]
    assert await _outcomes(console, endpoint_id, "?outcome=succeeded") == []
    listed = await _text(await console.get("/console/webhooks"))
    assert "Failing since" in listed or "Lỗi từ" in listed
    # the endpoint answers again: the dead delivery replayed from the console arrives
    receiver.behaviour = _accepting
    resp = await console.post(f"/console/webhooks/{endpoint_id}/replay", {"dead": "true"})
    assert resp.status == 303
    assert resp.headers["Location"] == f"/console/webhooks/{endpoint_id}?done=replayed&n=1"
    await eventually(lambda: _arrived(receiver, 1))
    assert receiver.accepted()[0].id == event_id
    await eventually(lambda: _logged(console, endpoint_id, "succeeded"))
    page = await _text(await console.get(resp.headers["Location"]))
    assert "Up to 1 deliveries" in page or "Đã đưa tối đa 1" in page
    assert re.findall(r'data-outcome="(\w+)"', page)[0] == "succeeded"


async def _has_dead(console: ConsoleClient, endpoint_id: str) -> bool:
    return "dead" in await _outcomes(console, endpoint_id, "?outcome=dead")


async def _logged(console: ConsoleClient, endpoint_id: str, outcome: str) -> bool:
    return outcome in await _outcomes(console, endpoint_id)


async def test_replay_since_an_event_id_or_a_time_and_its_errors(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    gw, console = started
    endpoint_id, _secret, _page = await _add(console, receiver.url, events="message.received")
    for n in range(3):
        await say(gw, "v1", n)
    await eventually(lambda: _arrived(receiver, 3))
    ids = [d.id for d in receiver.deliveries]
    path = f"/console/webhooks/{endpoint_id}/replay"
    await console.get(f"/console/webhooks/{endpoint_id}")
    resp = await console.post(path, {"since_event_id": ids[0]})
    assert resp.status == 303
    await eventually(lambda: _arrived(receiver, 5))
    assert [d.id for d in receiver.deliveries[3:]] == ids[1:]
    # a time in the page's time zone: 1 minute ago in Hanoi sends the three again
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    hanoi = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    resp = await console.post(
        path, {"since": hanoi.strftime("%Y-%m-%dT%H:%M:%S"), "tz": "Asia/Ho_Chi_Minh"}
    )
    assert resp.status == 303, await resp.text()
    await eventually(lambda: _arrived(receiver, 8))
    assert [d.id for d in receiver.deliveries[5:]] == ids
    # bad input: a clear error by field, the values kept, nothing replayed
    for form, field in (
        ({"since_event_id": "12a"}, "since_event_id"),
        ({"since_event_id": ids[0], "since": "2026-01-01T00:00"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00", "tz": "Mars/Olympus"}, "tz"),
        ({}, "since_event_id"),
    ):
        resp = await console.post(path, form)
        page = await resp.text()
        assert resp.status == 400, form
        assert f'data-field-error="{field}"' in page, form
        for value in form.values():
            assert f'value="{html.escape(value)}"' in page
    assert len(receiver.deliveries) == 8


async def test_the_log_pages_with_more(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    gw, console = started
    endpoint_id, _secret, _page = await _add(console, receiver.url, events="message.received")
    for n in range(55):
        await say(gw, f"v{n}", 0)
    await eventually(lambda: _arrived(receiver, 55), within=10)
    page = await _text(await console.get(f"/console/webhooks/{endpoint_id}"))
    first = re.findall(r'data-attempt="(\d+)"', page)
    assert len(first) == 50
    more = re.search(r'hx-get="(/console/webhooks/[^"]+/deliveries\?cursor=[^"]+)"', page)
    assert more is not None
    rest = await _text(await console.get(html.unescape(more.group(1))))
    second = re.findall(r'data-attempt="(\d+)"', rest)
    assert len(second) == 5
    assert not set(first) & set(second)
    assert "deliveries?cursor=" not in rest  # the end: no further "more"


async def test_bad_endpoints_get_errors_by_field_and_urls_show_as_text(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    _gw, console = started
    await console.get("/console/webhooks")
    for form, field in (
        ({"url": "ftp://files.example/hook"}, "url"),
        ({"url": "http://[::1"}, "url"),
        ({"url": "x"}, "url"),
        ({"url": receiver.url, "events": "message.* ; DROP"}, "events"),
    ):
        resp = await console.post("/console/webhooks", form)
        page = await resp.text()
        assert resp.status in (400, 422), (form, page)
        assert f'data-field-error="{field}"' in page, form
        assert f'value="{html.escape(form["url"])}"' in page
        assert "whsec_" not in page
    hostile = receiver.url + "?x=<script>alert(1)</script>"
    endpoint_id, _secret, answer = await _add(
        console, hostile, description='<img src=x onerror="alert(2)">'
    )
    assert "<script>alert(1)" not in answer
    for path in ("/console/webhooks", f"/console/webhooks/{endpoint_id}"):
        page = await _text(await console.get(path))
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
        assert "<script>alert(1)" not in page
        assert "<img src=x" not in page
    page = await _text(await console.get(f"/console/webhooks/{endpoint_id}/delete"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


async def test_removal_asks_first_and_enabling_follows_the_api(
    started: tuple[Gateway, ConsoleClient], receiver: Receiver
) -> None:
    _gw, console = started
    endpoint_id, _secret, _page = await _add(console, receiver.url)
    page = await _text(await console.get(f"/console/webhooks/{endpoint_id}/delete"))
    assert 'data-action="confirm-delete"' in page
    assert (await get_json(console.client, f"/v1/webhooks/{endpoint_id}"))["id"] == endpoint_id
    # disable and enable again
    resp = await console.post(f"/console/webhooks/{endpoint_id}/enabled", {"enabled": "false"})
    assert resp.status == 303
    assert (await get_json(console.client, f"/v1/webhooks/{endpoint_id}"))["enabled"] is False
    page = await _text(await console.get(f"/console/webhooks/{endpoint_id}"))
    assert 'data-state="disabled"' in page and 'data-action="enable"' in page
    await console.post(f"/console/webhooks/{endpoint_id}/enabled", {"enabled": "true"})
    assert (await get_json(console.client, f"/v1/webhooks/{endpoint_id}"))["enabled"] is True
    # the removal itself, then it is gone from the list
    resp = await console.post(f"/console/webhooks/{endpoint_id}/delete")
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/webhooks?done=deleted"
    await get_json(console.client, f"/v1/webhooks/{endpoint_id}", 404)
    listed = await _text(await console.get("/console/webhooks?done=deleted"))
    assert endpoint_id not in listed
    assert "The endpoint was deleted." in listed or "Đã xóa endpoint." in listed
    # a change without the CSRF token does nothing
    other, _s, _p = await _add(console, receiver.url)
    resp = await console.post(f"/console/webhooks/{other}/delete", csrf=False)
    assert resp.status == 403
    await get_json(console.client, f"/v1/webhooks/{other}")


async def test_an_agent_token_sees_no_webhooks(
    started: tuple[Gateway, ConsoleClient],
) -> None:
    _gw, console = started
    client = console.client
    resp = await client.put("/v1/agents/ag1", json={"name": "An"}, headers=AUTH)
    assert resp.status in (200, 201)
    resp = await client.post(
        "/v1/tokens", json={"name": "t", "scopes": ["agent"], "agent_id": "ag1"}, headers=AUTH
    )
    token = (await resp.json())["token"]
    agent = ConsoleClient(client)
    client.session.cookie_jar.clear()
    assert (await agent.signin(token)).status == 303
    inbox = await _text(await agent.get("/console/inbox"))
    assert 'data-section="webhooks"' not in inbox
    resp = await agent.get("/console/webhooks")
    assert resp.status == 403
    assert "insufficient_scope" in await resp.text()
    resp = await agent.post("/console/webhooks", {"url": "https://x.example/hook"})
    assert resp.status == 403
    assert ADMIN not in inbox


# --- in Chromium -------------------------------------------------------------------------


async def test_webhooks_in_chromium(
    make_gateway: GatewayFactory, receiver: Receiver, browser: Browser
) -> None:
    gw = await make_gateway(FAST.format(url=_elsewhere(receiver), secret=CONFIG_SECRET))
    receiver.behaviour = _failing
    async with served(gw) as site:
        page = await signed_in(browser, site)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.click('header nav a[data-section="webhooks"]')
        await page.wait_for_url("**/console/webhooks")
        assert await page.locator('script[src$="chart.umd.min.js"]').count() == 0
        await page.fill("#wh-url", receiver.url + "?<script>alert(1)</script>")
        await page.fill("#wh-events", "message.received")
        await page.click('button[data-action="add-webhook"]')
        secret = (await page.locator("[data-secret]").inner_text()).strip()
        assert secret.startswith("whsec_")
        assert await page.locator("[data-secret-once]").is_visible()
        await shot(page, "webhooks-secret-once")
        await page.click('a[href="/console/webhooks"]')
        await page.wait_for_url("**/console/webhooks")
        assert secret not in await page.content()
        rows = page.locator("table.webhooks tbody tr")
        assert await rows.count() == 2
        shown = page.locator("[data-url]").filter(has_text="<script>")
        assert await shown.count() == 1  # the URL's <script> is text on the page
        await shot(page, "webhooks-list")
        # a message goes dead; the log shows its attempts after a refresh
        await say(gw, "v1", 0)
        await eventually(lambda: _dead_in(gw), within=5)
        await page.locator("a[data-action=open-log]").last.click()
        await page.wait_for_selector("table.deliveries")
        await page.click('button[data-action="refresh"]')
        await page.wait_for_selector('tr[data-outcome="dead"]')
        assert await page.locator("tr[data-attempt]").count() == 4
        await shot(page, "webhooks-delivery-log")
        receiver.behaviour = _accepting
        await page.click('button[data-action="replay-dead"]')
        await page.wait_for_selector("[data-notice]")
        await eventually(lambda: _arrived(receiver, 1))
        await page.click('button[data-action="refresh"]')
        await page.wait_for_selector('tr[data-outcome="succeeded"]')
        assert errors == []
        assert secret not in await page.content()
        # the list follows webhook events live: disabled through the API, it shows so
        async with page.expect_response("**/console/events"):  # the stream answered
            await page.click('a[href="/console/webhooks"]')
        [ours] = [w for w in await gw.store.webhooks.all() if w.source == "api"]
        async with ClientSession() as http:
            resp = await http.patch(
                f"{site}/v1/webhooks/{ours.id}", json={"enabled": False}, headers=AUTH
            )
            assert resp.status == 200
        row = page.locator(f'tr[data-webhook="{ours.id}"] [data-state="disabled"]')
        await row.wait_for(timeout=5000)
        await page.context.close()


async def _dead_in(gw: Gateway) -> bool:
    for endpoint in await gw.store.webhooks.all():
        if endpoint.source == "api":
            rows: list[dict[str, Any]] = await gw.store.webhooks.attempts(
                endpoint.id, None, 10, "dead"
            )
            return bool(rows)
    return False
