"""Pure parsing of Messenger webhooks: the signature, the batch envelope, and each event.

Nothing here does I/O. A body that is not a Messenger batch raises :class:`PayloadError`
(the whole request is refused and nothing is stored). Inside a valid batch every
``messaging[]`` / ``standby[]`` item is parsed on its own into one typed result, so a
broken item becomes an :class:`Invalid` result and never sinks its neighbours. What a
message carries (text, attachments) is read by :mod:`connectors.facebook.content`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.facebook.content import message_parts, quick_reply_payload
from connectors.wire import PayloadError as PayloadError
from connectors.wire import clean as _clean
from connectors.wire import decode_body
from connectors.wire import ident as _id
from connectors.wire import is_number as _is_number
from connectors.wire import obj as _obj
from connectors.wire import text as _text
from kernel.models import Part, TextPart

SIGNATURE_HEADER = "X-Hub-Signature-256"
# What our Send API requests put in `metadata`; echoes carry it back.
MARKER_PREFIX = "omnigw:"
# Meta's own inbox app: echoes with this app_id were typed by a human in the Page inbox.
PAGE_INBOX_APP_ID = "263902037430900"

MAX_MID = 998  # InboundMessage.external_id
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

Source = Literal["messaging", "standby"]
_SOURCES: tuple[Source, ...] = ("messaging", "standby")


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerMessage:
    """A message or a postback from the customer (PSID) to the page."""

    page_id: str
    psid: str
    mid: str
    parts: tuple[Part, ...]
    sent_at: datetime | None
    reply_to: str | None
    kind: Literal["message", "postback"]
    source: Source
    raw: str
    # Set when the message is one sticker: Meta may send the same sticker twice.
    sticker_id: str | None = None
    # Structured data beside the text: a quick reply's or button's payload, and where the
    # customer came from (an m.me link, an ad) when the event says so
    # (kernel.models.Message.metadata).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OurMarker:
    """The metadata our own sends carry: which message, and which of its requests."""

    message_id: str
    index: int
    total: int

    @property
    def last(self) -> bool:
        return self.index == self.total


@dataclass(frozen=True)
class Echo:
    """A message the page sent to the customer (``psid`` is the echo's recipient)."""

    page_id: str
    psid: str
    mid: str
    parts: tuple[Part, ...]
    sent_at: datetime | None
    reply_to: str | None
    app_id: str | None
    marker: OurMarker | None
    source: Source
    raw: str
    sticker_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    page_id: str
    psid: str
    mids: tuple[str, ...]
    watermark: datetime | None
    raw: str


@dataclass(frozen=True)
class Read:
    page_id: str
    psid: str
    watermark: datetime
    raw: str


@dataclass(frozen=True)
class ReactionEvent:
    """The customer reacted to a message, or took the reaction back (``on`` False)."""

    page_id: str
    psid: str  # who reacted (the event's sender)
    mid: str  # the message reacted to
    on: bool
    reaction: str | None
    emoji: str | None
    raw: str


@dataclass(frozen=True)
class ThreadControl:
    """Messenger's handover protocol: control of the customer's thread was passed to this
    app (``pass_thread_control``) or taken from it (``take_thread_control``)."""

    page_id: str
    psid: str
    kind: Literal["pass_thread_control", "take_thread_control"]
    new_owner_app_id: str | None
    previous_owner_app_id: str | None
    metadata: str | None
    raw: str


@dataclass(frozen=True)
class Unhandled:
    """A well-formed event the gateway has no use for (referral, handover, unknown)."""

    kind: str
    reason: str
    page_id: str | None
    raw: str


@dataclass(frozen=True)
class Invalid:
    """An item that is not a well-formed event; kept raw and skipped."""

    kind: str
    reason: str
    raw: str


# What one messaging[] / standby[] item parses to (not kernel.events.Event, the log entry).
WebhookEvent = (
    CustomerMessage | Echo | Delivery | Read | ReactionEvent | ThreadControl | Unhandled | Invalid
)


# --- signature ----------------------------------------------------------------------------


def sign(app_secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for ``body``."""
    return "sha256=" + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


def signature_ok(app_secret: bytes, body: bytes, header: str | None) -> bool:
    """HMAC-SHA256 of the raw bytes with the app secret, compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not _HEX64.match(given):
        return False
    expected = hmac.new(app_secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode())


# --- envelope -----------------------------------------------------------------------------


def parse_batch(body: bytes) -> list[WebhookEvent]:
    """Every event of a webhook body, in order; raises PayloadError for a bad envelope."""
    data = decode_body(body)
    obj = data.get("object")
    if obj is None:
        raise PayloadError("missing_field", "the body has no 'object'")
    if obj != "page":
        shown = _clean(obj)[:40] if isinstance(obj, str) else type(obj).__name__
        raise PayloadError("wrong_object", f"object is {shown!r}; this channel takes 'page'")
    entries = data.get("entry")
    if entries is None:
        raise PayloadError("missing_field", "the body has no 'entry'")
    if not isinstance(entries, list):
        raise PayloadError("bad_payload", "'entry' is not a list")
    return list(_events(entries))


def _events(entries: list[Any]) -> Iterator[WebhookEvent]:
    for entry in entries:
        if not isinstance(entry, dict):
            yield Invalid("entry", "an entry is not a JSON object", _raw(None, "entry", entry))
            continue
        page_id = _id(entry.get("id"))
        has_items = False
        for source in _SOURCES:
            items = entry.get(source)
            if items is None:
                continue
            has_items = True
            if page_id is None:
                yield Invalid("entry", "the entry has no page id", _raw(None, source, entry))
                break
            if not isinstance(items, list):
                yield Invalid(source, f"'{source}' is not a list", _raw(page_id, source, items))
                continue
            for item in items:
                yield parse_item(page_id, source, item)
        if not has_items:
            kinds = sorted(_clean(k)[:64] for k in entry if k not in ("id", "time"))
            kind = kinds[0] if kinds else "entry"
            yield Unhandled(
                kind,
                f"entry without messaging events ({', '.join(kinds) or 'empty'})",
                page_id,
                _raw(page_id, "entry", entry),
            )


# --- items --------------------------------------------------------------------------------

_HANDOVER = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")


def parse_item(page_id: str, source: Source, item: Any) -> WebhookEvent:
    """One messaging[] / standby[] item as a typed result (never raises)."""
    raw = _raw(page_id, source, item)
    if not isinstance(item, dict):
        return Invalid("item", "the item is not a JSON object", raw)
    if "message" in item:
        return _message(page_id, source, item, raw)
    if "postback" in item:
        return _postback(page_id, source, item, raw)
    if "delivery" in item:
        return _delivery(page_id, item, raw)
    if "read" in item:
        return _read(page_id, item, raw)
    if "reaction" in item:
        return _reaction(page_id, item, raw)
    if "referral" in item:
        return Unhandled("referral", _referral(item.get("referral")) or "referral", page_id, raw)
    for kind in ("pass_thread_control", "take_thread_control"):
        if kind in item:
            return _thread_control(page_id, kind, item, raw)
    for kind in _HANDOVER:
        if kind in item:
            return Unhandled(kind, f"handover event {kind}", page_id, raw)
    known = sorted(k for k in item if k not in ("sender", "recipient", "timestamp"))
    kind = _clean(known[0])[:64] if known else "item"
    return Unhandled(kind, f"unknown event kind {kind!r}", page_id, raw)


def _thread_control(
    page_id: str,
    kind: Literal["pass_thread_control", "take_thread_control"],
    item: dict[str, Any],
    raw: str,
) -> WebhookEvent:
    psid, _ = _parties(item)
    body = item.get(kind)
    if psid is None:
        return Invalid(kind, "the event has no sender id", raw)
    if not isinstance(body, dict):
        return Invalid(kind, f"'{kind}' is not a JSON object", raw)
    metadata = body.get("metadata")
    return ThreadControl(
        page_id=page_id,
        psid=psid,
        kind=kind,
        new_owner_app_id=_id(body.get("new_owner_app_id")),
        previous_owner_app_id=_id(body.get("previous_owner_app_id")),
        metadata=_text(metadata)[:1000] if isinstance(metadata, str) and metadata else None,
        raw=raw,
    )


def _referral(value: Any) -> str | None:
    """A one-line description of a referral object, or None when there is none."""
    if not isinstance(value, dict):
        return None
    detail = ", ".join(f"{k}={_text(value.get(k))[:200]}" for k in ("source", "type", "ref"))
    return f"referral ({detail})"


# What a referral's metadata keeps: Meta's own fields naming where the customer came from.
_REFERRAL_KEYS = ("source", "type", "ref", "ad_id", "referer_uri", "ads_context_data")


def _referral_metadata(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    kept: dict[str, Any] = {}
    for key in _REFERRAL_KEYS:
        found = value.get(key)
        if isinstance(found, str):
            kept[key] = _text(found)[:1000]
        elif isinstance(found, dict):
            kept[key] = {
                str(k)[:64]: _text(v)[:1000]
                for k, v in list(found.items())[:20]
                if isinstance(v, str | int | float)
            }
    return kept


def _metadata(payload: str | None, source: str, *referrals: Any) -> dict[str, Any]:
    """A customer message's metadata: the payload of the quick reply or button tapped
    (``payload``, and ``payload_from``: ``quick_reply`` or ``postback``) and where they
    came from (``referral``)."""
    metadata: dict[str, Any] = {}
    if payload:
        metadata["payload"] = payload[:2000]
        metadata["payload_from"] = source
    for value in referrals:
        referral = _referral_metadata(value)
        if referral is not None:
            metadata["referral"] = referral
            break
    return metadata


def _parties(item: dict[str, Any]) -> tuple[str | None, str | None]:
    return _id(_obj(item.get("sender")).get("id")), _id(_obj(item.get("recipient")).get("id"))


def _message(page_id: str, source: Source, item: dict[str, Any], raw: str) -> WebhookEvent:
    msg = item.get("message")
    if not isinstance(msg, dict):
        return Invalid("message", "'message' is not an object", raw)
    sender, recipient = _parties(item)
    echo = msg.get("is_echo") is True
    psid = recipient if echo else sender
    if psid is None:
        who = "recipient" if echo else "sender"
        return Invalid("message", f"the message has no {who} id", raw)
    mid = _mid(msg.get("mid"))
    if mid is None:
        return Invalid("message", "the message has no mid", raw)
    parts, sticker_id = message_parts(msg)
    if not parts:
        if msg.get("is_deleted") is True:
            return Unhandled("message_deleted", "the customer removed a message", page_id, raw)
        return Unhandled("message", "the message has no content the gateway can show", page_id, raw)
    sent_at = _ms(item.get("timestamp"))
    reply_to = _mid(_obj(msg.get("reply_to")).get("mid"))
    if echo:
        metadata = msg.get("metadata")
        return Echo(
            page_id=page_id,
            psid=psid,
            mid=mid,
            parts=parts,
            sent_at=sent_at,
            reply_to=reply_to,
            app_id=_id(msg.get("app_id")),
            marker=read_marker(metadata) if isinstance(metadata, str) else None,
            source=source,
            raw=raw,
            sticker_id=sticker_id,
        )
    return CustomerMessage(
        page_id=page_id,
        psid=psid,
        mid=mid,
        parts=parts,
        sent_at=sent_at,
        reply_to=reply_to,
        kind="message",
        source=source,
        raw=raw,
        sticker_id=sticker_id,
        # A message sent from an ad or a link may carry its referral beside it or in it.
        metadata=_metadata(
            quick_reply_payload(msg), "quick_reply", item.get("referral"), msg.get("referral")
        ),
    )


def _postback(page_id: str, source: Source, item: dict[str, Any], raw: str) -> WebhookEvent:
    postback = item.get("postback")
    if not isinstance(postback, dict):
        return Invalid("postback", "'postback' is not an object", raw)
    psid, _ = _parties(item)
    if psid is None:
        return Invalid("postback", "the postback has no sender id", raw)
    title = _text(postback.get("title")).strip()
    payload = _text(postback.get("payload")).strip()
    # A postback is the customer tapping a button: the title is what they saw and "said",
    # so it is the message text. The payload is the button's developer data (an order id,
    # GET_STARTED, ...): metadata, never text. Standby postbacks carry no payload (it goes
    # only to the app that sent the button): then the title stands alone. A postback with
    # a payload and no title (not seen from Meta, but allowed by its format) still needs
    # words for the history: a neutral stand-in, never the payload.
    if not title and not payload:
        return Invalid("postback", "the postback has neither title nor payload", raw)
    parts: list[Part] = [TextPart(text=title or "[button]")]
    sent_at = _ms(item.get("timestamp"))
    mid = _mid(postback.get("mid"))
    if mid is None:
        # Older postbacks have no mid. Meta retries a batch unchanged, so sender and
        # timestamp make a stable key for deduplication.
        stamp = item.get("timestamp")
        if sent_at is None or not isinstance(stamp, int):
            return Invalid("postback", "the postback has neither mid nor timestamp", raw)
        mid = f"postback:{psid}:{stamp}"
    return CustomerMessage(
        page_id=page_id,
        psid=psid,
        mid=mid,
        parts=tuple(parts),
        sent_at=sent_at,
        reply_to=None,
        kind="postback",
        source=source,
        raw=raw,
        metadata=_metadata(payload, "postback", postback.get("referral")),
    )


def _delivery(page_id: str, item: dict[str, Any], raw: str) -> WebhookEvent:
    delivery = item.get("delivery")
    if not isinstance(delivery, dict):
        return Invalid("delivery", "'delivery' is not an object", raw)
    psid, _ = _parties(item)
    if psid is None:
        return Invalid("delivery", "the delivery has no sender id", raw)
    mids_raw = delivery.get("mids")
    mids = tuple(m for m in (_mid(x) for x in mids_raw) if m) if isinstance(mids_raw, list) else ()
    watermark = _ms(delivery.get("watermark"))
    if not mids and watermark is None:
        return Invalid("delivery", "the delivery has neither mids nor a watermark", raw)
    return Delivery(page_id, psid, mids, watermark, raw)


def _read(page_id: str, item: dict[str, Any], raw: str) -> WebhookEvent:
    read = item.get("read")
    if not isinstance(read, dict):
        return Invalid("read", "'read' is not an object", raw)
    psid, _ = _parties(item)
    if psid is None:
        return Invalid("read", "the read event has no sender id", raw)
    watermark = _ms(read.get("watermark"))
    if watermark is None:
        return Invalid("read", "the read event has no valid watermark", raw)
    return Read(page_id, psid, watermark, raw)


def _reaction(page_id: str, item: dict[str, Any], raw: str) -> WebhookEvent:
    reaction = item.get("reaction")
    if not isinstance(reaction, dict):
        return Invalid("reaction", "'reaction' is not an object", raw)
    psid, _ = _parties(item)
    if psid is None:
        return Invalid("reaction", "the reaction has no sender id", raw)
    mid = _mid(reaction.get("mid"))
    if mid is None:
        return Invalid("reaction", "the reaction names no message (mid)", raw)
    action = reaction.get("action", "react")
    if action not in ("react", "unreact"):
        return Invalid("reaction", "the reaction's action is not react or unreact", raw)
    return ReactionEvent(
        page_id=page_id,
        psid=psid,
        mid=mid,
        on=action == "react",
        reaction=_text(reaction.get("reaction"))[:64] or None,
        emoji=_text(reaction.get("emoji"))[:32] or None,
        raw=raw,
    )


# --- markers ------------------------------------------------------------------------------


def read_marker(metadata: str) -> OurMarker | None:
    """The message id and request index our Send API metadata carries, or None."""
    if not metadata.startswith(MARKER_PREFIX):
        return None
    body = metadata[len(MARKER_PREFIX) :]
    message_id, _, position = body.rpartition(":")
    index, _, total = position.partition("/")
    if not message_id or not index.isdecimal() or not total.isdecimal():
        return None
    i, n = int(index), int(total)
    if not 1 <= i <= n or len(message_id) > 128:
        return None
    return OurMarker(message_id, i, n)


# --- small readers (every value from the wire goes through one of these) ------------------


def _mid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = _clean(value).strip()
    return value if 0 < len(value) <= MAX_MID else None


def _ms(value: Any) -> datetime | None:
    """A Graph timestamp (milliseconds since the epoch) as a UTC datetime."""
    if not _is_number(value) or not 0 <= value <= _MAX_MS:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _raw(page_id: str | None, source: str, item: Any) -> str:
    """The item as JSON text, for keeping it raw (ASCII-escaped: always storable)."""
    try:
        return json.dumps({"page_id": page_id, "source": source, "item": item})
    except (ValueError, RecursionError):
        return json.dumps({"page_id": page_id, "source": source, "item": "<not serialisable>"})
