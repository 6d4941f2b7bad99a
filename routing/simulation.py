"""The discrete-event loop that drives the real routing engine and index, and the
statistics of its results.

Events (arrivals, ends of handling, escalation steps) wait in a heap and are processed in
time order; the simulated clock is what the engine gets as ``now``. Each arriving
conversation becomes a :class:`~routing.engine.Need` and :meth:`Engine.decide` is asked
at once; if nobody is eligible the conversation waits in the queue. Whenever an agent
frees a slot, and whenever a waiting conversation reaches a step of its escalation
ladder, the whole queue goes through :meth:`Engine.dispatch`, which assigns in queue
order. Nothing of the choice is re-implemented here: the simulation keeps time, and the
scenarios (:mod:`routing.scenarios`) draw random numbers and count.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from routing.engine import Decision, Engine, Need
from routing.index import AgentIndex
from routing.rules import next_step_at

ARRIVAL, END, ESCALATE = 0, 1, 2
# Escalation events fire this long after a step's nominal time, so that the engine's own
# test (waited >= after, computed as now - queued_at) cannot miss it by a rounding error.
STEP_SLACK = 1e-6
BATCHES = 20
T95_19 = 2.093  # Student t, 97.5 % quantile, 19 degrees of freedom (BATCHES - 1)


# --- the event loop -----------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class SimulatedConversation:
    """One conversation of a run: what it needs, how long its handling takes, and what
    became of it. Only the simulation's; the gateway's conversations are another thing."""

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


Event = tuple[float, int, int, SimulatedConversation]


class Simulation:
    """The event loop around one engine and one index. Scenarios subclass it to create
    arrivals and to count; everything about who gets what is the engine's."""

    def __init__(self, engine: Engine, index: AgentIndex) -> None:
        self.engine = engine
        self.index = index
        self.events: list[Event] = []
        self.queue: dict[str, SimulatedConversation] = {}
        self._seq = 0
        self.dispatches = 0

    def at(self, time: float, kind: int, conv: SimulatedConversation) -> None:
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

    def arrive(self, conv: SimulatedConversation, now: float) -> None:
        decision = self.engine.decide(self.index, conv.need, now, explain=False)
        if decision.agent_id is None:
            self.queue[conv.id] = conv
            self._schedule_step(conv, now)
            return
        self.index.assign(decision.agent_id, conv.channel, now)
        self._start(conv, decision, now)

    def end(self, conv: SimulatedConversation, now: float) -> None:
        assert conv.agent is not None
        self.index.release(conv.agent, conv.channel)
        conv.ended_at = now
        self.ended(conv, now)
        self.dispatch(now)

    def escalate(self, conv: SimulatedConversation, now: float) -> None:
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

    def _schedule_step(self, conv: SimulatedConversation, now: float) -> None:
        at = next_step_at(conv.need.queued_at, conv.need.ladder, now)
        if at is not None:
            self.at(at + STEP_SLACK, ESCALATE, conv)

    def _start(self, conv: SimulatedConversation, decision: Decision, now: float) -> None:
        conv.agent = decision.agent_id
        conv.assigned_at = now
        conv.step = decision.step
        self.at(now + conv.handle, END, conv)
        self.started(conv, now)

    # --- hooks ---------------------------------------------------------------------------

    def started(self, conv: SimulatedConversation, now: float) -> None:
        """A conversation was assigned (at arrival or from the queue)."""

    def ended(self, conv: SimulatedConversation, now: float) -> None:
        """A conversation's handling ended; its slot is already free."""


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


@dataclass(frozen=True)
class Figures:
    """Count, mean and 90th percentile of a sample; NaN figures for an empty one."""

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
