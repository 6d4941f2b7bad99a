"""Pure parsing of what a Messenger message carries: its text and attachments as the
gateway's parts, and the payload of a quick reply as metadata (never as text).

Every attachment kind Meta sends becomes a part, or a readable line when the gateway has
no part for it; one that cannot be shown (no URL, broken coordinates) is left out. The
envelope and the event kinds around a message are in :mod:`connectors.facebook.parse`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from connectors.wire import clean as _clean
from connectors.wire import file_name as _file_name
from connectors.wire import ident as _id
from connectors.wire import is_number as _is_number
from connectors.wire import obj as _obj
from connectors.wire import text as _text
from connectors.wire import url as _url
from kernel.models import LinkPart, LocationPart, MediaPart, Part, TextPart

_MEDIA = {"image", "audio", "video", "file", "sticker"}
_SHARES = {"reel": "Reel", "ig_reel": "Instagram reel", "post": "Post", "ig_post": "Instagram post"}


def quick_reply_payload(msg: dict[str, Any]) -> str | None:
    """The developer data behind the quick reply the customer tapped, if they tapped one:
    it goes into the message's metadata; the chip's title is the message's text."""
    payload = _text(_obj(msg.get("quick_reply")).get("payload"))
    return payload or None


def message_parts(msg: dict[str, Any]) -> tuple[tuple[Part, ...], str | None]:
    """The parts of a message, and the sticker id when it is exactly one sticker."""
    parts: list[Part] = []
    text = _text(msg.get("text"))
    if text.strip():
        parts.append(TextPart(text=text))
    attachments = msg.get("attachments")
    media, sticker_id = _attachment_parts(
        attachments if isinstance(attachments, list) else [], _id(msg.get("sticker_id"))
    )
    parts.extend(media)
    only_sticker = (
        len(parts) == 1 and isinstance(parts[0], MediaPart) and parts[0].type == "sticker"
    )
    return tuple(parts), sticker_id if only_sticker else None


def _attachment_parts(
    attachments: list[Any], message_sticker_id: str | None
) -> tuple[list[Part], str | None]:
    atts = [a for a in attachments if isinstance(a, dict)]
    # Until the sticker transition ends Meta sends each sticker twice, as `sticker` and as
    # `image` (the old form). A message cannot hold a sticker and a photo, so next to a
    # `sticker` every `image` is that duplicate. An `image` naming a sticker_id without a
    # `sticker` beside it is the old form alone: it is a sticker too. One part per sticker.
    has_sticker = any(a.get("type") == "sticker" for a in atts)
    seen: set[str] = set()
    parts: list[Part] = []
    first_sticker: str | None = None
    for att in atts:
        kind = _text(att.get("type"))
        payload = _obj(att.get("payload"))
        url = _url(payload.get("url"))
        if kind == "image" and has_sticker:
            continue
        sticker_id = _id(payload.get("sticker_id"))
        if kind == "image" and sticker_id is None:
            sticker_id = message_sticker_id  # the old form put it on the message
        if kind == "sticker" or (kind == "image" and sticker_id is not None):
            key = sticker_id or url
            if key is None or key in seen:
                continue
            seen.add(key)
            name = None if url else f"sticker {sticker_id}"
            parts.append(MediaPart(type="sticker", url=url, name=name))
            first_sticker = first_sticker or key
            continue
        part = _one_attachment(kind, att, payload, url)
        if part is not None:
            parts.append(part)
    return parts, first_sticker


def _one_attachment(
    kind: str, att: dict[str, Any], payload: dict[str, Any], url: str | None
) -> Part | None:
    try:
        if kind in _MEDIA:
            if url is None:
                return None
            name = _file_name(url) if kind == "file" else None
            return MediaPart(type=kind, url=url, name=name)
        if kind == "fallback":
            # Shared links. Older payloads put url/title on the attachment itself; shares
            # Meta cannot describe come without a payload.
            link = url or _url(att.get("url"))
            title = _text(payload.get("title")) or _text(att.get("title")) or None
            if link is not None:
                return LinkPart(url=link, title=title)
            return TextPart(text=title) if title else None
        if kind in _SHARES:
            if url is None:
                return TextPart(text=f"[{_SHARES[kind]}]")
            title = _text(payload.get("title")) or _SHARES[kind]
            return LinkPart(url=url, title=title)
        if kind == "location":
            coords = _obj(payload.get("coordinates"))
            lat, lon = coords.get("lat"), coords.get("long")
            if _is_number(lat) and _is_number(lon):
                return LocationPart(latitude=lat, longitude=lon)
            return None
        if kind == "template":
            summary = _template_text(payload)
            return TextPart(text=summary) if summary else None
    except ValidationError:
        return None
    label = _clean(kind)[:40] or "attachment"
    title = _text(att.get("title")) or _text(payload.get("title"))
    bits = [f"[{label}]", *(b for b in (title, url) if b)]
    return TextPart(text=" ".join(bits))


def _template_text(payload: dict[str, Any]) -> str:
    """A readable rendering of a template the page sent (echoes only)."""
    kind = _text(payload.get("template_type")) or "template"
    lines = [f"[template: {kind}]"]
    text = _text(payload.get("text"))
    if text:
        lines.append(text)
    elements = payload.get("elements")
    for element in elements if isinstance(elements, list) else []:
        element = _obj(element)
        line = " - ".join(
            b for b in (_text(element.get("title")), _text(element.get("subtitle"))) if b
        )
        if line:
            lines.append(line)
    buttons = payload.get("buttons")
    for button in buttons if isinstance(buttons, list) else []:
        title = _text(_obj(button).get("title"))
        if title:
            lines.append(f"[{title}]")
    return "\n".join(lines)
