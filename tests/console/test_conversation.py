"""The conversation page: header, messages, timeline and routing as the API answers them,
customer text shown as text, and replies (text, files, canned replies, choices), assign,
transfer, resolve and reopen through the API's operations."""

from __future__ import annotations

import html
import io
import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import ADMIN, AUTH
from tests.console.conftest import ConsoleClient
from tests.zalo.conftest import zalo  # noqa: F401 (a fixture start_zns needs)
from tests.zalo.helpers import CHANNEL as ZALO_CHANNEL
from tests.zalo.test_zns import ORDER, PHONE, Started, start_zns  # noqa: F401

Client = TestClient  # type: ignore[type-arg]
XSS = "<script>alert(1)</script>"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81"
    b"\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def visitor_conversation(
    client: Client, text: str = "Xin chào", name: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """A webchat visitor writes; the conversation (assigned to the demo agent)."""
    ws, session = await open_visitor(client)
    ack = await say(ws, text, "c1")
    assert ack["type"] == "ack", ack

    async def found() -> dict[str, Any] | None:
        page = await get_json(client, "/v1/conversations")
        for conv in page["items"]:
            contact = await get_json(client, f"/v1/contacts/{conv['contact_id']}")
            if any(i["external_id"] == session["visitor_id"] for i in contact["identities"]):
                return conv  # type: ignore[no-any-return]
        return None

    conv = await eventually(found)
    if name is not None:
        resp = await client.patch(
            f"/v1/contacts/{conv['contact_id']}", json={"display_name": name}, headers=AUTH
        )
        assert resp.status == 200, await resp.text()
    return ws, conv


async def messages(client: Client, conv_id: str) -> list[dict[str, Any]]:
    page = await get_json(client, f"/v1/conversations/{conv_id}/messages")
    return page["items"]  # type: ignore[no-any-return]


async def page_of(console: ConsoleClient, path: str, status: int = 200) -> str:
    resp = await console.get(path)
    text = await resp.text()
    assert resp.status == status, text[:2000]
    return text


async def test_no_conversation_page_without_a_session(client: Client) -> None:
    _ws, conv = await visitor_conversation(client)
    base = f"/console/conversations/{conv['id']}"
    for path in (
        base,
        base + "/messages",
        base + "/header",
        base + "/timeline",
        base + "/template-fields",
        "/console/attachments/att_" + "0" * 26,
    ):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/signin")
    resp = await client.post(base + "/reply", data={"text": "hi"}, allow_redirects=False)
    assert resp.status == 303
    assert len(await messages(client, conv["id"])) == 1  # nothing was sent


async def test_the_page_shows_the_conversation_and_customer_text_as_text(
    console: ConsoleClient,
) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client, f"hỏi {XSS} <img src=x onerror=alert(2)>", XSS)
    await console.signin()
    text = await page_of(console, f"/console/conversations/{conv['id']}")
    assert XSS not in text
    assert "<img src=x" not in text
    assert html.escape(XSS, quote=False) in text or "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # the header: contact, channel, status, assignee, reply window
    assert 'data-field="channel">webchat<' in text
    assert 'data-field="status" data-value="assigned">Đã giao<' in text
    assert "Demo Agent" in text
    assert 'data-window="unlimited"' in text or 'data-window="open"' in text
    # the routing explanation (admin may read it): who was chosen and why
    assert 'id="routing"' in text
    assert "lowest load ratio" in text
    # the timeline of the contact
    assert 'data-timeline-message="' in text
    # live: the page listens to this conversation's events
    assert f'sse-connect="/console/events?conversation_id={conv["id"]}"' in text
    # neither the page nor any of its fragments holds the token or the customer's markup
    base = f"/console/conversations/{conv['id']}"
    for path in ("", "/header", "/messages", "/timeline", "/template-fields?template_id=x"):
        shown = await page_of(console, base + path)
        assert ADMIN not in shown, path
        assert XSS not in shown, path
        assert "<img src=x" not in shown, path


