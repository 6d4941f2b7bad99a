"""Reply windows: whether the business may write to a customer now, and what it may send.

The rules of each channel are pure functions in the channel's ``render.py``
(``reply_window``); here is what they share: the window of channels without one, and which
parts a window lets through (:func:`refusal`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from kernel.models import Part, ReplyWindow, TemplatePart, WindowState

UNLIMITED = ReplyWindow(state=WindowState.UNLIMITED, reason="the channel has no reply window")


def hours_ago(last: datetime, now: datetime) -> int:
    return int((now - last).total_seconds() // 3600)


def refusal(window: ReplyWindow, parts: Iterable[Part]) -> list[str] | None:
    """None when the window lets these parts go out; otherwise what it would let out
    (``["template"]``, or nothing at all)."""
    parts = list(parts)
    if window.state == WindowState.CLOSED:
        return []
    if window.state == WindowState.TEMPLATE_ONLY and not all(
        isinstance(p, TemplatePart) for p in parts
    ):
        return ["template"]
    return None
