"""The pure half of the Messenger connector: signatures, the batch envelope, every event
kind (from the fixtures, in Meta's format), and fuzzing with any bytes or JSON shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.facebook.parse import (
    CustomerMessage,
    Delivery,
    Echo,
    Invalid,
    OurMarker,
    PayloadError,
    ReactionEvent,
    Read,
    ThreadControl,
    Unhandled,
    parse_batch,
    parse_item,
    read_marker,
    sign,
    signature_ok,
)
from kernel.models import LinkPart, LocationPart, MediaPart, TextPart
from tests.facebook.helpers import (
    APP_ID,
    PAGE,
    PAGE2,
    PSID,
    PSID2,
    T,
    dump,
    fixture_names,
    item,
    load,
    raw,
)

SECRET = b"app-secret"
ATTACHMENT_TYPES = {
    "image",
    "audio",
    "video",
    "file",
    "sticker",
    "fallback",
    "reel",
    "ig_reel",
    "post",
    "ig_post",
    "appointment_booking",
    "location",
    "template",
    "unknown_kind",
}


# --- signature ------------------------------------------------------------------------------


def test_signature_over_the_raw_bytes() -> None:
    body = raw("message_text")  # non-ASCII escaped as \u00e0..., the way Meta signs it
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_ok(SECRET, body, header)
    assert signature_ok(SECRET, body, "SHA256=" + header[7:].upper())  # hex case is free
    # The same JSON re-serialised with the characters themselves is other bytes: refused.
    reserialised = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert not signature_ok(SECRET, reserialised, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,  # the legacy header's scheme is not accepted here
        "sha256=" + "zz" * 32,
        "sha256=" + "ab" * 33,
        "sha256=ä" + "0" * 63,  # non-ASCII must not crash compare_digest
        "garbage",
    ],
)
def test_bad_signatures_are_refused(header: str | None) -> None:
    assert not signature_ok(SECRET, b'{"object":"page","entry":[]}', header)


def test_wrong_secret_is_refused() -> None:
    body = raw("message_text")
    assert not signature_ok(SECRET, body, sign(b"other-secret", body))


# --- envelope -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"object": "page", "entry": [', "bad_json"),
        (b"", "bad_json"),
        (b'{"object": "page", "entry": [{"id": NaN}]}', "bad_json"),
        (b"[" * 100_000 + b"]" * 100_000, "bad_json"),
        (b"[]", "bad_payload"),
        (b'"page"', "bad_payload"),
        (b'{"entry": []}', "missing_field"),
        (b'{"object": "instagram", "entry": []}', "wrong_object"),
        (b'{"object": "whatsapp_business_account", "entry": []}', "wrong_object"),
        (b'{"object": 7, "entry": []}', "wrong_object"),
        (b'{"object": "page"}', "missing_field"),
        (b'{"object": "page", "entry": {"id": "1"}}', "bad_payload"),
    ],
)
def test_bad_envelopes_raise_payload_error(body: bytes, code: str) -> None:
    with pytest.raises(PayloadError) as exc:
        parse_batch(body)
    assert exc.value.code == code


def test_an_empty_batch_is_fine() -> None:
    assert parse_batch(b'{"object":"page","entry":[]}') == []


# --- every fixture ----------------------------------------------------------------------------

EXPECTED_KINDS: dict[str, list[type]] = {
    "message_text": [CustomerMessage],
    "message_quick_reply": [CustomerMessage],
    "message_reply_to": [CustomerMessage],
    "message_image": [CustomerMessage],
    "message_audio": [CustomerMessage],
    "message_video": [CustomerMessage],
    "message_file": [CustomerMessage],
    "message_sticker": [CustomerMessage],
    "message_sticker_legacy": [CustomerMessage],
    "message_fallback": [CustomerMessage],
    "message_reel": [CustomerMessage],
    "message_ig_reel": [CustomerMessage],
    "message_post": [CustomerMessage],
    "message_ig_post": [CustomerMessage],
    "message_appointment_booking": [CustomerMessage],
    "message_location": [CustomerMessage],
    "postback": [CustomerMessage],
    "postback_standby": [CustomerMessage],
    "standby_message": [CustomerMessage],
    "delivery": [Delivery],
    "read": [Read],
    "reaction_react": [ReactionEvent],
    "reaction_unreact": [ReactionEvent],
    "echo_own_app": [Echo],
    "echo_page_inbox": [Echo],
    "echo_other_app": [Echo],
    "echo_template": [Echo],
    "referral": [Unhandled],
    "handover_pass_thread_control": [ThreadControl],
    "handover_take_thread_control": [ThreadControl],
    "handover_request_thread_control": [Unhandled],
    "handover_app_roles": [Unhandled],
    "unknown_message_edit": [Unhandled],
    "batch_two_pages": [CustomerMessage] * 3,
    "batch_mixed": [CustomerMessage, CustomerMessage, CustomerMessage, Unhandled, Unhandled, Read],
    "batch_with_broken_items": [
        CustomerMessage,
        Invalid,
        Invalid,
        Invalid,
        Invalid,
        CustomerMessage,
        Invalid,
    ],
}


def test_every_fixture_is_in_the_table() -> None:
    assert sorted(EXPECTED_KINDS) == fixture_names()


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_each_fixture_parses_to_its_kinds(name: str) -> None:
    events = parse_batch(raw(name))
    assert [type(e) for e in events] == EXPECTED_KINDS[name]
    for event in events:
        json.loads(event.raw)  # what is kept raw is JSON text


def one(name: str) -> Any:
    (event,) = parse_batch(raw(name, as_stored=True))  # exact fixture times
    return event


def test_text_message() -> None:
    ev = one("message_text")
    assert isinstance(ev, CustomerMessage)
    assert (ev.page_id, ev.psid, ev.mid) == (PAGE, PSID, "m_text-0001-kT9xQ2bV7nL4sW8cR1yZ")
    assert ev.parts == (TextPart(text="Chào shop, áo này còn size M không?"),)
    assert ev.sent_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert (ev.kind, ev.source, ev.reply_to, ev.sticker_id) == ("message", "messaging", None, None)


def test_quick_reply_payload_is_metadata_not_text() -> None:
    ev = one("message_quick_reply")
    assert isinstance(ev, CustomerMessage)
    assert [p.text for p in ev.parts] == ["Màu đỏ"]
    assert ev.metadata == {"payload": "COLOR_RED", "payload_from": "quick_reply"}


def test_reply_to_names_the_quoted_mid() -> None:
    assert one("message_reply_to").reply_to == "m_text-0001-kT9xQ2bV7nL4sW8cR1yZ"


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file"])
def test_media_attachments_keep_their_url(kind: str) -> None:
    ev = one(f"message_{kind}")
    (part,) = ev.parts
    assert isinstance(part, MediaPart)
    assert part.type == kind
    assert (
        part.url
        == load(f"message_{kind}")["entry"][0]["messaging"][0]["message"]["attachments"][0][
            "payload"
        ]["url"]
    )
    assert part.name == ("bang_gia_2026.pdf" if kind == "file" else None)


def test_sticker_sent_as_sticker_and_image_is_one_sticker() -> None:
    ev = one("message_sticker")
    (part,) = ev.parts
    assert isinstance(part, MediaPart) and part.type == "sticker"
    assert part.url is not None and part.url.startswith("https://scontent")
    assert ev.sticker_id == "369239263222822"


def test_sticker_in_its_old_image_form_is_a_sticker() -> None:
    (part,) = one("message_sticker_legacy").parts
    assert isinstance(part, MediaPart) and part.type == "sticker"


def test_sticker_and_image_in_either_order_give_one_sticker() -> None:
    payload = load("message_sticker")
    attachments = payload["entry"][0]["messaging"][0]["message"]["attachments"]
    attachments.reverse()
    del payload["entry"][0]["messaging"][0]["message"]["sticker_id"]
    for att in attachments:
        att["payload"].pop("sticker_id")
    (ev,) = parse_batch(dump(payload))
    assert [p.type for p in ev.parts] == ["sticker"]


def test_fallback_is_a_link() -> None:
    ev = one("message_fallback")
    assert ev.parts == (
        TextPart(text="https://shop.example/ao-so-mi-trang"),
        LinkPart(url="https://shop.example/ao-so-mi-trang", title="Áo sơ mi trắng - Shop"),
    )


def test_fallback_without_payload() -> None:
    item = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": T,
        "message": {"mid": "m_1", "attachments": [{"type": "fallback", "payload": None}]},
    }
    assert isinstance(parse_item(PAGE, "messaging", item), Unhandled)
    item["message"]["attachments"] = [  # type: ignore[index]
        {"type": "fallback", "title": "Shared", "url": "https://example.com/x", "payload": None}
    ]
    ev = parse_item(PAGE, "messaging", item)
    assert isinstance(ev, CustomerMessage)
    assert ev.parts == (LinkPart(url="https://example.com/x", title="Shared"),)


@pytest.mark.parametrize(
    ("name", "url", "title"),
    [
        ("message_reel", "https://www.facebook.com/reel/1234567890123456", "Phối đồ mùa hè"),
        ("message_ig_reel", "https://www.instagram.com/reel/C1a2B3c4D5e/", "Lookbook"),
        (
            "message_post",
            "https://www.facebook.com/104000000000001/posts/987654321098765",
            "Khuyến mãi tháng 1",
        ),
        ("message_ig_post", "https://www.instagram.com/p/C9z8Y7x6W5v/", "Bộ sưu tập mới"),
    ],
)
def test_shares_are_links(name: str, url: str, title: str) -> None:
    assert one(name).parts == (LinkPart(url=url, title=title),)


def test_other_attachment_types_become_text() -> None:
    (part,) = one("message_appointment_booking").parts
    assert part == TextPart(text="[appointment_booking] Lịch hẹn thử đồ 10:00 15/01")


def test_location_from_older_payloads() -> None:
    assert one("message_location").parts == (LocationPart(latitude=10.7769, longitude=106.7009),)


def test_postback_keeps_title_and_payload() -> None:
    ev = one("postback")
    assert isinstance(ev, CustomerMessage)
    assert ev.kind == "postback"
    assert ev.mid == "m_postback-0017-Vb3nM8cX1zL6kJ0hG5fD"
    assert [p.text for p in ev.parts] == ["Bắt đầu"]
    assert ev.metadata == {
        "payload": "GET_STARTED",
        "payload_from": "postback",
        "referral": {"source": "SHORTLINK", "type": "OPEN_THREAD", "ref": "summer_sale"},
    }


def test_a_message_from_an_ad_keeps_its_referral() -> None:
    payload = load("message_text")
    item(payload)["referral"] = {"ref": "ad_7", "source": "ADS", "type": "OPEN_THREAD"}
    (ev,) = parse_batch(dump(payload))
    assert isinstance(ev, CustomerMessage)
    assert ev.metadata == {"referral": {"ref": "ad_7", "source": "ADS", "type": "OPEN_THREAD"}}
    assert one("message_text").metadata == {}


def test_standby_postback_has_only_its_title() -> None:
    ev = one("postback_standby")
    assert ev.source == "standby"
    assert [p.text for p in ev.parts] == ["Xem sản phẩm"]
    assert ev.metadata == {}


def test_postback_without_mid_gets_a_stable_key() -> None:
    item = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": T,
        "postback": {"title": "Bắt đầu", "payload": "GET_STARTED"},
    }
    first, again = parse_item(PAGE, "messaging", item), parse_item(PAGE, "messaging", item)
    assert isinstance(first, CustomerMessage) and isinstance(again, CustomerMessage)
    assert first.mid == again.mid == f"postback:{PSID}:{T}"


def test_delivery_and_read() -> None:
    delivery = one("delivery")
    assert delivery == Delivery(
        PAGE,
        PSID,
        ("m_outbound-0100-Aa1Bb2Cc3Dd4Ee5Ff6Gg",),
        datetime.fromtimestamp((T + 4000) / 1000, UTC),
        delivery.raw,
    )
    read = one("read")
    assert (read.psid, read.watermark) == (PSID, datetime.fromtimestamp((T + 8000) / 1000, UTC))


def test_delivery_with_only_a_watermark_or_only_mids() -> None:
    base = {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": T}
    only_mark = parse_item(PAGE, "messaging", {**base, "delivery": {"watermark": T}})
    assert isinstance(only_mark, Delivery) and only_mark.mids == ()
    only_mids = parse_item(PAGE, "messaging", {**base, "delivery": {"mids": ["m_1"]}})
    assert isinstance(only_mids, Delivery) and only_mids.watermark is None
    neither = parse_item(PAGE, "messaging", {**base, "delivery": {}})
    assert isinstance(neither, Invalid)


def test_reactions() -> None:
    react, unreact = one("reaction_react"), one("reaction_unreact")
    assert (react.on, react.reaction, react.emoji) == (True, "love", "❤")
    assert (unreact.on, unreact.reaction, unreact.emoji) == (False, "love", None)
    assert react.mid == unreact.mid == "m_outbound-0100-Aa1Bb2Cc3Dd4Ee5Ff6Gg"
    assert react.psid == PSID


def test_echo_of_our_own_app_carries_our_marker() -> None:
    ev = one("echo_own_app")
    assert isinstance(ev, Echo)
    assert (ev.psid, ev.app_id) == (PSID, APP_ID)  # the customer is the echo's recipient
    assert ev.marker == OurMarker("msg_PLACEHOLDER", 1, 1)


def test_echoes_from_the_page_inbox_and_other_apps() -> None:
    inbox, other = one("echo_page_inbox"), one("echo_other_app")
    assert inbox.marker is None and inbox.app_id == "263902037430900"
    assert inbox.parts == (TextPart(text="Chị ơi em kiểm tra rồi, mai giao nhé"),)
    assert other.marker is None  # someone else's metadata is not ours
    assert [p.type for p in other.parts] == ["image"]


def test_template_echo_is_readable_text() -> None:
    (part,) = one("echo_template").parts
    assert isinstance(part, TextPart)
    assert part.text == "[template: generic]\nÁo sơ mi trắng - 350.000đ"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("referral", "referral"),
        ("handover_request_thread_control", "request_thread_control"),
        ("handover_app_roles", "app_roles"),
        ("unknown_message_edit", "message_edit"),
    ],
)
def test_unhandled_kinds_are_named(name: str, kind: str) -> None:
    ev = one(name)
    assert isinstance(ev, Unhandled)
    assert ev.kind == kind
    assert ev.page_id == PAGE
    assert ev.reason


@pytest.mark.parametrize(
    ("name", "kind", "new_owner", "previous_owner", "metadata"),
    [
        (
            "handover_pass_thread_control",
            "pass_thread_control",
            "555000000000001",
            "777000000000009",
            "handover from bot",
        ),
        (
            "handover_take_thread_control",
            "take_thread_control",
            "777000000000009",
            "555000000000001",
            None,
        ),
    ],
)
def test_thread_control_events_name_the_apps(
    name: str, kind: str, new_owner: str, previous_owner: str, metadata: str | None
) -> None:
    ev = one(name)
    assert isinstance(ev, ThreadControl)
    assert (ev.kind, ev.page_id, ev.psid) == (kind, PAGE, PSID)
    assert (ev.new_owner_app_id, ev.previous_owner_app_id) == (new_owner, previous_owner)
    assert ev.metadata == metadata


def test_thread_control_without_its_object_or_sender_is_invalid() -> None:
    broken = parse_item(PAGE, "messaging", {"sender": {"id": PSID}, "pass_thread_control": 3})
    assert isinstance(broken, Invalid) and broken.kind == "pass_thread_control"
    nobody = parse_item(PAGE, "messaging", {"take_thread_control": {"new_owner_app_id": "1"}})
    assert isinstance(nobody, Invalid) and "sender" in nobody.reason


def test_two_pages_in_one_batch() -> None:
    events = parse_batch(raw("batch_two_pages"))
    assert [(e.page_id, e.psid) for e in events] == [(PAGE, PSID), (PAGE, PSID), (PAGE2, PSID2)]


def test_broken_items_do_not_sink_the_batch() -> None:
    events = parse_batch(raw("batch_with_broken_items"))
    good = [e for e in events if isinstance(e, CustomerMessage)]
    assert [e.parts[0].text for e in good] == ["Tin hợp lệ thứ nhất", "Tin hợp lệ thứ hai"]
    reasons = [e.reason for e in events if isinstance(e, Invalid)]
    assert reasons == [
        "the message has no sender id",
        "the message has no mid",
        "'message' is not an object",
        "the item is not a JSON object",
        "the entry has no page id",
    ]


def test_lone_surrogates_become_replacement_characters() -> None:
    body = (
        b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},'
        b'"recipient":{"id":"1"},"timestamp":1,"message":{"mid":"m_\\ud800","text":"a\\udc00b"}}]}]}'
    )
    (ev,) = parse_batch(body)
    assert isinstance(ev, CustomerMessage)
    assert ev.mid == "m_\ufffd" and ev.parts == (TextPart(text="a\ufffdb"),)
    ev.raw.encode("utf-8")  # storable


@pytest.mark.parametrize(
    ("metadata", "marker"),
    [
        ("omnigw:msg_01ABC:1/1", OurMarker("msg_01ABC", 1, 1)),
        ("omnigw:msg_01ABC:2/3", OurMarker("msg_01ABC", 2, 3)),
        ("omnigw:msg:with:colons:1/2", OurMarker("msg:with:colons", 1, 2)),
        ("omnigw:msg_01ABC:4/3", None),
        ("omnigw:msg_01ABC:0/3", None),
        ("omnigw:msg_01ABC", None),
        ("omnigw::1/1", None),
        ("chatbot:flow-42", None),
        ("", None),
    ],
)
def test_markers(metadata: str, marker: OurMarker | None) -> None:
    assert read_marker(metadata) == marker


# --- fuzzing ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["page", "react", "image", "sticker", "https://x.example/a.png", "m_1"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)

maybe = json_values  # any JSON value, where a field's right type is expected


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``good``, one time in five any JSON value instead."""
    return st.integers(0, 4).flatmap(lambda n: maybe if n == 0 else good)


