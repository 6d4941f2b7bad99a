"""Parsing received mail (pure): raw RFC 5322 bytes -> :class:`ParsedMail`.

Built on the standard library's ``email`` package with ``policy.default``. Real mail is
often broken, so nothing trusts it; the work is shared out by idea:

- :mod:`connectors.email.headers`: header values, Message-IDs, addresses, sender, date;
- :mod:`connectors.email.parts`: the MIME walk, charset decoding, attachments;
- :mod:`connectors.email.html`: sanitising HTML (nh3) and reading it as text;
- :mod:`connectors.email.classify`: auto-replies, bulk mail, bounces and receipts.

This module puts their answers together. Anything that still cannot be read becomes
:class:`ParseError`.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage

from connectors.email.classify import Bounce, Kind, classify, read_bounce
from connectors.email.headers import (
    addresses,
    answerable,
    header,
    header_values,
    message_ids,
    normalize_message_id,
    sender,
    sent_date,
)
from connectors.email.html import html_to_text, sanitize_html
from connectors.email.parts import Attachment, SkippedFile, read_parts
from kernel.text import clean_text

HASH_DOMAIN = "no-message-id.omnigw.invalid"
MAX_REFERENCES = 100


# A boundary parameter (quoted or a token) and a line that starts like a delimiter.
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_RFC2231_BOUNDARY = re.compile(rb"boundary\*", re.IGNORECASE)
_DASH_LINE = re.compile(rb"^--([^\r\n]{0,250})", re.MULTILINE)


class ParseError(ValueError):
    """The bytes are not a mail message that can be read."""


class TooManyParts(ParseError):
    """The message has more MIME parts than the channel parses (it is not parsed at all)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} MIME parts, over max_message_parts ({limit})")
        self.count = count
        self.limit = limit

    def __reduce__(self) -> tuple[type[TooManyParts], tuple[int, int]]:
        return TooManyParts, (self.count, self.limit)  # it comes back from the worker


@dataclass(frozen=True)
class ParsedMail:
    external_id: str
    message_id: str | None
    from_address: str | None
    from_name: str | None
    # To, Cc, Delivered-To and X-Original-To addresses (plus-address tokens live there).
    recipients: tuple[str, ...]
    # The Cc header's (display name, address) pairs, in order.
    cc: tuple[tuple[str, str], ...]
    subject: str | None
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    skipped: tuple[SkippedFile, ...]
    kind: Kind
    kind_reason: str | None
    bounce: Bounce | None
    auto_submitted: str | None
    x_loop: tuple[str, ...] = field(default_factory=tuple)

    @property
    def thread_refs(self) -> list[str]:
        """In-Reply-To then References, newest first, without repeats."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(ref, None)
        return list(seen)[:MAX_REFERENCES]


def stable_id(raw: bytes) -> str:
    """An external id for mail without a usable Message-ID: the same bytes, the same id."""
    return f"{hashlib.sha256(raw).hexdigest()[:40]}@{HASH_DOMAIN}"


def count_parts(raw: bytes) -> int:
    """How many MIME parts a message has at most, without parsing it: the opening delimiter
    lines of the boundaries it declares (every line starting with ``--`` when a boundary
    is written in a form not read here), plus one. Linear in the size, a few ms per MB."""
    declared = {m.group(1) or m.group(2) for m in _BOUNDARY.finditer(raw)}
    every = _RFC2231_BOUNDARY.search(raw) is not None
    if not declared and not every:
        return 1
    count = 1
    for m in _DASH_LINE.finditer(raw):
        line = m.group(1).rstrip(b" \t")
        if line in declared or (every and not line.endswith(b"--")):
            count += 1  # an opening delimiter: one part follows
    return count


def parse_message(
    raw: bytes, *, max_attachment_bytes: int, max_parts: int | None = None
) -> ParsedMail:
    """Read one received message; raises ParseError for bytes that are not mail at all,
    TooManyParts (before any parsing) for one of more than ``max_parts`` MIME parts."""
    if not raw or not raw.strip():
        raise ParseError("the message is empty")
    if max_parts is not None and (count := count_parts(raw)) > max_parts:
        raise TooManyParts(count, max_parts)
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is for the truly unreadable
        raise ParseError(f"not a mail message: {type(exc).__name__}") from None
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise ParseError("the message has no headers")

    message_id = normalize_message_id(header(msg, "Message-ID"))
    from_address, from_name = sender(msg)
    subject = header(msg, "Subject")
    try:
        parts = read_parts(msg, max_attachment_bytes)
    except RecursionError:
        raise ParseError("the message is nested too deeply") from None

    sanitized = sanitize_html("\n".join(parts.html)) if parts.html else None
    if parts.plain:
        text = "\n".join(parts.plain)
    elif parts.html:
        text = html_to_text("\n".join(parts.html))
    else:
        text = ""
    text = clean_text(text.replace("\r\n", "\n")).strip()

    kind, reason = classify(msg, from_address, subject)
    bounce = read_bounce(msg, parts, subject) if kind == "bounce" else None
    recipients = tuple(
        dict.fromkeys(
            addr for _, addr in addresses(msg, "To", "Cc", "Delivered-To", "X-Original-To")
        )
    )
    return ParsedMail(
        external_id=message_id or stable_id(raw),
        message_id=message_id,
        from_address=from_address,
        from_name=from_name,
        recipients=recipients,
        cc=tuple(dict.fromkeys(pair for pair in addresses(msg, "Cc") if answerable(pair[1]))),
        subject=subject,
        date=sent_date(msg),
        in_reply_to=message_ids(header(msg, "In-Reply-To"))[:MAX_REFERENCES],
        references=message_ids(header(msg, "References"))[-MAX_REFERENCES:],
        text=text,
        html=sanitized,
        attachments=tuple(parts.attachments),
        skipped=tuple(parts.skipped),
        kind=kind,
        kind_reason=reason,
        bounce=bounce,
        auto_submitted=header(msg, "Auto-Submitted"),
        x_loop=tuple(v.strip().lower() for v in header_values(msg, "X-Loop")),
    )
