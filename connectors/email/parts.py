"""The MIME structure of received mail (pure): the tree walked into text bodies,
attachments, files too large to keep, and the pieces of a delivery report.

Bodies are decoded from their bytes with the declared charset, then UTF-8, then
windows-1252, never raising on an unknown or wrong charset. Every accessor of a part
survives a malformed header. The walk stops after :data:`MAX_PARTS` parts or
:data:`MAX_DEPTH` levels of nesting.
"""

from __future__ import annotations

import codecs
import contextlib
import email
import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message

from connectors.email.headers import CONTROL_CHARS, header, normalize_message_id
from kernel.text import clean_text

MAX_PARTS = 500
MAX_DEPTH = 20


@dataclass(frozen=True)
class Attachment:
    data: bytes
    name: str
    mime: str
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    name: str
    mime: str
    size: int
    reason: str


@dataclass
class MailParts:
    """What the walk found, in the order of the parts."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    # The per-recipient blocks of a message/delivery-status part.
    delivery_status: list[Message] = field(default_factory=list)
    # The headers of the message a report is about (message/rfc822, text/rfc822-headers).
    original_headers: list[Message] = field(default_factory=list)
    count: int = 0


# --- bodies -------------------------------------------------------------------------------


def decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part as text, whatever its charset claims."""
    tried = []
    if charset:
        try:
            codec = codecs.lookup(charset.strip().strip('"').lower()).name
            tried.append(codec)
            return payload.decode(codec)
        except (LookupError, UnicodeDecodeError, ValueError):
            pass
    for codec in ("utf-8", "cp1252"):
        if codec in tried:
            continue
        try:
            return payload.decode(codec)
        except UnicodeDecodeError:
            continue
    return payload.decode(tried[0] if tried else "utf-8", "replace")


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def content_type(part: Message) -> str:
    """The part's MIME type in lower case; application/octet-stream when unreadable."""
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value.lower() if value else None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        return None
    name = clean_text(CONTROL_CHARS.sub("", name.replace("\r", "").replace("\n", ""))).strip()
    return name[:200] or None


# --- the walk -----------------------------------------------------------------------------


def read_parts(msg: Message, max_attachment: int) -> MailParts:
    """Walk the whole message; attachments over ``max_attachment`` bytes become skipped.

    RecursionError (the email package on a message nested too deeply) is left to the caller.
    """
    found = MailParts()
    _walk(msg, found, max_attachment)
    return found


def _attachment_name(part: Message, mime: str, n: int) -> str:
    name = _filename(part)
    if name:
        return name
    if mime == "message/rfc822":
        return f"message-{n}.eml"
    ext = mimetypes.guess_extension(mime) or ".bin"
    return f"attachment-{n}{ext}"


def _walk(part: Message, acc: MailParts, max_attachment: int, depth: int = 0) -> None:
    acc.count += 1
    if acc.count > MAX_PARTS or depth > MAX_DEPTH:
        return
    mime = content_type(part)
    disposition = _disposition(part)
    if part.is_multipart() and mime not in ("message/rfc822", "message/delivery-status"):
        children = part.get_payload()
        if isinstance(children, list):
            for child in children:
                if isinstance(child, Message):
                    _walk(child, acc, max_attachment, depth + 1)
        return
    if mime == "message/delivery-status":
        children = part.get_payload()
        if isinstance(children, list):
            acc.delivery_status.extend(c for c in children if isinstance(c, Message))
        else:
            acc.delivery_status.extend(_header_blocks(_payload(part)))
        return
    if mime == "text/rfc822-headers":
        acc.original_headers.extend(_header_blocks(_payload(part))[:1])
        return
    if mime == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            acc.original_headers.append(inner[0])
            data = inner[0].as_bytes(policy=policy.default.clone(linesep="\r\n"))
        else:
            data = _payload(part)
        _keep(part, acc, data, mime, max_attachment)
        return
    body_text = mime in ("text/plain", "text/html") and disposition != "attachment"
    if body_text and not (mime == "text/plain" and _filename(part) and disposition):
        text = decode_text(_payload(part), _charset(part))
        (acc.plain if mime == "text/plain" else acc.html).append(text)
        return
    _keep(part, acc, _payload(part), mime, max_attachment)


def _keep(part: Message, acc: MailParts, data: bytes, mime: str, max_attachment: int) -> None:
    name = _attachment_name(part, mime, len(acc.attachments) + len(acc.skipped) + 1)
    if len(data) > max_attachment:
        acc.skipped.append(
            SkippedFile(name, mime, len(data), f"over the {max_attachment}-byte limit")
        )
        return
    cid = normalize_message_id(header(part, "Content-ID"))
    cid = cid.lower() if cid else None
    inline = _disposition(part) == "inline" or (cid is not None and _disposition(part) is None)
    acc.attachments.append(Attachment(data, name, mime, inline=inline, content_id=cid))


def _header_blocks(data: bytes) -> list[Message]:
    text = decode_text(data, "utf-8").replace("\r\n", "\n")
    blocks: list[Message] = []
    for chunk in re.split(r"\n\s*\n", text):
        if chunk.strip():
            with contextlib.suppress(Exception):  # a broken block tells us nothing
                blocks.append(email.message_from_string(chunk + "\n\n", policy=policy.default))
    return blocks
