"""Routing inside write transactions: the thin service around routing.engine.

The agent index lives here, loaded from the database on first use and changed by every
write that changes agents or assignments, in the same transaction. If a write or a
commit fails, the index is dropped and reloaded from the database by the next routing
write, so it never drifts from what was committed. All writes run one at a time, so two
decisions can never hand out the same conversation or the same free slot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.store.base import DispatchResult
from gateway.store.sqlite import rows
from gateway.store.sqlite.engine import Tx
from kernel.errors import Conflict, NotFound
from kernel.events import RawJSON
from kernel.ids import AgentId, ConversationId, new_message_id
from kernel.models import (
    Agent,
    Author,
    AuthorType,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    Presence,
    TextPart,
)
from routing.engine import Decision, Engine, Need, queue_order
from routing.index import AgentIndex, AgentState
from routing.rules import Classification, Requirements, classify, effective, next_step_at
from routing.settings import RoutingSettings

QUEUE_SCAN_LIMIT = 2000
# Assignments per dispatch transaction: about 30-50 ms of the event loop's thread.
DISPATCH_CHUNK = 256
# The first page of the queue read by a dispatch; the rest, up to the scan limit, only
# if the engine gets past it.
FIRST_PAGE = DISPATCH_CHUNK + 64
AHT_SAMPLE = 200
US = 1_000_000


class RoutingState:
    """Routing configuration and the agent index of one store."""

    def __init__(self, settings: RoutingSettings, channel_types: Iterable[str] = ()) -> None:
        self.settings = settings
        self.engine = Engine(sticky_window=settings.sticky_window)
        self.rules = {r.name: r for r in settings.rules}
        self.channel_types = set(channel_types)
        self._index: AgentIndex | None = None
        self._ladders: dict[str | None, tuple[Any, ...]] = {}
        self._requirements: dict[tuple[str | None, str | None], Requirements] = {}

    def invalidate(self) -> None:
        self._index = None

    def index(self, tx: Tx) -> AgentIndex:
        if self._index is None:
            self._index = load_index(tx, self.channel_types)
        return self._index

    def ladder(self, rule: str | None) -> tuple[Any, ...]:
        found = self._ladders.get(rule)
        if found is None:
            matched = self.rules.get(rule) if rule else None
            if matched is not None and matched.escalation is not None:
                found = tuple(matched.escalation)
            else:
                found = tuple(self.settings.escalation)
            self._ladders[rule] = found
        return found

    def requirements(self, skills_json: str | None, language: str | None) -> Requirements:
        """The base requirements stored with a conversation (few distinct ones: shared)."""
        key = (skills_json, language)
        found = self._requirements.get(key)
        if found is None:
            skills = json.loads(skills_json) if skills_json else {}
            found = Requirements(skills=tuple(sorted(skills.items())), language=language)
            if len(self._requirements) < 10_000:
                self._requirements[key] = found
        return found


def load_index(tx: Tx, channel_types: Iterable[str]) -> AgentIndex:
    loads: dict[str, dict[str, int]] = {}
    types = set(channel_types)
    for agent_id, channel_type, count in tx.execute(
        "SELECT assignee_id, channel_type, COUNT(*) FROM conversations "
        "INDEXED BY conversations_assignee WHERE status = 'assigned' "
        "GROUP BY assignee_id, channel_type"
    ):
        loads.setdefault(agent_id, {})[channel_type] = count
        types.add(channel_type)
    for (channel_type,) in tx.execute("SELECT DISTINCT channel_type FROM conversations"):
        types.add(channel_type)
    index = AgentIndex(types)
    for r in tx.execute("SELECT * FROM agents"):
        index.put(
            AgentState(
                id=r["id"],
                presence=r["presence"],
                skills={k: v for k, v in json.loads(r["skills"]).items() if v >= 1},
                languages=frozenset(json.loads(r["languages"])),
                capacity=json.loads(r["capacity"]),
                load=loads.get(r["id"], {}),
                last_assigned_at=r["last_assigned_at"] / US,
            )
        )
    return index


# --- classification -----------------------------------------------------------------------


def classify_new(
    tx: Tx,
    state: RoutingState,
    *,
    channel_id: str,
    channel_type: str,
    text: str,
    declared_language: str | None,
    contact_id: str,
) -> Classification:
    row = tx.one(
        "SELECT r.attributes FROM contacts k JOIN contacts r "
        "ON r.id = COALESCE(k.merged_into, k.id) WHERE k.id = ?",
        (contact_id,),
    )
    attributes = json.loads(row[0]) if row is not None and row[0] else {}
    return classify(
        state.settings.rules,
        state.settings.escalation,
        channel_id=channel_id,
        channel_type=channel_type,
        text=text,
        declared_language=declared_language,
        attributes=attributes,
    )


# --- small helpers ------------------------------------------------------------------------


def _conversation(tx: Tx, conversation_id: str) -> Conversation:
    row = tx.one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found", code="conversation_not_found")
    return rows.conversation(row)


def _row(tx: Tx, conversation_id: str) -> Any:
    row = tx.one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found", code="conversation_not_found")
    return row


def _event(tx: Tx, type_: str, conv: Conversation, **extra: Any) -> None:
    tx.emit(type_, {"conversation": conv, **extra}, conv.id)


_SERVED = (
    "UPDATE contacts SET last_agent_id = ?, last_served_at = ? WHERE id = "
    "(SELECT COALESCE(merged_into, id) FROM contacts WHERE id = ?)"
)


def served(tx: Tx, contact_id: str, agent_id: str) -> None:
    """Remember who served this contact last (stickiness), on the merge group's root."""
    tx.execute(_SERVED, (agent_id, tx.now, contact_id))


