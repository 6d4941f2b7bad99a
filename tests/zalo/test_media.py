"""Files on Zalo: a customer's photo and document kept from Zalo's CDN before their links
expire; an agent's uploads sent through Zalo's upload endpoints (image, GIF, file)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tests.api.helpers import eventually
from tests.conftest import AUTH, GatewayFactory
from tests.media.cdn import Cdn
from tests.media.images import gif, png
from tests.media.uploads import upload
from tests.providers import Json, Served, all_messages, reply, settled
from tests.zalo.conftest import ZaloFake, Zl
from tests.zalo.helpers import CHANNEL, USER, config, load

FAST = """
[attachments]
download_retry_seconds = 0.1
download_attempts = 3
"""

Start = Callable[[], Awaitable[Zl]]


@pytest.fixture
async def start(zalo: ZaloFake, make_gateway: GatewayFactory) -> AsyncIterator[Start]:
    async with Served(make_gateway) as served:

        async def run() -> Zl:
            gw, client = await served.start(config() + FAST)
            return Zl(gw, client, zalo)

        yield run


async def kept_parts(zl: Zl, msg_id: str) -> list[Json]:
    async def check() -> list[Json] | None:
        for message in await all_messages(zl):
            if message["external_id"] == msg_id:
                parts: list[Json] = [p for p in message["parts"] if p["type"] != "text"]
                if all(p["attachment_id"] or p["error"] for p in parts):
                    return parts
        return None

    found: list[Json] = await eventually(check, within=10)
    return found


async def test_a_customers_photo_and_document_outlive_zalos_links(
    start: Start, zalo: ZaloFake
) -> None:
    zl = await start()
    cdn = Cdn(zalo.router)
    photo, document = png(48, 32), b"%PDF-1.5\n" + "Hóa đơn".encode() * 200
    image_url = "https://photo-stal-1.zadn.vn/full/ab12.jpg"
    file_url = "https://f10-zpc.zdn.vn/7283/hoa-don.pdf"
    image_link = cdn.add(image_url, photo, "image/jpeg", expires_in=2.0)
    cdn.add(file_url, document, "application/octet-stream", expires_in=2.0)

    await zl.deliver(load("user_send_image"))
    await zl.deliver(load("user_send_file"))
    (image,) = await kept_parts(zl, "img0c0ffee0000000000000000000001")
    (doc,) = await kept_parts(zl, "fil0c0ffee0000000000000000000004")
    assert image["source_url"] == image_url and image["mime"] == "image/png"
    assert doc["source_url"] == file_url
    assert (doc["name"], doc["mime"], doc["size"]) == (
        "Hóa đơn tháng 12.pdf",
        "application/pdf",  # Zalo said octet-stream; the part's name says what it is
        len(document),
    )

    await asyncio.sleep(max(0.0, image_link.expires_at - time.monotonic()) + 0.05)
    async with httpx.AsyncClient() as http:
        assert (await http.get(image_url)).status_code == 404
    for part, data in ((image, photo), (doc, document)):
        resp = await zl.client.get(part["url"], headers=AUTH)
        assert await resp.read() == data


async def test_an_agents_image_gif_and_file_go_by_zalos_uploads(
    start: Start, zalo: ZaloFake
) -> None:
    zl = await start()
    await zl.deliver(load("user_send_text"))
    page = await (
        await zl.client.get(f"/v1/conversations?channel_id={CHANNEL}", headers=AUTH)
    ).json()
    conv_id = page["items"][0]["id"]
    photo, moving = png(20, 10), gif(320, 240)
    ids = [
        (await upload(zl.client, photo, "áo thun.png", "image/png"))["id"],
        (await upload(zl.client, moving, "vui.gif", "image/gif"))["id"],
        (await upload(zl.client, b"%PDF-1.4 hoa don", "hóa đơn.pdf", "application/pdf"))["id"],
    ]
    message_id = await reply(
        zl,
        conv_id,
        {
            "parts": [
                {"type": "image", "attachment_id": ids[0]},
                {"type": "image", "attachment_id": ids[1]},
                {"type": "file", "attachment_id": ids[2]},
            ]
        },
    )
    assert (await settled(zl, message_id))["status"] == "sent"
    calls = [c.request for c in zalo.upload.calls]
    assert [c.url.path for c in calls] == [
        "/v2.0/oa/upload/image",
        "/v2.0/oa/upload/gif",
        "/v2.0/oa/upload/file",
    ]
    assert photo in calls[0].content and moving in calls[1].content
    assert "hóa đơn.pdf".encode() in calls[2].content or b"filename*=" in calls[2].content
    bodies = [b["message"]["attachment"] for b in zalo.bodies()]
    assert [b["payload"].get("elements", [{}])[0].get("media_type") for b in bodies[:2]] == [
        "image",
        "gif",
    ]
    assert bodies[0]["payload"]["elements"][0]["attachment_id"].startswith("att")
    assert bodies[1]["payload"]["elements"][0]["width"] == 320
    assert bodies[2] == {"type": "file", "payload": {"token": bodies[2]["payload"]["token"]}}
    assert bodies[2]["payload"]["token"].startswith("ftoken")
    assert all(b["recipient"] == {"user_id": USER} for b in zalo.bodies())
