"""Business hours and SLA policies through a running gateway: a webchat customer writing
outside hours gets one reply per closed period, naming the next opening; an SLA policy
shows on the conversation and in /v1/stats."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import GatewayFactory

ZONE = ZoneInfo("Asia/Bangkok")
WEEKDAYS_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")


def closed_hours(channel: str) -> tuple[str, date]:
    """``[[business_hours]]`` for a channel, closed from yesterday to tomorrow (wherever
    the clock is in them), and the day they open again."""
    today = datetime.now(ZONE).date()
    closed = [today + timedelta(days=d) for d in (-1, 0, 1)]
    every_day = "\n".join(
        f'{d} = ["08:00-12:00", "13:30-17:30"]'
        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )
    toml = f"""
[[business_hours]]
id = "shop"
timezone = "Asia/Bangkok"
channels = ["{channel}"]
closed_dates = [{", ".join(f'"{d.isoformat()}"' for d in closed)}]

[business_hours.hours]
{every_day}
"""
    return toml, today + timedelta(days=2)


CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
languages = ["vi"]
capacity = { total = 5 }
presence = "online"

[[sla_policies]]
id = "chat"
channels = ["webchat"]
first_response = "30m"
resolution = "8h"
"""


async def test_a_customer_writing_outside_hours_gets_one_reply_per_closed_period(
    make_gateway: GatewayFactory,
) -> None:
    hours, opens = closed_hours("webchat")
    gw = await make_gateway(CONFIG + hours)
    async with TestClient(TestServer(gw.web_app())) as client:
        ws, _session = await open_visitor(client)
        ack = await say(ws, "Chào shop, cho mình hỏi đơn hàng", "c1")
        pushed = await ws.receive_json(timeout=5)
        assert pushed["type"] == "message"
        expected = (
            "Cảm ơn bạn đã liên hệ. Hiện đã ngoài giờ làm việc; chúng tôi sẽ trả lời bạn lúc "
            f"08:00 {WEEKDAYS_VI[opens.weekday()]}, {opens:%d/%m}."
        )
        assert pushed["message"]["parts"] == [{"type": "text", "text": expected}]
        assert pushed["message"]["author"] == {"type": "system", "id": None}
        await say(ws, "Alo?", "c2")
        await say(ws, "Có ai không ạ", "c3")
        await asyncio.sleep(0.3)  # time for a second reply to be sent, if one were written

        conv_id = (await get_json(client, f"/v1/messages/{ack['message_id']}"))["conversation_id"]

        async def system_messages() -> list[dict[str, Any]]:
            page = await get_json(client, f"/v1/conversations/{conv_id}/messages")
            return [m for m in page["items"] if m["author"]["type"] == "system"]

        (notice,) = await system_messages()
        assert notice["metadata"]["automatic"] == "off_hours"

        async def sent() -> bool:
            found = await get_json(client, f"/v1/messages/{notice['id']}")
            return bool(found["status"] == "sent")

        await eventually(sent)

        # the SLA policy shows on the conversation, due in business time: the first
        # response is due 30 minutes after the next opening
        conv = await get_json(client, f"/v1/conversations/{conv_id}")
        due = datetime.fromisoformat(conv["sla"]["first_response_due"])
        assert due == datetime(opens.year, opens.month, opens.day, 8, 30, tzinfo=ZONE)
        assert conv["sla"]["policy"] == "chat"
        assert conv["sla"]["breached"] == []
        # an agent's answer counts as the first response; resolving ends the clock
        await post_json(client, f"/v1/conversations/{conv_id}/messages", {"text": "Dạ"}, 202)
        await post_json(client, f"/v1/conversations/{conv_id}/resolve", {}, 200)
        stats = await get_json(client, "/v1/stats")
        (chat,) = stats["total"]["sla_compliance"]
        assert chat["policy"] == "chat"
        assert (chat["conversations"], chat["compliant"], chat["breached"]) == (1, 1, 0)
        assert chat["first_response"] == {"kept": 1, "missed": 0, "rate": 1.0}
        await ws.close()


async def test_queue_wait_estimates_count_business_time_only(
    make_gateway: GatewayFactory,
) -> None:
    hours, opens = closed_hours("webchat")
    config = CONFIG.replace("capacity = { total = 5 }", "capacity = { total = 1 }")
    gw = await make_gateway(config + '[routing]\naverage_handle_time = "10m"\n' + hours)
    async with TestClient(TestServer(gw.web_app())) as client:
        first, _ = await open_visitor(client)
        await say(first, "Chào shop", "c1")
        second, _ = await open_visitor(client)
        await say(second, "Chào shop, mình cũng cần hỏi", "c1")
        await gw.queue.settle()
        queue = await get_json(client, "/v1/queue")
        (waiting,) = queue["items"]
        assert waiting["position"] == 1
        # 10 minutes of handling, served only once the team is back
        opening = datetime(opens.year, opens.month, opens.day, 8, 0, tzinfo=ZONE)
        until_open = (opening - datetime.now(ZONE)).total_seconds()
        assert waiting["estimated_wait_seconds"] >= until_open + 600 - 5
        assert waiting["estimated_wait_seconds"] <= until_open + 600 + 5
        await first.close()
        await second.close()
