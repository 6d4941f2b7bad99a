"""A survey on webchat, in a real headless Chromium against a real `omnigw serve`: the
widget shows the survey link after resolution, and the page it leads to is answered with
JavaScript turned off."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import Browser, expect

from tests.e2e.server import AUTH, astart_gateway
from tests.e2e.test_browser import (
    VISITOR_TEXT,
    XSS,
    T,
    eventually,
    get_json,
    open_chat,
    wait_for_assignment,
)
from tests.e2e.test_browser import launch as launch  # the fixture

PUBLIC = "https://help.hoamai.test"
CONFIG = f"""
[server]
public_url = "{PUBLIC}"

[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "demo"
name = "Demo Agent"
languages = ["vi", "en"]
presence = "online"

[surveys]
enabled = true
delay = 0
sweep_interval = 0.2
"""
COMMENT = unicodedata.normalize("NFC", f"Rất hài lòng {XSS} cảm ơn shop")


async def test_a_survey_answered_from_the_widget_without_javascript(
    tmp_path: Path, launch: Callable[[], Awaitable[Browser]]
) -> None:
    config = tmp_path / "omnigw.toml"
    config.write_text(CONFIG, encoding="utf-8")
    gateway = await astart_gateway(tmp_path / "data", tmp_path / "logs", config=config)
    try:
        async with aiohttp.ClientSession(base_url=gateway.base_url, headers=AUTH) as api:
            browser = await launch()
            chat = await open_chat(await browser.new_context(), gateway)
            await chat.send(VISITOR_TEXT)
            conv = await wait_for_assignment(api)
            async with api.post(f"/v1/conversations/{conv['id']}/resolve") as r:
                assert r.status == 200, await r.text()

            # The widget shows the invitation with its link.
            link = chat.page.locator('#omnigw-messages a[href*="/surveys/"]')
            await expect(link).to_have_count(1, timeout=T)
            href = await link.get_attribute("href")
            assert href is not None and href.startswith(PUBLIC + "/surveys/")

            # The page, in a browser with JavaScript off (PUBLIC stands for this server).
            quiet = await browser.new_context(java_script_enabled=False)
            page = await quiet.new_page()
            await page.goto(gateway.url(urlsplit(href).path))
            await expect(page.locator("html")).to_have_attribute("lang", "vi", timeout=T)
            await page.locator('input[name="csat"][value="4"]').check()
            await page.locator("#comment").fill(COMMENT)
            await page.locator('button[type="submit"]').click()
            await expect(page.locator("p.note")).to_have_text(
                "Cảm ơn bạn! Câu trả lời đã được ghi nhận.", timeout=T
            )
            await expect(page.locator("blockquote")).to_have_text(COMMENT, timeout=T)
            await expect(page.locator("img")).to_have_count(0, timeout=T)

            async def answered() -> dict[str, object] | None:
                survey: dict[str, object] = await get_json(
                    api, f"/v1/conversations/{conv['id']}/survey"
                )
                return survey if survey["csat"] is not None else None

            survey = await eventually(answered, "the survey's answer")
            assert (survey["way"], survey["csat"], survey["comment"]) == ("link", 4, COMMENT)
            current = await get_json(api, f"/v1/conversations/{conv['id']}")
            assert current["status"] == "resolved"

            # Opened again: answered already, shown as given; sent again: refused (409).
            url = gateway.url(urlsplit(href).path)
            await page.goto(url)
            await expect(page.locator("p.note")).to_have_text(
                "Khảo sát này đã được trả lời. Cảm ơn bạn!", timeout=T
            )
            await expect(page.locator('input[type="radio"]')).to_have_count(0, timeout=T)
            again = await page.request.post(url, form={"csat": "1", "comment": "x"})
            assert again.status == 409
            survey = await get_json(api, f"/v1/conversations/{conv['id']}/survey")
            assert (survey["csat"], survey["comment"]) == (4, COMMENT)
            assert chat.dialogs == [] and chat.errors == []
    finally:
        gateway.kill()
