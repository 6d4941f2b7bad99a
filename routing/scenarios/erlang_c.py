"""The ``erlang-c`` scenario: the engine checked against Erlang C.

One skill group of c agents with one slot each, Poisson arrivals, exponential handling
times: the M/M/c queue. Its probability of waiting and mean wait are known exactly
(:mod:`routing.erlang`); the simulation must reproduce both within 5 %.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass
from typing import Any

from routing.engine import Engine, Need
from routing.erlang import erlang_c, erlang_c_wait
from routing.index import TOTAL, AgentIndex, AgentState
from routing.rules import Requirements
from routing.simulation import (
    ARRIVAL,
    BATCHES,
    Estimate,
    SimulatedConversation,
    Simulation,
    batch_means,
)

TOLERANCE = 0.05
ERLANG_SKILL = "support"
ERLANG_CHANNEL = "webchat"


@dataclass(frozen=True)
class ErlangResult:
    """Erlang C against the simulation, and whether they agree within ``TOLERANCE``."""

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
        conv = SimulatedConversation(
            id=cid,
            seq=seq,
            arrival=t,
            channel=ERLANG_CHANNEL,
            need=Need(cid, ERLANG_CHANNEL, self.req, queued_at=t),
            handle=self.service_rng.expovariate(self.mu),
        )
        self.at(t, ARRIVAL, conv)

    def arrive(self, conv: SimulatedConversation, now: float) -> None:
        self.next_arrival(now)
        super().arrive(conv, now)

    def started(self, conv: SimulatedConversation, now: float) -> None:
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
