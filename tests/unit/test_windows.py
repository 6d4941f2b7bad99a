"""Reply windows at their edges (channels.md 1.7 and 2.7), on a controlled clock: the pure
rules of Messenger and Zalo, and which parts each window lets out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.facebook import render as fb
from connectors.windows import refusal
from connectors.zalo import render as zl
from kernel.models import MediaPart, TemplatePart, TextPart, WindowState

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
D = timedelta(days=1)


@pytest.mark.parametrize(
    ("ago", "tag", "state", "closes_after"),
    [
        (23 * H + 59 * MIN, False, WindowState.OPEN, 24 * H),
        (23 * H + 59 * MIN, True, WindowState.OPEN, 24 * H),
        (24 * H + MIN, False, WindowState.CLOSED, None),
        (24 * H + MIN, True, WindowState.TAG_ONLY, 7 * D),
        (6 * D + 23 * H, True, WindowState.TAG_ONLY, 7 * D),
        (6 * D + 23 * H, False, WindowState.CLOSED, None),
        (7 * D + H, True, WindowState.CLOSED, None),
        (7 * D + H, False, WindowState.CLOSED, None),
    ],
)
def test_messenger_edges(
    ago: timedelta, tag: bool, state: WindowState, closes_after: timedelta | None
) -> None:
    last = NOW - ago
    window = fb.reply_window(last, NOW, human_agent_tag=tag)
    assert window.state == state
    assert window.closes_at == (last + closes_after if closes_after is not None else None)
    assert window.free_until is None
    assert window.reason


def test_messenger_names_the_tag_that_would_allow_it() -> None:
    window = fb.reply_window(NOW - 3 * D, NOW, human_agent_tag=False)
    assert window.state == WindowState.CLOSED
    assert "human_agent_tag" in window.reason
    beyond = fb.reply_window(NOW - 8 * D, NOW, human_agent_tag=False)
    assert "human_agent_tag" not in beyond.reason  # nothing would allow it


def test_messenger_customer_never_seen_is_closed() -> None:
    assert fb.reply_window(None, NOW, human_agent_tag=True).state == WindowState.CLOSED


def test_messenger_send_fields_follow_the_window() -> None:
    assert fb.messaging_type(NOW - 23 * H, NOW, human_agent_tag=True) == {
        "messaging_type": "RESPONSE"
    }
    assert fb.messaging_type(NOW - 25 * H, NOW, human_agent_tag=True) == {
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
    }


@pytest.mark.parametrize(
    ("ago", "zns", "state", "free"),
    [
        (47 * H, False, WindowState.OPEN, True),
        (47 * H, True, WindowState.OPEN, True),
        (49 * H, False, WindowState.OPEN, False),
        (6 * D + 23 * H, True, WindowState.OPEN, False),
        (7 * D, True, WindowState.TEMPLATE_ONLY, None),
        (7 * D, False, WindowState.CLOSED, None),
        (7 * D + H, True, WindowState.TEMPLATE_ONLY, None),
    ],
)
def test_zalo_edges(ago: timedelta, zns: bool, state: WindowState, free: bool | None) -> None:
    last = NOW - ago
    window = zl.reply_window(last, NOW, zns=zns)
    assert window.state == state
    if state == WindowState.OPEN:
        assert window.closes_at == last + 7 * D
        assert window.free_until == last + 48 * H
        assert (window.free_until > NOW) is free
        assert ("free" in window.reason) is free
        assert ("billable" in window.reason) is not free
    else:
        assert window.closes_at is None and window.free_until is None


def test_zalo_never_seen() -> None:
    assert zl.reply_window(None, NOW, zns=True).state == WindowState.TEMPLATE_ONLY
    closed = zl.reply_window(None, NOW, zns=False)
    assert closed.state == WindowState.CLOSED
    assert "zns_templates" in closed.reason


TEXT = TextPart(text="Đơn hàng của bạn đã được xác nhận")
TEMPLATE = TemplatePart(name="order_confirmed", data={"order_code": "DH-1042"})
IMAGE = MediaPart(type="image", url="https://shop.example/a.png")


def test_what_each_window_lets_out() -> None:
    open_ = zl.reply_window(NOW - H, NOW, zns=True)
    template_only = zl.reply_window(NOW - 8 * D, NOW, zns=True)
    closed = zl.reply_window(NOW - 8 * D, NOW, zns=False)
    tag_only = fb.reply_window(NOW - 2 * D, NOW, human_agent_tag=True)
    assert refusal(open_, [TEXT, IMAGE, TEMPLATE]) is None
    assert refusal(tag_only, [TEXT]) is None
    assert refusal(template_only, [TEMPLATE]) is None
    assert refusal(template_only, [TEXT]) == ["template"]
    assert refusal(template_only, [TEMPLATE, TEXT]) == ["template"]
    assert refusal(closed, [TEMPLATE]) == []
    assert refusal(closed, [TEXT]) == []


def test_zns_body_is_zalos_wire_format() -> None:
    body = zl.zns_body(TEMPLATE, "+84912345678", {"order_confirmed": "123456"}, "ms_01")
    assert body == {
        "phone": "84912345678",
        "template_id": "123456",
        "template_data": {"order_code": "DH-1042"},
        "tracking_id": "ms_01",
    }
    steps = zl.plan([TEXT, TEMPLATE])
    assert [type(s).__name__ for s in steps] == ["TextStep", "TemplateStep"]
