"""The console's figures page against a real gateway: after conversations answered and
resolved through the API, its table holds exactly what GET /v1/stats answers for the same
period; periods picked by preset or by dates, errors by field, a series per day, and the
charts drawn by Chart.js in Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser

from gateway.app import Gateway
from gateway.console.figures import duration_words, scaled_seconds
from gateway.console.texts import translator
from tests.api.helpers import eventually, get_json, post_json
from tests.api.test_stats import agent, assigned, customer
from tests.conftest import GatewayFactory
from tests.console.browser import served, signed_in
from tests.console.conftest import ConsoleClient, shot
from tests.console.tables import attribute, table_rows

Client = TestClient  # type: ignore[type-arg]
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CHANNELS = """
[[channels]]
id = "webchat"
type = "webchat"

[[channels]]
id = "shop"
type = "webchat"

[[sla_policies]]
id = "standard"
channels = ["webchat"]   # the type: both channels
first_response = "1h"
resolution = "2d"
"""
# The columns of the page's table, in order, as paths into one channel's figures.
COLUMNS = (
    "conversations_created",
    "conversations_resolved",
    "frt.average_seconds",
    "frt.median_seconds",
    "frt.p90_seconds",
    "frt.unanswered",
    "art.average_seconds",
    "art.median_seconds",
    "fcr.rate",
    "fcr.resolved",
    "fcr_across_channels.rate",
    "sla_breaches",
    "sla_breached_conversations",
    "queue_length",
    "queue_wait.average_seconds",
    "queue_wait.oldest_waiting_seconds",
)


@pytest.fixture
async def started(make_gateway: GatewayFactory) -> AsyncIterator[tuple[Gateway, ConsoleClient]]:
    gw = await make_gateway(CHANNELS + agent("lan") + agent("minh"))
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        await console.signin()
        yield gw, console


async def conversations(gw: Gateway, client: Client) -> None:
    """Three answered, two resolved (one after a transfer), one left unanswered."""
    a = await customer(gw, "webchat", "v-a")
    b = await customer(gw, "webchat", "v-b")
    c = await customer(gw, "shop", "v-c")
    for conv_id in (a, b, c):
        await eventually(lambda conv_id=conv_id: assigned(client, conv_id))
    for conv_id in (a, b, c):
        await asyncio.sleep(0.05)
        await post_json(client, f"/v1/conversations/{conv_id}/messages", {"text": "Dạ"}, 202)
    await post_json(client, f"/v1/conversations/{a}/resolve", None)
    current = await get_json(client, f"/v1/conversations/{c}")
    other = "minh" if current["assignee_id"] == "lan" else "lan"
    await post_json(client, f"/v1/conversations/{c}/transfer", {"agent_id": other})
    await asyncio.sleep(0.05)
    await post_json(client, f"/v1/conversations/{c}/resolve", None)
    d = await customer(gw, "shop", "v-d")
    # assigned before anything is read, so "queued now" stays the same between two reads
    await eventually(lambda: assigned(client, d))


def value(figures: dict[str, Any], path: str) -> str:
    for key in path.split("."):
        figures = figures[key]
    return "" if figures is None else str(figures)


async def _page(console: ConsoleClient, query: str, status: int = 200) -> str:
    resp = await console.get(f"/console/figures?{query}")
    text = await resp.text()
    assert resp.status == status, text
    return text


async def test_no_figures_page_without_a_session(client: Client) -> None:
    resp = await client.get("/console/figures", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/signin?next=")


async def test_the_table_holds_what_the_api_gives_for_the_period(
    started: tuple[Gateway, ConsoleClient],
) -> None:
    gw, console = started
    await conversations(gw, console.client)
    page = await _page(console, "preset=today&lang=en")
    since, until = attribute(page, "data-since"), attribute(page, "data-until")
    today = datetime.now(UTC).astimezone(HANOI).date()
    assert datetime.fromisoformat(since) == datetime(
        today.year, today.month, today.day, tzinfo=HANOI
    )
    assert datetime.fromisoformat(until) - datetime.fromisoformat(since) == timedelta(days=1)
    stats = await get_json(console.client, f"/v1/stats?since={quote(since)}&until={quote(until)}")
    rows = table_rows(page, "figures-table", "data-channel")
    assert set(rows) == {"webchat", "shop", "total"}
    for figures in [*stats["channels"], {**stats["total"], "channel_id": "total"}]:
        assert rows[figures["channel_id"]] == [value(figures, c) for c in COLUMNS]
    # what the numbers are, in the words a person reads
    assert rows["total"][:2] == ["4", "2"]
    assert rows["shop"][COLUMNS.index("frt.unanswered")] == "1"
    assert rows["webchat"][COLUMNS.index("fcr.rate")] == "1.0"
    assert rows["shop"][COLUMNS.index("fcr.rate")] == "0.0"
    assert "100 %" in page and " s</td>" in page
    # SLA compliance per policy, as the API counts it
    [policy] = stats["total"]["sla_compliance"]
    assert policy["policy"] == "standard" and policy["conversations"] == 4
    assert table_rows(page, "sla-table", "data-policy") == {
        "standard": [value(policy, c) for c in ("conversations", "compliant", "breached", "rate")]
    }
    # the charts' data come from the same answer, in minutes and percent
    charts = dict(re.findall(r'<script type="application/json" id="([\w-]+)">(.*?)</script>', page))
    assert {"chart-frt", "chart-art", "chart-fcr", "chart-sla", "chart-queue"} <= set(charts)
    frt = json.loads(charts["chart-frt"])
    assert frt["type"] == "bar" and frt["unit"] == "seconds"  # they are short here
    assert frt["labels"] == [c["channel_id"] for c in stats["channels"]]
    assert frt["datasets"][0]["data"] == [
        round(c["frt"]["average_seconds"], 3) for c in stats["channels"]
    ]
    fcr = json.loads(charts["chart-fcr"])
    assert fcr["datasets"][0]["data"] == [
        None if c["fcr"]["rate"] is None else round(c["fcr"]["rate"] * 100, 1)
        for c in stats["channels"]
    ]
    compliance = json.loads(charts["chart-sla-compliance"])
    assert compliance["labels"] == ["standard"]
    assert compliance["datasets"][0]["data"] == [
        None if policy["rate"] is None else round(policy["rate"] * 100, 1)
    ]
    assert "chart-daily" not in charts  # one day: no series per day
    # the chart library is loaded here (and only here)
    assert 'src="/console/static/vendor/chart.umd.min.js"' in page
    inbox = await (await console.get("/console/inbox")).text()
    assert "chart.umd.min.js" not in inbox


async def test_a_channel_and_a_week_day_by_day(started: tuple[Gateway, ConsoleClient]) -> None:
    gw, console = started
    await conversations(gw, console.client)
    page = await _page(console, "preset=7d&channel_id=shop")
    since, until = attribute(page, "data-since"), attribute(page, "data-until")
    assert datetime.fromisoformat(until) - datetime.fromisoformat(since) == timedelta(days=7)
    stats = await get_json(
        console.client,
        f"/v1/stats?since={quote(since)}&until={quote(until)}&channel_id=shop",
    )
    rows = table_rows(page, "figures-table", "data-channel")
    assert set(rows) == {"shop", "total"}
    assert rows["total"] == [value(stats["total"], c) for c in COLUMNS]
    assert '<option value="webchat">' in page  # the other channel can still be picked
    daily = table_rows(page, "daily-table", "data-day")
    today = datetime.now(UTC).astimezone(HANOI).date()
    assert list(daily) == [(today - timedelta(days=6 - n)).isoformat() for n in range(7)]
    assert daily[today.isoformat()][:2] == ["2", "1"]
    assert all(cells[:2] == ["0", "0"] for day, cells in daily.items() if day != str(today))
    spec = json.loads(
        re.search(r'id="chart-daily">(.*?)</script>', page).group(1)  # type: ignore[union-attr]
    )
    assert spec["type"] == "line" and len(spec["labels"]) == 7
    assert spec["datasets"][0]["data"][-1] == 2
    # dates typed by hand, in another time zone
    page = await _page(console, f"since={today - timedelta(days=1)}&until={today}&tz=Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    yesterday = today - timedelta(days=1)
    assert datetime.fromisoformat(attribute(page, "data-since")) == datetime(
        yesterday.year, yesterday.month, yesterday.day, tzinfo=paris
    )
    assert f"{yesterday} 00:00" in page  # the period shown in its own zone
    assert len(table_rows(page, "daily-table", "data-day")) == 2


async def test_a_bad_period_is_named_by_field(started: tuple[Gateway, ConsoleClient]) -> None:
    _gw, console = started
    for query, field in (
        ("since=2026-11-30&until=2026-11-01", "until"),
        ("since=30/11/2026&until=2026-12-01", "since"),
        ("since=2026-11-01&until=tomorrow", "until"),
        ("since=2026-02-30&until=2026-03-01", "since"),
        ("since=2020-01-01&until=2026-01-01", "since"),
        ("preset=7d&tz=Mars/Olympus", "tz"),
        ("preset=7d&tz=../../etc/passwd", "tz"),
        ("preset=7d&channel_id=nowhere", "channel_id"),
        ("preset=7d&channel_id=" + quote("<script>x</script>"), "channel_id"),
    ):
        page = await _page(console, query + "&lang=en", status=400)
        assert f'data-field-error="{field}"' in page, query
        assert "correct the fields marked" in page
        assert 'id="figures-table"' not in page
        assert "<script>x</script>" not in page
    page = await _page(console, "since=2026-11-30&until=2026-11-01&lang=vi", status=400)
    assert "Ngày kết thúc phải không sớm hơn ngày bắt đầu." in page
    assert 'value="2026-11-30"' in page and 'value="2026-11-01"' in page


def test_durations_are_charted_in_a_unit_read_at_a_glance() -> None:
    t = translator("en")
    for largest, unit, shown in (
        (90.0, "seconds", 90.0),
        (150.0, "minutes", 2.5),
        (5400.0, "minutes", 90.0),
        (9000.0, "hours", 2.5),
    ):
        sets, word = scaled_seconds([{"label": "x", "data": [None, largest, 30.0]}], t)
        assert word == unit
        assert sets[0]["data"][0] is None and sets[0]["data"][1] == shown
    readable = duration_words(translator("vi"))
    assert [readable(v) for v in (None, 42.0, 90.0, 5400.0, 2 * 86400.0)] == [
        "–",
        "42 giây",
        "1.5 phút",
        "1.5 giờ",
        "2 ngày",
    ]


async def test_figures_in_both_languages(started: tuple[Gateway, ConsoleClient]) -> None:
    _gw, console = started
    vi = await _page(console, "preset=today&lang=vi")
    en = await _page(console, "preset=today&lang=en")
    assert "Số liệu hỗ trợ" in vi and "Thời gian phản hồi đầu (FRT)" in vi
    assert "Support figures" in en and "First response time (FRT)" in en
    for page, unit, label in ((vi, "giây", "FRT trung bình"), (en, "seconds", "FRT average")):
        found = re.search(r'id="chart-frt">(.*?)</script>', page)
        assert found is not None
        spec = json.loads(found.group(1))
        assert spec["unit"] == unit
        assert spec["datasets"][0]["label"] == label


async def test_figures_are_drawn_in_chromium(
    make_gateway: GatewayFactory, browser: Browser
) -> None:
    gw = await make_gateway(CHANNELS + agent("lan") + agent("minh"))
    async with served(gw) as site, TestClient(TestServer(gw.web_app())) as client:
        await conversations(gw, client)
        page = await signed_in(browser, site)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.click('header nav a[data-section="figures"]')
        await page.wait_for_selector("#figures-table")
        await page.click('button[data-preset="7d"]')
        await page.wait_for_selector("#daily-table")
        drawn = await page.evaluate(
            """() => Array.from(document.querySelectorAll("canvas[data-chart]")).map(c => ({
                id: c.dataset.chart, width: c.width, height: c.height,
                chart: Chart.getChart(c) !== undefined,
                points: Chart.getChart(c) ? Chart.getChart(c).data.datasets[0].data.length : 0,
            }))"""
        )
        assert {d["id"] for d in drawn} >= {"chart-frt", "chart-fcr", "chart-daily"}
        for chart in drawn:
            assert chart["chart"], chart
            assert chart["width"] > 0 and chart["height"] > 0, chart
        daily = next(d for d in drawn if d["id"] == "chart-daily")
        assert daily["points"] == 7
        total = page.locator('#figures-table tfoot tr[data-channel="total"] td').first
        assert await total.inner_text() == "4"
        await shot(page, "figures")
        assert errors == []  # no script failed, none refused by the page's CSP
        # a bad period (answered 400): the error next to its field, no charts
        await page.fill("#fg-since", "2026-11-30")
        await page.fill("#fg-until", "2026-11-01")
        await page.click('button[data-action="show"]')
        await page.wait_for_selector('[data-field-error="until"]')
        assert await page.locator("canvas[data-chart]").count() == 0
        await page.context.close()