async def test_a_text_reply_reaches_the_message_list(console: ConsoleClient) -> None:
    client = console.client
    ws, conv = await visitor_conversation(client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    await page_of(console, path)
    resp = await console.post(path + "/reply", {"text": "Chào anh, em xem ngay ạ"})
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"].startswith(path)
    sent = await messages(client, conv["id"])
    assert sent[-1]["direction"] == "outbound"
    assert sent[-1]["parts"] == [{"type": "text", "text": "Chào anh, em xem ngay ạ"}]
    fragment = await page_of(console, path + "/messages")
    assert "Chào anh, em xem ngay ạ" in fragment
    assert f'data-message="{sent[-1]["id"]}"' in fragment
    await ws.close()


async def test_a_reply_with_a_file_is_shown_from_our_own_url(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    await page_of(console, path)
    from aiohttp import FormData

    form = FormData()
    form.add_field("csrf", console.csrf)
    form.add_field("text", "ảnh đây")
    form.add_field("file", PNG, filename="dot.png", content_type="image/png")
    form.add_field("file", b"%PDF-1.4 tiny", filename="bill.pdf", content_type="application/pdf")
    resp = await client.post(path + "/reply", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    last = (await messages(client, conv["id"]))[-1]
    kinds = [p["type"] for p in last["parts"]]
    assert kinds == ["text", "image", "file"]
    image = last["parts"][1]
    assert image["attachment_id"].startswith("att_")
    fragment = await page_of(console, path + "/messages")
    src = f"/console/attachments/{image['attachment_id']}"
    assert f'<img class="image" src="{src}"' in fragment
    assert f'href="/console/attachments/{last["parts"][2]["attachment_id"]}"' in fragment
    # the file comes with the session, never without
    resp = await console.get(src)
    assert resp.status == 200
    assert await resp.read() == PNG
    console.client.session.cookie_jar.clear()
    resp = await client.get(src, allow_redirects=False)
    assert resp.status == 303


async def test_a_refused_file_keeps_the_text_and_says_why(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(**{"attachments.upload_types": ["image/*"]})
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        _ws, conv = await visitor_conversation(client)
        await console.signin()
        path = f"/console/conversations/{conv['id']}"
        await page_of(console, path)
        from aiohttp import FormData

        form = FormData()
        form.add_field("csrf", console.csrf)
        form.add_field("text", "hóa đơn của anh")
        form.add_field("file", b"%PDF-1.4", filename="bill.pdf", content_type="application/pdf")
        resp = await client.post(path + "/reply", data=form, allow_redirects=False)
        body = await resp.text()
        assert resp.status == 400, body
        assert 'data-error-for="file"' in body
        assert "application/pdf" in body
        assert ">hóa đơn của anh</textarea>" in body
        assert len(await messages(client, conv["id"])) == 1


async def test_a_canned_reply_needs_its_variables_by_field(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client, name="Chị Hoa")
    template = await post_json(
        client,
        "/v1/templates",
        {"name": "don-hang", "text": "Chào {{contact.display_name}}, đơn {{order_id}} đã gửi."},
        status=201,
    )
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    text = await page_of(console, path)
    assert f'<option value="{template["id"]}">' in text
    fields = await page_of(console, f"{path}/template-fields?template_id={template['id']}")
    assert 'name="var.order_id"' in fields
    assert "contact.display_name" in fields  # told it is filled in by the gateway
    resp = await console.post(path + "/template", {"template_id": template["id"]})
    body = await resp.text()
    assert resp.status == 422, body
    assert 'data-error-for="var.order_id"' in body
    assert 'data-refused="missing_variable"' in body
    resp = await console.post(
        path + "/template", {"template_id": template["id"], "var.order_id": "DH-42"}
    )
    assert resp.status == 303, await resp.text()
    last = (await messages(client, conv["id"]))[-1]
    assert last["parts"] == [{"type": "text", "text": "Chào Chị Hoa, đơn DH-42 đã gửi."}]


async def test_choices_go_out_as_a_choices_part(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    await page_of(console, path)
    resp = await console.post(
        path + "/choices", {"text": "Anh cần gì ạ?", "choices": "Đổi hàng\r\n\r\nTrả hàng\r\n"}
    )
    assert resp.status == 303, await resp.text()
    last = (await messages(client, conv["id"]))[-1]
    assert last["parts"] == [
        {
            "type": "choices",
            "text": "Anh cần gì ạ?",
            "choices": [{"id": "c1", "title": "Đổi hàng"}, {"id": "c2", "title": "Trả hàng"}],
        }
    ]
    fragment = await page_of(console, path + "/messages")
    assert 'data-choice="c2"' in fragment
    # a choice too long: the API's error on the field, the typed text kept
    resp = await console.post(path + "/choices", {"text": "Chọn", "choices": "x" * 81})
    body = await resp.text()
    assert resp.status == 400, body
    assert 'data-error-for="choices"' in body
    assert ">Chọn</textarea>" in body


async def test_a_refused_send_shows_why_and_keeps_the_text(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    await page_of(console, path)
    resp = await console.post(path + "/reply", {"text": "   "})
    body = await resp.text()
    assert resp.status == 400, body
    assert 'data-refused="validation_error"' in body
    assert "text is empty" in body
    assert len(await messages(client, conv["id"])) == 1


async def test_a_closed_reply_window_says_what_may_go_out(
    start_zns: Started,  # noqa: F811 (the fixture imported above)
) -> None:
    zl, _zns = await start_zns()
    body = {"channel_id": ZALO_CHANNEL, "to": {"phone": PHONE}, "parts": [ORDER]}
    started = await post_json(zl.client, "/v1/conversations", body, status=201)
    conv = started["conversation"]
    console = ConsoleClient(zl.client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    text = await page_of(console, path)
    assert 'data-window="template_only"' in text
    assert "Template order_confirmed" in text or "Mẫu tin order_confirmed" in text
    typed = "Chào anh, <b>đơn</b> đã giao"
    resp = await console.post(path + "/reply", {"text": typed})
    body_text = await resp.text()
    assert resp.status == 422, body_text
    assert 'data-refused="window_closed"' in body_text
    assert "template" in body_text.split('data-refused="window_closed"', 1)[1][:600]
    assert f">{html.escape(typed, quote=False)}</textarea>" in body_text
    assert len(await messages(zl.client, conv["id"])) == 1


async def test_assign_transfer_resolve_reopen(console: ConsoleClient) -> None:
    client = console.client
    for agent in ("lan", "minh"):
        resp = await client.put(
            f"/v1/agents/{agent}",
            json={"name": agent.title(), "presence": "online", "capacity": {"total": 5}},
            headers=AUTH,
        )
        assert resp.status in (200, 201), await resp.text()
    _ws, conv = await visitor_conversation(client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    text = await page_of(console, path)
    assert '<option value="lan">' in text
    resp = await console.post(path + "/assign", {"agent_id": "lan"})
    assert resp.status == 303, await resp.text()
    got = await get_json(client, f"/v1/conversations/{conv['id']}")
    assert got["assignee_id"] == "lan"
    text = await page_of(console, path)
    assert "assigned by hand" in text  # the routing explanation of the manual decision
    resp = await console.post(path + "/transfer", {"transfer_agent_id": "minh"})
    assert resp.status == 303, await resp.text()
    got = await get_json(client, f"/v1/conversations/{conv['id']}")
    assert got["assignee_id"] == "minh"
    # both or neither target: said on the field
    resp = await console.post(path + "/transfer", {"transfer_agent_id": "lan", "skills": "x"})
    assert resp.status == 400
    assert 'data-error-for="skills"' in await resp.text()
    resp = await console.post(path + "/resolve")
    assert resp.status == 303
    inbox = await page_of(console, "/console/inbox?status=resolved")
    assert f'data-conversation="{conv["id"]}"' in inbox
    inbox = await page_of(console, "/console/inbox")
    assert f'data-conversation="{conv["id"]}"' not in inbox
    text = await page_of(console, path)
    assert 'data-action="reopen"' in text
    assert 'data-action="resolve"' not in text
    resp = await console.post(path + "/reopen")
    assert resp.status == 303
    got = await get_json(client, f"/v1/conversations/{conv['id']}")
    assert got["status"] in ("queued", "assigned")
    # an API refusal (assigning a resolved... an unknown agent) is shown, not an error page
    resp = await console.post(path + "/assign", {"agent_id": "nobody-here"})
    body = await resp.text()
    assert resp.status == 404, body
    assert 'data-refused="agent_not_found"' in body


async def test_an_agent_token_sees_what_its_scope_allows(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client)
    body = await post_json(
        client,
        "/v1/tokens",
        {"name": "demo", "scopes": ["agent"], "agent_id": "demo"},
        status=201,
    )
    await console.signin(body["token"])
    path = f"/console/conversations/{conv['id']}"
    text = await page_of(console, path)
    assert 'data-form="reply"' in text
    assert 'data-action="resolve"' in text
    assert 'id="routing"' not in text  # routing explanations are for admin/integration
    assert 'name="force"' not in text  # forcing an assignment is admin's
    assert body["token"] not in text
    # forcing is refused even when posted by hand
    resp = await console.post(path + "/assign", {"agent_id": "demo", "force": "1"})
    assert resp.status in (303, 409), await resp.text()


def test_own_files_only_are_loaded() -> None:
    from gateway.console.shown import own_file, web_link

    att = "att_" + "0" * 26
    assert own_file({"attachment_id": att}) == f"/console/attachments/{att}"
    assert own_file({"url": f"https://gw.example/v1/attachments/{att}"}) == (
        f"/console/attachments/{att}"
    )
    assert own_file({"url": f"/v1/attachments/{att}"}) == f"/console/attachments/{att}"
    for url in (
        f"javascript:/v1/attachments/{att}",
        f"data:text/html,/v1/attachments/{att}",
        "https://cdn.example/x.png",
        f"/v1/attachments/{att}/../../v1/tokens",
        None,
    ):
        assert own_file({"url": url}) is None, url
    assert web_link("https://ok.example/a") == "https://ok.example/a"
    for url in ("javascript:alert(1)", "data:text/html,x", "//evil.example", "ftp://x/y", 3):
        assert web_link(url) is None
    assert re.fullmatch(r"/console/attachments/att_0+", own_file({"attachment_id": att}) or "")


async def test_a_reply_may_carry_a_file_larger_than_a_request_body(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """A photo of a few MB goes up with the reply (files are bounded by
    max_attachment_bytes, the rest of the form by max_body_bytes); one over its bound gets
    a clear page and nothing is sent."""
    from aiohttp import FormData
    from aiohttp.test_utils import TestServer

    from tests.media.images import png

    gw = await make_gateway(
        **{"server.max_body_bytes": 64 * 1024, "server.max_attachment_bytes": 1024 * 1024}
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        _ws, conv = await visitor_conversation(client)
        await console.signin()
        path = f"/console/conversations/{conv['id']}"
        await page_of(console, path)
        photo = png(40, 40) + bytes(range(256)) * 800  # a PNG's bytes, then ~200 kB more
        assert 64 * 1024 < len(photo) < 1024 * 1024

        def form(data: bytes) -> FormData:
            f = FormData()
            f.add_field("csrf", console.csrf)
            f.add_field("text", "ảnh đơn hàng")
            f.add_field("file", io.BytesIO(data), filename="don-hang.png", content_type="image/png")
            return f

        resp = await client.post(path + "/reply", data=form(photo), allow_redirects=False)
        assert resp.status == 303, await resp.text()
        last = (await messages(client, conv["id"]))[-1]
        assert [p["type"] for p in last["parts"]] == ["text", "image"]
        before = len(await messages(client, conv["id"]))
        resp = await client.post(
            path + "/reply", data=form(photo + b"\0" * (1024 * 1024)), allow_redirects=False
        )
        assert resp.status == 413
        assert "larger than" in await resp.text()
        assert len(await messages(client, conv["id"])) == before


async def test_a_reply_form_posted_twice_is_sent_once(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client)
    await console.signin()
    path = f"/console/conversations/{conv['id']}"
    page = await page_of(console, path)
    keys = re.findall(r'name="idempotency_key" value="([^"]+)"', page)
    assert len(keys) == 2 and len(set(keys)) == 2  # reply, choices (no canned replies yet)
    before = len(await messages(client, conv["id"]))
    for _ in range(2):  # a double click
        resp = await console.post(
            path + "/reply", {"text": "Dạ em gửi ạ", "idempotency_key": keys[0]}
        )
        assert resp.status == 303, await resp.text()
    sent = await messages(client, conv["id"])
    assert len(sent) == before + 1
    # another form's key: another message
    resp = await console.post(path + "/reply", {"text": "Dạ em gửi ạ", "idempotency_key": keys[1]})
    assert resp.status == 303
    assert len(await messages(client, conv["id"])) == before + 2
