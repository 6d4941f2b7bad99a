"""Agents' files: POST /v1/attachments (size and type limits), then a part naming
attachment_id."""

from __future__ import annotations

import unicodedata

import aiohttp
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import Gateway
from tests.api.helpers import get_json, open_visitor, post_json, say
from tests.conftest import AUTH, GatewayFactory
from tests.media.images import png
from tests.media.uploads import upload

Client = TestClient  # type: ignore[type-arg]

NAME = unicodedata.normalize("NFD", "Hóa đơn tháng 12.png")  # as a Mac names it


async def test_an_upload_is_kept_and_served(client: Client) -> None:
    image = png(40, 30)
    answer = await upload(client, image, NAME, "image/png")
    assert set(answer) == {"id", "name", "mime", "size", "url"}
    assert answer["id"].startswith("att_")
    assert answer["name"] == unicodedata.normalize("NFC", NAME)
    assert (answer["mime"], answer["size"]) == ("image/png", len(image))
    assert answer["url"].endswith(f"/v1/attachments/{answer['id']}")
    resp = await client.get(answer["url"], headers=AUTH)
    assert await resp.read() == image
    assert resp.headers["Content-Type"] == "image/png"


async def test_an_image_is_kept_as_what_its_bytes_are(client: Client) -> None:
    answer = await upload(client, png(), "photo", "application/octet-stream")
    assert answer["mime"] == "image/png"
    pdf = await upload(client, b"%PDF-1.7\n...", "báo giá.pdf", "application/octet-stream")
    assert pdf["mime"] == "application/pdf"  # by its name


async def test_refused_uploads(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(None, **{"server.max_attachment_bytes": 4096})
    async with TestClient(aiohttp.test_utils.TestServer(gw.web_app())) as client:
        too_big = await upload(client, b"\x00" * 5000, "a.pdf", "application/pdf", status=413)
        assert too_big["error"]["code"] == "attachment_too_large"
        html = await upload(
            client, b"<html><script>x()</script>", "a.html", "text/html", status=415
        )
        assert html["error"]["code"] == "unsupported_type"
        assert "text/html" in html["error"]["message"]
        fake = await upload(client, b"MZ\x90\x00 not a picture", "cat.png", "image/png", status=415)
        assert "not an image" in fake["error"]["message"]
        empty = await upload(client, b"", "a.pdf", "application/pdf", status=400)
        assert empty["error"]["code"] == "empty_file"
        resp = await client.post("/v1/attachments", json={"file": "x"}, headers=AUTH)
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "not_multipart"
        other = aiohttp.FormData()
        other.add_field("document", b"%PDF-1.4", filename="a.pdf", content_type="application/pdf")
        resp = await client.post("/v1/attachments", data=other, headers=AUTH)
        assert (await resp.json())["error"]["code"] == "no_file"
        resp = await client.post(
            "/v1/attachments",
            data=b"--x\r\nbroken",
            headers={**AUTH, "Content-Type": "multipart/form-data; boundary=x"},
        )
        assert resp.status == 400
        no_token = await upload(client, png(), "a.png", "image/png", headers={}, status=401)
        assert no_token["error"]["code"] == "unauthorized"


async def test_a_part_names_an_upload(client: Client, gw: Gateway) -> None:
    ws, _ = await open_visitor(client)
    await say(ws, "Cho mình xem hóa đơn", "c1")
    (conv,) = (await get_json(client, "/v1/conversations"))["items"]
    image = png(10, 10)
    answer = await upload(client, image, "hóa đơn.png", "image/png")
    sent = await post_json(
        client,
        f"/v1/conversations/{conv['id']}/messages",
        {
            "parts": [
                {"type": "file", "attachment_id": answer["id"]},
                {"type": "text", "text": "Đây ạ"},
            ]
        },
        status=202,
    )
    part = sent["parts"][0]
    assert part["type"] == "image"  # what the file is
    assert part["attachment_id"] == answer["id"]
    assert part["url"] == answer["url"]
    assert (part["name"], part["mime"], part["size"]) == ("hóa đơn.png", "image/png", len(image))
    missing = await post_json(
        client,
        f"/v1/conversations/{conv['id']}/messages",
        {"parts": [{"type": "image", "attachment_id": "att_" + "0" * 26}]},
        status=422,
    )
    assert missing["error"]["code"] == "attachment_not_found"
    bad = await post_json(
        client,
        f"/v1/conversations/{conv['id']}/messages",
        {"parts": [{"type": "image", "attachment_id": "../../etc/passwd"}]},
        status=400,
    )
    assert bad["error"]["code"] == "validation_error"


_PIECES = st.sampled_from(
    [
        b"--x\r\n",
        b"--x--\r\n",
        b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n',
        b'Content-Disposition: form-data; name="file"\r\n',
        b"Content-Disposition: attachment\r\n",
        b"Content-Type: image/png\r\n",
        b"Content-Type: text/html\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"\r\n",
        b"\x89PNG\r\n\x1a\n",
        b"%PDF-1.4",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.lists(st.one_of(_PIECES, st.binary(max_size=40)), max_size=14).map(b"".join),
    content_type=st.sampled_from(
        [
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/mixed; boundary=x",
        ]
    ),
)
async def test_any_upload_body_gets_an_answer_not_a_crash(
    client: Client, body: bytes, content_type: str
) -> None:
    resp = await client.post(
        "/v1/attachments", data=body, headers={**AUTH, "Content-Type": content_type}
    )
    answer = await resp.json()
    assert resp.status in (201, 400, 413, 415), answer
    if resp.status != 201:
        assert answer["error"]["code"] and answer["error"]["message"]
