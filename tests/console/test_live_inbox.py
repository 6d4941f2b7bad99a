"""In Chromium: a customer writes on the demo page and the conversation appears in the
console's inbox without a reload; customer strings stay text."""

from __future__ import annotations

from playwright.async_api import Browser, Dialog, expect

from gateway.app import Gateway
from tests.conftest import ADMIN
from tests.console.browser import served
from tests.console.conftest import shot

T = 10_000
XSS = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"


async def test_a_customer_on_the_demo_page_appears_in_the_inbox_live(
    gw: Gateway, browser: Browser
) -> None:
    async with served(gw) as base:
        agent_ctx = await browser.new_context(
            locale="en-US", viewport={"width": 1400, "height": 900}
        )
        console = await agent_ctx.new_page()
        dialogs: list[str] = []

        def on_dialog(d: Dialog) -> None:
            dialogs.append(d.message)

        console.on("dialog", on_dialog)
        await console.goto(f"{base}/console/inbox?lang=en")
        await console.wait_for_url("**/console/signin**")
        await shot(console, "signin")
        await console.fill("#token", ADMIN)
        await console.click("button[type=submit]")
        await console.wait_for_url("**/console/inbox**")
        rows = console.locator("[data-conversation]")
        before = await rows.count()

        customer_ctx = await browser.new_context(locale="vi-VN")
        customer = await customer_ctx.new_page()
        await customer.goto(f"{base}/")
        await expect(customer.locator("#omnigw-status")).to_have_attribute(
            "data-state", "connected", timeout=T
        )
        await customer.fill("#omnigw-input", f"Xin chào {XSS}")
        await customer.press("#omnigw-input", "Enter")

        # no reload: the row arrives through the event stream
        await expect(rows).to_have_count(before + 1, timeout=T)
        await shot(console, "inbox-live")
        assert await console.evaluate("window.__pwned") is None
        assert dialogs == []
        await agent_ctx.close()
        await customer_ctx.close()


async def test_the_inbox_keeps_up_while_events_never_stop(gw: Gateway, browser: Browser) -> None:
    """Events closer together than the refresh interval still refresh the lists (at most
    once a second), rather than waiting for a quiet moment that never comes."""
    import asyncio

    from kernel.envelope import InboundMessage, Sender
    from kernel.ids import ChannelId
    from kernel.models import TextPart
    from tests.console.browser import signed_in

    async with served(gw) as base:
        page = await signed_in(browser, base)
        await page.context.add_init_script(
            "document.addEventListener('htmx:sseOpen', () => { window.sseOpened = 1; });"
        )
        await page.goto(f"{base}/console/inbox?lang=en")
        await page.wait_for_function("window.sseOpened === 1")
        rows = page.locator("tr[data-conversation]")
        assert await rows.count() == 0
        stop = asyncio.Event()

        async def customers() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await gw.pipeline.ingest(
                    InboundMessage(
                        channel_id=ChannelId("webchat"),
                        external_id=f"steady-{n}:1",
                        sender=Sender(external_id=f"steady-{n}"),
                        parts=[TextPart(text="xin chào")],
                    )
                )
                await asyncio.sleep(0.15)

        writer = asyncio.create_task(customers())
        try:
            # while customers keep arriving every 150 ms, rows appear
            await expect(rows.first).to_be_visible(timeout=4_000)
        finally:
            stop.set()
            await writer
