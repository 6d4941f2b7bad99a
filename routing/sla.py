"""SLA policies and their clocks. Pure: the caller stores a clock (``SlaClock.to_json``)
and gives the time.

A policy is matched by channel, priority and contact attributes (the first that matches,
in the file's order) and sets targets in business time of the channel's calendar:
``first_response`` (from the conversation's start to the first answer),
``next_response`` (from each later customer message that waits to the answer) and
``resolution`` (from the start to resolving it). Each target warns once at ``warn_at`` of
its length and breaches once at its end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel.durations import Duration
from routing.hours import Calendar

TARGETS = ("first_response", "next_response", "resolution")
TargetName = Literal["first_response", "next_response", "resolution"]


class SlaPolicySettings(BaseModel):
    """One ``[[sla_policies]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
    # Channel ids or types it covers (none: every channel).
    channels: list[str] = Field(default_factory=list)
    # Conversations of at least this priority.
    min_priority: Annotated[int, Field(ge=0, le=10)] = 0
    # Contact attributes that must all be equal (e.g. {tier = "gold"}).
    contact: dict[str, str | int | float | bool] = Field(default_factory=dict)
    first_response: Duration | None = None
    next_response: Duration | None = None
    resolution: Duration | None = None
    # sla.warning fires when this share of a target's business time has passed.
    warn_at: Annotated[float, Field(gt=0, lt=1)] = 0.8

    @model_validator(mode="after")
    def _some_target(self) -> SlaPolicySettings:
        if all(getattr(self, name) in (None, 0) for name in TARGETS):
            raise ValueError("a policy needs first_response, next_response or resolution")
        return self

    def target(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value or None

    def matches(
        self, channel_id: str, channel_type: str, priority: int, attributes: dict[str, Any]
    ) -> bool:
        if self.channels and channel_id not in self.channels and channel_type not in self.channels:
            return False
        if priority < self.min_priority:
            return False
        return all(attributes.get(k) == v for k, v in self.contact.items())


def match(
    policies: list[SlaPolicySettings],
    channel_id: str,
    channel_type: str,
    priority: int,
    attributes: dict[str, Any],
) -> SlaPolicySettings | None:
    """The first policy that covers a conversation."""
    for policy in policies:
        if policy.matches(channel_id, channel_type, priority, attributes):
            return policy
    return None


@dataclass
class Target:
    """One running or finished target. Times are Unix seconds; ``due`` / ``warn`` None
    when the calendar never gives the business time within its horizon."""

    start: float
    due: float | None
    warn: float | None
    met_at: float | None = None
    warned: bool = False
    breached: bool = False

    @property
    def running(self) -> bool:
        return self.met_at is None


@dataclass
class Alert:
    kind: Literal["warning", "breached"]
    target: str
    due: float | None
    start: float


@dataclass
class SlaClock:
    """A conversation's targets under its policy."""

    policy: str
    targets: dict[str, Target] = field(default_factory=dict)
    # Targets missed at least once, in the order they were missed.
    breached: list[str] = field(default_factory=list)

    # --- building ---------------------------------------------------------------------

    @classmethod
    def start(cls, policy: SlaPolicySettings, calendar: Calendar, at: float) -> SlaClock:
        clock = cls(policy.id)
        for name in ("first_response", "resolution"):
            clock._begin(policy, calendar, name, at)
        return clock

    def _begin(self, policy: SlaPolicySettings, calendar: Calendar, name: str, at: float) -> None:
        seconds = policy.target(name)
        if seconds is None:
            return
        self.targets[name] = Target(
            start=at,
            due=calendar.due(at, seconds),
            warn=calendar.due(at, seconds * policy.warn_at),
        )

    # --- what happens to the conversation ---------------------------------------------

    def customer_waits(self, policy: SlaPolicySettings, calendar: Calendar, at: float) -> bool:
        """A customer message that waits for an answer: the next response clock starts
        (unless the first response, or a next response, is still running)."""
        first = self.targets.get("first_response")
        if first is not None and first.running:
            return False
        current = self.targets.get("next_response")
        if current is not None and current.running:
            return False
        if policy.target("next_response") is None:
            return False
        self._begin(policy, calendar, "next_response", at)
        return True

    def answered(self, at: float) -> bool:
        """The business answered: running response targets are met."""
        changed = False
        for name in ("first_response", "next_response"):
            target = self.targets.get(name)
            if target is not None and target.running:
                target.met_at = at
                changed = True
        return changed

    def resolved(self, at: float) -> bool:
        """Resolved: every running target ends (a response owed is no longer owed)."""
        changed = False
        for target in self.targets.values():
            if target.running:
                target.met_at = at
                changed = True
        return changed

    def check(self, now: float) -> list[Alert]:
        """Warnings and breaches that are due now, each once; marks them."""
        alerts: list[Alert] = []
        for name in TARGETS:
            target = self.targets.get(name)
            if target is None or not target.running:
                continue
            if target.due is not None and now >= target.due and not target.breached:
                target.breached = True
                target.warned = True
                if name not in self.breached:
                    self.breached.append(name)
                alerts.append(Alert("breached", name, target.due, target.start))
            elif target.warn is not None and now >= target.warn and not target.warned:
                target.warned = True
                alerts.append(Alert("warning", name, target.due, target.start))
        return alerts

    def next_check(self) -> float | None:
        """When check() will next have something to say."""
        times = []
        for target in self.targets.values():
            if not target.running or target.breached:
                continue
            if not target.warned and target.warn is not None:
                times.append(target.warn)
            elif target.due is not None:
                times.append(target.due)
        return min(times) if times else None

    def met(self, name: str) -> bool | None:
        """Whether a finished target was kept (None: none, or still running)."""
        target = self.targets.get(name)
        if target is None or (target.running and not target.breached):
            return None
        return not target.breached

    # --- as stored ----------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "policy": self.policy,
                "breached": self.breached,
                "targets": {
                    name: {
                        "start": t.start,
                        "due": t.due,
                        "warn": t.warn,
                        "met_at": t.met_at,
                        "warned": t.warned,
                        "breached": t.breached,
                    }
                    for name, t in self.targets.items()
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SlaClock:
        data = json.loads(text)
        return cls(
            policy=data["policy"],
            breached=list(data.get("breached", [])),
            targets={name: Target(**t) for name, t in data.get("targets", {}).items()},
        )

    def due_times(self) -> dict[str, float | None]:
        """Each target's due time (None when it has none); a next response's only while
        one is owed."""
        out: dict[str, float | None] = {}
        for name in TARGETS:
            target = self.targets.get(name)
            owed = target is not None and (target.running or name != "next_response")
            out[name] = target.due if target is not None and owed else None
        return out
