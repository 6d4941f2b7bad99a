"""Files customers send on Messenger: fetched from Meta's CDN after the webhook is
answered, kept in the gateway's storage before the CDN URL expires, refused with a
reason when they are not what they claim, too large, or on a forbidden address."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import eventually
from tests.conftest import AUTH, GatewayFactory
from tests.facebook.conftest import Fb, GraphFake
from tests.facebook.helpers import TOKEN, config, load
from tests.media.cdn import Cdn, Endless
from tests.media.images import png
from tests.media.uploads import upload
from tests.providers import Json, Served, all_messages, events, read_only_db, reply, settled

CDN = "https://scontent.xx.fbcdn.net/v/t1.15752-9"
FAST = """
[attachments]
download_retry_seconds = 0.1
download_attempts = 3
download_timeout = 5
"""

Start = Callable[..., Awaitable[Fb]]


@pytest.fixture
async def start(graph: GraphFake, make_gateway: GatewayFactory) -> AsyncIterator[Start]:
    async with Served(make_gateway) as served:

        async def run(attachments: str = FAST, **server: Any) -> Fb:
            toml = config() + attachments
            gw, client = await served.start(toml)
            return Fb(gw, client, graph)

        yield run


def media_event(mid: str, *attachments: tuple[str, str]) -> Json:
    """A customer's message with attachments (type, url), in Meta's format."""
    event = copy.deepcopy(load("message_image"))
    message = event["entry"][0]["messaging"][0]["message"]
    message["mid"] = mid
    message["attachments"] = [{"type": t, "payload": {"url": u}} for t, u in attachments]
    return event


async def parts_of(fb: Fb, mid: str) -> list[Json]:
    for message in await all_messages(fb):
        if message["external_id"] == mid:
            parts: list[Json] = message["parts"]
            return parts
    raise AssertionError(f"{mid} not stored")


async def settled_parts(fb: Fb, mid: str, within: float = 10.0) -> list[Json]:
    """The message's parts once none waits for its file."""

    async def check() -> list[Json] | None:
        parts = await parts_of(fb, mid)
        done = all(p.get("attachment_id") or p.get("error") for p in parts)
        return parts if done else None

    found: list[Json] = await eventually(check, within=within)
    return found


async def test_a_photo_is_kept_before_its_url_expires(start: Start, graph: GraphFake) -> None:
    fb = await start()
    cdn = Cdn(graph.router)
    photo = png(32, 20)
    url = f"{CDN}/471234567_1_n.jpg?_nc_cat=1&oh=00_AbC&oe=67A1B2C3"
    gate = asyncio.Event()
    served = cdn.add(url, photo, "image/jpeg", expires_in=2.0, gate=gate)

    began = time.monotonic()
    await fb.deliver(media_event("m_photo-1", ("image", url)))
    # Answered while the CDN still holds the file back: the ack never waits for it.
    assert time.monotonic() - began < 2.0
    await eventually(lambda: asyncio.sleep(0, served.requests))
    (waiting,) = await parts_of(fb, "m_photo-1")
    assert waiting["url"] == url
    assert waiting["attachment_id"] is None
    gate.set()

    (part,) = await settled_parts(fb, "m_photo-1")
    assert part["type"] == "image"
    assert part["attachment_id"].startswith("att_")
    assert part["url"].endswith(f"/v1/attachments/{part['attachment_id']}")
    assert part["source_url"] == url
    assert part["error"] is None
    assert (part["mime"], part["size"]) == ("image/png", len(photo))  # what the bytes are
    # Announced, so that a helpdesk keeping its own copy of the message learns the new URL.
    (updated,) = await events(fb, "message.updated")
    assert updated["message"]["parts"] == [part]

    scraped = await (await fb.client.get("/metrics")).text()
    assert 'omnigw_media_downloads_total{outcome="stored"} 1.0' in scraped
    # The CDN's link expires; the gateway's copy stays.
    await asyncio.sleep(max(0.0, served.expires_at - time.monotonic()) + 0.05)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 404
    resp = await fb.client.get(part["url"], headers=AUTH)
    assert resp.status == 200
    assert await resp.read() == photo
    assert resp.headers["Content-Type"] == "image/png"


