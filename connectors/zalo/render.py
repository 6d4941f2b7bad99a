"""Pure rendering of Zalo customer-service ("tư vấn") message bodies (channels.md 2.3).

Nothing here does I/O. :func:`plan` turns an agent's reply into ordered steps: text
chunks, and attachments that the connector uploads before sending them. The ``*_body``
functions build the JSON for ``POST /v3.0/oa/message/cs`` once an upload has given its
attachment id or token.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from connectors.degrade import as_text
from connectors.textsplit import split_text
from connectors.windows import hours_ago
from kernel.models import (
    ChoicesPart,
    MediaPart,
    Part,
    ReplyWindow,
    TemplatePart,
    TextPart,
    WindowState,
)
from kernel.text import clean_text

# Zalo's CS text limit is reported as 2,000 characters (channels.md 2.3). Counting UTF-16
# units (never fewer than characters) stays under it whatever Zalo counts, after NFC.
TEXT_LIMIT = 2000
# What the upload endpoints take: jpg/png images, gifs, and PDF/DOC/DOCX/CSV files.
FILE_TYPES = {
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "csv": "text/csv",
}

UploadKind = Literal["image", "gif", "file"]

# channels.md 2.7: CS messages are free for 48 hours after the customer's last interaction,
# billable up to 7 days, refused after (-230).
FREE_WINDOW = timedelta(hours=48)
CS_WINDOW = timedelta(days=7)


def reply_window(last_inbound_at: datetime | None, now: datetime, *, zns: bool) -> ReplyWindow:
    """Zalo's window: customer-service messages up to 7 days after the customer's last
    interaction (free for the first 48 hours: ``free_until``); after that only a ZNS
    template to the customer's phone (``zns``: configured, and the phone is known)."""
    if last_inbound_at is not None and now - last_inbound_at < CS_WINDOW:
        free_until = last_inbound_at + FREE_WINDOW
        return ReplyWindow(
            state=WindowState.OPEN,
            closes_at=last_inbound_at + CS_WINDOW,
            free_until=free_until,
            reason="within 48 hours of the customer's last interaction (free)"
            if now < free_until
            else "within 7 days of the customer's last interaction (billable)",
        )
    if last_inbound_at is None:
        why = "the customer has not interacted with the OA here"
    else:
        why = (
            f"the customer last interacted {hours_ago(last_inbound_at, now)} hours ago, "
            "beyond Zalo's 7 days"
        )
    if zns:
        return ReplyWindow(
            state=WindowState.TEMPLATE_ONLY, reason=f"{why}: only a ZNS template may go out"
        )
    return ReplyWindow(
        state=WindowState.CLOSED,
        reason=f"{why}; a ZNS template needs zns_templates on the channel and the customer's phone",
    )


def zns_phone(phone: str) -> str:
    """ZNS's phone form: E.164 without the plus (``84912345678``)."""
    return phone.removeprefix("+")


def zns_body(
    part: TemplatePart, phone: str, templates: Mapping[str, str], tracking_id: str
) -> dict[str, Any]:
    """The body of ``POST /message/template`` on the ZNS API."""
    return {
        "phone": zns_phone(phone),
        "template_id": templates[part.name],
        "template_data": dict(part.data),
        "tracking_id": tracking_id,
    }


@dataclass(frozen=True)
class TextStep:
    text: str


@dataclass(frozen=True)
class MediaStep:
    """An image or file part that goes out as an attachment (uploaded first)."""

    part: MediaPart


@dataclass(frozen=True)
class ChoicesStep:
    """A question with its answers as buttons (``choices_body``)."""

    part: ChoicesPart


@dataclass(frozen=True)
class TemplateStep:
    """A template part: a ZNS message to the customer's phone."""

    part: TemplatePart


Step = TextStep | MediaStep | ChoicesStep | TemplateStep

# Buttons under a CS message: at most this many, titles cut to this length ([3rd-party]:
# the limits are not on an official page; more answers go as a numbered list instead).
BUTTONS_MAX = 5
BUTTON_TITLE_MAX = 100


