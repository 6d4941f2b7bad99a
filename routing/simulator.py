"""Discrete-event simulation of the routing policy, driving the real engine and index.

Events (arrivals, ends of handling, escalation steps) wait in a heap and are processed in
time order; the simulated clock is what the engine gets as ``now``. Each arriving
conversation becomes a :class:`~routing.engine.Need` and :meth:`Engine.decide` is asked
at once; if nobody is eligible the conversation waits in the queue. Whenever an agent
frees a slot, and whenever a waiting conversation reaches a step of its escalation
ladder, the whole queue goes through :meth:`Engine.dispatch`, which assigns in queue
order. Nothing of the choice is re-implemented here: the simulation keeps time, draws
random numbers and counts.

Scenarios:

``erlang-c``
    One skill group of c agents with one slot each, Poisson arrivals, exponential
    handling times: the M/M/c queue. Its probability of waiting and mean wait are known
    exactly (Erlang C); the simulation must reproduce both within 5 %.
``multi-skill``
    A Vietnamese helpdesk: four teams with overlapping skills at different levels,
    Vietnamese and English, four channel types with per-channel and total capacities,
    priorities, returning customers and an escalation ladder; run with and without
    stickiness and escalation.

Pure and deterministic for a seed: no I/O and no wall clock. :func:`run_command` returns
the report text and the exit status for ``omnigw simulate``.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.engine import Decision, Engine, Need
from routing.index import TOTAL, AgentIndex, AgentState
from routing.rules import EscalationStep, Requirements, next_step_at

ARRIVAL, END, ESCALATE = 0, 1, 2
# Escalation events fire this long after a step's nominal time, so that the engine's own
# test (waited >= after, computed as now - queued_at) cannot miss it by a rounding error.
STEP_SLACK = 1e-6
BATCHES = 20
T95_19 = 2.093  # Student t, 97.5 % quantile, 19 degrees of freedom (BATCHES - 1)
TOLERANCE = 0.05


# --- Erlang C -----------------------------------------------------------------------------


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of c servers offered a erlangs (stable recursion, no factorials)."""
    if c < 0 or a < 0:
        raise ValueError("c and a must not be negative")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c offered a = lambda/mu erlangs (a < c)."""
    if c < 1 or not 0 <= a < c:
        raise ValueError("need c >= 1 and 0 <= a < c")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean time in queue of M/M/c: C(c, A) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


# --- statistics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A simulated figure with the 95 % half-width of its batch-means interval."""

    value: float
    half_width: float

    @property
    def relative_half_width(self) -> float:
        return self.half_width / self.value if self.value else math.inf


def batch_means(values: Sequence[float], batches: int = BATCHES) -> Estimate:
    """Mean of ``values`` (in time order) and a 95 % interval from ``batches`` batch means.

    Consecutive waits are correlated; the means of long consecutive batches are nearly
    independent, so their spread gives an honest interval where the naive one would not.
    """
    n = len(values) // batches * batches
    if n == 0:
        raise ValueError("not enough samples for batch means")
    size = n // batches
    means = [math.fsum(values[i * size : (i + 1) * size]) / size for i in range(batches)]
    mean = math.fsum(means) / batches
    var = math.fsum((m - mean) ** 2 for m in means) / (batches - 1)
    t = T95_19 if batches == BATCHES else 1.96
    return Estimate(mean, t * math.sqrt(var / batches))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    rank = max(1, min(len(data), math.ceil(p / 100 * len(data))))
    return data[rank - 1]


# --- the event loop -----------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Conversation:
    id: str
    seq: int
    arrival: float
    channel: str
    need: Need
    handle: float  # handling time once assigned
    group: str = ""
    customer: int = 0
    reply_base: float = 0.0  # the agent's first-reply delay, before any context reading
    returning: bool = False
    prev_agent: str | None = None
    prev_at: float | None = None
    agent: str | None = None
    assigned_at: float | None = None
    ended_at: float | None = None
    step: int = 0


Event = tuple[float, int, int, Conversation]