_RECORD = (
    "INSERT INTO routing_decisions (conversation_id, created_at, agent_id, explanation) "
    "VALUES (?, ?, ?, ?)"
)


def _record(tx: Tx, decision: Decision) -> None:
    explanation = _explained(decision)[1]
    tx.execute(_RECORD, (decision.conversation_id, tx.now, decision.agent_id, explanation))


def _explained(decision: Decision) -> tuple[RawJSON, str]:
    """The decision's summary (for its event) and its whole explanation (kept), as JSON:
    the explanation is the summary with the skipped agents added."""
    summary = rows.dumps(decision.summary())
    skipped = rows.dumps(decision.skipped_by_reason())
    return RawJSON(summary), f'{summary[:-1]},"skipped":{skipped}}}'


def _exclude(tx: Tx, conversation_id: str, agent_id: str) -> None:
    row = _row(tx, conversation_id)
    excluded = set(json.loads(row["excluded_agents"]))
    excluded.add(agent_id)
    tx.execute(
        "UPDATE conversations SET excluded_agents = ? WHERE id = ?",
        (json.dumps(sorted(excluded)), conversation_id),
    )


_NONE_EXCLUDED: frozenset[str] = frozenset()


def need_of(row: Any, state: RoutingState) -> Need:
    excluded = row["excluded_agents"]
    joined = "last_agent_id" in row.keys()  # noqa: SIM118 (sqlite3.Row)
    last_at = row["last_served_at"] if joined else None
    return Need(
        conversation_id=row["id"],
        channel_type=row["channel_type"],
        base=state.requirements(row["required_skills"], row["language"]),
        ladder=state.ladder(row["routing_rule"]),
        priority=row["priority"],
        queued_at=(row["queued_at"] or row["created_at"]) / US,
        excluded=_NONE_EXCLUDED if excluded == "[]" else frozenset(json.loads(excluded)),
        sticky_agent=row["last_agent_id"] if joined else None,
        sticky_at=None if last_at is None else last_at / US,
    )


_QUEUED = (
    "SELECT c.*, r.last_agent_id, r.last_served_at FROM conversations c "
    "INDEXED BY conversations_queue "
    "LEFT JOIN contacts k ON k.id = c.contact_id "
    "LEFT JOIN contacts r ON r.id = COALESCE(k.merged_into, k.id) "
    "WHERE c.status = 'queued' ORDER BY c.priority DESC, c.queued_at, c.id LIMIT ? OFFSET ?"
)


# --- wait estimates -----------------------------------------------------------------------


