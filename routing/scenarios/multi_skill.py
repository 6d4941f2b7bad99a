"""The ``multi-skill`` scenario: the helpdesk of :mod:`routing.scenarios.helpdesk` (four
teams with overlapping skills at different levels, Vietnamese and English, four channel
types with per-channel and total capacities, priorities, returning customers) run with
and without stickiness and the escalation ladder."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.engine import Engine, Need
from routing.index import TOTAL, AgentIndex
from routing.rules import EscalationStep, Requirements
from routing.scenarios.helpdesk import (
    CHANNEL_MIX,
    CHANNELS,
    CONTEXT_READ,
    ENGLISH_SHARE,
    GROUP_MIX,
    GROUPS,
    HANDLE_MEAN,
    REPLY_MEAN,
    RETURN_MEAN,
    RETURN_SAME_CHANNEL,
    RETURN_SHARE,
    VIP_HANDLE_FACTOR,
    helpdesk_roster,
    helpdesk_slots,
    mean_handle,
)
from routing.simulation import ARRIVAL, Figures, SimulatedConversation, Simulation

# The policy that the variants switch on and off.
STICKY_WINDOW = 7200.0
LADDER = (
    EscalationStep(after=60.0, min_level=2),
    EscalationStep(after=180.0, min_level=1),
    EscalationStep(after=600.0, any_agent=True),
)


@dataclass(frozen=True)
class VariantResult:
    """The figures of one run of the helpdesk under one variant of the policy."""

    name: str
    sticky_window: float
    escalation: bool
    arrivals: int
    served: int
    queued_at_end: int
    # At the moment the last new conversation arrived: every arrival so far was either
    # assigned or waiting in the queue (nothing lost, nothing twice).
    balanced_at_horizon: bool
    first_response: dict[str, Figures]
    wait: dict[str, Figures]
    utilisation: dict[str, float]
    returning: int
    returning_in_window: int
    same_agent: int
    escalated: int
    dispatches: int
    over_capacity: int

    @property
    def balanced_at_end(self) -> bool:
        return self.served + self.queued_at_end == self.arrivals

    @property
    def same_agent_share(self) -> float:
        return self.same_agent / self.returning_in_window if self.returning_in_window else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sticky_window": self.sticky_window,
            "escalation": self.escalation,
            "arrivals": self.arrivals,
            "served": self.served,
            "queued_at_end": self.queued_at_end,
            "balanced_at_horizon": self.balanced_at_horizon,
            "first_response_seconds": {k: v.as_dict() for k, v in self.first_response.items()},
            "wait_seconds": {k: v.as_dict() for k, v in self.wait.items()},
            "utilisation": {k: round(v, 4) for k, v in self.utilisation.items()},
            "returning": self.returning,
            "returning_in_window": self.returning_in_window,
            "same_agent_share": round(self.same_agent_share, 4),
            "escalated_assignments": self.escalated,
            "over_capacity": self.over_capacity,
        }


@dataclass(frozen=True)
class MultiSkillResult:
    """The variants that were run, all on the same stream of new arrivals."""

    arrivals: int  # new conversations (returning customers come on top)
    seed: int
    warmup: float
    rate: float  # new conversations per second
    variants: list[VariantResult] = field(default_factory=list)

    @property
    def sane(self) -> bool:
        return all(
            v.balanced_at_horizon
            and v.balanced_at_end
            and v.over_capacity == 0
            and all(0.0 <= u <= 1.0 for u in v.utilisation.values())
            for v in self.variants
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": "multi-skill",
            "new_arrivals": self.arrivals,
            "seed": self.seed,
            "arrival_rate_per_hour": round(self.rate * 3600, 1),
            "warmup_seconds": round(self.warmup, 1),
            "variants": {v.name: v.as_dict() for v in self.variants},
            "sane": self.sane,
        }


def _pick(rng: random.Random, weights: Sequence[float]) -> int:
    x = rng.random()
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if x < acc:
            return i
    return len(weights) - 1


class _HelpdeskSim(Simulation):
    def __init__(
        self,
        *,
        sticky_window: float,
        ladder: tuple[EscalationStep, ...],
        arrivals: int,
        rate: float,
        seed: int,
    ) -> None:
        index = AgentIndex(CHANNELS)
        self.team: dict[str, str] = {}
        for team, agent in helpdesk_roster():
            index.put(agent)
            self.team[agent.id] = team
        super().__init__(Engine(sticky_window=sticky_window), index)
        self.ladder = ladder
        self.total = arrivals
        self.rate = rate
        # Separate streams: new arrivals are the same in every variant.
        self.new_rng = random.Random(f"multi-skill/new/{seed}")  # noqa: S311
        self.rng = random.Random(f"multi-skill/rest/{seed}")  # noqa: S311
        self.created = 0
        self.customers = 0
        self.horizon = math.inf
        self.conversations: list[SimulatedConversation] = []
        self.assigned = 0
        self.balanced_at_horizon = False
        self.over_capacity = 0  # assignments that left an agent over a capacity
        # customer -> (agent, when assigned) of their last conversation
        self.last_served: dict[int, tuple[str, float]] = {}

    def _conversation(
        self,
        t: float,
        *,
        group: str,
        level: int,
        language: str,
        channel: str,
        customer: int,
        rng: random.Random,
        returning: bool = False,
    ) -> SimulatedConversation:
        seq = len(self.conversations)
        cid = f"c{seq:07d}"
        sticky = self.last_served.get(customer) if returning else None
        priority = GROUP_MIX[group][2][level]
        handle = rng.expovariate(1.0 / HANDLE_MEAN[channel])
        if group == "vip":
            handle *= VIP_HANDLE_FACTOR
        need = Need(
            conversation_id=cid,
            channel_type=channel,
            base=Requirements(skills=((group, level),), language=language),
            ladder=self.ladder,
            priority=priority,
            queued_at=t,
            sticky_agent=None if sticky is None else sticky[0],
            sticky_at=None if sticky is None else sticky[1],
        )
        conv = SimulatedConversation(
            id=cid,
            seq=seq,
            arrival=t,
            channel=channel,
            need=need,
            handle=handle,
            group=group,
            customer=customer,
            reply_base=rng.expovariate(1.0 / REPLY_MEAN[channel]),
            returning=returning,
            prev_agent=None if sticky is None else sticky[0],
            prev_at=None if sticky is None else sticky[1],
        )
        self.conversations.append(conv)
        return conv

    def next_arrival(self, now: float) -> None:
        if self.created >= self.total:
            return
        rng = self.new_rng
        t = now + rng.expovariate(self.rate)
        self.created += 1
        if self.created == self.total:
            self.horizon = t
        group = GROUPS[_pick(rng, [GROUP_MIX[g][0] for g in GROUPS])]
        levels = GROUP_MIX[group][1]
        level = levels[_pick(rng, [s for _, s in levels])][0]
        language = "en" if rng.random() < ENGLISH_SHARE else "vi"
        channel = CHANNELS[_pick(rng, CHANNEL_MIX)]
        self.customers += 1
        conv = self._conversation(
            t,
            group=group,
            level=level,
            language=language,
            channel=channel,
            customer=self.customers,
            rng=rng,
        )
        self.at(t, ARRIVAL, conv)

    def arrive(self, conv: SimulatedConversation, now: float) -> None:
        if not conv.returning:
            self.next_arrival(now)
        super().arrive(conv, now)
        if now == self.horizon:
            arrived = sum(1 for c in self.conversations if c.arrival <= now)
            self.balanced_at_horizon = self.assigned + len(self.queue) == arrived and all(
                c.agent is None for c in self.queue.values()
            )

    def started(self, conv: SimulatedConversation, now: float) -> None:
        self.assigned += 1
        assert conv.agent is not None
        self.last_served[conv.customer] = (conv.agent, now)
        agent = self.index.agents[conv.agent]
        cap = agent.capacity
        if agent.total_load > cap[TOTAL] or agent.load[conv.channel] > cap[conv.channel]:
            self.over_capacity += 1

    def ended(self, conv: SimulatedConversation, now: float) -> None:
        rng = self.rng
        if rng.random() >= RETURN_SHARE:
            return
        t = now + rng.expovariate(1.0 / RETURN_MEAN)
        if t >= self.horizon:
            return
        channel = conv.channel
        if rng.random() >= RETURN_SAME_CHANNEL:
            channel = CHANNELS[_pick(rng, CHANNEL_MIX)]
        level = conv.need.base.skills[0][1]
        back = self._conversation(
            t,
            group=conv.group,
            level=level,
            language=conv.need.base.language or "vi",
            channel=channel,
            customer=conv.customer,
            rng=rng,
            returning=True,
        )
        self.at(t, ARRIVAL, back)


def _run_variant(
    name: str,
    *,
    sticky: bool,
    escalation: bool,
    arrivals: int,
    rate: float,
    seed: int,
    warmup_share: float,
) -> tuple[VariantResult, float]:
    sim = _HelpdeskSim(
        sticky_window=STICKY_WINDOW if sticky else 0.0,
        ladder=LADDER if escalation else (),
        arrivals=arrivals,
        rate=rate,
        seed=seed,
    )
    sim.next_arrival(0.0)
    sim.run()
    horizon = sim.horizon
    warmup = horizon * warmup_share
    convs = sim.conversations
    measured = [c for c in convs if c.arrival >= warmup and c.assigned_at is not None]
    waits: dict[str, list[float]] = {g: [] for g in ("all", *GROUPS)}
    frts: dict[str, list[float]] = {g: [] for g in ("all", *GROUPS)}
    for c in measured:
        assert c.assigned_at is not None
        wait = c.assigned_at - c.arrival
        reply = c.reply_base
        if c.returning and c.agent != c.prev_agent:
            reply += CONTEXT_READ
        for key in ("all", c.group):
            waits[key].append(wait)
            frts[key].append(wait + reply)
    # utilisation over [warmup, horizon]: busy slot-seconds / available slot-seconds
    busy: dict[str, float] = {}
    for c in convs:
        if c.assigned_at is None or c.agent is None:
            continue
        end = c.ended_at if c.ended_at is not None else math.inf
        overlap = min(end, horizon) - max(c.assigned_at, warmup)
        if overlap > 0:
            team = sim.team[c.agent]
            busy[team] = busy.get(team, 0.0) + overlap
    slots: dict[str, int] = {}
    for agent_id, team in sim.team.items():
        slots[team] = slots.get(team, 0) + sim.index.agents[agent_id].capacity[TOTAL]
    span = horizon - warmup
    utilisation = {t: busy.get(t, 0.0) / (slots[t] * span) for t in GROUPS}
    utilisation["all"] = sum(busy.values()) / (sum(slots.values()) * span)
    back = [c for c in measured if c.returning]
    in_window = [
        c
        for c in back
        if c.prev_at is not None
        and c.assigned_at is not None
        and c.assigned_at - c.prev_at <= STICKY_WINDOW
    ]
    result = VariantResult(
        name=name,
        sticky_window=sim.engine.sticky_window,
        escalation=escalation,
        arrivals=len(convs),
        served=sum(1 for c in convs if c.assigned_at is not None),
        queued_at_end=len(sim.queue),
        balanced_at_horizon=sim.balanced_at_horizon,
        first_response={k: Figures.of(v) for k, v in frts.items()},
        wait={k: Figures.of(v) for k, v in waits.items()},
        utilisation=utilisation,
        returning=len(back),
        returning_in_window=len(in_window),
        same_agent=sum(1 for c in in_window if c.agent == c.prev_agent),
        escalated=sum(1 for c in measured if c.step > 0),
        dispatches=sim.dispatches,
        over_capacity=sim.over_capacity,
    )
    return result, warmup


VARIANTS = (
    ("baseline", False, False),
    ("+stickiness", True, False),
    ("+escalation", False, True),
    ("+both", True, True),
)
VARIANT_NAMES = tuple(name for name, _, _ in VARIANTS)


def simulate_multi_skill(
    arrivals: int = 50_000,
    seed: int = 1,
    *,
    occupancy: float = 0.78,
    warmup: float = 0.05,
    variants: Sequence[str] = VARIANT_NAMES,
) -> MultiSkillResult:
    """The helpdesk under the policy with and without stickiness and escalation.

    ``arrivals`` new conversations arrive as a Poisson stream whose rate is chosen so
    that, counting returning customers, the team's slots are ``occupancy`` busy.
    """
    if arrivals < 100:
        raise ValueError("need at least 100 arrivals")
    work_per_new = mean_handle() / (1.0 - RETURN_SHARE)  # slot-seconds, with returns
    rate = occupancy * helpdesk_slots() / work_per_new
    results = []
    warm = 0.0
    for name, sticky, escalation in VARIANTS:
        if name not in variants:
            continue
        result, warm = _run_variant(
            name,
            sticky=sticky,
            escalation=escalation,
            arrivals=arrivals,
            rate=rate,
            seed=seed,
            warmup_share=warmup,
        )
        results.append(result)
    return MultiSkillResult(arrivals, seed, warm, rate, results)
