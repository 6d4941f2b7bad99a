"""Classification: auto-replies, bulk mail and bounces, and which of our messages a bounce names."""

from __future__ import annotations

import pytest

from connectors.email.parse import parse_message
from tests.email.helpers import load


@pytest.mark.parametrize(
    ("name", "kind", "why"),
    [
        ("auto_reply.eml", "auto_reply", "Auto-Submitted"),
        ("outlook_oof.eml", "auto_reply", "X-Auto-Response-Suppress"),
        ("bulk_list.eml", "bulk", "Precedence"),
        ("bounce_dsn.eml", "bounce", "multipart/report"),
        ("bounce_delayed.eml", "bounce", "multipart/report"),
        ("bounce_plain_daemon.eml", "bounce", "postmaster"),
        ("gmail_reply.eml", "message", None),
    ],
)
def test_classification(name: str, kind: str, why: str | None) -> None:
    mail = load(name)
    assert mail.kind == kind
    if why is None:
        assert mail.kind_reason is None
    else:
        assert mail.kind_reason is not None and why in mail.kind_reason


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("Auto-Submitted: auto-generated", "auto_reply"),
        ("Auto-Submitted: no", "message"),
        ("X-Autoreply: yes", "auto_reply"),
        ("Precedence: junk", "bulk"),
        ("Precedence: list", "bulk"),
        ("List-Id: <x.example>", "bulk"),
        ("Subject: Out of Office: back Monday", "auto_reply"),
        ("Subject: Trả lời tự động: đang nghỉ", "auto_reply"),
        ("Subject: Out of stock?", "message"),
    ],
)
def test_auto_reply_and_bulk_headers(headers: str, kind: str) -> None:
    subject = "" if headers.startswith("Subject:") else "Subject: hello\r\n"
    raw = (
        f"From: a@example.org\r\nTo: s@shop.example\r\n{subject}{headers}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
    ).encode()
    assert parse_message(raw, max_attachment_bytes=1000).kind == kind


def test_bounces_name_the_original_message() -> None:
    failed = load("bounce_dsn.eml").bounce
    assert failed is not None and failed.failed
    assert failed.original_ids == ("original-outbound-1@shop.example",)
    assert "5.1.1" in failed.reason and "nobody@example.org" in failed.reason
    delayed = load("bounce_delayed.eml").bounce
    assert delayed is not None and not delayed.failed  # Action: delayed is no failure
    assert delayed.original_ids == ("original-outbound-2@shop.example",)
    plain = load("bounce_plain_daemon.eml").bounce
    assert plain is not None and plain.failed
    assert plain.original_ids == ("original-outbound-3@shop.example",)
