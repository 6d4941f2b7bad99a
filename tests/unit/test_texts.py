"""The words the gateway writes to customers, by the conversation's language."""

from __future__ import annotations

import pytest

from connectors.base import Capability
from connectors.degrade import degrade
from connectors.email.render import reply_subject
from kernel.models import MediaPart, TextPart
from kernel.texts import SYSTEM_TEXTS, system_text


def test_every_language_has_every_text() -> None:
    keys = {frozenset(texts) for texts in SYSTEM_TEXTS.values()}
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("vi", "[Hình ảnh] a.png"),
        ("vi-VN", "[Hình ảnh] a.png"),
        ("en", "[Image] a.png"),
        (None, "[Image] a.png"),
        ("fr", "[Image] a.png"),
    ],
)
def test_stand_ins_follow_the_language(language: str | None, expected: str) -> None:
    parts = degrade([MediaPart(type="image", name="a.png")], frozenset({Capability.TEXT}), language)
    assert parts == [TextPart(text=expected)]


def test_email_subjects_follow_the_language() -> None:
    vi = system_text("email_subject", "vi")
    assert reply_subject(None, vi, system_text("reply_prefix", "vi")) == "Re: Tin nhắn của bạn"
    assert reply_subject(None, system_text("email_subject", "en")) == "Re: Your message"
    assert reply_subject("Re: Đơn hàng 12", vi) == "Re: Đơn hàng 12"
