"""Routing rules: what a new conversation needs, decided from its first message.

Rules are tried in order; the first whose every given criterion matches wins (within a
criterion, any listed value matches). The rule sets required skills (with minimum
levels), the language agents must speak, the priority, and the escalation ladder that
relaxes those requirements while the conversation waits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel.durations import Duration
from routing.language import detect_language, strip_diacritics

Level = Annotated[int, Field(ge=1, le=10)]
AttributeValue = str | int | float | bool


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Config):
    # Channel ids or channel types ("zalo").
    channels: list[str] = Field(default_factory=list)
    # The conversation's language: declared by the channel, else detected ("vi", "en").
    languages: list[str] = Field(default_factory=list)
    # Words or phrases of the first message; case and diacritics do not matter
    # ("hoá đơn" matches "Hóa đơn" and "hoa don"), whole words only.
    keywords: list[str] = Field(default_factory=list)
    # Contact attributes that must equal the value (or be one of the listed values).
    contact: dict[str, AttributeValue | list[AttributeValue]] = Field(default_factory=dict)


class EscalationStep(_Config):
    """After waiting ``after``, accept agents under relaxed requirements."""

    after: Duration
    # Cap every required skill level at this (e.g. accept level 2 instead of 3).
    min_level: Level | None = None
    # Replace the required skills (e.g. the whole team: {support = 1}).
    skills: dict[str, Level] | None = None
    # Stop requiring the conversation's language.
    drop_language: bool = False
    # Any online agent with capacity.
    any_agent: bool = False


class Rule(_Config):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    match: Match = Match()
    skills: dict[str, Level] = Field(default_factory=dict)
    # The language agents must speak; default: the conversation's own language.
    language: str | None = None
    priority: Annotated[int, Field(ge=0, le=10)] = 0
    # Overrides [routing].escalation for conversations this rule matched.
    escalation: list[EscalationStep] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Rule:
        _check_ladder(self.escalation or [])
        return self


def _check_ladder(steps: Sequence[EscalationStep]) -> None:
    afters = [s.after for s in steps]
    if afters != sorted(afters):
        raise ValueError("escalation steps must be in order of `after`")


@dataclass(frozen=True, slots=True)
class Requirements:
    """What an agent must have to take a conversation."""

    skills: tuple[tuple[str, int], ...] = ()
    language: str | None = None
    any_agent: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "skills": dict(self.skills),
            "language": self.language,
            "any_agent": self.any_agent,
        }


@dataclass(frozen=True, slots=True)
class Classification:
    rule: str | None
    requirements: Requirements
    priority: int
    language: str | None
    ladder: tuple[EscalationStep, ...]


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", strip_diacritics(text))) + " "


# A rule's keywords are the same for every message: normalised once.
_keyword = lru_cache(maxsize=4096)(_words)


def _attribute_matches(
    actual: AttributeValue | None, wanted: AttributeValue | list[AttributeValue]
) -> bool:
    if isinstance(wanted, list):
        return actual in wanted
    return actual == wanted


def matches(
    rule: Rule,
    *,
    channel_id: str,
    channel_type: str,
    language: str | None,
    words: str,
    attributes: Mapping[str, AttributeValue],
) -> bool:
    m = rule.match
    if m.channels and channel_id not in m.channels and channel_type not in m.channels:
        return False
    if m.languages and language not in m.languages:
        return False
    if m.keywords and not any(_keyword(k) in words for k in m.keywords):
        return False
    return all(_attribute_matches(attributes.get(k), v) for k, v in m.contact.items())


def classify(
    rules: Sequence[Rule],
    default_ladder: Sequence[EscalationStep],
    *,
    channel_id: str,
    channel_type: str,
    text: str,
    declared_language: str | None,
    attributes: Mapping[str, AttributeValue],
) -> Classification:
    """What a conversation needs, from its channel, first message and contact."""
    language = declared_language or detect_language(text)
    words = _words(text)
    for rule in rules:
        if matches(
            rule,
            channel_id=channel_id,
            channel_type=channel_type,
            language=language,
            words=words,
            attributes=attributes,
        ):
            required_language = rule.language or language
            return Classification(
                rule=rule.name,
                requirements=Requirements(
                    skills=tuple(sorted(rule.skills.items())), language=required_language
                ),
                priority=rule.priority,
                language=required_language,
                ladder=tuple(rule.escalation if rule.escalation is not None else default_ladder),
            )
    return Classification(
        rule=None,
        requirements=Requirements(language=language),
        priority=0,
        language=language,
        ladder=tuple(default_ladder),
    )


def effective(
    base: Requirements, ladder: Sequence[EscalationStep], waited: float
) -> tuple[Requirements, int]:
    """Requirements after ``waited`` seconds in the queue, and how many steps applied."""
    current = base
    applied = 0
    for step in ladder:
        # a step starts at its moment exactly, whatever float rounding did to `waited`
        if waited + 1e-6 < step.after:
            break
        applied += 1
        if step.any_agent:
            current = Requirements(any_agent=True)
            continue
        skills = dict(current.skills)
        if step.skills is not None:
            skills = dict(step.skills)
        if step.min_level is not None:
            skills = {name: min(level, step.min_level) for name, level in skills.items()}
        current = Requirements(
            skills=tuple(sorted(skills.items())),
            language=None if step.drop_language else current.language,
            any_agent=current.any_agent,
        )
    return current, applied


def next_step_at(queued_at: float, ladder: Sequence[EscalationStep], now: float) -> float | None:
    """When the next escalation step starts to apply, or None when all have."""
    for step in ladder:
        at = queued_at + step.after
        if at > now:
            return at
    return None
