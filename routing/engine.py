"""Routing decisions: who takes a conversation, or why nobody can yet.

Eligible = online, has every required skill at its minimum level, speaks the language,
has room on the conversation's channel and in total, and is not excluded (declined,
timed out or transferred away). Among the eligible: the agent who served this contact
most recently, if within the sticky window; otherwise the lowest load ratio, then the
longest idle, then the lowest id. The same state always gives the same decision.

Pure: no I/O, the clock is an argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from routing.index import ONLINE, AgentIndex, AgentState
from routing.rules import EscalationStep, Requirements, effective

# Up to this many agents, an explanation names every agent and why it was not chosen;
# beyond, it names the agents the decision looked at and counts the rest by reason.
FULL_EXPLAIN = 200
MAX_NAMED = 200
NO_REQUIREMENTS = Requirements()


@dataclass(frozen=True, slots=True)
class Need:
    """What one queued conversation needs."""

    conversation_id: str
    channel_type: str
    base: Requirements = NO_REQUIREMENTS
    ladder: tuple[EscalationStep, ...] = ()
    priority: int = 0
    queued_at: float = 0.0
    excluded: frozenset[str] = frozenset()
    sticky_agent: str | None = None
    sticky_at: float | None = None


class Skip(NamedTuple):
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    conversation_id: str
    agent_id: str | None
    why: str
    requirements: Requirements = NO_REQUIREMENTS
    step: int = 0
    skipped: tuple[Skip, ...] = ()
    skipped_counts: dict[str, int] = field(default_factory=dict)
    policy: str = "skills_load"

    def summary(self) -> dict[str, Any]:
        """The explanation without the per-agent list (for events; the list is kept with
        the decision)."""
        return {
            "policy": self.policy,
            "agent_id": self.agent_id,
            "why": self.why,
            "requirements": self.requirements.as_dict(),
            "escalation_step": self.step,
            "skipped_counts": dict(self.skipped_counts),
        }

    def skipped_by_reason(self) -> dict[str, list[str]]:
        by_reason: dict[str, list[str]] = {}
        for agent_id, reason in self.skipped:
            group = by_reason.get(reason)
            if group is None:
                by_reason[reason] = [agent_id]
            else:
                group.append(agent_id)
        return by_reason

    def explain(self) -> dict[str, Any]:
        """Everything: who was chosen and why, and every agent skipped, by reason."""
        return {**self.summary(), "skipped": self.skipped_by_reason()}


def ineligible(
    agent: AgentState,
    req: Requirements,
    channel_type: str,
    excluded: frozenset[str],
    index: AgentIndex | None = None,
) -> str | None:
    """Why this agent cannot take the conversation now, or None if it can. With the
    index, whether the agent has room is looked up there instead of worked out."""
    if agent.presence != ONLINE:
        return agent.presence
    if agent.id in excluded:
        return "excluded"
    if not req.any_agent:
        for skill, level in req.skills:
            have = agent.skills.get(skill, 0)
            if have < 1:
                return "missing_skill"
            if have < level:
                return "skill_level"
        if not agent.speaks(req.language):
            return "language"
    if not (agent.has_room(channel_type) if index is None else index.has_room(agent, channel_type)):
        return "at_capacity"
    return None


@dataclass(frozen=True)
class Engine:
    sticky_window: float = 0.0
    policy: str = "skills_load"

    def decide(
        self,
        index: AgentIndex,
        need: Need,
        now: float,
        *,
        explain: bool = True,
        reasons: ReasonCache | None = None,
    ) -> Decision:
        req, step = effective(need.base, need.ladder, max(0.0, now - need.queued_at))
        channel = need.channel_type
        skipped: list[Skip] = []

        # 1. stickiness: whoever served this contact last, if still eligible
        sticky = need.sticky_agent
        if (
            sticky is not None
            and need.sticky_at is not None
            and self.sticky_window > 0
            and now - need.sticky_at <= self.sticky_window
        ):
            agent = index.agents.get(sticky)
            reason = "unknown" if agent is None else ineligible(agent, req, channel, need.excluded)
            if reason is None:
                ago = max(0, round(now - need.sticky_at))
                return Decision(
                    need.conversation_id,
                    sticky,
                    f"sticky: served this contact {ago}s ago",
                    req,
                    step,
                    policy=self.policy,
                )
            skipped.append(Skip(sticky, f"sticky_{reason}"))

        # 2. the best available agent, walking the list of the rarest required skill
        skill: str | None = None
        level = 0
        if not req.any_agent and req.skills:
            skill, level = min(req.skills, key=lambda s: index.available(channel, s[0], s[1]))
        chosen: AgentState | None = None
        examined = 0
        named_sticky = skipped[0].agent_id if skipped else None
        sticky_walked = False
        with closing(index.candidates(channel, skill, level)) as walk:
            for agent in walk:
                examined += 1
                if agent.id == named_sticky:
                    sticky_walked = True
                    continue  # already named, as the sticky agent
                reason = ineligible(agent, req, channel, need.excluded)
                if reason is None:
                    chosen = agent
                    break
                if explain and len(skipped) < MAX_NAMED:
                    skipped.append(Skip(agent.id, reason))

        if chosen is not None:
            why = f"lowest load ratio ({chosen.ratio(channel):.2f}) among eligible agents"
        else:
            why = "no eligible agent"
        if not explain:
            return Decision(
                need.conversation_id,
                None if chosen is None else chosen.id,
                why,
                req,
                step,
                policy=self.policy,
            )
        counts: dict[str, int]
        if len(index.agents) <= FULL_EXPLAIN:
            skipped, counts = self._full(index, need, req, chosen, skipped, reasons)
        else:
            counts = Counter(s.reason for s in skipped)
            # Everyone else is counted by group, the sticky agent (already named) excepted.
            sticky_agent = index.agents.get(named_sticky) if named_sticky is not None else None
            sticky_group = None
            if sticky_agent is not None:
                if sticky_agent.presence != ONLINE:
                    sticky_group = sticky_agent.presence
                elif not index.listed(sticky_agent.id, channel, skill):
                    sticky_group = "at_capacity_or_missing_skill"
                elif not index.listed(sticky_agent.id, channel, skill, level):
                    sticky_group = "skill_level"
                elif not sticky_walked:
                    sticky_group = "not_examined"
            online = index.presence_counts.get(ONLINE, 0)
            groups: Counter[str] = Counter()
            for presence, n in index.presence_counts.items():
                if presence != ONLINE and n:
                    groups[presence] += n
            # online agents not in the walked lists: no room on this channel, no skill, or
            # the skill below the level asked for
            with_skill = index.available(channel, skill)
            walked = index.available(channel, skill, level) if skill is not None else with_skill
            groups["at_capacity_or_missing_skill"] += max(0, online - with_skill)
            groups["skill_level"] += max(0, with_skill - walked)
            groups["not_examined"] += max(0, walked - examined)
            if sticky_group is not None:
                groups[sticky_group] -= 1
            counts.update({k: n for k, n in groups.items() if n > 0})
        return Decision(
            need.conversation_id,
            None if chosen is None else chosen.id,
            why,
            req,
            step,
            tuple(skipped),
            dict(counts),
            self.policy,
        )

    def _full(
        self,
        index: AgentIndex,
        need: Need,
        req: Requirements,
        chosen: AgentState | None,
        already: list[Skip],
        cache: ReasonCache | None,
    ) -> tuple[list[Skip], dict[str, int]]:
        """Every agent but the chosen one, with its reason."""
        named = {s.agent_id: s for s in already if s.reason.startswith("sticky_")}
        skipped: list[Skip] = list(named.values())
        if chosen is not None:
            named[chosen.id] = Skip(chosen.id, "")
        if cache is None:
            every = _skips(index, need.channel_type, req, need.excluded, index.sorted_ids())
            counts = dict(Counter(s.reason for s in every.values()))
        else:
            every, cached = cache.skips(index, need.channel_type, req, need.excluded)
            counts = dict(cached)
        for agent_id in named:
            found = every.get(agent_id)
            if found is not None:
                counts[found.reason] -= 1
        for s in skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        skipped.extend([s for a, s in every.items() if a not in named])
        return skipped, {k: n for k, n in counts.items() if n > 0}

    def dispatch(
        self,
        index: AgentIndex,
        needs: Iterable[Need],
        now: float,
        *,
        explain: set[str] | None = None,
        limit: int | None = None,
        ordered: bool = False,
    ) -> list[Decision]:
        """Decide for the queue in order (priority, then waiting time), each decision seeing
        the assignments before it. ``explain``: conversations whose decision will be kept.
        ``limit``: stop after this many assignments (the needs after are not looked at).
        ``ordered``: the needs already come in queue order (and may be produced lazily)."""
        run = DispatchRun(self, index, now, explain=explain, limit=limit)
        run.offer(needs if ordered else queue_order(list(needs)))
        return run.decisions


class DispatchRun:
    """One dispatch of a queue, fed in queue order (in pages, if the queue is read in
    pages): each decision sees the assignments before it, and the run stops taking needs
    once ``limit`` conversations were assigned."""

    def __init__(
        self,
        engine: Engine,
        index: AgentIndex,
        now: float,
        *,
        explain: set[str] | None = None,
        limit: int | None = None,
    ) -> None:
        self.engine = engine
        self.index = index
        self.now = now
        # Conversations whose decision will be kept (None: every one). Read as each need
        # is decided, so it may grow while the run goes on.
        self.explain = explain
        self.limit = limit
        self.decisions: list[Decision] = []
        self.assigned = 0
        self._reasons = ReasonCache() if len(index.agents) <= FULL_EXPLAIN else None
        # Needs that find nobody while nothing changes get the same explanation: a long
        # queue during a rush is explained once, not once per waiting conversation.
        self._unchanged: dict[tuple[object, ...], Decision] = {}

    @property
    def full(self) -> bool:
        return self.limit is not None and self.assigned >= self.limit

    def offer(self, needs: Iterable[Need]) -> int:
        """Decide for these needs, in the order given, until the run is full; returns how
        many were decided (the rest were not looked at)."""
        index, now, explain = self.index, self.now, self.explain
        unchanged, reasons = self._unchanged, self._reasons
        decided = 0
        for need in needs:
            if self.full:
                break
            decided += 1
            wanted = explain is None or need.conversation_id in explain
            key: tuple[object, ...] | None = None
            same = None
            if unchanged:
                key = _same_need(need, now, wanted)
                same = unchanged.get(key)
            if same is not None:
                decision = replace(same, conversation_id=need.conversation_id)
            else:
                decision = self.engine.decide(index, need, now, explain=wanted, reasons=reasons)
            self.decisions.append(decision)
            if decision.agent_id is not None:
                index.assign(decision.agent_id, need.channel_type, now)
                unchanged.clear()
                if reasons is not None:
                    reasons.changed.append(decision.agent_id)
                self.assigned += 1
            elif need.sticky_at is None or need.sticky_agent is None:
                unchanged[key or _same_need(need, now, wanted)] = decision
        return decided


def _same_need(need: Need, now: float, explained: bool) -> tuple[object, ...]:
    """Needs with the same key get the same decision while nothing is assigned. Only
    decisions without stickiness are kept for reuse, so a sticky agent counts only when
    the need has a time to be sticky from."""
    return (
        need.channel_type,
        effective(need.base, need.ladder, max(0.0, now - need.queued_at)),
        need.excluded,
        need.sticky_agent if need.sticky_at is not None else None,
        explained,
    )


def _skips(
    index: AgentIndex,
    channel: str,
    req: Requirements,
    excluded: frozenset[str],
    agent_ids: Iterable[str],
) -> dict[str, Skip]:
    agents = index.agents
    return {
        a: Skip(a, ineligible(agents[a], req, channel, excluded, index) or "higher_load")
        for a in agent_ids
    }


class ReasonCache:
    """Every agent's reason for not taking a conversation, per kind of need, kept through
    one dispatch: between two decisions only the agents assigned in between changed, so
    only their reasons are worked out again (an eligible agent's reason is higher_load)."""

    def __init__(self) -> None:
        self.changed: list[str] = []  # agents assigned so far in this dispatch, in order
        self._by_need: dict[tuple[object, ...], tuple[dict[str, Skip], Counter[str], list[int]]]
        self._by_need = {}

    def skips(
        self, index: AgentIndex, channel: str, req: Requirements, excluded: frozenset[str]
    ) -> tuple[dict[str, Skip], Counter[str]]:
        """Each agent's reason (in id order), and how many agents have each reason."""
        key = (channel, req, excluded)
        found = self._by_need.get(key)
        if found is None:
            every = _skips(index, channel, req, excluded, index.sorted_ids())
            counts = Counter(s.reason for s in every.values())
            self._by_need[key] = (every, counts, [len(self.changed)])
            return every, counts
        every, counts, seen = found
        if seen[0] < len(self.changed):
            for agent_id, skip in _skips(
                index, channel, req, excluded, set(self.changed[seen[0] :])
            ).items():
                counts[every[agent_id].reason] -= 1
                counts[skip.reason] += 1
                every[agent_id] = skip
            seen[0] = len(self.changed)
        return every, counts


def queue_order(needs: Sequence[Need]) -> list[Need]:
    """Higher priority first, then longest waiting, then a stable tie-break."""
    return sorted(needs, key=lambda n: (-n.priority, n.queued_at, n.conversation_id))
