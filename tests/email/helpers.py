"""Shared pieces of the e-mail parsing tests: the fixture corpus (tests/email/fixtures)."""

from __future__ import annotations

from pathlib import Path

from connectors.email.parse import ParsedMail, parse_message

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str, max_attachment_bytes: int = 10_000_000) -> ParsedMail:
    raw = (FIXTURES / name).read_bytes()
    return parse_message(raw, max_attachment_bytes=max_attachment_bytes)
