"""Files received on channels: kept durably, served safely."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import Gateway
from gateway.attachments import AttachmentTooLarge, safe_mime, safe_name
from kernel.ids import ChannelId
from tests.conftest import AUTH

Client = TestClient  # type: ignore[type-arg]


async def test_saved_files_are_served_with_safe_headers(client: Client, gw: Gateway) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    part = await gw.pipeline.save_attachment(
        ChannelId("webchat"), png, name="ảnh đơn hàng.png", mime="image/png"
    )
    assert part.type == "image"
    assert part.size == len(png)
    assert part.url is not None
    resp = await client.get(part.url, headers=AUTH)
    assert resp.status == 200
    assert await resp.read() == png
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"].startswith("inline;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]

    html = await gw.pipeline.save_attachment(
        ChannelId("webchat"),
        b"<script>alert(1)</script>",
        name="../../x.html",
        mime="text/html; charset=utf-8",
    )
    assert html.type == "file"
    assert html.name == "_.._x.html"  # no directories, no leading dots
    resp = await client.get(html.url or "", headers=AUTH)
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert (await client.get(html.url or "")).status == 401


async def test_limits_and_unknown_ids(client: Client, gw: Gateway) -> None:
    with pytest.raises(AttachmentTooLarge):
        await gw.pipeline.save_attachment(
            ChannelId("webchat"), b"x" * (gw.attachments.max_bytes + 1), name="big", mime=None
        )
    resp = await client.get("/v1/attachments/att_missing", headers=AUTH)
    assert resp.status == 404


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("a/b\\c.txt", "a_b_c.txt"),
        ("\x00\x1f", None),
        ("  . ", None),
        (None, None),
    ],
)
def test_safe_names(raw: str | None, clean: str | None) -> None:
    assert safe_name(raw) == clean


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("IMAGE/JPEG", "image/jpeg"),
        ("text/plain; charset=x", "text/plain"),
        ("<script>", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_safe_mime(raw: str | None, clean: str) -> None:
    assert safe_mime(raw) == clean