async def test_refusals_keep_their_reason_on_the_part(start: Start, graph: GraphFake) -> None:
    fb = await start()
    cdn = Cdn(graph.router)
    page = b"<!DOCTYPE html><html><body>Log in to continue</body></html>"
    html_url = f"{CDN}/login-wall.jpg?oe=1"
    cdn.add(html_url, page, "text/html; charset=utf-8")
    big = Endless(200 * 1024 * 1024)
    big_url = f"{CDN}/video-200mb.mp4?oe=2"
    graph.router.get(big_url).respond(
        200, headers={"Content-Type": "video/mp4", "Content-Length": str(big.total)}, stream=big
    )
    quiet = Endless(200 * 1024 * 1024)  # the same, without saying its size
    quiet_url = f"{CDN}/video-unsized.mp4?oe=3"
    graph.router.get(quiet_url).respond(200, headers={"Content-Type": "video/mp4"}, stream=quiet)
    private_url = "http://10.20.30.40/photo.jpg"
    private_route = graph.router.get(private_url).respond(200, content=png())
    # A name, not an address: refused once it resolves, when connecting.
    loopback_url = "http://localhost:9/photo.jpg"
    graph.router.get(loopback_url).pass_through()

    await fb.deliver(
        media_event(
            "m_refused",
            ("image", html_url),
            ("video", big_url),
            ("video", quiet_url),
            ("image", private_url),
            ("image", loopback_url),
        )
    )
    html, sized, unsized, private, loopback = await settled_parts(fb, "m_refused")
    assert html["error"]["code"] == "unexpected_type"
    assert "HTML page" in html["error"]["reason"]
    assert "not an image" in html["error"]["reason"]
    assert html["source_url"] == html_url and html["attachment_id"] is None

    limit = fb.gw.settings.server.max_attachment_bytes
    assert sized["error"]["code"] == "too_large"
    assert str(200 * 1024 * 1024) in sized["error"]["reason"]
    assert big.sent == 0  # refused on its Content-Length, nothing read
    assert unsized["error"]["code"] == "too_large"
    assert limit < quiet.sent < limit + 2 * 1024 * 1024  # stopped just past the limit

    assert private["error"]["code"] == "unsafe_url"
    assert "private network" in private["error"]["reason"]
    assert not private_route.called
    assert loopback["error"]["code"] == "unsafe_url"
    assert "loopback" in loopback["error"]["reason"]
    scraped = await (await fb.client.get("/metrics")).text()
    assert 'omnigw_media_downloads_total{outcome="unsafe_url"} 2.0' in scraped
    assert 'omnigw_media_downloads_total{outcome="too_large"} 2.0' in scraped
    rows = await fb.gw.store.media_downloads.next_due()
    assert rows is None  # nothing left to fetch


async def test_retries_then_gives_up_with_the_reason(start: Start, graph: GraphFake) -> None:
    fb = await start()
    cdn = Cdn(graph.router)
    photo = png(8, 8)
    flaky_url = f"{CDN}/flaky.png?oe=4"
    flaky = cdn.add(flaky_url, photo, "image/png", failures=[503, 429])
    down_url = f"{CDN}/down.png?oe=5"
    down = cdn.add(down_url, photo, "image/png", failures=[503] * 10)

    await fb.deliver(media_event("m_retry", ("image", flaky_url), ("image", down_url)))
    kept, lost = await settled_parts(fb, "m_retry")
    assert flaky.requests == 3
    assert kept["attachment_id"] and kept["size"] == len(photo)
    assert down.requests == 3  # download_attempts
    assert lost["error"] == {
        "code": "provider_error",
        "reason": "the provider answered 503 (after 3 tries)",
    }
    assert lost["url"] == down_url


