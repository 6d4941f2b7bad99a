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
- Queue wait: for conversations opened in the window, from opening to the first
  assignment to an agent. Queue length and the longest current wait are as of now.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from gateway.store.records import ChannelSamples


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


class Figures(BaseModel):
    conversations_created: int
    conversations_resolved: int
    frt: FirstResponse = Field(description="First response time.")
    art: Durations = Field(description="Resolution time (ART is its average).")
    fcr: FirstContactResolution = Field(description="First contact resolution.")
    sla_breaches: int = Field(description="sla.breached events in the window.")
    sla_breached_conversations: int
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
        queue_length=s.queue_length,
        queue_wait=QueueWait(
            **durations(s.queue_wait),
            oldest_waiting_seconds=None if s.oldest_waiting is None else round(s.oldest_waiting, 3),
        ),
    )
