"""Mail is parsed off the event loop, and a message of too many MIME parts is not parsed:
the loop keeps answering while a crafted mail is read."""

from __future__ import annotations

import asyncio
import email
import time
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.email.offload import parse_off_loop
from connectors.email.parse import TooManyParts, count_parts, parse_message
from tests.email.helpers import FIXTURES, crafted


def test_the_crafted_mail_is_counted_cheaply_and_refused_before_parsing() -> None:
    raw = crafted(60_000)
    assert len(raw) > 2_000_000
    started = time.monotonic()
    with pytest.raises(TooManyParts) as exc:
        parse_message(raw, max_attachment_bytes=1000, max_parts=500)
    # Parsing it takes 10-20 s here; counting is a regular-expression pass.
    assert time.monotonic() - started < 3
    assert exc.value.count == 60_001
    assert "over max_message_parts (500)" in str(exc.value)


def test_real_mail_is_counted_with_its_parts() -> None:
    for path in sorted(FIXTURES.glob("*.eml")):
        raw = path.read_bytes()
        mail = parse_message(raw, max_attachment_bytes=10**7, max_parts=count_parts(raw))
        assert mail.external_id  # at its own count, every fixture still parses


def _tree(depth: int, width: int, n: list[int]) -> EmailMessage:
    msg = EmailMessage()
    if depth == 0 or width == 0:
        n[0] += 1
        msg.set_content(f"phần {n[0]} — tiếng Việt")
        return msg
    msg.make_mixed()
    for _ in range(width):
        msg.attach(_tree(depth - 1, width, n))
    n[0] += 1
    return msg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(0, 3), width=st.integers(0, 4), quoted=st.booleans())
def test_the_count_is_never_below_the_parts_parsed(depth: int, width: int, quoted: bool) -> None:
    raw = bytes(_tree(depth, width, [0]))
    if not quoted:  # boundaries as tokens as well as quoted strings
        raw = raw.replace(b'boundary="', b"boundary=").replace(b'"\n', b"\n")
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert count_parts(raw) >= len(list(parsed.walk()))


async def test_the_loop_keeps_turning_while_a_crafted_mail_is_parsed() -> None:
    raw = crafted(4_000)  # parsed in full here (no part limit): seconds of pure Python
    await parse_off_loop(b"Subject: warm\r\n\r\nup\r\n", max_attachment_bytes=10, max_parts=None)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last - 0.01)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    mail = await parse_off_loop(raw, max_attachment_bytes=1000, max_parts=None)
    took = time.monotonic() - started
    stop.set()
    await ticker
    assert mail.external_id == "many@example.org"
    # On the loop, one tick would have waited the whole parse. Off it, the longest wait is
    # a scheduling hiccup (0.025 s measured; loaded 2-core CI gets ample room).
    assert max(gaps) < min(0.5, took / 3), (max(gaps), took)


async def test_the_part_limit_holds_in_the_worker_too() -> None:
    with pytest.raises(TooManyParts) as exc:
        await parse_off_loop(crafted(30), max_attachment_bytes=1000, max_parts=10)
    assert (exc.value.count, exc.value.limit) == (31, 10)