async def test_a_download_job_survives_a_restart(
    graph: GraphFake, make_gateway: GatewayFactory
) -> None:
    cdn = Cdn(graph.router)
    photo = png(12, 12)
    url = f"{CDN}/after-restart.png?oe=6"
    gate = asyncio.Event()
    served = cdn.add(url, photo, "image/png", gate=gate)
    async with Served(make_gateway) as first_run:
        gw, client = await first_run.start(config() + FAST)
        fb = Fb(gw, client, graph)
        await fb.deliver(media_event("m_restart", ("image", url)))
        await eventually(lambda: asyncio.sleep(0, served.requests))
        await gw.stop()  # while the CDN still holds the file
    gate.set()
    async with Served(make_gateway) as second_run:
        gw, client = await second_run.start(config() + FAST)
        fb = Fb(gw, client, graph)
        (part,) = await settled_parts(fb, "m_restart")
        assert part["attachment_id"] and part["source_url"] == url
        resp = await client.get(part["url"], headers=AUTH)
        assert await resp.read() == photo


async def test_an_agents_files_go_by_the_attachment_upload_api(
    start: Start, graph: GraphFake
) -> None:
    fb = await start()
    uploads = graph.router.post(
        host="graph.test", path__regex=r"^/v25\.0/[0-9]+/message_attachments$"
    )
    ids = iter(["1857777774821032", "1857777774821033"])
    uploads.side_effect = lambda request: httpx.Response(200, json={"attachment_id": next(ids)})
    await fb.deliver(load("message_text"))
    page = await (await fb.client.get("/v1/conversations", headers=AUTH)).json()
    conv_id = page["items"][0]["id"]
    photo = png(25, 25)
    image = await upload(fb.client, photo, "áo dài.png", "image/png")
    pdf = await upload(fb.client, b"%PDF-1.4 bao gia", "báo giá.pdf", "application/pdf")
    message_id = await reply(
        fb,
        conv_id,
        {
            "parts": [
                {"type": "text", "text": "Mẫu và báo giá ạ"},
                {"type": "image", "attachment_id": image["id"]},
                {"type": "file", "attachment_id": pdf["id"]},
            ]
        },
    )
    assert (await settled(fb, message_id))["status"] == "sent"
    first, second = [c.request for c in uploads.calls]
    assert first.url.path == "/v25.0/104000000000001/message_attachments"
    assert first.url.params["access_token"] == TOKEN
    assert first.headers["content-type"].startswith("multipart/form-data")
    assert photo in first.content
    assert b'name="filedata"' in first.content
    assert b'"type": "image"' in first.content and b'"is_reusable": true' in first.content
    assert b'"type": "file"' in second.content
    sent = [body["message"] for _, _, body in graph.messages()]
    assert sent[0]["text"] == "Mẫu và báo giá ạ"
    assert sent[1]["attachment"] == {
        "type": "image",
        "payload": {"attachment_id": "1857777774821032"},
    }
    assert sent[2]["attachment"] == {
        "type": "file",
        "payload": {"attachment_id": "1857777774821033"},
    }


async def test_a_photo_arriving_after_its_sender_was_erased_is_not_kept(
    start: Start, graph: GraphFake
) -> None:
    fb = await start()
    cdn = Cdn(graph.router)
    url = f"{CDN}/erased.png?oe=7"
    gate = asyncio.Event()
    served = cdn.add(url, png(6, 6), "image/png", gate=gate)
    await fb.deliver(media_event("m_erased", ("image", url)))
    await eventually(lambda: asyncio.sleep(0, served.requests))
    page = await (await fb.client.get("/v1/conversations", headers=AUTH)).json()
    contact_id = page["items"][0]["contact_id"]
    resp = await fb.client.delete(f"/v1/contacts/{contact_id}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    gate.set()  # the CDN answers only now

    async def settled() -> bool:
        return await fb.gw.store.media_downloads.next_due() is None

    await eventually(settled, within=10)
    with read_only_db(fb.data_dir) as db:
        assert db.execute("SELECT COUNT(*) FROM attachments").fetchone()[0] == 0
    assert list((fb.data_dir / "attachments").glob("*/att_*")) == []
    (message,) = await all_messages(fb)
    assert message["parts"] == []
