from __future__ import annotations

import pytest

from connectors.base import Capability
from connectors.degrade import as_text, degrade
from kernel.models import LinkPart, LocationPart, MediaPart, Part, TextPart

TEXT_ONLY = frozenset({Capability.TEXT})
RICH = frozenset({Capability.TEXT, Capability.IMAGE, Capability.LINK})


def test_kept_when_capable_and_text_when_not() -> None:
    image = MediaPart(type="image", url="https://x/a.png", name="a.png")
    assert degrade([image], RICH) == [image]
    assert degrade([image], TEXT_ONLY) == [TextPart(text="[Image] a.png https://x/a.png")]


def test_adjacent_text_is_merged_and_order_kept() -> None:
    parts: list[Part] = [
        TextPart(text="Đơn hàng của bạn:"),
        LinkPart(url="https://shop.example/o/1", title="Đơn #1"),
        MediaPart(type="image", url="https://x/a.png"),
        LocationPart(latitude=10.5, longitude=106.25),
    ]
    out = degrade(parts, frozenset({Capability.TEXT, Capability.IMAGE}))
    assert out == [
        TextPart(text="Đơn hàng của bạn:\nĐơn #1: https://shop.example/o/1"),
        MediaPart(type="image", url="https://x/a.png"),
        TextPart(text=as_text(parts[3])),
    ]
    assert "10.5, 106.25" in as_text(parts[3])


def test_media_with_nothing_to_show_is_dropped() -> None:
    assert degrade([MediaPart(type="sticker")], TEXT_ONLY) == []


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file", "sticker"])
def test_every_media_kind_has_a_text_form(kind: str) -> None:
    text = as_text(MediaPart(type=kind, url="https://x/f"))  # type: ignore[arg-type]
    assert text.startswith("[")
    assert "https://x/f" in text
