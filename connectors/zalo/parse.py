"""Pure parsing of Zalo OA webhooks: the X-ZEvent-Signature check and each event kind.

Nothing here does I/O. Zalo posts one event per request (channels.md 2.1). A body that is
not a JSON object naming an ``event_name`` raises :class:`PayloadError` (the request is
refused, nothing is stored). A well-formed envelope always gives one typed result: an
event the gateway has no use for is :class:`Unhandled`, one that is broken is
:class:`Invalid`; both are kept raw and skipped by the connector.

Ids and timestamps are strings on the wire and may exceed 2^53: they are kept as text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from connectors.wire import PayloadError as PayloadError
from connectors.wire import clean as _clean
from connectors.wire import decode_body
from connectors.wire import file_name as _file_name
from connectors.wire import ident as _id
from connectors.wire import obj as _obj
from connectors.wire import text as _text
from connectors.wire import url as _url
from kernel.models import LinkPart, LocationPart, MediaPart, Part, TextPart

SIGNATURE_HEADER = "X-ZEvent-Signature"

MAX_MSG_ID = 998  # InboundMessage.external_id
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_DECIMAL = re.compile(r"^[0-9]{1,20}$")

USER_PREFIX = "user_send_"
OA_PREFIX = "oa_send_"


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserMessage:
    """A message from a Zalo user to the OA (``user_send_*``)."""

    kind: str  # the event_name
    oa_id: str
    user_id: str
    msg_id: str
    parts: tuple[Part, ...]
    sent_at: datetime | None
    quote_msg_id: str | None
    raw: str


@dataclass(frozen=True)
class OaMessage:
    """A message the OA sent to a user (``oa_send_*``): ours, or typed elsewhere."""

    kind: str
    oa_id: str
    user_id: str  # the recipient
    msg_id: str
    parts: tuple[Part, ...]
    sent_at: datetime | None
    quote_msg_id: str | None
    raw: str


@dataclass(frozen=True)
class Delivery:
    """``user_received_message`` / ``user_seen_message``: news about the OA's messages."""

    kind: str
    status: Literal["delivered", "read"]
    oa_id: str
    user_id: str
    msg_ids: tuple[str, ...]
    at: datetime | None
    raw: str


@dataclass(frozen=True)
class SubmittedInfo:
    """``user_submit_info``: the user shared what their Zalo account holds (answering a
    ``request_user_info`` message). Zalo vouches for the phone: it is the account's own."""

    kind: str
    oa_id: str
    user_id: str
    name: str | None
    phone: str | None
    raw: str


@dataclass(frozen=True)
class Unhandled:
    """A well-formed event the gateway has no use for (follow, unknown kinds)."""

    kind: str
    reason: str
    raw: str


@dataclass(frozen=True)
class Invalid:
    """An event that is not well formed; kept raw and skipped."""

    kind: str
    reason: str
    raw: str


# What one webhook body parses to (not kernel.events.Event, the log entry).
WebhookEvent = UserMessage | OaMessage | Delivery | SubmittedInfo | Unhandled | Invalid


# --- signature ----------------------------------------------------------------------------