class Simulation:
    """The event loop around one engine and one index. Scenarios subclass it to create
    arrivals and to count; everything about who gets what is the engine's."""

    def __init__(self, engine: Engine, index: AgentIndex) -> None:
        self.engine = engine
        self.index = index
        self.events: list[Event] = []
        self.queue: dict[str, Conversation] = {}
        self._seq = 0
        self.dispatches = 0

    def at(self, time: float, kind: int, conv: Conversation) -> None:
        self._seq += 1
        heapq.heappush(self.events, (time, self._seq, kind, conv))

    def run(self) -> None:
        events = self.events
        while events:
            now, _, kind, conv = heapq.heappop(events)
            if kind == ARRIVAL:
                self.arrive(conv, now)
            elif kind == END:
                self.end(conv, now)
            else:
                self.escalate(conv, now)

    def arrive(self, conv: Conversation, now: float) -> None:
        decision = self.engine.decide(self.index, conv.need, now, explain=False)
        if decision.agent_id is None:
            self.queue[conv.id] = conv
            self._schedule_step(conv, now)
            return
        self.index.assign(decision.agent_id, conv.channel, now)
        self._start(conv, decision, now)

    def end(self, conv: Conversation, now: float) -> None:
        assert conv.agent is not None
        self.index.release(conv.agent, conv.channel)
        conv.ended_at = now
        self.ended(conv, now)
        self.dispatch(now)

    def escalate(self, conv: Conversation, now: float) -> None:
        if conv.id not in self.queue:
            return
        self.dispatch(now)
        if conv.id in self.queue:
            self._schedule_step(conv, now)

    def dispatch(self, now: float) -> None:
        if not self.queue:
            return
        self.dispatches += 1
        needs = [c.need for c in self.queue.values()]
        for decision in self.engine.dispatch(self.index, needs, now, explain=set()):
            if decision.agent_id is not None:
                self._start(self.queue.pop(decision.conversation_id), decision, now)

    def _schedule_step(self, conv: Conversation, now: float) -> None:
        at = next_step_at(conv.need.queued_at, conv.need.ladder, now)
        if at is not None:
            self.at(at + STEP_SLACK, ESCALATE, conv)

    def _start(self, conv: Conversation, decision: Decision, now: float) -> None:
        conv.agent = decision.agent_id
        conv.assigned_at = now
        conv.step = decision.step
        self.at(now + conv.handle, END, conv)
        self.started(conv, now)

    # --- hooks ---------------------------------------------------------------------------

    def started(self, conv: Conversation, now: float) -> None:
        """A conversation was assigned (at arrival or from the queue)."""

    def ended(self, conv: Conversation, now: float) -> None:
        """A conversation's handling ended; its slot is already free."""


# --- scenario: erlang-c -------------------------------------------------------------------

ERLANG_SKILL = "support"
ERLANG_CHANNEL = "webchat"


@dataclass(frozen=True)
class ErlangResult:
    agents: int
    load: float  # occupancy rho = A / c
    arrivals: int
    warmup: int
    seed: int
    handle_mean: float
    theory_p_wait: float
    theory_mean_wait: float
    p_wait: Estimate
    mean_wait: Estimate
    dispatches: int

    @property
    def offered(self) -> float:
        return self.load * self.agents

    @property
    def p_wait_error(self) -> float:
        return abs(self.p_wait.value - self.theory_p_wait) / self.theory_p_wait

    @property
    def mean_wait_error(self) -> float:
        return abs(self.mean_wait.value - self.theory_mean_wait) / self.theory_mean_wait

    @property
    def passed(self) -> bool:
        return self.p_wait_error <= TOLERANCE and self.mean_wait_error <= TOLERANCE

    def as_dict(self) -> dict[str, Any]:
        def fig(theory: float, est: Estimate, err: float) -> dict[str, float]:
            return {
                "theory": round(theory, 6),
                "simulated": round(est.value, 6),
                "ci95_half_width": round(est.half_width, 6),
                "relative_error": round(err, 5),
                "relative_ci95": round(est.half_width / theory, 5),
            }

        return {
            "scenario": "erlang-c",
            "agents": self.agents,
            "occupancy": self.load,
            "offered_erlangs": round(self.offered, 6),
            "arrivals": self.arrivals,
            "warmup": self.warmup,
            "seed": self.seed,
            "mean_handle_seconds": self.handle_mean,
            "p_wait": fig(self.theory_p_wait, self.p_wait, self.p_wait_error),
            "mean_wait_seconds": fig(self.theory_mean_wait, self.mean_wait, self.mean_wait_error),
            "tolerance": TOLERANCE,
            "pass": self.passed,
        }


