"""The routing rules of one configuration, with what is worked out from them kept: the
escalation ladder of each rule, and the requirements stored with conversations (few
distinct ones, read again and again). Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping

from routing.engine import Engine
from routing.rules import AttributeValue, Classification, EscalationStep, Requirements, classify
from routing.settings import RoutingSettings

# Distinct stored requirements kept worked out (beyond, they are worked out each time).
REQUIREMENTS_KEPT = 10_000


class RuleBook:
    def __init__(self, settings: RoutingSettings) -> None:
        self.settings = settings
        self.engine = Engine(sticky_window=settings.sticky_window)
        self.rules = {r.name: r for r in settings.rules}
        self._ladders: dict[str | None, tuple[EscalationStep, ...]] = {}
        self._requirements: dict[tuple[str | None, str | None], Requirements] = {}

    def ladder(self, rule: str | None) -> tuple[EscalationStep, ...]:
        """The escalation ladder of a rule (the default one for no rule)."""
        found = self._ladders.get(rule)
        if found is None:
            matched = self.rules.get(rule) if rule else None
            if matched is not None and matched.escalation is not None:
                found = tuple(matched.escalation)
            else:
                found = tuple(self.settings.escalation)
            self._ladders[rule] = found
        return found

    def requirements(self, skills_json: str | None, language: str | None) -> Requirements:
        """The base requirements stored with a conversation ({skill: level} as JSON)."""
        key = (skills_json, language)
        found = self._requirements.get(key)
        if found is None:
            skills = json.loads(skills_json) if skills_json else {}
            found = Requirements(skills=tuple(sorted(skills.items())), language=language)
            if len(self._requirements) < REQUIREMENTS_KEPT:
                self._requirements[key] = found
        return found

    def classify(
        self,
        *,
        channel_id: str,
        channel_type: str,
        text: str,
        declared_language: str | None,
        attributes: Mapping[str, AttributeValue],
    ) -> Classification:
        """What a new conversation needs, by the rules."""
        return classify(
            self.settings.rules,
            self.settings.escalation,
            channel_id=channel_id,
            channel_type=channel_type,
            text=text,
            declared_language=declared_language,
            attributes=attributes,
        )
