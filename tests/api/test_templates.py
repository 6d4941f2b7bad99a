"""Canned replies: /v1/templates, language variants, variables, and sending one."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import AUTH

Client = TestClient  # type: ignore[type-arg]

THANKS_VI = {
    "name": "thanks",
    "language": "vi",
    "text": "Cảm ơn {{contact.display_name}}, em là {{agent.name}}. Đơn {{order_id}} đã gửi ạ.",
}
THANKS_EN = {
    "name": "thanks",
    "language": "en",
    "text": "Thank you {{contact.display_name}}, I am {{agent.name}}. Order {{order_id}} shipped.",
}


async def _conversation(client: Client, text: str) -> dict[str, Any]:
    """A visitor named Lan writes ``text``; their conversation once assigned to demo."""
    ws, session = await open_visitor(client)
    ack = await say(ws, text, "c1")
    assert ack["type"] == "ack"

    async def assigned() -> dict[str, Any] | None:
        page = await get_json(client, "/v1/conversations?status=assigned")
        for conv in page["items"]:
            contact = await get_json(client, f"/v1/contacts/{conv['contact_id']}")
            if any(i["external_id"] == session["visitor_id"] for i in contact["identities"]):
                return conv  # type: ignore[no-any-return]
        return None

    conv: dict[str, Any] = await eventually(assigned)
    resp = await client.patch(
        f"/v1/contacts/{conv['contact_id']}", json={"display_name": "Chị Lan"}, headers=AUTH
    )
    assert resp.status == 200
    await ws.close()
    return conv


async def _send(client: Client, conv: dict[str, Any], body: dict[str, Any]) -> Any:
    return await client.post(f"/v1/conversations/{conv['id']}/messages", json=body, headers=AUTH)


async def _messages(client: Client, conv: dict[str, Any]) -> list[dict[str, Any]]:
    page = await get_json(client, f"/v1/conversations/{conv['id']}/messages")
    return list(page["items"])


async def test_crud_and_language_variants(client: Client) -> None:
    vi = await post_json(client, "/v1/templates", THANKS_VI, 201)
    en = await post_json(client, "/v1/templates", THANKS_EN, 201)
    assert vi["id"].startswith("tpl_") and vi["id"] != en["id"]
    assert (await get_json(client, f"/v1/templates/{vi['id']}"))["text"] == THANKS_VI["text"]
    listed = await get_json(client, "/v1/templates?name=thanks")
    assert [t["language"] for t in listed["items"]] == ["en", "vi"]

    taken = await client.post("/v1/templates", json=THANKS_VI, headers=AUTH)
    assert taken.status == 409
    assert (await taken.json())["error"]["code"] == "template_exists"
    # Renaming the English one onto the Vietnamese one's language is refused the same way.
    clash = await client.put(
        f"/v1/templates/{en['id']}", json={**THANKS_EN, "language": "vi"}, headers=AUTH
    )
    assert clash.status == 409

    changed = await client.put(
        f"/v1/templates/{en['id']}", json={**THANKS_EN, "text": "Thanks!"}, headers=AUTH
    )
    assert changed.status == 200
    body = await changed.json()
    assert body["text"] == "Thanks!" and body["created_at"] == en["created_at"]

    assert (await client.delete(f"/v1/templates/{en['id']}", headers=AUTH)).status == 204
    gone = await client.get(f"/v1/templates/{en['id']}", headers=AUTH)
    assert gone.status == 404
    assert (await gone.json())["error"]["code"] == "template_not_found"
    assert (await client.delete(f"/v1/templates/{en['id']}", headers=AUTH)).status == 404


async def test_bad_templates_are_refused(client: Client) -> None:
    for body in (
        {"name": "x"},  # neither text nor parts
        {"name": "x", "text": "a", "parts": [{"type": "text", "text": "b"}]},
        {"name": "", "text": "a"},
        {"name": "x", "text": "a", "language": "<script>"},
        {"name": "x", "text": "a" * 20_001},
        {"name": "x", "text": "a", "extra": 1},
    ):
        resp = await client.post("/v1/templates", json=body, headers=AUTH)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["code"] == "validation_error"
    assert (await get_json(client, "/v1/templates"))["items"] == []


async def test_agents_read_templates_but_only_managers_change_them(client: Client) -> None:
    await client.put("/v1/agents/lan", json={"name": "Lan"}, headers=AUTH)
    token = await post_json(
        client, "/v1/tokens", {"name": "lan", "scopes": ["agent"], "agent_id": "lan"}, 201
    )
    agent = {"Authorization": f"Bearer {token['token']}"}
    created = await post_json(client, "/v1/templates", THANKS_VI, 201)
    assert (await client.get("/v1/templates", headers=agent)).status == 200
    assert (await client.post("/v1/templates", json=THANKS_EN, headers=agent)).status == 403
    assert (
        await client.put(f"/v1/templates/{created['id']}", json=THANKS_EN, headers=agent)
    ).status == 403
    assert (await client.delete(f"/v1/templates/{created['id']}", headers=agent)).status == 403


async def test_a_send_renders_the_conversation_s_language(client: Client) -> None:
    vi = await post_json(client, "/v1/templates", THANKS_VI, 201)
    await post_json(client, "/v1/templates", THANKS_EN, 201)
    await client.put("/v1/agents/demo", json={"name": "Minh"}, headers=AUTH)
    english = await _conversation(client, "Hello, where is my order please?")
    assert english["language"] == "en"
    # Named by its Vietnamese variant, sent in the conversation's English.
    resp = await _send(
        client, english, {"template_id": vi["id"], "variables": {"order_id": "DH-1234"}}
    )
    assert resp.status == 202, await resp.text()
    msg = await resp.json()
    assert msg["parts"] == [
        {"type": "text", "text": "Thank you Chị Lan, I am Minh. Order DH-1234 shipped."}
    ]
    assert msg["author"] == {"type": "agent", "id": "demo"}


async def test_variables_are_text_put_in_once(client: Client) -> None:
    tpl = await post_json(
        client, "/v1/templates", {"name": "echo", "text": "Mã: {{code}} / {{ note }}"}, 201
    )
    conv = await _conversation(client, "Cho mình hỏi đơn hàng")
    hostile = {"code": "<script>alert(1)</script>", "note": "{{contact.display_name}} {{"}
    resp = await _send(client, conv, {"template_id": tpl["id"], "variables": hostile})
    assert resp.status == 202
    (part,) = (await resp.json())["parts"]
    # Markup stays text (channels escape it where they render HTML); a value is never read
    # again for variables.
    assert part["text"] == "Mã: <script>alert(1)</script> / {{contact.display_name}} {{"


async def test_a_missing_variable_stores_nothing(client: Client) -> None:
    tpl = await post_json(client, "/v1/templates", THANKS_VI, 201)
    conv = await _conversation(client, "Cho mình hỏi đơn hàng")
    before = await _messages(client, conv)
    resp = await _send(client, conv, {"template_id": tpl["id"]})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "missing_variable"
    assert error["details"] == {"missing": ["order_id"]}
    assert await _messages(client, conv) == before


async def test_hostile_sends_are_clear_4xx_and_store_nothing(client: Client) -> None:
    tpl = await post_json(client, "/v1/templates", {"name": "n", "text": "{{v}}{{v}}"}, 201)
    conv = await _conversation(client, "Cho mình hỏi đơn hàng")
    before = await _messages(client, conv)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"template_id": tpl["id"], "variables": {"v": "x" * 100_000}}, 400, "validation_error"),
        # Each value fits, the filled-in text does not.
        ({"template_id": tpl["id"], "variables": {"v": "x" * 15_000}}, 422, "text_too_long"),
        ({"template_id": "tpl_nope"}, 422, "template_not_found"),
        ({"text": "hi", "variables": {"v": "1"}}, 400, "validation_error"),
        ({"text": "hi", "template_id": tpl["id"]}, 400, "validation_error"),
        ({"template_id": tpl["id"], "variables": {"bad name": "1"}}, 400, "validation_error"),
    ]
    for body, status, code in cases:
        resp = await _send(client, conv, body)
        assert resp.status == status, (body, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == code, error
    assert await _messages(client, conv) == before


async def test_choices_in_a_template_are_filled_too(client: Client) -> None:
    tpl = await post_json(
        client,
        "/v1/templates",
        {
            "name": "confirm",
            "parts": [
                {
                    "type": "choices",
                    "text": "{{contact.display_name}} nhận hàng chưa ạ?",
                    "choices": [
                        {"id": "yes", "title": "Đã nhận {{order_id}}"},
                        {"id": "no", "title": "Chưa nhận"},
                    ],
                }
            ],
        },
        201,
    )
    conv = await _conversation(client, "Cho mình hỏi đơn hàng")
    resp = await _send(client, conv, {"template_id": tpl["id"], "variables": {"order_id": "A1"}})
    assert resp.status == 202, await resp.text()
    (part,) = (await resp.json())["parts"]
    assert part == {
        "type": "choices",
        "text": "Chị Lan nhận hàng chưa ạ?",
        "choices": [{"id": "yes", "title": "Đã nhận A1"}, {"id": "no", "title": "Chưa nhận"}],
    }
