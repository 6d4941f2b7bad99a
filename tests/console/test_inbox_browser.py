"""The inbox and the conversation page in Chromium against the gateway on a real port: a
webchat visitor's message appears without a reload, customer text and names show as text
and run nothing, a reply typed in the page (with a file) reaches the message list, and a
new message from the visitor appears live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, expect

from gateway.app import Gateway
from tests.conftest import AUTH
from tests.console.browser import served, signed_in
from tests.console.conftest import shot
from tests.console.test_conversation import PNG, XSS


@pytest.fixture
async def base(gw: Gateway) -> AsyncIterator[str]:
    async with served(gw) as url:
        yield url


@pytest.fixture
async def api(base: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base, headers=AUTH) as session:
        yield session


async def _visitor(
    api: aiohttp.ClientSession, base: str
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await api.ws_connect(
        base.replace("http://", "ws://") + "/webchat/webchat/ws", headers={"Authorization": ""}
    )
    frame = await ws.receive_json(timeout=5)
    assert frame["type"] == "session"
    return ws, frame["visitor_id"]


async def _say(ws: aiohttp.ClientWebSocketResponse, text: str, client_id: str) -> None:
    await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=5)
        if frame["type"] == "ack":
            return


async def _conversation_of(api: aiohttp.ClientSession, visitor_id: str) -> dict[str, Any]:
    for _ in range(100):
        async with api.get("/v1/conversations") as resp:
            page = await resp.json()
        for conv in page["items"]:
            async with api.get(f"/v1/contacts/{conv['contact_id']}") as resp:
                contact = await resp.json()
            if any(i["external_id"] == visitor_id for i in contact["identities"]):
                return conv  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError("the visitor's conversation never appeared")


async def test_inbox_and_conversation_in_chromium(
    browser: Browser, base: str, api: aiohttp.ClientSession
) -> None:
    page = await signed_in(browser, base)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    # Each page counts its event stream's openings (an event sent before it opens is not
    # replayed to it).
    await page.context.add_init_script(
        "document.addEventListener('htmx:sseOpen', function () {"
        " window.sseOpened = (window.sseOpened || 0) + 1; });"
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/console/inbox?lang=en")
    await expect(page.locator('[data-list="assigned"]')).to_be_visible()
    await page.wait_for_function("window.sseOpened > 0")

    # a visitor writes: the row appears without a reload
    ws, visitor_id = await _visitor(api, base)
    await _say(ws, f"Hello {XSS}", "c1")
    conv = await _conversation_of(api, visitor_id)
    row = page.locator(f'tr[data-conversation="{conv["id"]}"]')
    await expect(row).to_be_visible(timeout=10_000)

    # a hostile display name shows as text after the next refresh
    async with api.patch(
        f"/v1/contacts/{conv['contact_id']}", json={"display_name": f"Khách {XSS}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
    await _say(ws, "Còn đó không?", "c2")
    await expect(row.get_by_text(f"Khách {XSS}", exact=True)).to_be_visible(timeout=10_000)
    await shot(page, "inbox")

    # the conversation page: the message as text, live, and a reply with a file
    await row.get_by_role("link").click()
    await page.wait_for_url(f"**/console/conversations/{conv['id']}")
    await page.wait_for_function("window.sseOpened > 0")
    messages = page.locator("#conv-messages")
    await expect(messages.get_by_text(f"Hello {XSS}", exact=True)).to_be_visible()
    await expect(page.locator("#routing")).to_contain_text("lowest load ratio")
    await page.fill("#reply-text", "Dạ em đây, anh cần gì ạ?")
    await page.set_input_files(
        "#reply-file", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}]
    )
    await page.click('button[data-action="reply"]')
    await page.wait_for_url(f"**/console/conversations/{conv['id']}**")
    await expect(messages.get_by_text("Dạ em đây, anh cần gì ạ?", exact=True)).to_be_visible()
    image = messages.locator("img.image")
    await expect(image).to_have_count(1)
    loaded = await image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded, "the uploaded image did not load from the console's own URL"
    # the visitor writes again: it shows without a reload
    await page.wait_for_function("window.sseOpened > 0")
    await _say(ws, "Em gửi ảnh rồi nhé", "c3")
    await expect(messages.get_by_text("Em gửi ảnh rồi nhé", exact=True)).to_be_visible(
        timeout=10_000
    )
    await shot(page, "conversation")
    await ws.close()
    assert dialogs == []
    assert errors == []
