"""The pure parser: the signature formula, each event kind, and fuzzing (arbitrary JSON
never raises anything but PayloadError)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.zalo.parse import (
    Delivery,
    Invalid,
    OaMessage,
    PayloadError,
    SubmittedInfo,
    Unhandled,
    UserMessage,
    parse_event,
    sign,
    signature_ok,
)
from tests.zalo.helpers import APP_ID, OA_ID, OA_SECRET, USER, dump, fixture_names, recorded


def test_the_signature_is_plain_sha256_of_app_id_body_timestamp_secret() -> None:
    body = dump(recorded("user_send_text"))
    expected = hashlib.sha256(
        APP_ID.encode() + body + b"1767225600000" + OA_SECRET.encode()
    ).hexdigest()
    assert sign(APP_ID, body, "1767225600000", OA_SECRET) == f"mac={expected}"
    ok = {"first": APP_ID, "timestamp": "1767225600000", "secret": OA_SECRET}
    assert signature_ok(body, f"mac={expected}", **ok)
    assert signature_ok(body, f"mac={expected.upper()}", **ok)
    assert not signature_ok(body, expected, **ok)
    assert not signature_ok(body + b" ", f"mac={expected}", **ok)
    assert not signature_ok(body, f"mac={expected}", **{**ok, "secret": "other"})
    assert not signature_ok(body, None, **ok)


KINDS = {
    "user_send_text": UserMessage,
    "user_send_image": UserMessage,
    "user_send_gif": UserMessage,
    "user_send_sticker": UserMessage,
    "user_send_file": UserMessage,
    "user_send_audio": UserMessage,
    "user_send_video": UserMessage,
    "user_send_location": UserMessage,
    "user_send_link": UserMessage,
    "oa_send_text": OaMessage,
    "oa_send_image": OaMessage,
    "user_seen_message": Delivery,
    "user_received_message": Delivery,
    "zns_user_received_message": Delivery,  # ZNS: one msg_id, with tracking_id
    "follow": Unhandled,
    "user_submit_info": SubmittedInfo,
    "unknown_react_message": Unhandled,
}


def test_every_fixture_has_an_expected_kind() -> None:
    assert sorted(KINDS) == fixture_names()


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_fixture_parses_to_its_kind(name: str) -> None:
    event = parse_event(dump(recorded(name)))
    assert type(event) is KINDS[name]
    if isinstance(event, UserMessage | OaMessage):
        assert (event.oa_id, event.user_id) == (OA_ID, USER)  # sides swap for oa_send_*
        assert event.sent_at is not None and event.sent_at.year == 2026


def test_submitted_info_names_the_user_and_what_was_shared() -> None:
    event = parse_event(dump(recorded("user_submit_info")))
    assert isinstance(event, SubmittedInfo)
    assert (event.oa_id, event.user_id) == (OA_ID, USER)
    assert (event.name, event.phone) == ("Nguyễn Thị Thu", "84912345678")
    # a management event naming the OA and the user by their own keys
    data = recorded("user_submit_info")
    del data["sender"], data["recipient"]
    data["user_id"] = USER
    event = parse_event(dump(data))
    assert isinstance(event, SubmittedInfo)
    assert (event.oa_id, event.user_id) == (OA_ID, USER)


def test_ids_stay_text_even_beyond_2_to_the_53() -> None:
    data = recorded("user_send_text")
    data["sender"]["id"] = 18446744073709551615  # a number on the wire, by mistake
    event = parse_event(dump(data))
    assert isinstance(event, UserMessage) and event.user_id == "18446744073709551615"


def test_delivery_lists_its_messages() -> None:
    data = recorded("user_seen_message")
    data["message"] = {"msg_ids": ["m1", "m2", "m1"]}
    event = parse_event(dump(data))
    assert isinstance(event, Delivery)
    assert (event.status, event.msg_ids) == ("read", ("m1", "m2"))


def test_empty_or_broken_messages() -> None:
    data = recorded("user_send_text")
    data["message"] = "hello"
    assert isinstance(parse_event(dump(data)), Invalid)
    data["message"] = {"msg_id": "x", "text": "   "}
    assert isinstance(parse_event(dump(data)), Unhandled)
    data["message"] = {"msg_id": "x", "attachments": [{"type": "location", "payload": {}}]}
    assert isinstance(parse_event(dump(data)), Unhandled)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "bad_json"),
        (b"nope", "bad_json"),
        (b"NaN", "bad_json"),
        (b"\xc3", "not_utf8"),
        (b"[]", "bad_payload"),
        (b"{}", "missing_field"),
        (b'{"event_name": 5}', "bad_payload"),
        (b"[" * 100_000, "bad_json"),
    ],
)
def test_bad_envelopes_raise_payload_error(body: bytes, code: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_event(body)
    assert info.value.code == code


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
maybe = st.none() | st.integers() | st.text(max_size=8) | json_values
ids = st.one_of(st.text(max_size=20), st.integers(min_value=-5, max_value=2**70), maybe)
event_names = st.sampled_from([*KINDS, "anonymous_send_text", "user_send_group_text", ""])
attachments = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["image", "gif", "video", "audio", "file", "sticker", "location", "link", "other"]
        )
        | maybe,
        "payload": st.fixed_dictionaries(
            {},
            optional={
                "url": st.sampled_from(["https://x.vn/a.jpg", "ftp://x", ""]) | maybe,
                "name": maybe,
                "size": maybe,
                "id": ids,
                "coordinates": st.fixed_dictionaries(
                    {"latitude": maybe | st.floats(), "longitude": maybe | st.floats()}
                )
                | maybe,
                "description": maybe,
            },
        )
        | maybe,
    }
)
envelopes = st.fixed_dictionaries(
    {"event_name": event_names | maybe},
    optional={
        "app_id": ids,
        "timestamp": ids,
        "sender": st.fixed_dictionaries({"id": ids}) | maybe,
        "recipient": st.fixed_dictionaries({"id": ids}) | maybe,
        "oa_id": ids,
        "user_id": ids,
        "info": st.fixed_dictionaries(
            {}, optional={"name": maybe, "phone": maybe | st.text(max_size=20), "city": maybe}
        )
        | maybe,
        "message": st.fixed_dictionaries(
            {},
            optional={
                "msg_id": ids,
                "msg_ids": st.lists(ids, max_size=3) | maybe,
                "text": st.text() | maybe,
                "quote_msg_id": ids,
                "attachments": st.lists(attachments | maybe, max_size=3) | maybe,
            },
        )
        | maybe,
    },
)


def _check(body: bytes) -> None:
    try:
        event = parse_event(body)
    except PayloadError as exc:  # the only error allowed out, with an API code
        assert exc.code in {"bad_json", "not_utf8", "bad_payload", "missing_field"}  # noqa: PT017
        return
    assert isinstance(
        event, UserMessage | OaMessage | Delivery | SubmittedInfo | Unhandled | Invalid
    )
    if isinstance(event, SubmittedInfo):
        assert event.user_id and event.oa_id and (event.name or event.phone)
    json.loads(event.raw)  # always storable as it came


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_gives_an_event_or_a_payload_error(value: Any) -> None:
    _check(json.dumps(value).encode())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes)
def test_envelope_shaped_json_gives_an_event_or_a_payload_error(value: dict[str, Any]) -> None:
    _check(json.dumps(value).encode())


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_any_bytes_give_an_event_or_a_payload_error(value: bytes) -> None:
    _check(value)