@dataclass
class Estimator:
    """Queue positions and estimated waits, per group of conversations that need the same
    kind of agent: position in that group x average handle time / the group's slots."""

    state: RoutingState
    index: AgentIndex
    tx: Tx
    _aht: dict[str, float] = field(default_factory=dict)
    _slots: dict[tuple[str, Requirements], int] = field(default_factory=dict)

    def aht(self, channel_type: str) -> float:
        if channel_type not in self._aht:
            row = self.tx.one(
                "SELECT AVG(resolved_at - assigned_at) FROM (SELECT resolved_at, assigned_at "
                "FROM conversations WHERE status = 'resolved' AND channel_type = ? "
                "AND assigned_at IS NOT NULL AND resolved_at > assigned_at "
                "ORDER BY resolved_at DESC LIMIT ?)",
                (channel_type, AHT_SAMPLE),
            )
            measured = row[0] if row is not None else None
            self._aht[channel_type] = (
                measured / US if measured else self.state.settings.average_handle_time
            )
        return self._aht[channel_type]

    def slots(self, channel_type: str, req: Requirements) -> int:
        key = (channel_type, req)
        if key not in self._slots:
            total = 0
            for agent in self.index.agents.values():
                if agent.presence != "online":
                    continue
                if not req.any_agent:
                    if any(agent.skills.get(s, 0) < lvl for s, lvl in req.skills):
                        continue
                    if not agent.speaks(req.language):
                        continue
                limits = [v for k, v in agent.capacity.items() if k in (channel_type, "total")]
                total += min(limits) if limits else 1
            self._slots[key] = total
        return self._slots[key]

    def estimate(self, channel_type: str, req: Requirements, position: int) -> float | None:
        slots = self.slots(channel_type, req)
        if slots <= 0:
            return None  # nobody online could ever take it: no honest estimate
        return round(position * self.aht(channel_type) / slots, 1)


def positions(needs: list[Need], decisions: Mapping[str, Decision]) -> dict[str, int]:
    """1-based place of each still-queued conversation among those needing the same."""
    counters: dict[tuple[str, Requirements], int] = {}
    out: dict[str, int] = {}
    for need in queue_order(needs):
        decision = decisions.get(need.conversation_id)
        if decision is not None and decision.agent_id is not None:
            continue
        req = decision.requirements if decision is not None else need.base
        key = (need.channel_type, req)
        counters[key] = counters.get(key, 0) + 1
        out[need.conversation_id] = counters[key]
    return out


# --- dispatch -----------------------------------------------------------------------------


def dispatch(tx: Tx, state: RoutingState) -> DispatchResult:
    """Requeue breached assignments, then route the queue in order and announce waits.

    At most DISPATCH_CHUNK conversations are assigned per call (one transaction, run on
    the event loop's thread): a long queue meeting free capacity is served in several
    short transactions, with other writes between them, and ``more`` says so."""
    index = state.index(tx)
    now = tx.now / US
    next_sla = sweep_sla(tx, state, index, now)
    # The queue is read in serving order, a page at a time, as the engine gets to it:
    # when a chunk fills early the rest is not read. (All reads come before the writes
    # below, so the pages see the queue as it was.)
    by_id: dict[str, Any] = {}
    unannounced: set[str] = set()
    needs: list[Need] = []

    def in_order() -> Iterator[Need]:
        offset = 0
        page = FIRST_PAGE
        while offset < QUEUE_SCAN_LIMIT:
            page = min(page, QUEUE_SCAN_LIMIT - offset)
            found = tx.execute(_QUEUED, (page, offset)).fetchall()
            for row in found:
                need = need_of(row, state)
                index.add_channel(need.channel_type)
                by_id[need.conversation_id] = row
                if not row["queue_announced"]:
                    unannounced.add(need.conversation_id)
                needs.append(need)
                yield need
            if len(found) < page:
                return
            offset += page
            page = QUEUE_SCAN_LIMIT

    decisions = state.engine.dispatch(
        index, in_order(), now, explain=unannounced, limit=DISPATCH_CHUNK, ordered=True
    )
    if not decisions:
        return DispatchResult([], next_sla)
    result = DispatchResult(decisions)
    by_conv = {d.conversation_id: d for d in decisions}
    assigned = sum(1 for d in decisions if d.agent_id is not None)
    result.more = assigned >= DISPATCH_CHUNK
    places = positions(needs, by_conv) if unannounced else {}
    estimator = Estimator(state, index, tx)
    wakeups = [next_sla] if next_sla is not None else []
    assigned_rows = _Assignments(tx)
    for need in needs:
        decision = by_conv[need.conversation_id]
        row = by_id[need.conversation_id]
        if decision.agent_id is not None:
            assigned_rows.add(row, decision)
            due = _reassign_due(state, row, now)
            if due is not None:  # the sweep above could not know this assignment yet
                wakeups.append(due)
            continue
        at = next_step_at(need.queued_at, need.ladder, now)
        if at is not None:
            wakeups.append(at)
        if need.conversation_id in unannounced:
            position = places[need.conversation_id]
            wait = estimator.estimate(need.channel_type, decision.requirements, position)
            tx.execute(
                "UPDATE conversations SET queue_announced = 1 WHERE id = ?", (need.conversation_id,)
            )
            _record(tx, decision)
            conv = rows.conversation(row)
            _event(
                tx,
                "conversation.queued",
                conv,
                position=position,
                estimated_wait_seconds=wait,
                routing=decision.summary(),
            )
            if _tell_customer(tx, state, conv, position, wait):
                result.customer_messages += 1
    assigned_rows.write()
    result.next_wakeup = min(wakeups) if wakeups else None
    return result


