"""Canned replies: which language variant of a template a conversation gets, and filling
in its ``{{variables}}``.

A variable is ``{{name}}`` with letters, digits, ``_`` and dots (``{{contact.display_name}}``,
``{{order_id}}``); anything else between braces is left as it is. The gateway knows
``contact.display_name``, ``contact.email``, ``contact.phone``, ``agent.name`` and
``agent.id``; the sender gives the others. Values are text: they are put in as they are,
once (a value holding ``{{x}}`` or markup is not read again), and every variable of the
template must have a value, or nothing is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from kernel.errors import Invalid
from kernel.models import (
    MAX_TEXT,
    Agent,
    ChoicesPart,
    Contact,
    LinkPart,
    Part,
    Template,
    TextPart,
)
from kernel.text import clean_text

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


def variant(family: Sequence[Template], chosen: Template, language: str | None) -> Template:
    """The variant of ``chosen`` to send in a conversation in ``language``: the one of that
    language, else the one of its base language (``vi`` for ``vi-VN``), else ``chosen``."""
    if language:
        wanted = language.lower()
        by_language = {t.language.lower(): t for t in family if t.name == chosen.name}
        for key in (wanted, wanted.split("-")[0]):
            if key in by_language:
                return by_language[key]
    return chosen


def known_values(contact: Contact | None, agent: Agent | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if contact is not None:
        for key in ("display_name", "email", "phone"):
            value = getattr(contact, key)
            if value:
                values[f"contact.{key}"] = value
    if agent is not None:
        values["agent.id"] = agent.id
        if agent.name:
            values["agent.name"] = agent.name
    return values


def names_in(template: Template) -> list[str]:
    """The variables a template uses, in the order they first appear."""
    seen: dict[str, None] = {}
    for text in _texts(template):
        for match in VARIABLE.finditer(text):
            seen.setdefault(match.group(1))
    return list(seen)


def render(template: Template, values: Mapping[str, str]) -> list[Part]:
    """The template's parts with every variable filled in; 422 ``missing_variable`` naming
    the ones without a value, 422 ``text_too_long`` when a filled text is too long."""
    missing = [name for name in names_in(template) if name not in values]
    if missing:
        raise Invalid(
            "no value for " + ", ".join(f"{{{{{name}}}}}" for name in missing),
            code="missing_variable",
            details={"missing": missing},
        )

    def fill(text: str) -> str:
        filled = clean_text(VARIABLE.sub(lambda m: values[m.group(1)], text))
        if len(filled) > MAX_TEXT:
            raise Invalid(
                f"the filled-in template is longer than {MAX_TEXT} characters",
                code="text_too_long",
            )
        return filled

    if template.text is not None:
        return [TextPart(text=fill(template.text))]
    parts: list[Part] = []
    for part in template.parts or []:
        if isinstance(part, TextPart):
            parts.append(TextPart(text=fill(part.text)))
        elif isinstance(part, ChoicesPart):
            parts.append(
                part.model_copy(
                    update={
                        "text": fill(part.text),
                        "choices": [
                            c.model_copy(update={"title": fill(c.title)}) for c in part.choices
                        ],
                    }
                )
            )
        elif isinstance(part, LinkPart) and part.title is not None:
            parts.append(part.model_copy(update={"title": fill(part.title)}))
        else:
            parts.append(part)
    return parts


def _texts(template: Template) -> list[str]:
    if template.text is not None:
        return [template.text]
    texts: list[str] = []
    for part in template.parts or []:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ChoicesPart):
            texts.append(part.text)
            texts.extend(c.title for c in part.choices)
        elif isinstance(part, LinkPart) and part.title is not None:
            texts.append(part.title)
    return texts
