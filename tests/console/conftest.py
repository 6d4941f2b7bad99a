"""What console tests share: a client that signs in and sends the CSRF token like the
pages do, and a signed-in Chromium page on a real gateway process, with screenshots kept
under test-artifacts/console/ (or $OMNIGW_TEST_ARTIFACTS/console/)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import ADMIN

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
ARTIFACTS = Path(
    os.environ.get("OMNIGW_TEST_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts"
)
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_SIGNIN_NONCE = re.compile(r'name="csrf" value="([^"]*)"')


class ConsoleClient:
    """The console over HTTP, as a browser uses it: cookies kept, the CSRF token taken
    from the last page and sent with each change."""

    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client
        self.csrf = ""

    async def signin(self, token: str = ADMIN) -> ClientResponse:
        page = await self.get("/console/signin")
        nonce = _SIGNIN_NONCE.search(await page.text())
        assert nonce is not None
        resp = await self.client.post(
            "/console/signin",
            data={"csrf": nonce.group(1), "token": token, "next": "/console/inbox"},
            allow_redirects=False,
        )
        self._keep(resp)
        if resp.status == 303:
            await self.get("/console/inbox")
        return resp

    def _keep(self, resp: ClientResponse) -> None:
        # Behind an https public_url the cookies are Secure; this client speaks plain http
        # to the test server, as the proxy in front would: keep them anyway.
        for name, morsel in resp.cookies.items():
            if morsel["secure"] and morsel.value:
                self.client.session.cookie_jar.update_cookies({name: morsel.value}, resp.url)

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        resp = await self.client.get(path, allow_redirects=False, **kw)
        self._keep(resp)
        if resp.content_type == "text/html":
            found = _CSRF_META.search(await resp.text())
            if found and found.group(1):
                self.csrf = found.group(1)
        return resp

    async def post(
        self, path: str, data: Any = None, *, csrf: bool = True, **kw: Any
    ) -> ClientResponse:
        fields = dict(data or {})
        if csrf:
            fields.setdefault("csrf", self.csrf)
        resp = await self.client.post(path, data=fields, allow_redirects=False, **kw)
        self._keep(resp)
        return resp


@pytest.fixture
async def console(client: TestClient) -> ConsoleClient:  # type: ignore[type-arg]
    return ConsoleClient(client)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("Chromium is missing: run scripts/test.sh, which installs Debian's")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def shot(page: Page, name: str) -> Path:
    """Keep a screenshot of the page as a test artefact."""
    folder = ARTIFACTS / "console"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