def mac(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    """SHA-256 (plain, not HMAC) of app_id + raw body + timestamp + OA secret key, in hex."""
    data = app_id.encode() + body + timestamp.encode() + secret.encode()
    return hashlib.sha256(data).hexdigest()


def sign(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    """The X-ZEvent-Signature value Zalo sends for ``body``."""
    return "mac=" + mac(app_id, body, timestamp, secret)


def signature_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(app_id, timestamp) of a decoded body, as the text the signature covers."""
    return _sig_text(data.get("app_id")), _sig_text(data.get("timestamp"))


def signature_ok(
    body: bytes, header: str | None, *, first: str | None, timestamp: str | None, secret: str
) -> bool:
    """Whether ``header`` is ``mac=<hex>`` for ``first + body + timestamp + secret``,
    compared in constant time. ``first`` is the body's app_id (channels.md 2.2)."""
    if not header or first is None or timestamp is None:
        return False
    scheme, _, given = header.strip().partition("=")
    if scheme.strip().lower() != "mac" or not _HEX64.match(given.strip()):
        return False
    expected = mac(first, body, timestamp, secret)
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


def sent_at(data: dict[str, Any]) -> datetime | None:
    """When Zalo sent the event (its signed ``timestamp``); None when it cannot be read."""
    return _ms(data.get("timestamp"))


def _sig_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else None


# --- envelope -----------------------------------------------------------------------------


def parse_event(body: bytes) -> WebhookEvent:
    """The event of a webhook body; raises PayloadError (only) for a bad envelope."""
    return event_of(decode_body(body))


def event_of(data: dict[str, Any]) -> WebhookEvent:
    """One decoded webhook body as a typed result (raises only PayloadError)."""
    name = data.get("event_name")
    if name is None:
        raise PayloadError("missing_field", "the body has no 'event_name'")
    if not isinstance(name, str) or not name.strip():
        raise PayloadError("bad_payload", "'event_name' is not a non-empty string")
    kind = _clean(name).strip()[:64]
    raw = _raw(data)
    if kind.startswith(USER_PREFIX) and not kind.startswith("user_send_group"):
        return _message(kind, data, raw, from_oa=False)
    if kind.startswith(OA_PREFIX) and not kind.startswith("oa_send_group"):
        return _message(kind, data, raw, from_oa=True)
    if kind in ("user_received_message", "user_seen_message"):
        return _delivery(kind, data, raw)
    if kind == "anonymous_send_text":
        return Unhandled(kind, "anonymous users cannot be answered with CS messages", raw)
    if kind == "user_submit_info":
        return _submitted_info(kind, data, raw)
    if kind in ("follow", "unfollow", "add_user_to_tag"):
        return Unhandled(kind, f"management event {kind}", raw)
    return Unhandled(kind, f"unknown event kind {kind!r}", raw)


# --- events -------------------------------------------------------------------------------


def _parties(data: dict[str, Any]) -> tuple[str | None, str | None]:
    return _id(_obj(data.get("sender")).get("id")), _id(_obj(data.get("recipient")).get("id"))


def _message(kind: str, data: dict[str, Any], raw: str, *, from_oa: bool) -> WebhookEvent:
    msg = data.get("message")
    if not isinstance(msg, dict):
        return Invalid(kind, "'message' is not an object", raw)
    sender, recipient = _parties(data)
    # user -> OA: sender is the user; OA -> user: sender is the OA (channels.md 2.1)
    oa_id, user_id = (sender, recipient) if from_oa else (recipient, sender)
    if user_id is None:
        return Invalid(kind, f"the event has no {'recipient' if from_oa else 'sender'} id", raw)
    if oa_id is None:
        return Invalid(kind, f"the event has no {'sender' if from_oa else 'recipient'} id", raw)
    msg_id = _msg_id(msg.get("msg_id"))
    if msg_id is None:
        return Invalid(kind, "the message has no msg_id", raw)
    parts = _parts(msg)
    if not parts:
        return Unhandled(kind, "the message has no content the gateway can show", raw)
    cls = OaMessage if from_oa else UserMessage
    return cls(
        kind=kind,
        oa_id=oa_id,
        user_id=user_id,
        msg_id=msg_id,
        parts=tuple(parts),
        sent_at=_ms(data.get("timestamp")),
        quote_msg_id=_msg_id(msg.get("quote_msg_id")),
        raw=raw,
    )


def _delivery(kind: str, data: dict[str, Any], raw: str) -> WebhookEvent:
    # For these two the OA is the sender (channels.md 2.1).
    oa_id, user_id = _parties(data)
    if oa_id is None or user_id is None:
        return Invalid(kind, "the event lacks its sender or recipient id", raw)
    msg = _obj(data.get("message"))
    listed = msg.get("msg_ids")
    ids = [_msg_id(x) for x in listed] if isinstance(listed, list) else []
    ids.append(_msg_id(msg.get("msg_id")))
    msg_ids = tuple(dict.fromkeys(i for i in ids if i))
    if not msg_ids:
        return Invalid(kind, "the event names no message", raw)
    status: Literal["delivered", "read"] = "read" if kind == "user_seen_message" else "delivered"
    return Delivery(kind, status, oa_id, user_id, msg_ids, _ms(data.get("timestamp")), raw)


def _submitted_info(kind: str, data: dict[str, Any], raw: str) -> WebhookEvent:
    # Like a user's message, the user is the sender and the OA the recipient; management
    # events may name the OA as `oa_id` and the user as `user_id` instead (channels.md 2.1).
    sender, recipient = _parties(data)
    user_id = sender or _id(data.get("user_id"))
    oa_id = recipient or _id(data.get("oa_id"))
    if user_id is None:
        return Invalid(kind, "the event names no user", raw)
    if oa_id is None:
        return Invalid(kind, "the event names no OA", raw)
    info = _obj(data.get("info"))
    name = _text(info.get("name")).strip()[:200] or None
    phone = _text(info.get("phone")).strip()[:64] or None
    if name is None and phone is None:
        return Unhandled(kind, "the user shared neither a name nor a phone", raw)
    return SubmittedInfo(kind, oa_id, user_id, name, phone, raw)


# --- message content ----------------------------------------------------------------------

_MEDIA = {"image": "image", "gif": "image", "audio": "audio", "video": "video"}


def _parts(msg: dict[str, Any]) -> list[Part]:
    parts: list[Part] = []
    text = _text(msg.get("text"))
    attachments = msg.get("attachments")
    atts = [a for a in attachments if isinstance(a, dict)] if isinstance(attachments, list) else []
    urls = {_url(_obj(a.get("payload")).get("url")) for a in atts}
    # A link message repeats its URL as the text: the link part says it already.
    if text.strip() and text.strip() not in urls:
        parts.append(TextPart(text=text))
    for att in atts:
        part = _attachment(att)
        if part is not None:
            parts.append(part)
    return parts


def _attachment(att: dict[str, Any]) -> Part | None:
    kind = _text(att.get("type")).strip()
    payload = _obj(att.get("payload"))
    url = _url(payload.get("url"))
    try:
        if kind in _MEDIA:
            if url is None:
                return None
            mime = "image/gif" if kind == "gif" else None
            return MediaPart(type=_MEDIA[kind], url=url, mime=mime)
        if kind == "sticker":
            sticker = _id(payload.get("id")) or _id(payload.get("sticker_id"))
            if url is None and sticker is None:
                return None
            return MediaPart(
                type="sticker", url=url, name=f"sticker {sticker}" if sticker else None
            )
        if kind == "file":
            if url is None:
                return None
            name = _text(payload.get("name")).strip()[:255] or _file_name(url)
            return MediaPart(type="file", url=url, name=name or None, size=_size(payload))
        if kind == "location":
            coords = _obj(payload.get("coordinates"))
            lat, lon = _number(coords.get("latitude")), _number(coords.get("longitude"))
            if lat is None or lon is None:
                return None
            return LocationPart(latitude=lat, longitude=lon)
        if kind == "link":
            if url is None:
                return None
            title = _text(payload.get("title")).strip() or _text(payload.get("description"))
            return LinkPart(url=url, title=title.strip()[:500] or None)
    except ValidationError:
        return None
    # business cards and kinds not known yet: a readable line, never lost silently
    label = _clean(kind)[:40] or "attachment"
    bits = [f"[{label}]"]
    for key in ("title", "description"):
        value = _text(payload.get(key)).strip()
        if value:
            bits.append(value[:500])
    if url:
        bits.append(url)
    return TextPart(text=" ".join(bits))


def _size(payload: dict[str, Any]) -> int | None:
    value = payload.get("size")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        return int(value.strip())
    return None


# --- small readers (every value from the wire goes through one of these) ------------------


def _msg_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        return None
    value = _clean(value).strip()
    return value if 0 < len(value) <= MAX_MSG_ID else None


def _number(value: Any) -> float | None:
    """Coordinates come as numbers or as decimal strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _ms(value: Any) -> datetime | None:
    """A Zalo timestamp (milliseconds since the epoch, usually a string) in UTC."""
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _MAX_MS:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _raw(data: Any) -> str:
    """The event as JSON text, for keeping it raw (ASCII-escaped: always storable)."""
    try:
        return json.dumps(data)
    except (ValueError, RecursionError):
        return json.dumps({"event": "<not serialisable>"})
