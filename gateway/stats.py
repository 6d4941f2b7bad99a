"""Support figures per channel (GET /v1/stats): FRT, ART, FCR, SLA breaches, the queue.

Definitions, over a window [since, until):

- FRT, first response time: for conversations opened in the window, from the customer's
  first message to the first agent reply, if that came before `until`. Those not
  answered by then are counted as `unanswered`, not guessed.
- ART, average resolution time: for conversations resolved in the window, from opening
  to resolution (the last resolution in the window, if one was reopened and resolved
  again).
- FCR, first contact resolution: of the conversations resolved in the window, the share
  that were never reopened and never transferred to another agent.
- SLA breaches: `sla.breached` events in the window.
- SLA compliance, per policy: of the conversations opened in the window under an SLA
  policy, each target (first response, next response, resolution) kept or missed as
  its clock stands now (a target still running and not yet missed is neither); a
  conversation complies when every target it had was kept.
- Queue wait: for conversations opened in the window, from opening to the first
  assignment to an agent. Queue length and the longest current wait are as of now.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from gateway.store.records import ChannelSamples
from routing.sla import TARGETS, SlaClock


class Durations(BaseModel):
    count: int = Field(description="How many durations the figures are made of.")
    average_seconds: float | None = Field(description="Mean; null when count is 0.")
    median_seconds: float | None
    p90_seconds: float | None = Field(description="90th percentile (nearest rank).")
    max_seconds: float | None


class FirstResponse(Durations):
    unanswered: int = Field(
        description="Conversations opened in the window with no agent reply before its end."
    )


class FirstContactResolution(BaseModel):
    resolved: int = Field(description="Conversations resolved in the window.")
    first_contact: int = Field(description="... of which never reopened nor transferred.")
    rate: float | None = Field(description="first_contact / resolved; null when none.")


class QueueWait(Durations):
    oldest_waiting_seconds: float | None = Field(
        description="How long the longest-waiting queued conversation has waited, now."
    )


class TargetCompliance(BaseModel):
    kept: int = Field(description="Targets met in time.")
    missed: int = Field(description="Targets breached.")
    rate: float | None = Field(description="kept / (kept + missed); null when none.")


class SlaCompliance(BaseModel):
    policy: str
    conversations: int = Field(description="Opened in the window under this policy.")
    compliant: int = Field(description="... every target kept (all finished).")
    breached: int = Field(description="... at least one target missed.")
    rate: float | None = Field(description="compliant / (compliant + breached).")
    first_response: TargetCompliance
    next_response: TargetCompliance
    resolution: TargetCompliance


class Figures(BaseModel):
    conversations_created: int
    conversations_resolved: int
    frt: FirstResponse = Field(description="First response time.")
    art: Durations = Field(description="Resolution time (ART is its average).")
    fcr: FirstContactResolution = Field(description="First contact resolution.")
    sla_breaches: int = Field(description="sla.breached events in the window.")
    sla_breached_conversations: int
    sla_compliance: list[SlaCompliance] = Field(
        description="Per SLA policy, for conversations opened in the window."
    )
    queue_length: int = Field(description="Conversations queued now.")
    queue_wait: QueueWait = Field(description="Opening to first assignment.")


class ChannelFigures(Figures):
    channel_id: str
    channel_type: str | None = Field(description="Null for a channel no longer configured.")


class Stats(BaseModel):
    since: str
    until: str
    channels: list[ChannelFigures]
    total: Figures = Field(description="Every channel in the answer together.")


def durations(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {
            "count": 0,
            "average_seconds": None,
            "median_seconds": None,
            "p90_seconds": None,
            "max_seconds": None,
        }
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "average_seconds": round(math.fsum(ordered) / len(ordered), 3),
        "median_seconds": round(_rank(ordered, 0.5), 3),
        "p90_seconds": round(_rank(ordered, 0.9), 3),
        "max_seconds": round(ordered[-1], 3),
    }


def _rank(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of them at or below."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _rate(good: int, bad: int) -> float | None:
    return round(good / (good + bad), 4) if good + bad else None


def compliance(stored: list[str]) -> list[SlaCompliance]:
    """Per policy, how its conversations' targets stand."""
    counts: dict[str, dict[str, int]] = {}
    for text in stored:
        clock = SlaClock.from_json(text)
        c = counts.setdefault(clock.policy, {})
        c["conversations"] = c.get("conversations", 0) + 1
        outcomes = [clock.met(name) for name in TARGETS if name in clock.targets]
        for name in TARGETS:
            kept = clock.met(name)
            if kept is not None:
                key = f"{name}.{'kept' if kept else 'missed'}"
                c[key] = c.get(key, 0) + 1
        if False in outcomes:
            c["breached"] = c.get("breached", 0) + 1
        elif outcomes and None not in outcomes:
            c["compliant"] = c.get("compliant", 0) + 1
    out = []
    for policy in sorted(counts):
        c = counts[policy]
        targets = {
            name: TargetCompliance(
                kept=c.get(f"{name}.kept", 0),
                missed=c.get(f"{name}.missed", 0),
                rate=_rate(c.get(f"{name}.kept", 0), c.get(f"{name}.missed", 0)),
            )
            for name in TARGETS
        }
        out.append(
            SlaCompliance(
                policy=policy,
                conversations=c["conversations"],
                compliant=c.get("compliant", 0),
                breached=c.get("breached", 0),
                rate=_rate(c.get("compliant", 0), c.get("breached", 0)),
                **targets,
            )
        )
    return out


def figures(s: ChannelSamples) -> Figures:
    resolved = len(s.resolution)
    return Figures(
        conversations_created=s.created,
        conversations_resolved=resolved,
        frt=FirstResponse(**durations(s.first_response), unanswered=s.unanswered),
        art=Durations(**durations(s.resolution)),
        fcr=FirstContactResolution(
            resolved=resolved,
            first_contact=s.first_contact,
            rate=round(s.first_contact / resolved, 4) if resolved else None,
        ),
        sla_breaches=s.sla_breaches,
        sla_breached_conversations=s.sla_breached_conversations,
        sla_compliance=compliance(s.sla_clocks),
        queue_length=s.queue_length,
        queue_wait=QueueWait(
            **durations(s.queue_wait),
            oldest_waiting_seconds=None if s.oldest_waiting is None else round(s.oldest_waiting, 3),
        ),
    )