ids = mostly(st.sampled_from(["104000000000001", "7012345678901234"]))
urls = st.sampled_from(["https://x.example/a.png", "http://y.example/f.pdf", "ftp://z"])
attachment = st.fixed_dictionaries(
    {"type": mostly(st.sampled_from(sorted(ATTACHMENT_TYPES)))},
    optional={
        "payload": mostly(
            st.fixed_dictionaries(
                {},
                optional={
                    "url": mostly(urls),
                    "sticker_id": mostly(st.integers(0, 10)),
                    "title": mostly(st.text(max_size=20)),
                    "coordinates": st.fixed_dictionaries({"lat": maybe, "long": maybe}),
                    "template_type": maybe,
                    "elements": st.lists(st.fixed_dictionaries({"title": maybe}), max_size=2),
                },
            )
        ),
        "title": maybe,
        "url": mostly(urls),
    },
)
message = st.fixed_dictionaries(
    {"mid": mostly(st.sampled_from(["m_1", "m_2"]))},
    optional={
        "text": mostly(st.text(max_size=30)),
        "is_echo": mostly(st.booleans()),
        "app_id": ids,
        "metadata": mostly(st.sampled_from(["omnigw:msg_1:1/1", "omnigw:msg_1:2/1"])),
        "attachments": mostly(st.lists(attachment, max_size=3)),
        "quick_reply": mostly(st.fixed_dictionaries({"payload": maybe})),
        "reply_to": mostly(st.fixed_dictionaries({"mid": maybe})),
        "sticker_id": maybe,
        "is_deleted": maybe,
    },
)
events = {
    "message": mostly(message),
    "postback": mostly(
        st.fixed_dictionaries(
            {},
            optional={
                "mid": maybe,
                "title": mostly(st.text(max_size=10)),
                "payload": mostly(st.text(max_size=10)),
            },
        )
    ),
    "delivery": mostly(
        st.fixed_dictionaries(
            {},
            optional={
                "mids": mostly(st.lists(mostly(st.just("m_1")), max_size=3)),
                "watermark": mostly(st.integers()),
            },
        )
    ),
    "read": mostly(st.fixed_dictionaries({"watermark": mostly(st.integers())})),
    "reaction": mostly(
        st.fixed_dictionaries(
            {"mid": mostly(st.just("m_1"))},
            optional={
                "action": mostly(st.sampled_from(["react", "unreact", "x"])),
                "reaction": maybe,
                "emoji": maybe,
            },
        )
    ),
    "referral": maybe,
    "pass_thread_control": maybe,
    "take_thread_control": mostly(
        st.fixed_dictionaries(
            {},
            optional={"new_owner_app_id": maybe, "previous_owner_app_id": maybe, "metadata": maybe},
        )
    ),
    "something_new": maybe,
}
# Messages are what most paths are about: drawn more often than the other kinds.
items = st.sampled_from(["message"] * 5 + ["postback"] * 2 + sorted(events)).flatmap(
    lambda key: st.fixed_dictionaries(
        {
            key: events[key],
            "sender": mostly(st.fixed_dictionaries({"id": ids})),
            "recipient": mostly(st.fixed_dictionaries({"id": ids})),
            "timestamp": mostly(st.integers(min_value=-(10**16), max_value=10**16)),
        }
    )
)
entries = st.fixed_dictionaries(
    {"id": ids, "messaging": mostly(st.lists(mostly(items), max_size=4))},
    optional={"standby": mostly(st.lists(items, max_size=2)), "time": maybe},
)
batches = st.fixed_dictionaries(
    {"object": st.just("page"), "entry": st.lists(mostly(entries), max_size=3)}
)


