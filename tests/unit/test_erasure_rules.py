"""What erasure leaves of an event's data, and the live ring after an erasure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.erasure import needles, redact
from gateway.events import EventBus
from gateway.store.records import ContactRecord
from kernel.events import Event
from kernel.models import ChannelType, Identity

PERSONAL = ("display_name", "phone", "email", "avatar_url", "external_id", "subject", "text")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from([*PERSONAL, "parts", "identities", "id", "type", "error", "reason"])
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


def personal_strings(value: Any, under_personal: bool = False) -> list[str]:
    """Strings found under a key that holds a person's values."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            personal = under_personal or key in (*PERSONAL, "parts", "identities", "attributes")
            found += personal_strings(item, personal)
        return found
    if isinstance(value, list):
        return [s for item in value for s in personal_strings(item, under_personal)]
    return [value] if under_personal and isinstance(value, str) else []


@given(json_values)
def test_redacted_data_holds_nothing_under_a_personal_key(value: Any) -> None:
    once = redact(value)
    assert personal_strings(once) == []
    assert redact(once) == once  # rewriting again changes nothing
    json.dumps(once)  # still JSON


def test_a_failure_keeps_its_code_only() -> None:
    data = {"error": {"code": "x", "reason": "550 an@x.example", "text": "an@x.example"}}
    assert redact(data) == {"error": {"code": "x", "reason": "erased", "text": None}}


def test_a_message_event_keeps_its_shape() -> None:
    data = {
        "message": {
            "id": "msg_1",
            "direction": "outbound",
            "parts": [{"type": "text", "text": "Gửi chị Hồng"}],
            "external_id": "v1:c1",
            "status": "failed",
            "error": {"code": "smtp_550", "reason": "550 hong@khach.example unknown"},
        },
        "conversation": {"id": "cv_1", "subject": "Đơn hàng của Hồng", "status": "resolved"},
    }
    assert redact(data) == {
        "message": {
            "id": "msg_1",
            "direction": "outbound",
            "parts": [],
            "external_id": None,
            "status": "failed",
            "error": {"code": "smtp_550", "reason": "erased"},
        },
        "conversation": {"id": "cv_1", "subject": None, "status": "resolved"},
    }


def test_needles_name_every_form_of_the_phone_and_skip_short_values() -> None:
    record = ContactRecord(
        id="ct_1", display_name="An", phone="+84912345678", email="an@x.example", created_at=0
    )
    identity = Identity(
        channel_id="zalo",
        channel_type=ChannelType.ZALO,
        external_id="8840211",
        display_name="Bé An",
    )
    assert needles([record], [identity]) == sorted(
        ["+84912345678", "84912345678", "0912345678", "an@x.example", "8840211", "Bé An"]
    )


def event(seq: int, type_: str = "message.received") -> Event:
    return Event(seq, type_, datetime.now(UTC), '{"message": {"parts": []}}')


def test_the_ring_is_read_from_the_store_after_an_erasure() -> None:
    bus = EventBus(ring_size=100)
    bus.publish([event(1), event(2)])
    assert [e.seq for e in bus.from_ring(0, 10) or []] == [1, 2]
    bus.publish([event(3, "contact.erased")])  # from this process or another
    assert bus.from_ring(0, 10) is None  # the store has the rewritten data
    assert [e.seq for e in bus.from_ring(2, 10) or []] == [3]
    bus.publish([event(4)])
    bus.forget([4])  # a sweep rewrote it here
    assert bus.from_ring(3, 10) is None
    bus.forget([1])  # not in the ring: it stays
    bus.publish([event(5)])
    assert [e.seq for e in bus.from_ring(4, 10) or []] == [5]