class _ErlangSim(Simulation):
    def __init__(self, agents: int, lam: float, mu: float, arrivals: int, seed: int) -> None:
        index = AgentIndex([ERLANG_CHANNEL])
        for i in range(agents):
            index.put(
                AgentState(
                    id=f"agent-{i:04d}",
                    presence="online",
                    skills={ERLANG_SKILL: 1},
                    capacity={TOTAL: 1},
                )
            )
        super().__init__(Engine(sticky_window=0.0), index)
        self.lam = lam
        self.mu = mu
        self.total = arrivals
        self.arrival_rng = random.Random(f"erlang-c/arrivals/{seed}")  # noqa: S311
        self.service_rng = random.Random(f"erlang-c/service/{seed}")  # noqa: S311
        self.waits = array("d", bytes(8 * arrivals))
        self.req = Requirements(skills=((ERLANG_SKILL, 1),))
        self.created = 0

    def next_arrival(self, now: float) -> None:
        if self.created >= self.total:
            return
        t = now + self.arrival_rng.expovariate(self.lam)
        seq = self.created
        self.created += 1
        cid = f"c{seq:07d}"
        conv = Conversation(
            id=cid,
            seq=seq,
            arrival=t,
            channel=ERLANG_CHANNEL,
            need=Need(cid, ERLANG_CHANNEL, self.req, queued_at=t),
            handle=self.service_rng.expovariate(self.mu),
        )
        self.at(t, ARRIVAL, conv)

    def arrive(self, conv: Conversation, now: float) -> None:
        self.next_arrival(now)
        super().arrive(conv, now)

    def started(self, conv: Conversation, now: float) -> None:
        self.waits[conv.seq] = now - conv.arrival


def simulate_erlang_c(
    agents: int = 10,
    load: float = 0.85,
    arrivals: int = 2_000_000,
    seed: int = 1,
    *,
    handle_mean: float = 300.0,
    warmup: float = 0.05,
) -> ErlangResult:
    """Simulate M/M/c with the engine: c single-slot agents at occupancy ``load``.

    All ``arrivals`` are served (the queue drains after the last one); the first
    ``warmup`` share of them is discarded, the rest gives P(wait) and the mean wait with
    batch-means intervals.
    """
    if agents < 1 or not 0 < load < 1:
        raise ValueError("need agents >= 1 and 0 < load < 1")
    skip = int(arrivals * warmup)
    if arrivals - skip < BATCHES * 100:
        raise ValueError(f"need at least {BATCHES * 100} measured arrivals")
    mu = 1.0 / handle_mean
    lam = load * agents * mu
    sim = _ErlangSim(agents, lam, mu, arrivals, seed)
    sim.next_arrival(0.0)
    sim.run()
    assert not sim.queue, "the queue must drain once arrivals stop"
    waits = sim.waits[skip:]
    waited = [1.0 if w > 0.0 else 0.0 for w in waits]
    return ErlangResult(
        agents=agents,
        load=load,
        arrivals=arrivals,
        warmup=skip,
        seed=seed,
        handle_mean=handle_mean,
        theory_p_wait=erlang_c(agents, lam / mu),
        theory_mean_wait=erlang_c_wait(agents, lam, mu),
        p_wait=batch_means(waited),
        mean_wait=batch_means(waits),
        dispatches=sim.dispatches,
    )


# --- scenario: multi-skill ----------------------------------------------------------------

