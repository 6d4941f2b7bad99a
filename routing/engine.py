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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Skip:
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

    def explain(self) -> dict[str, Any]:
        """Everything: who was chosen and why, and every agent skipped, by reason."""
        by_reason: dict[str, list[str]] = {}
        for s in self.skipped:
            by_reason.setdefault(s.reason, []).append(s.agent_id)
        return {**self.summary(), "skipped": by_reason}


def ineligible(
    agent: AgentState, req: Requirements, channel_type: str, excluded: frozenset[str]
) -> str | None:
    """Why this agent cannot take the conversation now, or None if it can."""
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
    if not agent.has_room(channel_type):
        return "at_capacity"
    return None


@dataclass(frozen=True)
class Engine:
    sticky_window: float = 0.0
    policy: str = "skills_load"

    def decide(
        self, index: AgentIndex, need: Need, now: float, *, explain: bool = True
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
        if req.any_agent or not req.skills:
            skill = None
        else:
            skill = min((s for s, _ in req.skills), key=lambda s: index.available(channel, s))
        chosen: AgentState | None = None
        examined = 0
        named_sticky = skipped[0].agent_id if skipped else None
        sticky_walked = False
        for agent in index.candidates(channel, skill):
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
        counts: Counter[str]
        if len(index.agents) <= FULL_EXPLAIN:
            skipped, counts = self._full(index, need, req, chosen, skipped)
        else:
            counts = Counter(s.reason for s in skipped)
            online = index.presence_counts.get(ONLINE, 0)
            for presence, n in index.presence_counts.items():
                if presence != ONLINE and n:
                    counts[presence] += n
            # online agents not in the walked list: no room on this channel, or no skill
            counts["at_capacity_or_missing_skill"] += max(
                0, online - index.available(channel, skill)
            )
            unwalked_sticky = (
                named_sticky is not None
                and not sticky_walked
                and index.listed(named_sticky, channel, skill)
            )
            counts["not_examined"] += max(
                0, index.available(channel, skill) - examined - int(unwalked_sticky)
            )
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
    ) -> tuple[list[Skip], Counter[str]]:
        """Every agent but the chosen one, with its reason."""
        named = {s.agent_id: s for s in already if s.reason.startswith("sticky_")}
        skipped: list[Skip] = list(named.values())
        for agent_id in index.sorted_ids():
            if (chosen is not None and agent_id == chosen.id) or agent_id in named:
                continue
            reason = ineligible(index.agents[agent_id], req, need.channel_type, need.excluded)
            skipped.append(Skip(agent_id, reason or "higher_load"))
        return skipped, Counter(s.reason for s in skipped)

    def dispatch(
        self,
        index: AgentIndex,
        needs: Sequence[Need],
        now: float,
        *,
        explain: set[str] | None = None,
    ) -> list[Decision]:
        """Decide for the queue in order (priority, then waiting time), each decision seeing
        the assignments before it. ``explain``: conversations whose decision will be kept."""
        decisions = []
        # Needs that find nobody while nothing changes get the same explanation: a long
        # queue during a rush is explained once, not once per waiting conversation.
        unchanged: dict[tuple[object, ...], Decision] = {}
        for need in queue_order(needs):
            wanted = explain is None or need.conversation_id in explain
            key = (
                need.channel_type,
                effective(need.base, need.ladder, max(0.0, now - need.queued_at)),
                need.excluded,
                need.sticky_agent,
                wanted,
            )
            same = unchanged.get(key)
            if same is not None:
                decision = replace(same, conversation_id=need.conversation_id)
            else:
                decision = self.decide(index, need, now, explain=wanted)
            if decision.agent_id is not None:
                index.assign(decision.agent_id, need.channel_type, now)
                unchanged.clear()
            elif need.sticky_at is None or need.sticky_agent is None:
                unchanged[key] = decision
            decisions.append(decision)
        return decisions


def queue_order(needs: Sequence[Need]) -> list[Need]:
    """Higher priority first, then longest waiting, then a stable tie-break."""
    return sorted(needs, key=lambda n: (-n.priority, n.queued_at, n.conversation_id))
