"""The console as an admin uses it, in Chromium, from sign-in to figures: add a webchat
and a Facebook channel through their forms (Graph faked by respx at the transport), answer
a customer writing on the demo page and one writing on Messenger, watch the conversation
move live, transfer it, resolve it, replay the webhook that went dead, read the figures.
A screenshot of each page is kept under test-artifacts/console/journey-*.png."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import Browser, Dialog, Page, expect

from tests.api.helpers import eventually
from tests.conftest import AUTH, GatewayFactory
from tests.console.browser import served, signed_in
from tests.console.conftest import shot
from tests.facebook.conftest import GRAPH_HOST, GraphFake, graph  # noqa: F401 (the fixture)
from tests.facebook.helpers import APP_SECRET, PAGE, PSID, TOKEN, VERIFY_TOKEN, load, signed
from tests.webhooks.receiver import Delivery, Receiver

T = 10_000
CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "demo"
name = "Minh"
presence = "online"
capacity = { total = 10 }

[[agents]]
id = "lan"
name = "Lan"
presence = "online"
capacity = { total = 10 }

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 0.05, 0.1]
timeout = 1
"""
CUSTOMER_TEXT = "Chào shop, đơn hàng #123 của tôi đâu rồi? <script>window.__pwned=1</script>"
REPLY = "Dạ, đơn #123 đang được giao ạ."
FB_REPLY = "Chào bạn, shop đã nhận tin nhắn trên Messenger."


async def _failing(_d: Delivery, _n: int) -> web.StreamResponse:
    return web.Response(status=500)


async def _accepting(_d: Delivery, _n: int) -> web.StreamResponse:
    return web.Response(status=204)


async def _conversation_ids(api: aiohttp.ClientSession, **query: str) -> list[str]:
    async with api.get("/v1/conversations", params=query) as resp:
        return [c["id"] for c in (await resp.json())["items"]]


async def _conversation(api: aiohttp.ClientSession, conv_id: str) -> dict[str, Any]:
    async with api.get(f"/v1/conversations/{conv_id}") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def _add_channels(page: Page, base: str) -> None:
    await page.click('header nav a[data-section="channels"]')
    await page.wait_for_url("**/console/channels")
    await page.click('a[data-add="webchat"]')
    await page.fill("#f-id", "shop-chat")
    await page.fill("#f-name", "Cửa hàng")
    await page.click('button[data-action="save"]')
    await page.wait_for_url("**/console/channels/shop-chat?done=created")

    await page.goto(f"{base}/console/channels/new?type=facebook")
    await page.fill("#f-id", "fb-shop")
    await page.fill('input[name="app_secret"]', APP_SECRET)
    await page.fill('input[name="verify_token"]', VERIFY_TOKEN)
    await page.fill('input[name="pages.0.id"]', PAGE)
    await page.fill('input[name="pages.0.access_token"]', TOKEN)
    await page.click("details.more summary")
    await page.fill('input[name="api_base"]', f"https://{GRAPH_HOST}/v25.0")
    await page.click('button[data-action="save"]')
    await page.wait_for_url("**/console/channels/fb-shop?done=created")
    await expect(page.locator("#webhook-fb-shop")).to_have_text(f"{base}/webhooks/fb-shop")
    html = await page.content()
    for secret in (APP_SECRET, VERIFY_TOKEN, TOKEN):
        assert secret not in html
    await page.click('header nav a[data-section="channels"]')
    for channel in ("shop-chat", "fb-shop"):
        await expect(page.locator(f'tr[data-channel="{channel}"] [data-state]')).to_have_text(
            "CONNECTED", timeout=T
        )
    await shot(page, "journey-channels")


async def _add_webhook(page: Page, receiver: Receiver) -> str:
    await page.click('header nav a[data-section="webhooks"]')
    await page.wait_for_url("**/console/webhooks")
    await page.fill("#wh-url", receiver.url)
    await page.fill("#wh-events", "conversation.resolved")
    await page.click('button[data-action="add-webhook"]')
    secret = (await page.locator("[data-secret]").inner_text()).strip()
    assert secret.startswith("whsec_")
    await shot(page, "journey-webhook-secret")
    return secret


