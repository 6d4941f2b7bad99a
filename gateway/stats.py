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
- FCR across channels: of the same resolved conversations handled by a person, those
  resolved at first contact (as above) whose contact (with everyone merged into it)
  opened no new conversation, on any channel, within `[stats] fcr_window` (72 h) of the
  resolution. Those whose window has not ended yet (and that did not come back) are
  counted as `awaiting`, outside the rate.
- Bot-contained: resolved conversations no person handled (no agent message, never
  assigned), reported apart with the same figures.
- Surveys: those sent in the window; CSAT is the share of 4 and 5 among the CSAT
  answers, with their average; NPS is the share of 9 and 10 minus the share of 0 to 6,
  times 100; CES the average; the response rate is answered / sent. Per channel and,
  in `agents`, per agent who held the conversation when it was resolved.
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

from gateway.store.records import ChannelSamples, ResolvedSample, SurveySample
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


class FirstContactAcrossChannels(BaseModel):
    resolved: int = Field(description="Resolved conversations in the window (of this kind).")
    first_contact: int = Field(
        description="... resolved at first contact, and their contact opened no new "
        "conversation on any channel within the window after the resolution."
    )
    came_back: int = Field(description="... whose contact opened a new conversation in it.")
    awaiting: int = Field(
        description="... whose window has not ended yet and that did not come back: left "
        "out of the rate."
    )
    rate: float | None = Field(description="first_contact / (resolved - awaiting); null when none.")


class Csat(BaseModel):
    answers: int
    satisfied_rate: float | None = Field(description="Share of 4 and 5.")
    average: float | None


class Nps(BaseModel):
    answers: int
    promoters: int = Field(description="9 and 10.")
    detractors: int = Field(description="0 to 6.")
    score: float | None = Field(description="(promoters - detractors) / answers * 100.")


class Ces(BaseModel):
    answers: int
    average: float | None


class SurveyFigures(BaseModel):
    sent: int = Field(description="Surveys sent in the window.")
    answered: int = Field(description="... with at least one answer.")
    response_rate: float | None
    csat: Csat
    nps: Nps
    ces: Ces


class AgentSurveyFigures(SurveyFigures):
    agent_id: str | None = Field(description="Null: resolved with no agent assigned.")


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
    fcr_across_channels: FirstContactAcrossChannels = Field(
        description="FCR of conversations a person handled, counting a new conversation "
        "of the same contact on any channel within the FCR window as a failure."
    )
    bot_contained: FirstContactAcrossChannels = Field(
        description="The same for conversations resolved without a person (no agent "
        "message, never assigned)."
    )
    surveys: SurveyFigures
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
    fcr_window_seconds: float
    channels: list[ChannelFigures]
    total: Figures = Field(description="Every channel in the answer together.")
    agents: list[AgentSurveyFigures] = Field(
        description="Survey figures per agent, over the channels in the answer."
    )


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


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _average(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def across_channels(samples: list[ResolvedSample]) -> FirstContactAcrossChannels:
    first = sum(1 for r in samples if r.first_contact and not r.came_back and not r.window_open)
    came_back = sum(1 for r in samples if r.came_back)
    awaiting = sum(1 for r in samples if r.window_open and not r.came_back)
    return FirstContactAcrossChannels(
        resolved=len(samples),
        first_contact=first,
        came_back=came_back,
        awaiting=awaiting,
        rate=_share(first, len(samples) - awaiting),
    )


def survey_figures(samples: list[SurveySample]) -> SurveyFigures:
    csat = [s.csat for s in samples if s.csat is not None]
    nps = [s.nps for s in samples if s.nps is not None]
    ces = [s.ces for s in samples if s.ces is not None]
    answered = sum(1 for s in samples if (s.csat, s.nps, s.ces) != (None, None, None))
    promoters, detractors = sum(1 for v in nps if v >= 9), sum(1 for v in nps if v <= 6)
    return SurveyFigures(
        sent=len(samples),
        answered=answered,
        response_rate=_share(answered, len(samples)),
        csat=Csat(
            answers=len(csat),
            satisfied_rate=_share(sum(1 for v in csat if v >= 4), len(csat)),
            average=_average(csat),
        ),
        nps=Nps(
            answers=len(nps),
            promoters=promoters,
            detractors=detractors,
            score=round((promoters - detractors) * 100 / len(nps), 2) if nps else None,
        ),
        ces=Ces(answers=len(ces), average=_average(ces)),
    )


def per_agent(samples: list[SurveySample]) -> list[AgentSurveyFigures]:
    by_agent: dict[str | None, list[SurveySample]] = {}
    for sample in samples:
        by_agent.setdefault(sample.agent_id, []).append(sample)
    ordered = sorted(by_agent.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return [
        AgentSurveyFigures(agent_id=agent, **survey_figures(found).model_dump())
        for agent, found in ordered
    ]


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
        fcr_across_channels=across_channels([r for r in s.resolved if not r.contained]),
        bot_contained=across_channels([r for r in s.resolved if r.contained]),
        surveys=survey_figures(s.surveys),
        sla_breaches=s.sla_breaches,
        sla_breached_conversations=s.sla_breached_conversations,
        sla_compliance=compliance(s.sla_clocks),
        queue_length=s.queue_length,
        queue_wait=QueueWait(
            **durations(s.queue_wait),
            oldest_waiting_seconds=None if s.oldest_waiting is None else round(s.oldest_waiting, 3),
        ),
    )
