"""The one place where message parts a channel cannot show become text."""

from __future__ import annotations

from collections.abc import Iterable

from connectors.base import Capability
from kernel.models import (
    ChoicesPart,
    LinkPart,
    LocationPart,
    MediaPart,
    Part,
    TemplatePart,
    TextPart,
)
from kernel.texts import system_text

_PART_CAPABILITY = {
    "text": Capability.TEXT,
    "image": Capability.IMAGE,
    "audio": Capability.AUDIO,
    "video": Capability.VIDEO,
    "file": Capability.FILE,
    "sticker": Capability.STICKER,
    "location": Capability.LOCATION,
    "link": Capability.LINK,
    "choices": Capability.CHOICES,
    "template": Capability.TEMPLATE,
}


def as_text(part: Part, language: str | None = None) -> str:
    """A readable text rendering of any part; media are named in the conversation's
    ``language`` ("[Hình ảnh]", "[Image]")."""
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, LinkPart):
        return f"{part.title}: {part.url}" if part.title else part.url
    if isinstance(part, LocationPart):
        lat, lon = part.latitude, part.longitude
        return f"📍 {lat}, {lon} https://www.openstreetmap.org/?mlat={lat}&mlon={lon}"
    if isinstance(part, ChoicesPart):
        # A numbered list: the customer answers with the number or the words.
        lines = [part.text, *(f"{n}. {c.title}" for n, c in enumerate(part.choices, 1))]
        return "\n".join(lines)
    if isinstance(part, TemplatePart):
        return f"[Template] {part.name}"
    label = system_text(part.type, language)
    bits = [f"[{label}]"]
    if part.name:
        bits.append(part.name)
    if part.url:
        bits.append(part.url)
    return " ".join(bits)


def degrade(
    parts: Iterable[Part], capabilities: frozenset[Capability], language: str | None = None
) -> list[Part]:
    """Keep the parts the channel can show; turn the others into text.

    Adjacent text (original or degraded) is merged into one text part, so a channel that
    sends one request per part does not split a sentence from the link it introduces.
    """
    out: list[Part] = []
    for part in parts:
        if _PART_CAPABILITY[part.type] in capabilities:
            kept: Part = part
        elif isinstance(part, TemplatePart):
            continue  # refused before it was stored (unsupported_part); never shown as text
        else:
            if isinstance(part, MediaPart) and not part.url and not part.name:
                continue  # nothing a reader could use
            kept = TextPart(text=as_text(part, language))
        if isinstance(kept, TextPart) and out and isinstance(out[-1], TextPart):
            out[-1] = TextPart(text=out[-1].text + "\n" + kept.text)
        else:
            out.append(kept)
    return out
