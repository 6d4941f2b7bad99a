"""Which answer a customer picked, when the business asked them to choose.

The question is the ``choices`` part of the conversation's latest message from the
business. A pick is recognised by what the channel sends back: the choice id (the
widget's ``choice_id``, a Messenger quick reply's payload), or, when the customer
answers the question with their next message, its number ("2", "2.") or its title
(case and Vietnamese diacritics ignored: "da nhan" picks "Đã nhận"). The pick is kept in
``metadata.choice`` as ``{id, title}``; the customer's words stay the message's text.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter

from gateway.store.records import Asked
from kernel.models import Choice, ChoicesPart, Part
from routing.language import strip_diacritics

_parts = TypeAdapter(list[Part])
_NUMBER = re.compile(r"^\s*#?(\d{1,2})\s*[.)]?\s*$")
_SPACES = re.compile(r"\s+")
# The widget's way of naming its pick (kept only until it is matched).
CHOICE_ID = "choice_id"


def question(asked: Asked | None) -> ChoicesPart | None:
    """The choices part of the business's latest message, if it asked something."""
    if asked is None or '"choices"' not in asked.parts_json:
        return None
    found = [p for p in _parts.validate_json(asked.parts_json) if isinstance(p, ChoicesPart)]
    return found[-1] if found else None


def _fold(text: str) -> str:
    return _SPACES.sub(" ", strip_diacritics(text)).strip(" .!?")


def pick(
    asked: ChoicesPart, text: str, metadata: dict[str, Any], *, first_answer: bool
) -> Choice | None:
    """The answer this message picks, or None. An id from the channel always counts; a
    number or a title only as the first answer after the question."""
    by_id = {c.id: c for c in asked.choices}
    for key in (CHOICE_ID, "payload"):
        given = metadata.get(key)
        if isinstance(given, str) and given in by_id:
            return by_id[given]
    if not first_answer:
        return None
    number = _NUMBER.match(text)
    if number is not None:
        n = int(number.group(1))
        return asked.choices[n - 1] if 1 <= n <= len(asked.choices) else None
    folded = _fold(text)
    matches = [c for c in asked.choices if _fold(c.title) == folded]
    return matches[0] if len(matches) == 1 else None


def answered(asked: Asked | None, text: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The inbound message's metadata with the pick (``choice``) when it is one; the
    widget's ``choice_id`` is dropped either way (the match replaces it)."""
    kept = {k: v for k, v in metadata.items() if k != CHOICE_ID}
    found = question(asked)
    if found is None or asked is None:
        return kept
    choice = pick(found, text, metadata, first_answer=not asked.answered)
    if choice is not None:
        kept["choice"] = {"id": choice.id, "title": choice.title}
    return kept