class _Assignments:
    """The assignments of one dispatch, written together: each conversation's update,
    the contact's last agent (stickiness), the decision kept with its explanation and
    the agent's time of last assignment, as one statement each for all of them; events in
    decision order."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.conversations: list[tuple[str, int, str]] = []
        self.contacts: list[tuple[str, int, str]] = []
        self.records: list[tuple[str, int, str, str]] = []
        self.agents: dict[str, int] = {}

    def add(self, row: Any, decision: Decision) -> None:
        tx = self.tx
        agent_id = decision.agent_id
        assert agent_id is not None
        self.conversations.append((agent_id, tx.now, row["id"]))
        self.contacts.append((agent_id, tx.now, row["contact_id"]))
        summary, explanation = _explained(decision)
        self.records.append((row["id"], tx.now, agent_id, explanation))
        self.agents[agent_id] = tx.now
        # The row was read in this transaction: no need to read it again after the update.
        conv = rows.conversation_json(row, status="assigned", assignee_id=agent_id)
        tx.emit(
            "conversation.assigned",
            {"conversation": RawJSON(conv), "agent_id": agent_id, "routing": summary},
            row["id"],
        )

    def write(self) -> None:
        if not self.conversations:
            return
        conn = self.tx.conn
        conn.executemany(
            "UPDATE conversations SET status = 'assigned', assignee_id = ?, assigned_at = ?, "
            "queue_announced = 0 WHERE id = ? AND status = 'queued'",
            self.conversations,
        )
        conn.executemany(_SERVED, self.contacts)
        conn.executemany(_RECORD, self.records)
        conn.executemany(
            "UPDATE agents SET last_assigned_at = ? WHERE id = ?",
            [(at, agent_id) for agent_id, at in self.agents.items()],
        )


def _tell_customer(
    tx: Tx, state: RoutingState, conv: Conversation, position: int, wait: float | None
) -> bool:
    settings = state.settings.queue_message
    if not settings.enabled or wait is None or wait < settings.min_wait:
        return False
    language = conv.language or state.settings.default_language
    template = settings.texts.get(language) or settings.texts.get(state.settings.default_language)
    if not template:
        return False
    text = template.format(position=position, minutes=max(1, math.ceil(wait / 60)))
    message = Message(
        id=new_message_id(),
        conversation_id=conv.id,
        channel_id=conv.channel_id,
        direction=Direction.OUTBOUND,
        author=Author(type=AuthorType.SYSTEM),
        parts=[TextPart(text=text)],
        created_at=tx.now_dt,
        status=MessageStatus.PENDING,
    )
    tx.execute(
        "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, "
        "author_type, author_id, parts, created_at, status, next_attempt_at) "
        "VALUES (?, ?, ?, ?, 'outbound', 'system', NULL, ?, ?, 'pending', ?)",
        (
            message.id,
            conv.id,
            conv.contact_id,
            conv.channel_id,
            rows.parts_json(message.parts),
            tx.now,
            tx.now,
        ),
    )
    return True


def _reassign_due(state: RoutingState, row: Any, now: float) -> float | None:
    """When an assignment made now is taken back if the waiting customer gets no answer."""
    if not state.settings.reassign_after or row["awaiting_since"] is None:
        return None
    threshold = state.settings.reassign_after_for(row["channel_id"], row["channel_type"])
    return None if threshold is None else now + threshold


def sweep_sla(tx: Tx, state: RoutingState, index: AgentIndex, now: float) -> float | None:
    """Requeue assignments whose customer waited too long for the agent; returns when the
    next one would breach."""
    if not state.settings.reassign_after:
        return None
    next_at: float | None = None
    for row in tx.execute(
        "SELECT * FROM conversations INDEXED BY conversations_awaiting "
        "WHERE status = 'assigned' AND awaiting_since IS NOT NULL",
    ).fetchall():
        threshold = state.settings.reassign_after_for(row["channel_id"], row["channel_type"])
        if threshold is None:
            continue
        started = max(row["awaiting_since"], row["assigned_at"] or 0) / US
        due = started + threshold
        if due > now:
            next_at = due if next_at is None else min(next_at, due)
            continue
        agent_id = row["assignee_id"]
        tx.execute(
            "UPDATE conversations SET status = 'queued', assignee_id = NULL, queued_at = ?, "
            "queue_announced = 0 WHERE id = ?",
            (row["awaiting_since"], row["id"]),
        )
        _exclude(tx, row["id"], agent_id)
        index.release(agent_id, row["channel_type"])
        _event(
            tx,
            "sla.breached",
            _conversation(tx, row["id"]),
            agent_id=agent_id,
            kind="reassign_after",
            threshold_seconds=threshold,
            waited_seconds=round(now - started, 1),
        )
    return next_at


# --- manual control -----------------------------------------------------------------------


def _check_agent(index: AgentIndex, agent_id: str, channel_type: str, force: bool) -> AgentState:
    agent = index.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    if force:
        return agent
    if agent.presence != Presence.ONLINE:
        raise Conflict(
            f"agent {agent_id} is {agent.presence}",
            code="agent_unavailable",
            details={"presence": agent.presence},
        )
    if not agent.has_room(channel_type):
        raise Conflict(
            f"agent {agent_id} is at capacity",
            code="agent_at_capacity",
            details={"load": dict(agent.load), "capacity": dict(agent.capacity)},
        )
    return agent


def assign(
    tx: Tx, state: RoutingState, conversation_id: ConversationId, agent_id: AgentId, force: bool
) -> Conversation:
    index = state.index(tx)
    row = _row(tx, conversation_id)
    if row["status"] == ConversationStatus.RESOLVED:
        raise Conflict("conversation is resolved; reopen it first", code="conversation_resolved")
    if row["status"] == ConversationStatus.ASSIGNED and row["assignee_id"] == agent_id:
        return rows.conversation(row)
    _check_agent(index, agent_id, row["channel_type"], force)
    previous = row["assignee_id"] if row["status"] == ConversationStatus.ASSIGNED else None
    tx.execute(
        "UPDATE conversations SET status = 'assigned', assignee_id = ?, assigned_at = ?, "
        "queue_announced = 0 WHERE id = ?",
        (agent_id, tx.now, conversation_id),
    )
    tx.execute("UPDATE agents SET last_assigned_at = ? WHERE id = ?", (tx.now, agent_id))
    if previous is not None:
        index.release(previous, row["channel_type"])
        _exclude(tx, conversation_id, previous)
    index.assign(agent_id, row["channel_type"], tx.now / US)
    served(tx, row["contact_id"], agent_id)
    decision = Decision(
        conversation_id,
        agent_id,
        "assigned by hand" + (" (forced)" if force else ""),
        policy="manual",
    )
    _record(tx, decision)
    conv = _conversation(tx, conversation_id)
    if previous is not None:
        _event(
            tx,
            "conversation.transferred",
            conv,
            from_agent_id=previous,
            to_agent_id=agent_id,
            forced=force,
        )
    else:
        _event(tx, "conversation.assigned", conv, agent_id=agent_id, routing=decision.summary())
    return conv


def transfer_to_skills(
    tx: Tx, state: RoutingState, conversation_id: ConversationId, skills: Mapping[str, int]
) -> Conversation:
    index = state.index(tx)
    row = _row(tx, conversation_id)
    if row["status"] == ConversationStatus.RESOLVED:
        raise Conflict("conversation is resolved; reopen it first", code="conversation_resolved")
    previous = row["assignee_id"] if row["status"] == ConversationStatus.ASSIGNED else None
    tx.execute(
        "UPDATE conversations SET status = 'queued', assignee_id = NULL, skills = ?, "
        "required_skills = ?, queued_at = ?, queue_announced = 0 WHERE id = ?",
        (json.dumps(sorted(skills)), json.dumps(dict(skills)), tx.now, conversation_id),
    )
    if previous is not None:
        index.release(previous, row["channel_type"])
        _exclude(tx, conversation_id, previous)
    conv = _conversation(tx, conversation_id)
    _event(tx, "conversation.transferred", conv, from_agent_id=previous, to_skills=dict(skills))
    return conv


def resolve(tx: Tx, state: RoutingState, conversation_id: ConversationId) -> Conversation:
    index = state.index(tx)
    row = _row(tx, conversation_id)
    if row["status"] == ConversationStatus.RESOLVED:
        raise Conflict("conversation is already resolved", code="conversation_resolved")
    tx.execute(
        "UPDATE conversations SET status = 'resolved', resolved_at = ?, queue_announced = 0, "
        "awaiting_since = NULL WHERE id = ?",
        (tx.now, conversation_id),
    )
    if row["status"] == ConversationStatus.ASSIGNED and row["assignee_id"]:
        index.release(row["assignee_id"], row["channel_type"])
    conv = _conversation(tx, conversation_id)
    _event(tx, "conversation.resolved", conv)
    return conv


def reopen(tx: Tx, conversation_id: ConversationId) -> Conversation:
    row = _row(tx, conversation_id)
    if row["status"] != ConversationStatus.RESOLVED:
        raise Conflict("conversation is not resolved", code="conversation_open")
    other = tx.one(
        "SELECT id FROM conversations WHERE contact_id = ? AND channel_id = ? "
        "AND status != 'resolved'",
        (row["contact_id"], row["channel_id"]),
    )
    if other is not None:
        raise Conflict(
            "the contact already has an open conversation on this channel",
            code="open_conversation_exists",
            details={"conversation_id": other["id"]},
        )
    tx.execute(
        "UPDATE conversations SET status = 'queued', assignee_id = NULL, resolved_at = NULL, "
        "queued_at = ?, queue_announced = 0 WHERE id = ?",
        (tx.now, conversation_id),
    )
    conv = _conversation(tx, conversation_id)
    _event(tx, "conversation.reopened", conv)
    return conv


# --- agents -------------------------------------------------------------------------------


def _agent_row(tx: Tx, agent_id: str) -> Any:
    row = tx.one("SELECT * FROM agents WHERE id = ?", (agent_id,))
    if row is None:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    return row


def put_agent(tx: Tx, state: RoutingState, agent: Agent, keep_presence: bool) -> tuple[Agent, bool]:
    index = state.index(tx)
    row = tx.one("SELECT * FROM agents WHERE id = ?", (agent.id,))
    values = (
        agent.name,
        rows.dumps(agent.skills),
        rows.dumps(agent.languages),
        rows.dumps(agent.capacity),
    )
    if row is None:
        tx.execute(
            "INSERT INTO agents (id, name, skills, languages, capacity, presence, "
            "presence_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (agent.id, *values, agent.presence.value, tx.now, tx.now, tx.now),
        )
        index.update(
            agent.id,
            skills=agent.skills,
            languages=agent.languages,
            capacity=agent.capacity,
            presence=agent.presence.value,
        )
        if agent.presence != Presence.OFFLINE:
            _presence_event(tx, agent.id, agent.presence, None)
        return rows.agent(_agent_row(tx, agent.id)), True
    tx.execute(
        "UPDATE agents SET name = ?, skills = ?, languages = ?, capacity = ?, updated_at = ? "
        "WHERE id = ?",
        (*values, tx.now, agent.id),
    )
    index.update(agent.id, skills=agent.skills, languages=agent.languages, capacity=agent.capacity)
    if not keep_presence and agent.presence != row["presence"]:
        set_presence(tx, state, agent.id, agent.presence)
    return rows.agent(_agent_row(tx, agent.id)), False


def _presence_event(tx: Tx, agent_id: str, status: Presence, previous: str | None) -> None:
    tx.emit(
        "agent.presence_changed",
        {"agent_id": agent_id, "status": status.value, "previous": previous},
    )


def set_presence(tx: Tx, state: RoutingState, agent_id: AgentId, presence: Presence) -> Agent:
    index = state.index(tx)
    row = _agent_row(tx, agent_id)
    if row["presence"] != presence:
        tx.execute(
            "UPDATE agents SET presence = ?, presence_changed_at = ? WHERE id = ?",
            (presence.value, tx.now, agent_id),
        )
        index.update(agent_id, presence=presence.value)
        _presence_event(tx, agent_id, presence, row["presence"])
        policy = {
            Presence.AWAY: state.settings.on_away,
            Presence.OFFLINE: state.settings.on_offline,
        }.get(presence, "keep")
        if policy == "requeue":
            _requeue_agent(tx, index, agent_id, f"agent_{presence.value}")
    return rows.agent(_agent_row(tx, agent_id))


def _requeue_agent(tx: Tx, index: AgentIndex, agent_id: str, reason: str) -> None:
    for row in tx.execute(
        "SELECT id, channel_type, awaiting_since FROM conversations "
        "WHERE status = 'assigned' AND assignee_id = ?",
        (agent_id,),
    ).fetchall():
        # A customer already waiting keeps their place in the queue. This event is the
        # announcement: dispatch will not announce it again.
        tx.execute(
            "UPDATE conversations SET status = 'queued', assignee_id = NULL, "
            "queued_at = COALESCE(awaiting_since, ?), queue_announced = 1 WHERE id = ?",
            (tx.now, row["id"]),
        )
        index.release(agent_id, row["channel_type"])
        _event(
            tx,
            "conversation.queued",
            _conversation(tx, row["id"]),
            reason=reason,
            previous_agent_id=agent_id,
        )


# --- views --------------------------------------------------------------------------------


def queue_view(
    tx: Tx, state: RoutingState, channel_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The queue in dispatch order, with each conversation's place and estimated wait."""
    index = state.index(tx)
    now = tx.now / US
    queued = tx.execute(_QUEUED, (QUEUE_SCAN_LIMIT, 0)).fetchall()
    needs = [need_of(r, state) for r in queued]
    for channel_type in {n.channel_type for n in needs}:
        index.add_channel(channel_type)
    reqs = {n.conversation_id: effective(n.base, n.ladder, now - n.queued_at) for n in needs}
    decisions = {cid: Decision(cid, None, "", req, step) for cid, (req, step) in reqs.items()}
    places = positions(needs, decisions)
    estimator = Estimator(state, index, tx)
    by_id = {r["id"]: r for r in queued}
    out = []
    for need in queue_order(needs):
        row = by_id[need.conversation_id]
        if channel_id is not None and row["channel_id"] != channel_id:
            continue
        req, step = reqs[need.conversation_id]
        position = places[need.conversation_id]
        out.append(
            {
                "conversation": rows.conversation(row),
                "position": position,
                "estimated_wait_seconds": estimator.estimate(need.channel_type, req, position),
                "waiting_seconds": round(max(0.0, now - need.queued_at), 1),
                "requirements": req.as_dict(),
                "escalation_step": step,
                "rule": row["routing_rule"],
            }
        )
        if len(out) >= limit:
            break
    return out
