"""The pure half of webchat: frame parsing (fuzzed) and visitor tokens."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.webchat.parse import (
    FrameError,
    HistoryFrame,
    MessageFrame,
    identity_hmac_ok,
    parse_frame,
    sign_token,
    verify_token,
)

KEY = b"k" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(st.text(max_size=300))
def test_any_text_gives_a_frame_or_a_frame_error(data: str) -> None:
    try:
        parse_frame(data, max_text=100)
    except FrameError as exc:  # the only error allowed out
        assert exc.code in {  # noqa: PT017
            "bad_json",
            "bad_frame",
            "unknown_type",
            "too_large",
            "empty_text",
            "text_too_long",
        }


@settings(max_examples=400)
@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "history", "typing", "identify", "x"])},
        optional={
            "client_id": json_values,
            "text": json_values,
            "before": json_values,
            "after": json_values,
            "limit": json_values,
            "state": json_values,
            "email": json_values,
            "hmac": json_values,
        },
    )
)
def test_structured_garbage_never_escapes_as_another_error(frame: dict[str, object]) -> None:
    try:
        parsed = parse_frame(json.dumps(frame), max_text=50)
    except FrameError:
        return
    if isinstance(parsed, MessageFrame):
        assert parsed.text.strip()
        assert len(parsed.text) <= 50


def test_message_text_is_cleaned() -> None:
    frame = parse_frame(
        '{"type": "message", "client_id": "c", "text": "  Xin cha\\u0300o\\u0000 "}', max_text=100
    )
    assert isinstance(frame, MessageFrame)
    assert frame.text == "Xin chào"


def test_history_limits() -> None:
    frame = parse_frame('{"type": "history", "after": "msg_1", "limit": 10}', max_text=10)
    assert isinstance(frame, HistoryFrame)
    assert frame.after == "msg_1"


def test_errors_carry_the_client_id() -> None:
    with pytest.raises(FrameError) as exc:
        parse_frame('{"type": "message", "client_id": "abc", "text": ""}', max_text=10)
    assert exc.value.client_id == "abc"


def test_tokens_round_trip_and_resist_tampering() -> None:
    token = sign_token(KEY, "v_1", "webchat", now=1000)
    ok = verify_token(KEY, token, "webchat", ttl_seconds=60, now=1030)
    assert ok is not None
    assert ok.visitor_id == "v_1"
    assert verify_token(KEY, token, "other-channel", 60, now=1030) is None
    assert verify_token(b"x" * 32, token, "webchat", 60, now=1030) is None
    assert verify_token(KEY, token, "webchat", 60, now=1061) is None  # expired
    assert verify_token(KEY, token, "webchat", 60, now=100) is None  # from the future
    head, payload, sig = token.split(".")
    assert verify_token(KEY, f"{head}.{payload}.{sig[:-2]}xx", "webchat", 60, now=1030) is None
    assert verify_token(KEY, f"v2.{payload}.{sig}", "webchat", 60, now=1030) is None


@given(st.text(max_size=200))
def test_verify_never_raises(token: str) -> None:
    assert verify_token(KEY, token, "webchat", 3600) is None


def test_identity_hmac() -> None:
    import hashlib
    import hmac

    good = hmac.new(b"secret", b"user-1", hashlib.sha256).hexdigest()
    assert identity_hmac_ok(b"secret", "user-1", good)
    assert identity_hmac_ok(b"secret", "user-1", good.upper())
    assert not identity_hmac_ok(b"secret", "user-2", good)
    assert not identity_hmac_ok(b"secret", "user-1", None)
    assert not identity_hmac_ok(b"secret", "user-1", "zz")
