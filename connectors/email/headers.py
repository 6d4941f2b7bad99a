"""Reading the headers of received mail (pure): text values, Message-IDs, addresses, the
sender and the date.

Real mail is often broken, so nothing here trusts it: every header is read through
:func:`header`, which falls back to the raw value when the structured parser fails, and
comes out as one clean line (no CR, LF or other control characters, at most
:data:`MAX_HEADER_CHARS`). Nothing here raises on a malformed value.
"""

from __future__ import annotations

import contextlib
import email.header
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from kernel.text import clean_text, normalize_email

MAX_HEADER_CHARS = 16_384

_MSGID = re.compile(r"<([^<>\s]{1,900})>")
_MSGID_VALID = re.compile(r"^[\x21-\x7e]+@[\x21-\x7e]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n]+")
# An address we could write back to: a local part, one @, a dotted domain, no spaces.
_ADDRESS_OK = re.compile(r"^[^\s@<>()\[\],;:\"]{1,64}@[^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\".]+$")


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            text = value if isinstance(value, str) else str(value)
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return None


def header(msg: Message, name: str) -> str | None:
    """One header as text, decoded where possible; never raises on a malformed value."""
    try:
        value = msg.get(name)
        text = None if value is None else str(value)
    except Exception:  # the structured header parser gave up: fall back to the raw text
        text = _raw_header(msg, name)
        if text is not None:
            try:
                text = str(email.header.make_header(email.header.decode_header(text)))
            except Exception:
                text = text.replace("\n", " ")
    if text is None:
        return None
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = CONTROL_CHARS.sub(" ", text.replace("\r", " ").replace("\n", " "))
    return clean_text(text.strip())[:MAX_HEADER_CHARS] or None


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of a header, RFC 2047 words decoded where they can be."""
    return [decode_words(value) for value in _raw_values(msg, name)]


def normalize_message_id(value: str | None) -> str | None:
    """``<abc@host>`` -> ``abc@host``; None when the value is not a usable Message-ID."""
    if not value:
        return None
    m = _MSGID.search(value)
    candidate = m.group(1) if m else value.strip()
    if not _MSGID_VALID.match(candidate) or len(candidate) > 900:
        return None
    return candidate


def message_ids(value: str | None) -> tuple[str, ...]:
    """Every Message-ID in a References or In-Reply-To value, in order."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found:  # some clients drop the angle brackets
        found = [t for t in value.split() if "@" in t]
    out: dict[str, None] = {}
    for item in found:
        ident = normalize_message_id(item)
        if ident is not None:
            out.setdefault(ident, None)
    return tuple(out)


def _raw_values(msg: Message, name: str) -> list[str]:
    """Every value of a header as it came (encoded words left encoded), unfolded."""
    out = []
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            out.append(_LINE_BREAKS.sub(" ", text))
    return out


def decode_words(value: str) -> str:
    """RFC 2047 words of a display name decoded, as one clean line; what cannot be decoded
    stays as it came. Only for names: an address is never read out of decoded text."""
    text = value
    with contextlib.suppress(Exception):
        text = str(email.header.make_header(email.header.decode_header(value)))
    text = CONTROL_CHARS.sub(" ", text.replace("\r", " ").replace("\n", " "))
    return clean_text(text).strip()[:MAX_HEADER_CHARS]


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs from address-list headers, in order.

    The list is split while its encoded words are still encoded, so an address comes
    from an address part only: a display name that decodes to ``x\r\nBcc: y@z`` or to
    ``<y@z>`` stays a name."""
    pairs: list[tuple[str, str]] = []
    for name in names:
        for value in _raw_values(msg, name):
            try:
                found = getaddresses([value])
            except Exception:  # noqa: S112 (an unreadable address list adds nothing)
                continue
            for display, addr in found:
                if CONTROL_CHARS.search(addr):
                    continue  # not an address that was written: never one made by cleaning
                addr = clean_text(addr).strip().lower()
                if "@" in addr and not any(c.isspace() for c in addr) and len(addr) <= 320:
                    pairs.append((decode_words(display), addr))
    return pairs


def answerable(addr: str | None) -> bool:
    """An address we could write back to (an encoded word is never part of one)."""
    return (
        addr is not None and bool(_ADDRESS_OK.match(addr)) and ".." not in addr and "=?" not in addr
    )


def sender(msg: Message) -> tuple[str | None, str | None]:
    """The From address we could answer, and its display name; (None, None) if none."""
    with contextlib.suppress(Exception):  # malformed: fall back to the raw header below
        value: Any = msg.get("From")
        if value is not None and getattr(value, "addresses", None):
            first: Address = value.addresses[0]
            addr = normalize_email(first.addr_spec)
            # The standard parser decodes encoded words even where an address is being
            # read (`=?utf-8?q?victim?=@x`): only an address written as is counts.
            written = " ".join(_raw_values(msg, "From")).lower()
            if answerable(addr) and addr is not None and addr in written:
                return addr, clean_text(first.display_name).strip() or None
    for display, addr in addresses(msg, "From"):
        if answerable(addr):
            return addr, display or None
    return None, None


def sent_date(msg: Message) -> datetime | None:
    """The Date header, only when it parses and names its time zone."""
    raw = _raw_header(msg, "Date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw.strip())
    except Exception:
        return None
    return parsed if parsed.tzinfo is not None else None