CHANNELS = ("zalo", "facebook", "webchat", "email")
CHANNEL_MIX = (0.40, 0.25, 0.25, 0.10)
# Mean handling time (seconds) per channel; VIP conversations take 1.5 times longer.
HANDLE_MEAN = {"zalo": 420.0, "facebook": 420.0, "webchat": 360.0, "email": 900.0}
VIP_HANDLE_FACTOR = 1.5
# Modelled first reply of an agent once assigned: exponential with this mean, plus
# CONTEXT_READ seconds when the customer is returning and the agent is not the one who
# served them last (they read the history first).
REPLY_MEAN = {"zalo": 20.0, "facebook": 20.0, "webchat": 15.0, "email": 300.0}
CONTEXT_READ = 45.0
ENGLISH_SHARE = 0.15
RETURN_SHARE = 0.30  # of conversations, the customer comes back after it ends ...
RETURN_MEAN = 1800.0  # ... after an exponential time with this mean (seconds)
RETURN_SAME_CHANNEL = 0.7
STICKY_WINDOW = 7200.0
LADDER = (
    EscalationStep(after=60.0, min_level=2),
    EscalationStep(after=180.0, min_level=1),
    EscalationStep(after=600.0, any_agent=True),
)
GROUPS = ("billing", "tech", "sales", "vip")
# group -> share of new conversations, ((level, share), ...), priority by level
GROUP_MIX: dict[str, tuple[float, tuple[tuple[int, float], ...], dict[int, int]]] = {
    "billing": (0.30, ((2, 0.8), (3, 0.2)), {2: 2, 3: 3}),
    "tech": (0.32, ((1, 0.5), (2, 0.35), (3, 0.15)), {1: 1, 2: 1, 3: 4}),
    "sales": (0.30, ((1, 0.6), (2, 0.4)), {1: 0, 2: 0}),
    "vip": (0.08, ((3, 1.0),), {3: 8}),
}
CHAT_CAPACITY = {"zalo": 2, "facebook": 2, "webchat": 2, "email": 2}


def _agent(aid: str, skills: dict[str, int], english: bool, total: int = 3) -> AgentState:
    return AgentState(
        id=aid,
        presence="online",
        skills=skills,
        languages=frozenset({"vi", "en"} if english else {"vi"}),
        capacity={**CHAT_CAPACITY, TOTAL: total},
    )


# (name, level of the team's skill, speaks English, other skills)
TeamSpec = tuple[tuple[str, int, bool, dict[str, int]], ...]


def helpdesk_roster() -> list[tuple[str, AgentState]]:
    """(team, agent) of a 36-agent Vietnamese helpdesk. Fresh objects on every call."""
    roster: list[tuple[str, AgentState]] = []
    vip_names = ("vy", "khanh", "tam", "phuong")
    for name in vip_names:
        roster.append(("vip", _agent(name, {"vip": 3, "billing": 3, "tech": 2, "sales": 2}, True)))
    billing: TeamSpec = (
        ("lan", 3, True, {"vip": 2}),
        ("huong", 3, False, {"vip": 2, "sales": 1}),
        ("mai", 3, False, {"vip": 1}),
        ("thu", 2, True, {"sales": 1}),
        ("ngoc", 2, False, {"vip": 1}),
        ("hanh", 2, False, {"sales": 1}),
        ("trang", 2, False, {}),
        ("linh", 2, True, {"sales": 1}),
        ("dung", 2, False, {}),
        ("nhung", 2, False, {}),
    )
    for name, level, english, extra in billing:
        roster.append(("billing", _agent(name, {"billing": level, **extra}, english)))
    tech: TeamSpec = (
        ("minh", 3, True, {"vip": 2}),
        ("tuan", 3, False, {"billing": 1}),
        ("hung", 3, True, {}),
        ("quang", 2, False, {"billing": 1}),
        ("duc", 2, True, {}),
        ("long", 2, False, {"vip": 1}),
        ("phong", 2, False, {}),
        ("khoa", 2, True, {"billing": 1}),
        ("nam", 1, False, {}),
        ("son", 1, False, {}),
        ("bao", 1, True, {}),
        ("hieu", 1, False, {}),
    )
    for name, level, english, extra in tech:
        total = 2 if level == 1 else 3  # juniors take fewer conversations at once
        roster.append(("tech", _agent(name, {"tech": level, **extra}, english, total)))
    sales: TeamSpec = (
        ("hoa", 3, True, {"vip": 2}),
        ("yen", 3, False, {"billing": 1}),
        ("anh", 3, False, {"vip": 1}),
        ("thao", 2, True, {}),
        ("nhi", 2, False, {"billing": 1}),
        ("giang", 2, False, {}),
        ("chi", 2, False, {"billing": 1}),
        ("my", 2, True, {}),
        ("uyen", 2, False, {}),
        ("xuan", 2, False, {}),
    )
    for name, level, english, extra in sales:
        roster.append(("sales", _agent(name, {"sales": level, **extra}, english)))
    return roster


