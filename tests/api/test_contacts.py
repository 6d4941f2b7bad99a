"""GET /v1/contacts and suggestions through the HTTP API: parameters, pages, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.helpers import get_json, open_visitor, post_json, say
from tests.conftest import AUTH

Client = TestClient  # type: ignore[type-arg]


async def visitor_contact(client: Client, text: str) -> str:
    ws, session = await open_visitor(client)
    await say(ws, text, "c1")
    await ws.close()
    page = await get_json(client, f"/v1/contacts?external_id={session['visitor_id']}")
    [contact] = page["items"]
    return str(contact["id"])


async def patch(client: Client, contact_id: str, body: dict[str, Any]) -> None:
    resp = await client.patch(f"/v1/contacts/{contact_id}", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()


async def test_search_by_name_and_phone_in_any_form_a_page_at_a_time(client: Client) -> None:
    ids = []
    for i, (name, phone) in enumerate(
        [
            ("Nguyễn Văn An", "0912 345 678"),
            ("Nguyễn Thị Đào", "0903 000 111"),
            ("nguyễn văn an", "0903 000 222"),
            ("Trần Văn Bình", None),
        ]
    ):
        cid = await visitor_contact(client, f"tin nhắn {i}")
        body: dict[str, Any] = {"display_name": name}
        if phone:
            body["phone"] = phone
        await patch(client, cid, body)
        ids.append(cid)

    async def found(query: str) -> list[str]:
        got: list[str] = []
        cursor = ""
        while True:
            page = await get_json(client, f"/v1/contacts?{query}&limit=1{cursor}")
            got += [c["id"] for c in page["items"]]
            if page["next_cursor"] is None:
                return got
            cursor = f"&cursor={page['next_cursor']}"

    assert sorted(await found("q=nguyen%20van%20a")) == sorted([ids[0], ids[2]])
    assert await found("q=DAO") == [ids[1]]
    assert await found("q=%C4%91%C3%A0o") == [ids[1]]  # "đào"
    for form in ("0912345678", "84912345678", "%2B84%20912%20345%20678", "(091)%20234-5678"):
        assert await found(f"phone={form}") == [ids[0]], form
    assert sorted(await found("channel_id=webchat")) == sorted(ids)
    assert await found("q=nguyen&phone=0903000222") == [ids[2]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("phone=abc", "invalid_phone"),
        ("email=not-an-address", "invalid_email"),
        ("q=%20%21%21", "invalid_query"),
        ("cursor=zzz", "invalid_cursor"),
        ("limit=0", None),
        ("unknown=1", None),
    ],
)
async def test_bad_queries_are_400_with_the_reason(
    client: Client, query: str, code: str | None
) -> None:
    body = await get_json(client, f"/v1/contacts?{query}", 400)
    if code is not None:
        assert body["error"]["code"] == code


async def test_suggestions_of_unknown_and_merged_contacts(client: Client) -> None:
    await get_json(client, "/v1/contacts/ct_missing/suggestions", 404)
    a = await visitor_contact(client, "một")
    b = await visitor_contact(client, "hai")
    assert (await get_json(client, f"/v1/contacts/{a}/suggestions")) == {"items": []}
    await patch(client, a, {"phone": "0912345678", "display_name": "Lý Thường Kiệt"})
    await patch(client, b, {"phone": "+84912345678", "display_name": "Ly Thuong Kiet"})
    [s] = (await get_json(client, f"/v1/contacts/{a}/suggestions"))["items"]
    assert (s["contact"]["id"], s["reasons"]) == (b, ["same_phone", "same_name"])
    await post_json(client, f"/v1/contacts/{a}/merge", {"other_id": b})
    body = await get_json(client, f"/v1/contacts/{b}/suggestions", 409)
    assert body["error"]["code"] == "contact_merged"
    assert (await get_json(client, f"/v1/contacts/{a}/suggestions")) == {"items": []}
