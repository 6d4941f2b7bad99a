"""What a Zalo user shares of their account (user_submit_info, the profile's shared_info):
a phone Zalo vouches for, which links the contact to the same person elsewhere."""

from __future__ import annotations

import pytest

from tests.api.helpers import eventually, get_json
from tests.providers import Json, conversations, raw_events
from tests.zalo.conftest import PROFILE, Zl
from tests.zalo.helpers import USER, load


async def contact_of(zl: Zl, user_id: str) -> Json:
    page = await get_json(zl.client, f"/v1/contacts?external_id={user_id}")
    [contact] = page["items"]
    return contact


async def test_submitted_info_is_a_verified_phone_that_links(zl: Zl) -> None:
    await zl.deliver(load("user_send_text"))
    # another Zalo user of the OA (a second account on the same phone, say)
    other = load("user_send_text")
    other["sender"]["id"] = "7000000000000000001"
    other["message"]["msg_id"] = "b" * 32
    await zl.deliver(other)
    assert len({c["contact_id"] for c in await conversations(zl)}) == 2

    assert await zl.deliver(load("user_submit_info")) == {"received": 1}
    contact = await contact_of(zl, USER)
    assert contact["phone"] == "+84912345678"
    assert contact["display_name"] == "Nguyễn Thị Thu"
    assert raw_events(zl.data_dir) == []  # handled, not kept raw

    shared = load("user_submit_info")
    shared["sender"]["id"] = "7000000000000000001"
    shared["info"]["phone"] = "0912 345 678"
    await zl.deliver(shared)
    merged = await contact_of(zl, "7000000000000000001")
    assert merged["id"] == contact["id"]  # one contact: the older one survives
    assert {i["external_id"] for i in merged["identities"]} == {USER, "7000000000000000001"}
    timeline = await get_json(zl.client, f"/v1/contacts/{contact['id']}/timeline")
    assert len(timeline["items"]) == 2


@pytest.mark.parametrize(
    "info", [{}, {"address": "12 Lê Lợi"}], ids=["empty", "neither-name-nor-phone"]
)
async def test_submitted_info_without_name_or_phone_is_kept_raw(zl: Zl, info: Json) -> None:
    data = load("user_submit_info")
    data["info"] = info
    await zl.deliver(data)
    [(kind, reason, _)] = raw_events(zl.data_dir)
    assert kind == "user_submit_info"
    assert "neither a name nor a phone" in reason


async def test_submitted_info_naming_no_user_is_kept_raw(zl: Zl) -> None:
    data = load("user_submit_info")
    del data["sender"]
    await zl.deliver(data)
    [(kind, reason, _)] = raw_events(zl.data_dir)
    assert (kind, reason) == (
        "user_submit_info",
        "invalid user_submit_info: the event names no user",
    )


async def test_the_profile_s_shared_phone_is_verified(
    zl: Zl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROFILE, "shared_info", {"name": "Thu", "phone": "84912345678"})
    await zl.deliver(load("user_send_text"))

    async def phoned() -> Json | None:
        contact = await contact_of(zl, USER)
        return contact if contact["phone"] else None

    contact = await eventually(phoned)
    assert contact["phone"] == "+84912345678"
    found = await get_json(zl.client, "/v1/contacts?phone=0912345678")
    assert [c["id"] for c in found["items"]] == [contact["id"]]
    # verified: another account sharing the phone joins this contact
    shared = load("user_submit_info")
    shared["sender"]["id"] = "7000000000000000001"
    await zl.deliver(shared)
    assert (await contact_of(zl, "7000000000000000001"))["id"] == contact["id"]
