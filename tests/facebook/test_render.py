"""The pure outbound half: text splitting, the messaging window, Send API bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import WindowClosed
from connectors.facebook.parse import read_marker
from connectors.facebook.render import (
    TEXT_LIMIT,
    QuickReply,
    marker,
    messaging_type,
    requests_for,
    sender_action,
)
from connectors.textsplit import split_text, utf16_len
from kernel.models import LinkPart, LocationPart, MediaPart, TextPart

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RESPONSE = {"messaging_type": "RESPONSE"}
TAGGED = {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}


# --- window ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "tag", "expected"),
    [
        (timedelta(0), False, RESPONSE),
        (timedelta(minutes=5), True, RESPONSE),
        (timedelta(hours=23, minutes=59, seconds=59), False, RESPONSE),
        (timedelta(hours=23, minutes=59, seconds=59), True, RESPONSE),
        (timedelta(hours=24), True, TAGGED),
        (timedelta(days=3), True, TAGGED),
        (timedelta(days=6, hours=23, minutes=59), True, TAGGED),
        (-timedelta(minutes=3), False, RESPONSE),  # a clock a little ahead of ours
    ],
)
def test_window_open(age: timedelta, tag: bool, expected: dict[str, str]) -> None:
    assert messaging_type(NOW - age, NOW, human_agent_tag=tag) == expected


@pytest.mark.parametrize(
    ("age", "tag", "fragment"),
    [
        (timedelta(hours=24), False, "human_agent_tag is off"),
        (timedelta(days=3), False, "human_agent_tag is off"),
        (timedelta(days=7), True, "7-day human agent window"),
        (timedelta(days=30), True, "7-day human agent window"),
        (timedelta(days=30), False, "24-hour window"),
    ],
)
def test_window_closed(age: timedelta, tag: bool, fragment: str) -> None:
    with pytest.raises(WindowClosed) as exc:
        messaging_type(NOW - age, NOW, human_agent_tag=tag)
    assert exc.value.code == "window_closed"
    assert not exc.value.retryable
    assert exc.value.reason.startswith("window_closed: ")
    assert fragment in exc.value.reason


def test_window_unknown_lets_meta_decide() -> None:
    assert messaging_type(None, NOW, human_agent_tag=False) == RESPONSE


# --- splitting ------------------------------------------------------------------------------


def test_short_text_is_one_chunk() -> None:
    assert split_text("  xin chào  ", TEXT_LIMIT) == ["xin chào"]
    assert split_text("a" * TEXT_LIMIT, TEXT_LIMIT) == ["a" * TEXT_LIMIT]
    assert split_text("   ", TEXT_LIMIT) == []


def test_split_on_word_boundaries_in_order() -> None:
    words = [f"từ{i}" for i in range(1000)]
    text = " ".join(words)
    chunks = split_text(text, TEXT_LIMIT)
    assert len(chunks) > 1
    assert all(utf16_len(c) <= TEXT_LIMIT for c in chunks)
    assert " ".join(chunks).split() == words


def test_split_prefers_paragraphs() -> None:
    first = "Đoạn một. " * 150  # 1,500 characters
    second = "Đoạn hai. " * 100
    chunks = split_text(first.strip() + "\n\n" + second.strip(), TEXT_LIMIT)
    assert chunks == [first.strip(), second.strip()]


def test_emoji_count_twice() -> None:
    text = "😀" * 1500  # 1,500 characters, 3,000 UTF-16 units
    chunks = split_text(text, TEXT_LIMIT)
    assert [len(c) for c in chunks] == [1000, 500]
    assert "".join(chunks) == text


def test_long_word_is_cut_without_splitting_a_character() -> None:
    url = "https://shop.example/" + "x" * 4500
    chunks = split_text(f"Link: {url} nhé", TEXT_LIMIT)
    assert all(utf16_len(c) <= TEXT_LIMIT for c in chunks)
    assert "".join(chunks).replace(" ", "") == f"Link:{url}nhé"
    # combining marks stay with their letter at a hard cut
    decomposed = "e\u0301" * 1500
    parts = split_text(decomposed, TEXT_LIMIT)
    assert all(p[0] != "\u0301" for p in parts)
    assert "".join(parts) == decomposed


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from(["a", "ư", "ế", " ", "\n", "😀", "\u0301", "\u200d", "\t", "x"]),
        max_size=900,
    ),
    st.integers(min_value=2, max_value=60),
)
def test_split_properties(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(c and utf16_len(c) <= limit for c in chunks)
    assert all(c == c.strip() for c in chunks)
    # nothing lost, nothing reordered (whitespace at the cuts aside)
    squeeze = re.compile(r"\s+")
    assert squeeze.sub("", "".join(chunks)) == squeeze.sub("", text)
    # words that fit are never cut
    if all(utf16_len(w) <= limit for w in text.split()):
        assert [w for c in chunks for w in c.split()] == text.split()


def test_split_refuses_a_limit_too_small_for_a_character() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_text("abc", 1)


# --- Send API bodies ------------------------------------------------------------------------


def test_text_message_body() -> None:
    bodies = requests_for("7012", [TextPart(text="Dạ còn ạ")], message_id="msg_1", window=RESPONSE)
    assert bodies == [
        {
            "recipient": {"id": "7012"},
            "messaging_type": "RESPONSE",
            "message": {"text": "Dạ còn ạ", "metadata": "omnigw:msg_1:1/1"},
        }
    ]


def test_tagged_bodies_carry_the_tag() -> None:
    (body,) = requests_for("7012", [TextPart(text="x")], message_id="m", window=TAGGED)
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_parts_in_order_with_markers() -> None:
    parts = [
        TextPart(text="Ảnh đây"),
        MediaPart(type="image", url="https://cdn.example/a.png"),
        MediaPart(type="file", url="https://cdn.example/bang-gia.pdf", name="bang-gia.pdf"),
        TextPart(text="x " * 1500),
    ]
    bodies = requests_for("7012", parts, message_id="msg_9", window=RESPONSE)
    messages = [b["message"] for b in bodies]
    assert messages[0] == {"text": "Ảnh đây", "metadata": "omnigw:msg_9:1/5"}
    assert messages[1] == {
        "attachment": {"type": "image", "payload": {"url": "https://cdn.example/a.png"}},
        "metadata": "omnigw:msg_9:2/5",
    }
    assert messages[2]["attachment"]["type"] == "file"
    assert [m.get("text", "")[:3] for m in messages[3:]] == ["x x", "x x"]
    assert [read_marker(m["metadata"]) for m in messages] == [
        read_marker(marker("msg_9", i, 5)) for i in range(1, 6)
    ]


@pytest.mark.parametrize(
    "part",
    [
        MediaPart(type="image", url="/v1/attachments/att_1"),  # not reachable by Meta
        MediaPart(type="sticker", url="https://cdn.example/s.png"),
        LinkPart(url="https://shop.example/p/1", title="Áo"),
        LocationPart(latitude=10.77, longitude=106.7),
    ],
)
def test_parts_meta_cannot_take_go_as_text(part: MediaPart | LinkPart | LocationPart) -> None:
    (body,) = requests_for("7012", [TextPart(text="Xem:"), part], message_id="m", window=RESPONSE)
    assert body["message"]["text"].startswith("Xem:\n")


def test_quick_replies_ride_on_the_last_request() -> None:
    bodies = requests_for(
        "7012",
        [TextPart(text="Chọn màu"), MediaPart(type="image", url="https://cdn.example/a.png")],
        message_id="m",
        window=RESPONSE,
        options=[
            QuickReply("Đỏ", "RED"),
            QuickReply("Một tiêu đề rất rất dài quá", ""),
            QuickReply("", "X"),
        ],
    )
    assert "quick_replies" not in bodies[0]["message"]
    assert bodies[1]["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Đỏ", "payload": "RED"},
        {
            "content_type": "text",
            "title": "Một tiêu đề rất rất ",
            "payload": "Một tiêu đề rất rất ",
        },
    ]


def test_sender_action_body() -> None:
    assert sender_action("7012", "typing_on") == {
        "recipient": {"id": "7012"},
        "sender_action": "typing_on",
    }