def plan(parts: Sequence[Part], language: str | None = None) -> list[Step]:
    """The steps that deliver one reply, in order. Adjacent texts are merged; text over
    the limit becomes several steps; image and file parts become attachments."""
    units: list[str | MediaPart | ChoicesPart | TemplatePart] = []
    for part in parts:
        unit: str | MediaPart | TemplatePart
        if isinstance(part, TemplatePart) or (
            isinstance(part, MediaPart) and part.type in ("image", "file") and part.url
        ):
            unit = part
        elif (
            isinstance(part, ChoicesPart)
            and len(part.choices) <= BUTTONS_MAX
            and len(part.text) <= TEXT_LIMIT
        ):
            units.append(part)
            continue
        else:
            unit = part.text if isinstance(part, TextPart) else as_text(part, language)
            unit = clean_text(unit)
        if isinstance(unit, str) and units and isinstance(units[-1], str):
            units[-1] = units[-1] + "\n" + unit
        else:
            units.append(unit)
    steps: list[Step] = []
    for planned in units:
        if isinstance(planned, TemplatePart):
            steps.append(TemplateStep(planned))
        elif isinstance(planned, MediaPart):
            steps.append(MediaStep(planned))
        elif isinstance(planned, ChoicesPart):
            steps.append(ChoicesStep(planned))
        else:
            steps.extend(TextStep(chunk) for chunk in split_text(planned, TEXT_LIMIT))
    return steps


# --- what an attachment is ------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    kind: UploadKind
    name: str
    mime: str
    width: int | None = None
    height: int | None = None


def upload_for(part: MediaPart, content: bytes) -> Upload | None:
    """How Zalo takes these bytes, or None when no upload endpoint takes them."""
    name = part.name or _name_from_url(part.url) or ("image" if part.type == "image" else "file")
    if part.type == "image":
        if content[:6] in (b"GIF87a", b"GIF89a") and len(content) >= 10:
            width, height = struct.unpack("<HH", content[6:10])
            return Upload("gif", name, "image/gif", width, height)
        if content[:8] == b"\x89PNG\r\n\x1a\n":
            return Upload("image", name, "image/png")
        if content[:3] == b"\xff\xd8\xff":
            return Upload("image", name, "image/jpeg")
        return None
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension in FILE_TYPES:
        return Upload("file", name, FILE_TYPES[extension])
    return None


def _name_from_url(url: str | None) -> str | None:
    if not url:
        return None
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return name[:255] or None


# --- request bodies -------------------------------------------------------------------------


def _recipient(user_id: str) -> dict[str, str]:
    return {"user_id": user_id}


def text_body(user_id: str, text: str, *, quote: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"text": text}
    if quote:
        message["quote_message_id"] = quote
    return {"recipient": _recipient(user_id), "message": message}


def choices_body(user_id: str, part: ChoicesPart) -> dict[str, Any]:
    """The question with one ``oa.query.show`` button per answer. A tap sends the button's
    payload back as the customer's own text message (shown in the chat as theirs): the
    payload is the answer's title, so the customer sees what they picked and the pick is
    matched by its title."""
    buttons = [
        {"title": c.title[:BUTTON_TITLE_MAX], "type": "oa.query.show", "payload": c.title}
        for c in part.choices
    ]
    return {
        "recipient": _recipient(user_id),
        "message": {
            "text": clean_text(part.text),
            "attachment": {"type": "template", "payload": {"buttons": buttons}},
        },
    }


def media_body(
    user_id: str,
    *,
    attachment_id: str | None = None,
    url: str | None = None,
    gif: bool = False,
    width: int | None = None,
    height: int | None = None,
) -> dict[str, Any]:
    """An image (or gif) message: a ``media`` template with one element."""
    element: dict[str, Any] = {"media_type": "gif" if gif else "image"}
    if attachment_id is not None:
        element["attachment_id"] = attachment_id
    elif url is not None:
        element["url"] = url
    else:
        raise ValueError("an image needs an attachment_id or a url")
    if width is not None and height is not None:
        element["width"], element["height"] = width, height
    return {
        "recipient": _recipient(user_id),
        "message": {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "media", "elements": [element]},
            }
        },
    }


def file_body(user_id: str, token: str) -> dict[str, Any]:
    return {
        "recipient": _recipient(user_id),
        "message": {"attachment": {"type": "file", "payload": {"token": token}}},
    }
