"""Outbound mail (pure): an agent's reply -> a MIME message ready for SMTP.

Headers are built only from values that went through :func:`one_line` (names, subjects)
or :func:`checked_address` (addresses), so no field can add a header or split one: CR, LF
and other control characters never reach the wire. The ``email`` package folds long
headers and encodes non-ASCII ones (RFC 2047, RFC 2231 for file names).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from connectors.email.parse import HASH_DOMAIN
from kernel.text import clean_text

# RFC 5322 suggests keeping the first and the most recent ids when References grows long.
REFERENCES_MAX = 20
SUBJECT_MAX = 250
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|vs|antw|tl|odp|rif)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$")
_MSGID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,900}@[\x21-\x3b\x3d\x3f-\x7e]{1,253}$")


class RenderError(ValueError):
    """The message cannot be written as mail (e.g. an unusable recipient address)."""


@dataclass(frozen=True)
class OutgoingFile:
    data: bytes
    name: str
    mime: str


@dataclass(frozen=True)
class Draft:
    """Everything an outgoing mail is made of, before it is written as MIME."""

    from_address: str
    to_address: str
    subject: str
    text: str
    message_id: str
    date: datetime
    from_name: str | None = None
    to_name: str | None = None
    # (display name, address) pairs, each address checked like To's.
    cc: Sequence[tuple[str | None, str]] = ()
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    reply_to: str | None = None
    automatic: bool = False
    files: Sequence[OutgoingFile] = field(default_factory=tuple)


def one_line(value: str | None, limit: int = 998) -> str:
    """A header-safe single line: control characters and line breaks become spaces."""
    if not value:
        return ""
    return re.sub(r"\s{2,}", " ", _CONTROL.sub(" ", clean_text(value))).strip()[:limit]


def checked_address(value: str) -> str:
    """An address usable in a header and an SMTP envelope, or RenderError."""
    address = value.strip()
    if not _ADDRESS.match(address) or ".." in address or address.endswith("."):
        raise RenderError("not a deliverable e-mail address")
    return address


def thread_subject(subject: str | None, default: str) -> str:
    """The subject of a thread the business starts: as given (or the default)."""
    return one_line(subject, SUBJECT_MAX) or one_line(default, SUBJECT_MAX)


def reply_subject(subject: str | None, default: str, prefix: str = "Re:") -> str:
    """``Re: <subject>`` unless the subject already says it is a reply."""
    text = thread_subject(subject, default)
    return text if _REPLY_PREFIX.match(text) else f"{prefix} {text}"


def _usable_id(ident: str) -> bool:
    return bool(_MSGID.match(ident)) and not ident.endswith("@" + HASH_DOMAIN)


def threading(
    reply_to_id: str | None, thread_ids: Sequence[str], own: Sequence[str] = ()
) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a reply.

    In-Reply-To names the message answered: the one the agent replied to, else the
    customer's latest message (the newest id that is not one of ours), else the newest.
    """
    ids = [i for i in dict.fromkeys(thread_ids) if _usable_id(i)]
    parent = reply_to_id if reply_to_id and _usable_id(reply_to_id) else None
    if parent is None:
        theirs = [i for i in ids if i not in set(own)]
        parent = theirs[-1] if theirs else (ids[-1] if ids else None)
    refs = [i for i in ids if i != parent]
    if parent is not None:
        refs.append(parent)
    if len(refs) > REFERENCES_MAX:
        refs = [refs[0], *refs[-(REFERENCES_MAX - 1) :]]
    return parent, refs


def text_to_html(text: str) -> str:
    """A simple HTML version of a plain-text reply: paragraphs and line breaks kept."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        f'<body><div dir="auto">\n{body}\n</div></body></html>\n'
    )


def _file_name(name: str) -> str:
    cleaned = one_line(name, 200).replace("/", "_").replace("\\", "_").replace('"', "'")
    return cleaned or "attachment"


def _mime(value: str) -> tuple[str, str]:
    main, _, sub = value.lower().partition("/")
    token = re.compile(r"[a-z0-9][a-z0-9.+-]{0,126}")
    if main in ("message", "multipart") or not token.fullmatch(main) or not token.fullmatch(sub):
        return "application", "octet-stream"
    return main, sub


def render(draft: Draft) -> EmailMessage:
    """The MIME message for a draft: text + HTML alternatives, files attached."""
    msg = EmailMessage(policy=policy.SMTP)
    sender = checked_address(draft.from_address)
    recipient = checked_address(draft.to_address)
    msg["From"] = Address(display_name=one_line(draft.from_name, 200), addr_spec=sender)
    msg["To"] = Address(display_name=one_line(draft.to_name, 200), addr_spec=recipient)
    if draft.cc:
        msg["Cc"] = [
            Address(display_name=one_line(name, 200), addr_spec=checked_address(addr))
            for name, addr in draft.cc
        ]
    msg["Subject"] = one_line(draft.subject, SUBJECT_MAX) or "(no subject)"
    msg["Date"] = format_datetime(draft.date)
    if not _MSGID.match(draft.message_id):
        raise RenderError("unusable Message-ID")
    msg["Message-ID"] = f"<{draft.message_id}>"
    if draft.in_reply_to and _usable_id(draft.in_reply_to):
        msg["In-Reply-To"] = f"<{draft.in_reply_to}>"
    refs = [r for r in draft.references if _usable_id(r)]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if draft.reply_to:
        msg["Reply-To"] = Address(
            display_name=one_line(draft.from_name, 200), addr_spec=checked_address(draft.reply_to)
        )
    if draft.automatic:
        # RFC 3834: nobody should answer this automatically; Exchange honours the second.
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    text = clean_text(draft.text).replace("\r\n", "\n").replace("\r", "\n")
    msg.set_content(text + ("" if text.endswith("\n") else "\n"), charset="utf-8")
    msg.add_alternative(text_to_html(text), subtype="html", charset="utf-8")
    for f in draft.files:
        main, sub = _mime(f.mime)
        msg.add_attachment(f.data, maintype=main, subtype=sub, filename=_file_name(f.name))
    return msg
