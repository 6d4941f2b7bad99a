"""A gateway run in the test's own process on a real port, so that Chromium reaches it
while respx fakes the providers' APIs at httpx's transport in the same process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from playwright.async_api import Browser, Page

from gateway.app import Gateway
from tests.conftest import ADMIN


@asynccontextmanager
async def served(gw: Gateway) -> AsyncIterator[str]:
    """The gateway's web app on 127.0.0.1 (a free port); yields its base URL."""
    runner = web.AppRunner(gw.web_app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await gw.close_connections()
        await runner.cleanup()


async def signed_in(browser: Browser, base: str, token: str = ADMIN) -> Page:
    """A new browser context signed in to the console at ``base`` with ``token``."""
    context = await browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/console/signin?lang=en")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/inbox**")
    return page
