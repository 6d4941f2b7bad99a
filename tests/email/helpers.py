"""Shared pieces of the e-mail parsing tests: the fixture corpus (tests/email/fixtures)."""

from __future__ import annotations

from pathlib import Path

from connectors.email.parse import ParsedMail, parse_message

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str, max_attachment_bytes: int = 10_000_000) -> ParsedMail:
    raw = (FIXTURES / name).read_bytes()
    return parse_message(raw, max_attachment_bytes=max_attachment_bytes)


def crafted(parts: int) -> bytes:
    """The shape of the reported attack: one multipart of tens of thousands of tiny parts."""
    head = (
        b"From: An <an@example.org>\r\nTo: support@shop.example\r\nSubject: many\r\n"
        b"Message-ID: <many@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    one = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return head + one * parts + b"--b--\r\n"