def _check(body: bytes) -> None:
    try:
        events = parse_batch(body)
    except PayloadError as exc:  # the only error allowed out, with an API code
        assert exc.code in {  # noqa: PT017
            "not_utf8",
            "bad_json",
            "bad_payload",
            "missing_field",
            "wrong_object",
        }
        return
    for event in events:
        event.raw.encode("utf-8")
        if isinstance(event, CustomerMessage | Echo):
            assert event.parts and event.mid and event.psid
            for part in event.parts:
                part.model_dump_json()  # storable as the gateway stores it


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes_give_events_or_a_payload_error(body: bytes) -> None:
    _check(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_gives_events_or_a_payload_error(value: Any) -> None:
    _check(json.dumps(value).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_batch_shaped_json_gives_events_or_a_payload_error(value: dict[str, Any]) -> None:
    _check(json.dumps(value).encode())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXPECTED_KINDS)), st.data())
def test_mutated_fixtures_never_crash(name: str, data: st.DataObject) -> None:
    payload = load(name)
    entry = payload["entry"][0]
    items_ = entry.get("messaging") or entry.get("standby") or []
    if items_ and isinstance(items_[0], dict):
        target = items_[0]
        key = data.draw(st.sampled_from(sorted(target)))
        target[key] = data.draw(st.one_of(maybe, *events.values(), message, attachment))
    _check(dump(payload))