async def test_an_admin_runs_the_helpdesk_from_the_console(
    make_gateway: GatewayFactory,
    browser: Browser,
    graph: GraphFake,  # noqa: F811
) -> None:
    gw = await make_gateway(CONFIG)
    receiver = await Receiver(behaviour=_failing).start()
    graph.router.route(host="127.0.0.1").pass_through()
    try:
        async with served(gw) as base, aiohttp.ClientSession(base, headers=AUTH) as api:
            page = await signed_in(browser, base)
            dialogs: list[str] = []

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)

            page.on("dialog", on_dialog)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await shot(page, "journey-inbox-empty")

            await _add_channels(page, base)
            secret = await _add_webhook(page, receiver)

            # a customer writes on the demo page; the inbox shows it without a reload
            await page.click('header nav a[data-section="inbox"]')
            await page.wait_for_url("**/console/inbox")
            customer_ctx = await browser.new_context(locale="vi-VN")
            customer = await customer_ctx.new_page()
            customer.on("dialog", on_dialog)
            await customer.goto(f"{base}/")
            await expect(customer.locator("#omnigw-status")).to_have_attribute(
                "data-state", "connected", timeout=T
            )
            await customer.fill("#omnigw-input", CUSTOMER_TEXT)
            await customer.press("#omnigw-input", "Enter")
            await eventually(lambda: _one(api, channel_id="webchat"), within=10)
            (conv_id,) = await _conversation_ids(api, channel_id="webchat")
            row = page.locator(f'[data-list="assigned"] tr[data-conversation="{conv_id}"]')
            await expect(row).to_be_visible(timeout=T)
            await shot(page, "journey-inbox")

            # answer it
            await row.get_by_role("link").click()
            await page.wait_for_url(f"**/console/conversations/{conv_id}")
            messages = page.locator("#conv-messages")
            await expect(messages.get_by_text(CUSTOMER_TEXT, exact=True)).to_be_visible()
            await expect(page.locator("#routing")).to_be_visible()
            await page.fill("#reply-text", REPLY)
            await page.click('button[data-action="reply"]')
            await expect(messages.get_by_text(REPLY, exact=True)).to_be_visible(timeout=T)
            reply = customer.locator(
                '#omnigw-messages .omnigw-msg[data-direction="outbound"] .omnigw-text'
            )
            await expect(reply).to_have_text(REPLY, timeout=T)
            await shot(page, "journey-conversation")

            # transfer it to the other agent: the page follows
            first = (await _conversation(api, conv_id))["assignee_id"]
            other = "lan" if first == "demo" else "demo"
            await page.select_option("#transfer-agent", other)
            await page.click('button[data-action="transfer"]')
            assignee = page.locator('#conv-header [data-field="assignee"]')
            await expect(assignee).to_have_text("Lan" if other == "lan" else "Minh", timeout=T)
            assert (await _conversation(api, conv_id))["assignee_id"] == other

            # resolve it: the endpoint (answering 500) makes the delivery dead
            await page.click('button[data-action="resolve"]')
            status = page.locator('#conv-header [data-field="status"]')
            await expect(status).to_have_attribute("data-value", "resolved", timeout=T)
            await eventually(lambda: _attempts(receiver, 3), within=10)

            # a Messenger customer: the conversation arrives live, the reply goes to Graph
            await page.click('header nav a[data-section="inbox"]')
            await expect(page.locator(f'tr[data-conversation="{conv_id}"]')).to_have_count(
                0, timeout=T
            )
            body = json.dumps(load("message_text")).encode()
            async with api.post("/webhooks/fb-shop", data=body, headers=signed(body)) as resp:
                assert resp.status == 200, await resp.text()
            await eventually(lambda: _one(api, channel_id="fb-shop"), within=10)
            (fb_id,) = await _conversation_ids(api, channel_id="fb-shop")
            fb_row = page.locator(f'tr[data-conversation="{fb_id}"]')
            await expect(fb_row).to_be_visible(timeout=T)
            await fb_row.get_by_role("link").click()
            await page.wait_for_url(f"**/console/conversations/{fb_id}")
            await expect(page.locator("#conv-header [data-window]")).to_have_attribute(
                "data-window", "open"
            )
            await page.fill("#reply-text", FB_REPLY)
            await page.click('button[data-action="reply"]')
            await eventually(lambda: _sent_to_graph(graph, FB_REPLY), within=10)

            # the dead delivery, replayed from the console once the endpoint is back
            await page.click('header nav a[data-section="webhooks"]')
            await page.locator("a[data-action=open-log]").last.click()
            await page.wait_for_selector("table.deliveries")
            await page.click('button[data-action="refresh"]')
            await page.wait_for_selector('tr[data-outcome="dead"]')
            receiver.behaviour = _accepting
            await page.click('button[data-action="replay-dead"]')
            await page.wait_for_selector("[data-notice]")
            await eventually(lambda: _accepted(receiver), within=10)
            await page.click('button[data-action="refresh"]')
            await page.wait_for_selector('tr[data-outcome="succeeded"]')
            await shot(page, "journey-webhook-log")
            (delivered,) = receiver.verified(secret)[-1:]
            assert delivered["type"] == "conversation.resolved"
            assert delivered["data"]["conversation"]["id"] == conv_id

            # the agents and the figures
            await page.click('header nav a[data-section="agents"]')
            await expect(page.locator('tr[data-agent="lan"]')).to_be_visible()
            await shot(page, "journey-agents")
            await page.click('header nav a[data-section="figures"]')
            await page.wait_for_url("**/console/figures**")
            drawn = await page.evaluate(
                "Array.from(document.querySelectorAll('canvas[data-chart]'))"
                ".filter(c => Chart.getChart(c) !== undefined).length"
            )
            assert drawn > 0
            await shot(page, "journey-figures")

            assert await page.evaluate("window.__pwned") is None
            assert await customer.evaluate("window.__pwned") is None
            assert dialogs == []
            assert errors == []
            await customer_ctx.close()
    finally:
        await receiver.stop()


async def _one(api: aiohttp.ClientSession, **query: str) -> bool:
    return len(await _conversation_ids(api, **query)) == 1


async def _attempts(receiver: Receiver, n: int) -> bool:
    return len(receiver.deliveries) >= n


async def _accepted(receiver: Receiver) -> bool:
    return bool(receiver.accepted())


async def _sent_to_graph(fake: GraphFake, text: str) -> bool:
    for path, token, body in fake.messages():
        if path == f"/v25.0/{PAGE}/messages" and body.get("message", {}).get("text") == text:
            assert body["recipient"] == {"id": PSID}
            assert token == TOKEN
            return True
    return False
