"""Pure rendering of Send API request bodies: parts, text splitting, the messaging window.

Nothing here does I/O. :func:`requests_for` turns one outbound message into the ordered
Send API bodies that deliver it; each carries a metadata marker naming our message and
its position, so the echo Meta sends back can be matched to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from connectors.degrade import as_text
from connectors.errors import WindowClosed
from connectors.facebook.parse import MARKER_PREFIX
from connectors.textsplit import split_text
from connectors.windows import hours_ago
from kernel.models import ChoicesPart, MediaPart, Part, ReplyWindow, TextPart, WindowState

# Meta's Send API text limit is 2,000 characters. Whether it counts code points or UTF-16
# code units is not documented; UTF-16 units are never fewer, so counting them is safe
# under both readings (an emoji is one character but two units).
TEXT_LIMIT = 2000
RESPONSE_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000

SenderAction = Literal["typing_on", "typing_off", "mark_seen"]
_ATTACHMENT_TYPES = {"image": "image", "audio": "audio", "video": "video", "file": "file"}


# --- the 24-hour window -------------------------------------------------------------------


def reply_window(
    last_inbound_at: datetime | None, now: datetime, *, human_agent_tag: bool
) -> ReplyWindow:
    """Messenger's window (channels.md 1.7): open for 24 hours after the customer's last
    message; then, with the Human Agent permission, ``tag_only`` (MESSAGE_TAG +
    HUMAN_AGENT) up to 7 days; then closed until the customer writes again."""
    if last_inbound_at is None:
        return ReplyWindow(
            state=WindowState.CLOSED,
            reason="the customer has not written to the Page here: Messenger lets the "
            "business answer only after the customer writes",
        )
    age = now - last_inbound_at
    if age < RESPONSE_WINDOW:
        return ReplyWindow(
            state=WindowState.OPEN,
            closes_at=last_inbound_at + RESPONSE_WINDOW,
            reason="within 24 hours of the customer's last message",
        )
    if age < HUMAN_AGENT_WINDOW and human_agent_tag:
        return ReplyWindow(
            state=WindowState.TAG_ONLY,
            closes_at=last_inbound_at + HUMAN_AGENT_WINDOW,
            reason="beyond 24 hours of the customer's last message: only a human agent may "
            "answer (HUMAN_AGENT tag), up to 7 days",
        )
    hours = hours_ago(last_inbound_at, now)
    if human_agent_tag:
        why = f"the customer last wrote {hours} hours ago, beyond the 7-day human agent window"
    elif age < HUMAN_AGENT_WINDOW:
        why = (
            f"the customer last wrote {hours} hours ago, beyond the 24-hour window "
            "(human_agent_tag is off for this channel: with Meta's Human Agent permission "
            "and human_agent_tag = true, a human agent could answer up to 7 days)"
        )
    else:
        why = f"the customer last wrote {hours} hours ago, beyond the 24-hour window"
    return ReplyWindow(state=WindowState.CLOSED, reason=why)


def messaging_type(
    last_inbound_at: datetime | None, now: datetime, *, human_agent_tag: bool
) -> dict[str, str]:
    """The messaging_type (and tag) fields for a reply; raises WindowClosed when no reply
    may go out (:func:`reply_window`).

    When the gateway never saw the customer write (a conversation opened by a reply from
    the Page inbox), it cannot know the window: the reply goes as RESPONSE and Meta, which
    knows, accepts it or answers "outside of allowed window" (mapped to WindowClosed by the
    client).
    """
    if last_inbound_at is None:
        return {"messaging_type": "RESPONSE"}
    window = reply_window(last_inbound_at, now, human_agent_tag=human_agent_tag)
    if window.state == WindowState.OPEN:
        return {"messaging_type": "RESPONSE"}
    if window.state == WindowState.TAG_ONLY:
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    raise WindowClosed(f"window_closed: {window.reason}")


# --- Send API bodies ------------------------------------------------------------------------


@dataclass(frozen=True)
class QuickReply:
    title: str
    payload: str


def marker(message_id: str, index: int, total: int) -> str:
    """Send API metadata naming our message and this request's place (1-based) in it."""
    return f"{MARKER_PREFIX}{message_id}:{index}/{total}"


def sendable(part: Part) -> bool:
    """An attachment the Send API takes (by URL, or uploaded first)."""
    return isinstance(part, MediaPart) and part.type in _ATTACHMENT_TYPES and bool(part.url)