@dataclass(frozen=True)
class Figures:
    n: int
    mean: float
    p90: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Figures:
        if not values:
            return cls(0, math.nan, math.nan)
        return cls(len(values), math.fsum(values) / len(values), percentile(values, 90))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": _r(self.mean), "p90": _r(self.p90)}


def _r(x: float, digits: int = 1) -> float | None:
    return None if math.isnan(x) else round(x, digits)


@dataclass(frozen=True)
class VariantResult:
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
        self.conversations: list[Conversation] = []
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
    ) -> Conversation:
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
        conv = Conversation(
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

    def arrive(self, conv: Conversation, now: float) -> None:
        if not conv.returning:
            self.next_arrival(now)
        super().arrive(conv, now)
        if now == self.horizon:
            arrived = sum(1 for c in self.conversations if c.arrival <= now)
            self.balanced_at_horizon = self.assigned + len(self.queue) == arrived and all(
                c.agent is None for c in self.queue.values()
            )

    def started(self, conv: Conversation, now: float) -> None:
        self.assigned += 1
        assert conv.agent is not None
        self.last_served[conv.customer] = (conv.agent, now)
        agent = self.index.agents[conv.agent]
        cap = agent.capacity
        if agent.total_load > cap[TOTAL] or agent.load[conv.channel] > cap[conv.channel]:
            self.over_capacity += 1

    def ended(self, conv: Conversation, now: float) -> None:
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


def helpdesk_slots() -> int:
    return sum(a.capacity[TOTAL] for _, a in helpdesk_roster())


def _mean_handle() -> float:
    chan = sum(m * HANDLE_MEAN[c] for c, m in zip(CHANNELS, CHANNEL_MIX, strict=True))
    vip = GROUP_MIX["vip"][0]
    return chan * (1 - vip) + chan * VIP_HANDLE_FACTOR * vip


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
    work_per_new = _mean_handle() / (1.0 - RETURN_SHARE)  # slot-seconds, with returns
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


# --- reports ------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(x).rjust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
    return out


def report_erlang(r: ErlangResult) -> str:
    mu = 1.0 / r.handle_mean
    lines = [
        f"erlang-c: M/M/{r.agents} through the routing engine "
        f"(occupancy {r.load:g}, offered A = {r.offered:.3f} erlangs, "
        f"mean handling {r.handle_mean:g} s, lambda = {r.load * r.agents * mu * 3600:.1f}/h)",
        f"{r.arrivals:,} arrivals, first {r.warmup:,} discarded as warm-up, seed {r.seed}; "
        f"95% intervals from {BATCHES} batch means",
        "",
    ]
    rows = [
        [
            "P(wait)",
            f"{r.theory_p_wait:.5f}",
            f"{r.p_wait.value:.5f}",
            f"±{r.p_wait.half_width:.5f} ({r.p_wait.half_width / r.theory_p_wait:.2%})",
            f"{r.p_wait_error:.2%}",
        ],
        [
            "mean wait (s)",
            f"{r.theory_mean_wait:.3f}",
            f"{r.mean_wait.value:.3f}",
            f"±{r.mean_wait.half_width:.3f} ({r.mean_wait.half_width / r.theory_mean_wait:.2%})",
            f"{r.mean_wait_error:.2%}",
        ],
    ]
    lines += _table(["figure", "Erlang C", "simulated", "95% CI", "rel. error"], rows)
    lines.append("")
    if max(r.p_wait.relative_half_width, r.mean_wait.relative_half_width) >= TOLERANCE:
        lines.append(
            f"note: a 95% interval is wider than {TOLERANCE:.0%}: too few arrivals for the "
            "comparison to mean much (raise --arrivals)"
        )
    if r.passed:
        lines.append(f"PASS: P(wait) and mean wait both within {TOLERANCE:.0%} of Erlang C")
    else:
        lines.append(f"FAIL: P(wait) or mean wait more than {TOLERANCE:.0%} from Erlang C")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def report_multi(r: MultiSkillResult) -> str:
    lines = [
        f"multi-skill: Vietnamese helpdesk, {len(helpdesk_roster())} agents in 4 teams "
        f"({helpdesk_slots()} slots), channels {', '.join(CHANNELS)}",
        f"{r.arrivals:,} new conversations at {r.rate * 3600:.1f}/h, plus returning customers "
        f"({RETURN_SHARE:.0%} come back after ~{RETURN_MEAN / 60:.0f} min); seed {r.seed}; "
        f"first {r.warmup / 3600:.1f} h discarded",
        "first response = wait until assigned + the agent's modelled first-reply delay "
        f"(exponential, mean {REPLY_MEAN['zalo']:g} s chat / {REPLY_MEAN['email']:g} s email, "
        f"+{CONTEXT_READ:g} s reading the history when a returning customer gets another "
        "agent)",
        f"stickiness: window {STICKY_WINDOW / 3600:g} h; escalation: "
        + ", ".join(
            f"after {s.after:g}s "
            + ("any agent" if s.any_agent else f"skill level <= {s.min_level}")
            for s in LADDER
        ),
        "",
    ]
    header = ["variant", "group", "n", "FRT mean", "FRT p90", "wait mean", "wait p90"]
    rows = []
    for v in r.variants:
        for g in ("all", *GROUPS):
            f, w = v.first_response[g], v.wait[g]
            rows.append(
                [
                    v.name if g == "all" else "",
                    g,
                    f"{f.n:,}",
                    _fmt(f.mean),
                    _fmt(f.p90),
                    _fmt(w.mean),
                    _fmt(w.p90),
                ]
            )
    lines += _table(header, rows)
    lines.append("")
    header = ["variant", "util all", *(f"util {g}" for g in GROUPS), "same agent", "escalated"]
    rows = [
        [
            v.name,
            f"{v.utilisation['all']:.1%}",
            *(f"{v.utilisation[g]:.1%}" for g in GROUPS),
            f"{v.same_agent_share:.1%} of {v.returning_in_window:,}",
            f"{v.escalated:,}",
        ]
        for v in r.variants
    ]
    lines += _table(header, rows)
    lines += [
        "",
        "utilisation: busy slot-time / available slot-time of each team (teams: agents' "
        "main skill); same agent: returning customers within the sticky window served by "
        "their previous agent; escalated: assignments made under a relaxed step",
        "every arrival assigned or still queued, no agent over capacity: "
        + ("yes" if r.sane else "NO"),
    ]
    return "\n".join(lines)


def run_command(
    scenario: str, *, agents: int, load: float, arrivals: int | None, seed: int
) -> tuple[str, int]:
    """What ``omnigw simulate`` prints (a report, then one JSON line) and its exit status:
    for erlang-c, 0 when both figures are within 5 % of Erlang C."""
    try:
        if scenario == "erlang-c":
            er = simulate_erlang_c(agents, load, arrivals or 2_000_000, seed)
            return report_erlang(er) + "\n" + json.dumps(er.as_dict()), 0 if er.passed else 1
        if scenario == "multi-skill":
            ms = simulate_multi_skill(arrivals or 50_000, seed)
            return report_multi(ms) + "\n" + json.dumps(ms.as_dict()), 0 if ms.sane else 1
    except ValueError as exc:
        return f"simulate {scenario}: {exc}", 2
    return f"unknown scenario {scenario!r} (erlang-c, multi-skill)", 2
