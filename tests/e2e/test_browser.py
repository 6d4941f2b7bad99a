"""The webchat widget on the demo page, in a real headless Chromium, against a real gateway."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    WebSocket,
    async_playwright,
    expect,
)

from tests.e2e.server import AUTH, GatewayProcess, Gateways
from tests.media.images import png

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
T = 10_000  # ms, for expect()
TOKEN_KEY = "omnigw:webchat:token"

VISITOR_TEXT = unicodedata.normalize("NFC", "Xin chào, tôi cần hỗ trợ đơn hàng #123")
XSS = "<img src=x onerror=alert(1)>"
REPLY_TEXT = unicodedata.normalize(
    "NFC", f"Chào bạn! {XSS} Đơn hàng #123 của bạn đang được giao, vui lòng chờ nhé."
)
OTHER_TEXT = unicodedata.normalize("NFC", "Cho mình hỏi giá nón lá Huế")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    gateways = Gateways(tmp_path / "logs")
    try:
        yield await gateways.start(tmp_path / "data")
    finally:
        gateways.close()


def chromium_path() -> str:
    # Called from the test body, so a missing browser is a test failure, not a setup error.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "these tests use the system browser and never download one"
        )
    return str(CHROMIUM)


@pytest.fixture
async def launch() -> AsyncIterator[Callable[[], Awaitable[Browser]]]:
    async with async_playwright() as pw:
        browsers: list[Browser] = []

        async def start() -> Browser:
            browser = await pw.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
            browsers.append(browser)
            return browser

        try:
            yield start
        finally:
            for browser in browsers:
                await browser.close()


@pytest.fixture
async def api(gateway: GatewayProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=gateway.base_url, headers=AUTH) as session:
        yield session


@dataclass
class ChatPage:
    page: Page
    socket_urls: list[str] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def messages(self) -> Locator:
        return self.page.locator("#omnigw-messages .omnigw-msg")

    async def wait_connected(self) -> None:
        await expect(self.page.locator("#omnigw-status")).to_have_attribute(
            "data-state", "connected", timeout=T
        )

    async def token(self) -> str | None:
        value: str | None = await self.page.evaluate("key => localStorage.getItem(key)", TOKEN_KEY)
        return value

    async def send(self, text: str) -> str:
        """Type and press Enter; returns the message id once the widget shows it as sent."""
        box = self.page.locator("#omnigw-input")
        await box.fill(text)
        await box.press("Enter")
        own = self.page.locator('#omnigw-messages .omnigw-msg[data-direction="inbound"]').filter(
            has_text=text
        )
        await expect(own).to_have_count(1, timeout=T)
        await expect(own).to_have_attribute("data-status", "sent", timeout=T)
        await expect(own.locator(".omnigw-text")).to_have_text(text, timeout=T)
        await expect(box).to_have_value("", timeout=T)
        message_id = await own.get_attribute("data-message-id")
        assert message_id, "a sent message must carry its server id"
        return message_id

    async def thread(self) -> list[tuple[str | None, str | None, str | None, str]]:
        """(message id, direction, status, text) of every message shown, top to bottom."""
        rows = await self.messages.evaluate_all(
            """els => els.map(e => [
                e.getAttribute('data-message-id'),
                e.getAttribute('data-direction'),
                e.getAttribute('data-status'),
                Array.from(e.querySelectorAll('.omnigw-text')).map(t => t.textContent).join('\\n'),
            ])"""
        )
        return [tuple(r) for r in rows]

    async def wait_sessions(self, count: int) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.sessions) >= count, f"{count} session frame(s)")
        return self.sessions


async def open_chat(context: BrowserContext, gateway: GatewayProcess) -> ChatPage:
    page = await context.new_page()
    chat = ChatPage(page)

    async def on_dialog(dialog: Dialog) -> None:
        chat.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_socket(ws: WebSocket) -> None:
        chat.socket_urls.append(ws.url)

        def on_frame(payload: str | bytes) -> None:
            if isinstance(payload, str):
                frame = json.loads(payload)
                if frame.get("type") == "session":
                    chat.sessions.append(frame)

        ws.on("framereceived", on_frame)

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: chat.errors.append(str(exc)))
    page.on("websocket", on_socket)
    await page.goto(gateway.url("/"))
    await chat.wait_connected()
    return chat


async def eventually(check: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, and return that."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def get_json(api: aiohttp.ClientSession, path: str) -> Any:
    async with api.get(path) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body


async def wait_for_assignment(api: aiohttp.ClientSession) -> dict[str, Any]:
    """The only conversation, once routing has assigned it."""

    async def assigned() -> dict[str, Any] | None:
        items = (await get_json(api, "/v1/conversations"))["items"]
        if len(items) == 1 and items[0]["status"] == "assigned":
            conv: dict[str, Any] = items[0]
            return conv
        return None

    conv: dict[str, Any] = await eventually(assigned, "the conversation to be assigned")
    return conv


async def test_webchat_round_trip_is_literal_and_survives_reload(
    gateway: GatewayProcess,
    launch: Callable[[], Awaitable[Browser]],
    api: aiohttp.ClientSession,
) -> None:
    browser = await launch()
    context = await browser.new_context()
    chat = await open_chat(context, gateway)
    (first,) = await chat.wait_sessions(1)
    assert "token" not in parse_qs(urlsplit(chat.socket_urls[0]).query)
    assert first["conversation_id"] is None

    own_id = await chat.send(VISITOR_TEXT)

    conv = await wait_for_assignment(api)
    assert conv["assignee_id"] == "demo", conv
    assert conv["channel_id"] == "webchat", conv
    stored = (await get_json(api, f"/v1/conversations/{conv['id']}/messages"))["items"]
    assert [(m["id"], m["direction"]) for m in stored] == [(own_id, "inbound")]
    assert stored[0]["parts"] == [{"type": "text", "text": VISITOR_TEXT}]

    async with api.post(f"/v1/conversations/{conv['id']}/messages", json={"text": REPLY_TEXT}) as r:
        reply = await r.json()
        assert r.status == 202, reply
    assert reply["status"] == "pending", reply
    assert reply["direction"] == "outbound", reply
    assert reply["parts"] == [{"type": "text", "text": REPLY_TEXT}], reply

    shown = chat.page.locator(f'#omnigw-messages .omnigw-msg[data-message-id="{reply["id"]}"]')
    await expect(shown).to_have_attribute("data-direction", "outbound", timeout=T)
    await expect(shown.locator(".omnigw-text")).to_have_text(REPLY_TEXT, timeout=T)
    assert XSS in (await shown.locator(".omnigw-text").text_content() or "")
    await expect(shown.locator("img")).to_have_count(0, timeout=T)
    # The demo page itself has no images: any <img> at all would come from the reply.
    await expect(chat.page.locator("img")).to_have_count(0, timeout=T)

    expected = [
        (own_id, "inbound", "sent", VISITOR_TEXT),
        (reply["id"], "outbound", None, REPLY_TEXT),
    ]
    assert await chat.thread() == expected

    async def reply_sent() -> bool:
        items = (await get_json(api, f"/v1/conversations/{conv['id']}/messages"))["items"]
        return any(m["id"] == reply["id"] and m["status"] == "sent" for m in items)

    await eventually(reply_sent, "the reply to reach status sent")

    token_before = await chat.token()
    assert token_before == first["token"]

    await chat.page.reload()
    await chat.wait_connected()
    await expect(chat.messages).to_have_count(2, timeout=T)
    await expect(chat.messages.nth(1)).to_have_attribute("data-message-id", reply["id"], timeout=T)
    assert await chat.thread() == expected
    await expect(chat.page.locator("img")).to_have_count(0, timeout=T)

    # The reload resumes with the stored token and the gateway names the same visitor.
    # The gateway re-signs the token on every connect (sliding expiry), so the stored string
    # may legitimately change; what must not change is the visitor it stands for.
    _, second = await chat.wait_sessions(2)
    assert len(chat.socket_urls) == 2
    assert parse_qs(urlsplit(chat.socket_urls[1]).query).get("token") == [token_before]
    assert second["visitor_id"] == first["visitor_id"]
    assert second["conversation_id"] == conv["id"]
    assert await chat.token() == second["token"]

    # Nothing in the page ran the markup of the reply.
    assert chat.dialogs == []
    assert chat.errors == []

    listed = (await get_json(api, "/v1/conversations"))["items"]
    assert [c["id"] for c in listed] == [conv["id"]], "the reload must not open a conversation"


async def test_fresh_browser_storage_is_a_different_visitor(
    gateway: GatewayProcess,
    launch: Callable[[], Awaitable[Browser]],
    api: aiohttp.ClientSession,
) -> None:
    browser = await launch()
    alice = await open_chat(await browser.new_context(), gateway)
    alice_id = await alice.send(VISITOR_TEXT)
    (alice_session,) = await alice.wait_sessions(1)

    bob = await open_chat(await browser.new_context(), gateway)
    (bob_session,) = await bob.wait_sessions(1)
    assert "token" not in parse_qs(urlsplit(bob.socket_urls[0]).query)
    assert bob_session["visitor_id"] != alice_session["visitor_id"]
    assert bob_session["conversation_id"] is None
    assert await bob.token() == bob_session["token"] != await alice.token()

    # Bob's ack comes after his history has been loaded, so by then any leaked history
    # from Alice would already be on the page.
    bob_id = await bob.send(OTHER_TEXT)
    assert await bob.thread() == [(bob_id, "inbound", "sent", OTHER_TEXT)]

    await bob.page.reload()
    await bob.wait_connected()
    await expect(bob.messages).to_have_count(1, timeout=T)
    await expect(bob.messages.first).to_have_attribute("data-message-id", bob_id, timeout=T)
    assert await bob.thread() == [(bob_id, "inbound", "sent", OTHER_TEXT)]

    conversations = (await get_json(api, "/v1/conversations"))["items"]
    assert len(conversations) == 2, conversations
    assert len({c["contact_id"] for c in conversations}) == 2, conversations
    # Checked last, so a message of Bob's wrongly pushed to Alice has had time to arrive.
    assert await alice.thread() == [(alice_id, "inbound", "sent", VISITOR_TEXT)]
    for chat in (alice, bob):
        assert chat.dialogs == []
        assert chat.errors == []


async def test_choices_are_chips_and_a_tap_is_the_pick(
    gateway: GatewayProcess,
    launch: Callable[[], Awaitable[Browser]],
    api: aiohttp.ClientSession,
) -> None:
    browser = await launch()
    chat = await open_chat(await browser.new_context(), gateway)
    await chat.send(VISITOR_TEXT)
    conv = await wait_for_assignment(api)
    question = {
        "type": "choices",
        "text": "Bạn đã nhận được hàng chưa ạ?",
        "choices": [
            {"id": "received", "title": "Đã nhận"},
            {"id": "not_yet", "title": f"Chưa nhận {XSS}"},
        ],
    }
    async with api.post(
        f"/v1/conversations/{conv['id']}/messages", json={"parts": [question]}
    ) as r:
        sent = await r.json()
        assert r.status == 202, sent
    shown = chat.page.locator(f'#omnigw-messages .omnigw-msg[data-message-id="{sent["id"]}"]')
    await expect(shown.locator(".omnigw-text")).to_have_text(question["text"], timeout=T)
    chips = shown.locator("button.omnigw-chip")
    await expect(chips).to_have_count(2, timeout=T)
    await expect(chips.nth(1)).to_have_text(f"Chưa nhận {XSS}", timeout=T)
    await expect(chat.page.locator("img")).to_have_count(0, timeout=T)

    await chips.nth(0).click()
    picked = chat.page.locator('#omnigw-messages .omnigw-msg[data-direction="inbound"]').filter(
        has_text="Đã nhận"
    )
    await expect(picked).to_have_attribute("data-status", "sent", timeout=T)
    await expect(chips.nth(1)).to_be_disabled(timeout=T)
    message_id = await picked.get_attribute("data-message-id")

    stored = await get_json(api, f"/v1/messages/{message_id}")
    assert stored["parts"] == [{"type": "text", "text": "Đã nhận"}]
    assert stored["metadata"] == {"choice": {"id": "received", "title": "Đã nhận"}}
    assert chat.dialogs == [] and chat.errors == []


# The width of an image once the browser decoded it (0 when it could not load it).
LOADED_WIDTH = """img => img.complete ? img.naturalWidth
    : new Promise(r => { img.onload = () => r(img.naturalWidth); img.onerror = () => r(0); })"""


async def test_photos_both_ways_shown_inline(
    gateway: GatewayProcess,
    launch: Callable[[], Awaitable[Browser]],
    api: aiohttp.ClientSession,
) -> None:
    browser = await launch()
    chat = await open_chat(await browser.new_context(), gateway)
    await chat.send(VISITOR_TEXT)
    conv = await wait_for_assignment(api)

    # The customer attaches a photo with the widget's button.
    photo = png(64, 48, (220, 40, 40))
    await expect(chat.page.locator("#omnigw-attach")).to_be_visible(timeout=T)
    async with chat.page.expect_file_chooser() as chooser:
        await chat.page.locator("#omnigw-attach").click()
    await (await chooser.value).set_files(
        files=[{"name": "ảnh lỗi.png", "mimeType": "image/png", "buffer": photo}]
    )
    own = chat.messages.filter(has=chat.page.locator("img")).first
    await expect(own).to_have_attribute("data-status", "sent", timeout=T)
    own_id = await own.get_attribute("data-message-id")
    width = await own.locator("img").evaluate(LOADED_WIDTH)
    assert width == 64  # the browser loaded it through its signed link

    # The agent sees the customer's photo through the API.
    stored = (await get_json(api, f"/v1/conversations/{conv['id']}/messages"))["items"]
    (message,) = [m for m in stored if m["id"] == own_id]
    (part,) = message["parts"]
    assert (part["type"], part["name"], part["mime"]) == ("image", "ảnh lỗi.png", "image/png")
    async with api.get(part["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == photo

    # The agent answers with a photo of their own: shown inline in the widget.
    answer = png(40, 30, (20, 160, 60))
    form = aiohttp.FormData()
    form.add_field("file", answer, filename="mẫu mới.png", content_type="image/png")
    async with api.post("/v1/attachments", data=form) as resp:
        uploaded = await resp.json()
        assert resp.status == 201, uploaded
    body = {"parts": [{"type": "image", "attachment_id": uploaded["id"]}]}
    async with api.post(f"/v1/conversations/{conv['id']}/messages", json=body) as resp:
        reply = await resp.json()
        assert resp.status == 202, reply
    shown = chat.page.locator(f'#omnigw-messages .omnigw-msg[data-message-id="{reply["id"]}"] img')
    await expect(shown).to_have_count(1, timeout=T)
    src = await shown.get_attribute("src") or ""
    assert f"/webchat/webchat/files/{uploaded['id']}?expires=" in src
    width = await shown.evaluate(LOADED_WIDTH)
    assert width == 40
    assert chat.errors == []
