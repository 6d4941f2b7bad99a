"""The HTTP API through a real aiohttp server: auth, errors, conversations, contacts, agents."""

from __future__ import annotations

import io
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import Gateway
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import AUTH

Client = TestClient  # type: ignore[type-arg]


async def _conversation(
    client: Client, text: str = "Xin chào"
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    ws, session = await open_visitor(client)
    ack = await say(ws, text, "c1")
    assert ack["type"] == "ack"
    convs = await eventually(lambda: _assigned(client, session["visitor_id"]))
    return ws, session, convs


async def _assigned(client: Client, visitor_id: str) -> dict[str, Any] | None:
    page = await get_json(client, "/v1/conversations?status=assigned")
    for conv in page["items"]:
        contact = await get_json(client, f"/v1/contacts/{conv['contact_id']}")
        if any(i["external_id"] == visitor_id for i in contact["identities"]):
            return conv  # type: ignore[no-any-return]
    return None


# --- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthorized"),
        ("Basic dXNlcjpwYXNz", "bad_auth_scheme"),
        ("Bearer", "bad_auth_scheme"),
        ("Bearer not-a-token", "invalid_token"),
    ],
)
async def test_bad_credentials_are_401(client: Client, header: str | None, code: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = await client.get("/v1/conversations", headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    body = await resp.json()
    assert body["error"]["code"] == code
    assert "not-a-token" not in await resp.text()


async def test_scoped_tokens(client: Client) -> None:
    await client.put("/v1/agents/lan", json={"name": "Lan"}, headers=AUTH)
    agent = await post_json(
        client, "/v1/tokens", {"name": "lan's app", "scopes": ["agent"], "agent_id": "lan"}, 201
    )
    assert agent["token"].startswith("ogw_")
    agent_auth = {"Authorization": f"Bearer {agent['token']}"}
    assert (await client.get("/v1/conversations", headers=agent_auth)).status == 200
    resp = await client.get("/v1/tokens", headers=agent_auth)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "insufficient_scope"
    assert (
        await client.put("/v1/agents/lan/presence", json={"status": "online"}, headers=agent_auth)
    ).status == 200
    other = await client.put(
        "/v1/agents/demo/presence", json={"status": "offline"}, headers=agent_auth
    )
    assert other.status == 403
    assert (await client.put("/v1/agents/lan", json={}, headers=agent_auth)).status == 403

    listed = await get_json(client, "/v1/tokens")
    assert [t["name"] for t in listed["items"]] == ["lan's app"]
    assert "token" not in listed["items"][0]
    assert (await client.delete(f"/v1/tokens/{agent['id']}", headers=AUTH)).status == 204
    assert (await client.get("/v1/conversations", headers=agent_auth)).status == 401
    await post_json(client, "/v1/tokens", {"name": "x", "scopes": ["agent"]}, 422)
    await post_json(client, "/v1/tokens", {"name": "x", "scopes": ["root"]}, 400)


async def test_integration_token_cannot_force(client: Client) -> None:
    integ = await post_json(
        client, "/v1/tokens", {"name": "helpdesk", "scopes": ["integration"]}, 201
    )
    headers = {"Authorization": f"Bearer {integ['token']}"}
    _, _, conv = await _conversation(client)
    resp = await client.post(
        f"/v1/conversations/{conv['id']}/assign",
        json={"agent_id": "demo", "force": True},
        headers=headers,
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "force_needs_admin"


# --- errors ---------------------------------------------------------------------------


async def test_unknown_route_and_method_are_json(client: Client) -> None:
    resp = await client.get("/v1/nothing-here", headers=AUTH)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "no_route"
    resp = await client.delete("/v1/conversations", headers=AUTH)
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/conversations/cv_missing",
        "/v1/conversations/cv_missing/messages",
        "/v1/contacts/ct_missing",
        "/v1/contacts/ct_missing/timeline",
        "/v1/agents/nobody",
        "/v1/messages/msg_missing",
        "/v1/channels/nope",
    ],
)
async def test_unknown_ids_are_404(client: Client, path: str) -> None:
    body = await get_json(client, path, 404)
    assert body["error"]["code"].endswith("not_found")
    assert body["error"]["message"]


async def test_bad_bodies(client: Client, gw: Gateway) -> None:
    _, _, conv = await _conversation(client)
    url = f"/v1/conversations/{conv['id']}/messages"
    cases = [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "body_required"),
        (b"[1, 2]", 400, "invalid_json"),
        (b"\xff\xfe\x00", 400, "invalid_json"),
        (b'{"text": ""}', 400, "validation_error"),
        (b'{"text": "a", "parts": [{"type": "text", "text": "b"}]}', 400, "validation_error"),
        (b'{"text": "hi", "unknown": 1}', 400, "validation_error"),
        (b'{"parts": [{"type": "hologram"}]}', 400, "validation_error"),
        (b'{"text": "hi", "reply_to": "msg_elsewhere"}', 422, "invalid_reply_to"),
    ]
    for raw, status, code in cases:
        resp = await client.post(
            url, data=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (status, code), raw
    big = b'{"text": "' + b"a" * (gw.settings.server.max_body_bytes + 10) + b'"}'
    resp = await client.post(url, data=io.BytesIO(big), headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    # nothing half-stored: only the customer's message is in the conversation
    msgs = await get_json(client, f"{url}")
    assert [m["direction"] for m in msgs["items"]] == ["inbound"]


async def test_validation_details_name_the_field(client: Client) -> None:
    resp = await client.put("/v1/agents/lan", json={"capacity": {"total": -1}}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400
    assert body["error"]["details"][0]["field"] == "capacity.total"


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=abc", "cursor=%%%", "status=open"]
)
async def test_bad_query_parameters(client: Client, query: str) -> None:
    body = await get_json(client, f"/v1/conversations?{query}", 400)
    assert body["error"]["code"] in {"validation_error", "invalid_cursor"}


# --- conversations and messages -------------------------------------------------------


async def test_reply_reaches_the_customer_and_is_marked_sent(client: Client) -> None:
    ws, _session, conv = await _conversation(client, "Tôi muốn đổi hàng")
    assert conv["assignee_id"] == "demo"
    sent = await post_json(
        client, f"/v1/conversations/{conv['id']}/messages", {"text": "Dạ, em hỗ trợ ngay ạ"}, 202
    )
    assert sent["status"] == "pending"
    assert sent["author"] == {"type": "agent", "id": "demo"}
    pushed = await ws.receive_json(timeout=5)
    assert pushed["type"] == "message"
    assert pushed["message"]["id"] == sent["id"]
    assert pushed["message"]["parts"] == [{"type": "text", "text": "Dạ, em hỗ trợ ngay ạ"}]

    async def is_sent() -> bool:
        return (await get_json(client, f"/v1/messages/{sent['id']}"))["status"] == "sent"

    await eventually(is_sent)
    fresh = await get_json(client, f"/v1/conversations/{conv['id']}")
    assert fresh["first_response_at"] is not None
    msgs = await get_json(client, f"/v1/conversations/{conv['id']}/messages")
    assert [m["direction"] for m in msgs["items"]] == ["inbound", "outbound"]


async def test_idempotent_send(client: Client) -> None:
    _, _, conv = await _conversation(client)
    url = f"/v1/conversations/{conv['id']}/messages"
    headers = {**AUTH, "Idempotency-Key": "reply-42"}
    first = await client.post(url, json={"text": "một lần thôi"}, headers=headers)
    second = await client.post(url, json={"text": "một lần thôi"}, headers=headers)
    a, b = await first.json(), await second.json()
    assert first.status == second.status == 202
    assert a["id"] == b["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    clash = await client.post(url, json={"text": "khác"}, headers=headers)
    assert clash.status == 422
    assert (await clash.json())["error"]["code"] == "idempotency_key_reused"
    msgs = await get_json(client, url)
    assert [m["id"] for m in msgs["items"] if m["direction"] == "outbound"] == [a["id"]]


async def test_resolve_reopen_and_their_conflicts(client: Client) -> None:
    _, _, conv = await _conversation(client)
    base = f"/v1/conversations/{conv['id']}"
    assert (await post_json(client, f"{base}/resolve", None))["status"] == "resolved"
    assert (await post_json(client, f"{base}/resolve", None, 409))["error"][
        "code"
    ] == "conversation_resolved"
    reopened = await post_json(client, f"{base}/reopen", None)
    assert reopened["status"] in {"queued", "assigned"}
    assert (await post_json(client, f"{base}/reopen", None, 409))["error"][
        "code"
    ] == "conversation_open"


async def test_assign_transfer_and_routing_log(client: Client) -> None:
    await client.put(
        "/v1/agents/lan",
        json={"name": "Lan", "capacity": {"total": 3}, "presence": "online"},
        headers=AUTH,
    )
    _, _, conv = await _conversation(client)
    base = f"/v1/conversations/{conv['id']}"
    moved = await post_json(client, f"{base}/transfer", {"agent_id": "lan"})
    assert moved["assignee_id"] == "lan"
    back = await post_json(client, f"{base}/assign", {"agent_id": "demo"})
    assert back["assignee_id"] == "demo"
    busy = await post_json(client, f"{base}/assign", {"agent_id": "ghost"}, 404)
    assert busy["error"]["code"] == "agent_not_found"
    log = await get_json(client, f"{base}/routing")
    assert log["decisions"][0]["agent_id"] == "demo"
    assert [d["policy"] for d in log["decisions"]][1:] == ["manual", "manual"]
    await post_json(client, f"{base}/transfer", {"agent_id": "lan", "skills": ["x"]}, 400)


async def test_list_filters_and_paginates(client: Client) -> None:
    for i in range(3):
        ws, _ = await open_visitor(client)
        await say(ws, f"khách {i}", "c1")
    page = await eventually(lambda: _page_when(client, 3))
    assert len(page["items"]) == 3
    first = await get_json(client, "/v1/conversations?limit=2")
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = await get_json(client, f"/v1/conversations?limit=2&cursor={first['next_cursor']}")
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    ids = [c["id"] for c in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    only = await get_json(client, "/v1/conversations?assignee_id=nobody")
    assert only["items"] == []
    empty_filters = await get_json(
        client, "/v1/conversations?status=&assignee_id=&channel_id=&contact_id="
    )
    assert len(empty_filters["items"]) == 3


async def _page_when(client: Client, n: int) -> dict[str, Any] | None:
    page = await get_json(client, "/v1/conversations?status=assigned")
    return page if len(page["items"]) >= n else None


# --- contacts and agents --------------------------------------------------------------


async def test_contact_and_timeline(client: Client) -> None:
    ws, session, conv = await _conversation(client, "một")
    await say(ws, "hai", "c2")
    contact = await get_json(client, f"/v1/contacts/{conv['contact_id']}")
    assert contact["identities"][0]["external_id"] == session["visitor_id"]
    timeline = await get_json(client, f"/v1/contacts/{conv['contact_id']}/timeline?limit=1")
    assert timeline["items"][0]["parts"][0]["text"] == "hai"
    older = await get_json(
        client,
        f"/v1/contacts/{conv['contact_id']}/timeline?limit=1&cursor={timeline['next_cursor']}",
    )
    assert older["items"][0]["parts"][0]["text"] == "một"


async def test_merge_and_unmerge_over_the_api(client: Client) -> None:
    _, s1, c1 = await _conversation(client)
    ws2, s2 = await open_visitor(client)
    await say(ws2, "khách thứ hai", "x")
    c2 = await eventually(lambda: _assigned(client, s2["visitor_id"]))
    merged = await post_json(
        client, f"/v1/contacts/{c1['contact_id']}/merge", {"other_id": c2["contact_id"]}
    )
    assert {i["external_id"] for i in merged["identities"]} == {s1["visitor_id"], s2["visitor_id"]}
    again = await post_json(
        client, f"/v1/contacts/{c1['contact_id']}/merge", {"other_id": c2["contact_id"]}, 409
    )
    assert again["error"]["code"] == "contact_merged"
    identity = next(i for i in merged["identities"] if i["external_id"] == s2["visitor_id"])
    detached = await post_json(
        client, f"/v1/contacts/{c1['contact_id']}/unmerge", {"identity": identity}
    )
    assert detached["id"] == c2["contact_id"]


async def test_agents_put_get_presence(client: Client) -> None:
    resp = await client.put(
        "/v1/agents/lan",
        json={
            "name": "Trần Thị Lan",
            "skills": {"billing": 3},
            "languages": ["vi"],
            "capacity": {"webchat": 2, "total": 4},
        },
        headers=AUTH,
    )
    assert resp.status == 201
    created = await resp.json()
    assert created["presence"] == "offline"
    again = await client.put("/v1/agents/lan", json={"name": "Lan"}, headers=AUTH)
    assert again.status == 200
    agent = await get_json(client, "/v1/agents/lan")
    assert agent["name"] == "Lan"
    assert agent["capacity"] == {"total": 5}
    online = await client.put("/v1/agents/lan/presence", json={"status": "online"}, headers=AUTH)
    assert (await online.json())["presence"] == "online"
    bad = await client.put("/v1/agents/lan/presence", json={"status": "busy"}, headers=AUTH)
    assert bad.status == 400
    weird = await client.put("/v1/agents/bad%20id", json={}, headers=AUTH)
    assert weird.status == 400
    listed = await get_json(client, "/v1/agents")
    assert [a["id"] for a in listed["items"]] == ["demo", "lan"]
    # what GET answers can be sent back with PUT
    round_trip = await client.put("/v1/agents/lan", json={**agent, "name": "Lan C"}, headers=AUTH)
    assert round_trip.status == 200
    assert (await round_trip.json())["name"] == "Lan C"
    wrong = await client.put("/v1/agents/lan", json={"id": "minh"}, headers=AUTH)
    assert wrong.status == 422


async def test_health_readiness_metrics(client: Client) -> None:
    assert (await get_json(client, "/healthz", headers={}))["status"] == "ok"
    ready = await get_json(client, "/readyz", headers={})
    assert ready["status"] == "ready"
    assert ready["channels"]["webchat"]["state"] == "CONNECTED"
    await _conversation(client)
    text = await (await client.get("/metrics")).text()
    assert 'omnigw_inbound_messages_total{channel="webchat"} 1' in text


async def test_readyz_is_503_when_the_store_is_gone(client: Client, gw: Gateway) -> None:
    await gw.store.close()
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "not_ready"
    assert body["store"].startswith("unreachable")


async def test_nul_is_refused_where_it_arrives(client: TestClient) -> None:  # type: ignore[type-arg]
    for path, body in [
        ("/v1/agents/lan", {"name": "L\x00an", "capacity": {"total": 2}}),
        ("/v1/agents/lan", {"name": "Lan", "skills": {"vi\x00": 2}}),
    ]:
        resp = await client.put(path, json=body, headers=AUTH)
        answer = await resp.json()
        assert resp.status == 400, answer
        assert "U+0000" in answer["error"]["message"]
    resp = await client.get("/v1/conversations/cv_%00", headers=AUTH)
    assert resp.status == 400
    resp = await client.post(
        "/v1/tokens", json={"name": "t\x00", "scopes": ["admin"]}, headers=AUTH
    )
    assert resp.status == 400
    async with client.ws_connect("/webchat/webchat/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "client_id": "c\x00", "text": "x"})
        frame = await ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == "bad_frame", frame
        await ws.send_json({"type": "message", "client_id": "c1", "text": "x\x00y"})
        frame = await ws.receive_json()
        assert frame["type"] == "ack", frame  # the text loses its control characters