def _units(
    parts: Sequence[Part], language: str | None, uploaded: Mapping[int, str]
) -> list[str | tuple[MediaPart, str | None]]:
    """Texts (adjacent ones merged) and sendable attachments (with the attachment_id an
    upload gave), in order."""
    units: list[str | tuple[MediaPart, str | None]] = []
    for index, part in enumerate(parts):
        unit: str | tuple[MediaPart, str | None]
        if isinstance(part, MediaPart) and sendable(part) and index in uploaded:
            unit = (part, uploaded[index])
        elif (
            isinstance(part, MediaPart)
            and sendable(part)
            and (part.url or "").lower().startswith(("https://", "http://"))
        ):
            unit = (part, None)
        elif isinstance(part, ChoicesPart):
            # The question; its answers ride as quick replies (choice_options). Titles too
            # long for a chip are listed in the text, numbered, and the chips say the numbers.
            short = all(len(c.title) <= QUICK_REPLY_TITLE_MAX for c in part.choices)
            unit = part.text if short else as_text(part, language)
        else:
            # Meta fetches attachments by URL: one it cannot reach (a path on this server
            # without public_url) and that was not uploaded goes as text, like any part
            # the channel cannot show.
            unit = part.text if isinstance(part, TextPart) else as_text(part, language)
        if isinstance(unit, str) and units and isinstance(units[-1], str):
            units[-1] = units[-1] + "\n" + unit
        else:
            units.append(unit)
    return units


def _message_bodies(
    parts: Sequence[Part], language: str | None, uploaded: Mapping[int, str]
) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for unit in _units(parts, language, uploaded):
        if isinstance(unit, tuple):
            part, attachment_id = unit
            kind = _ATTACHMENT_TYPES[part.type]
            payload = {"attachment_id": attachment_id} if attachment_id else {"url": part.url}
            bodies.append({"attachment": {"type": kind, "payload": payload}})
        else:
            bodies.extend({"text": chunk} for chunk in split_text(unit, TEXT_LIMIT))
    return bodies


def quick_replies(options: Sequence[QuickReply]) -> list[dict[str, str]]:
    """Send API quick_replies (text chips), trimmed to Meta's limits."""
    return [
        {
            "content_type": "text",
            "title": o.title[:QUICK_REPLY_TITLE_MAX],
            "payload": o.payload[:QUICK_REPLY_PAYLOAD_MAX] or o.title[:QUICK_REPLY_TITLE_MAX],
        }
        for o in options[:QUICK_REPLIES_MAX]
        if o.title
    ]


def choice_options(parts: Sequence[Part]) -> list[QuickReply]:
    """Quick replies for the message's (last) choices part: one per answer, its payload the
    choice id (the pick comes back with it); numbered chips when a title is too long for
    one (Meta caps quick reply and button titles alike at 20 characters, so a button
    template would not show them either)."""
    found = [p for p in parts if isinstance(p, ChoicesPart)]
    if not found:
        return []
    choices = found[-1].choices[:QUICK_REPLIES_MAX]
    short = all(len(c.title) <= QUICK_REPLY_TITLE_MAX for c in found[-1].choices)
    return [
        QuickReply(title=c.title if short else str(n), payload=c.id)
        for n, c in enumerate(choices, 1)
    ]


def requests_for(
    psid: str,
    parts: Sequence[Part],
    *,
    message_id: str,
    window: dict[str, str],
    options: Sequence[QuickReply] = (),
    language: str | None = None,
    uploaded: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """The Send API bodies that deliver one message, in order.

    Text beyond the limit becomes several requests; each attachment is a request of its
    own. Quick replies ride on the last request, so they show under the whole message.
    """
    messages = _message_bodies(parts, language, uploaded or {})
    options = [*options, *choice_options(parts)]
    if messages and options:
        chips = quick_replies(options)
        if chips:
            messages[-1]["quick_replies"] = chips
    total = len(messages)
    return [
        {
            "recipient": {"id": psid},
            **window,
            "message": {**message, "metadata": marker(message_id, i, total)},
        }
        for i, message in enumerate(messages, start=1)
    ]


def sender_action(psid: str, action: SenderAction) -> dict[str, Any]:
    """A typing indicator or seen receipt: its own request, with only the recipient."""
    return {"recipient": {"id": psid}, "sender_action": action}


def pass_thread_control(psid: str, app_id: str, metadata: str | None) -> dict[str, Any]:
    """POST /{page_id}/pass_thread_control: the thread goes to another app (a bot's)."""
    body: dict[str, Any] = {"recipient": {"id": psid}, "target_app_id": app_id}
    if metadata:
        body["metadata"] = metadata[:1000]
    return body


def take_thread_control(psid: str, metadata: str | None) -> dict[str, Any]:
    """POST /{page_id}/take_thread_control: this app (the primary receiver) takes the
    thread back from whichever app holds it."""
    body: dict[str, Any] = {"recipient": {"id": psid}}
    if metadata:
        body["metadata"] = metadata[:1000]
    return body
