"""Business hours and SLA clocks over the store: the off-hours reply, each conversation's
SLA clock moved by what happens to it, and the sweep that fires ``sla.warning`` and
``sla.breached`` (run with each dispatch, so on PostgreSQL one process at a time, under
routing's lock).

Times are Unix seconds given by the caller (``tx.now / US`` on every path that runs):
a test gives the instants it wants the rules to see.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway.domain.notices import write_notice
from gateway.store.records import US, ClockRecord, ConversationRecord
from gateway.store.rows import with_sla
from gateway.store.transaction import Tx
from kernel.models import Conversation, rfc3339
from routing.hours import BusinessHoursSettings, Calendar, Calendars
from routing.sla import Alert, SlaClock, SlaPolicySettings, match

# Clocks looked at by one sweep (the rest by the next, at once).
SWEEP_CHUNK = 500
ALWAYS = Calendar.always()


class Clocks:
    """The business hours and SLA policies of one configuration."""

    def __init__(
        self,
        hours: Iterable[BusinessHoursSettings] = (),
        policies: Iterable[SlaPolicySettings] = (),
        default_language: str = "vi",
    ) -> None:
        self.calendars = Calendars(list(hours))
        self.policies = list(policies)
        self.by_id = {p.id: p for p in self.policies}
        self.default_language = default_language

    def hours_of(
        self, channel_id: str, channel_type: str, rule: str | None = None
    ) -> Calendar | None:
        """The business hours a conversation follows (its routing rule's, else its
        channel's); None: around the clock."""
        return self.calendars.of(channel_id, channel_type, rule)

    def calendar(self, channel_id: str, channel_type: str, rule: str | None = None) -> Calendar:
        return self.hours_of(channel_id, channel_type, rule) or ALWAYS

    def business_wait(
        self,
        channel_id: str,
        channel_type: str,
        seconds: float | None,
        now: float,
        rule: str | None = None,
    ) -> float | None:
        """Wall-clock seconds until ``seconds`` of the channel's business time have passed
        (a wait estimated in handling time, served only while the team works)."""
        if seconds is None:
            return None
        calendar = self.hours_of(channel_id, channel_type, rule)
        if calendar is None:
            return seconds
        due = calendar.due(now, seconds)
        return None if due is None else round(due - now, 1)


def _stored(record: ClockRecord, clock: SlaClock) -> None:
    record.sla_json = clock.to_json()
    check = clock.next_check()
    record.next_check = None if check is None else round(check * US)


async def start(tx: Tx, clocks: Clocks, conv: ConversationRecord, now: float) -> None:
    """A new conversation: its SLA clock starts under the first policy that covers it."""
    if not clocks.policies:
        return
    attributes: dict[str, Any] = {}
    if any(p.contact for p in clocks.policies):
        attributes = json.loads(await tx.contacts.root_attributes_json(conv.contact_id))
    policy = match(clocks.policies, conv.channel_id, conv.channel_type, conv.priority, attributes)
    if policy is None:
        return
    calendar = clocks.calendar(conv.channel_id, conv.channel_type, conv.routing_rule)
    clock = SlaClock.start(policy, calendar, now)
    record = await tx.clocks.get(conv.id) or ClockRecord(conv.id, conv.channel_id, conv.created_at)
    record.policy = policy.id
    _stored(record, clock)
    await tx.clocks.put(record)


async def customer_wrote(
    tx: Tx, clocks: Clocks, conversation_id: str, channel_id: str, channel_type: str, now: float
) -> bool:
    """A customer's message: outside hours the off-hours reply (once per closed period
    and customer: a closed period is known by the opening that ends it), and an SLA's
    next response clock. Whether a reply was written."""
    conv = await tx.conversations.get(conversation_id) if clocks.calendars.by_rule else None
    rule = None if conv is None else conv.routing_rule
    calendar = clocks.hours_of(channel_id, channel_type, rule)
    closed = (
        calendar is not None and calendar.settings.off_hours_reply and not calendar.is_open(now)
    )
    if not closed and not clocks.policies:
        return False
    record = await tx.clocks.get(conversation_id)
    changed = wrote = False
    if closed:
        assert calendar is not None
        opening = calendar.next_opening(now)
        until = None if opening is None else round(opening * US)
        if until is not None and (record is None or record.off_hours_until != until):
            conv = conv or await tx.conversations.get(conversation_id)
            assert conv is not None
            # once per closed period and customer: also across their e-mail threads
            if not await tx.clocks.notified(conv.contact_id, channel_id, until):
                assert opening is not None
                wrote = await _off_hours_reply(tx, clocks, calendar, conv, opening)
                record = record or ClockRecord(conversation_id, channel_id, round(now * US))
                record.off_hours_until = until
                changed = True
    if record is not None and record.sla_json is not None:
        policy = clocks.by_id.get(record.policy or "")
        clock = SlaClock.from_json(record.sla_json)
        if policy is not None and clock.customer_waits(
            policy, clocks.calendar(channel_id, channel_type, rule), now
        ):
            _stored(record, clock)
            changed = True
    if changed and record is not None:
        await tx.clocks.put(record)
    return wrote


async def _off_hours_reply(
    tx: Tx, clocks: Clocks, calendar: Calendar, conv: ConversationRecord, opening: float
) -> bool:
    texts = calendar.settings.texts
    language = conv.language or clocks.default_language
    base = language.lower().split("-")[0]
    template = (
        texts.get(language)
        or texts.get(base)
        or texts.get(clocks.default_language)
        or next(iter(texts.values()), None)
    )
    if not template:
        return False
    text = template.format(opening=calendar.describe(opening, base))
    await write_notice(
        tx,
        conv.model(),
        text,
        metadata={
            "automatic": "off_hours",
            "business_hours": calendar.id,
            "next_opening": rfc3339(_dt(opening)),
        },
    )
    return True


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


async def _moved(tx: Tx, conversation_id: str, now: float, answered: bool) -> None:
    record = await tx.clocks.get(conversation_id)
    if record is None or record.sla_json is None:
        return
    clock = SlaClock.from_json(record.sla_json)
    if clock.answered(now) if answered else clock.resolved(now):
        _stored(record, clock)
        await tx.clocks.put(record)


async def answered(tx: Tx, conversation_id: str, now: float) -> None:
    """The business answered: running response targets are met."""
    await _moved(tx, conversation_id, now, answered=True)


async def resolved(tx: Tx, conversation_id: str, now: float) -> None:
    """Resolved: the clock stops."""
    await _moved(tx, conversation_id, now, answered=False)


async def sweep(tx: Tx, clocks: Clocks, now: float) -> float | None:
    """Fire the SLA warnings and breaches that are due, each once; returns when the next
    one is (Unix seconds)."""
    for record in await tx.clocks.due(round(now * US), SWEEP_CHUNK):
        assert record.sla_json is not None
        clock = SlaClock.from_json(record.sla_json)
        alerts = clock.check(now)
        _stored(record, clock)
        await tx.clocks.put(record)
        if not alerts:
            continue
        conv = await tx.conversations.get(record.conversation_id)
        if conv is None:
            continue
        model = with_sla(conv.model(), record.sla_json)
        policy = clocks.by_id.get(clock.policy)
        for alert in alerts:
            await tx.emit(
                "sla.breached" if alert.kind == "breached" else "sla.warning",
                _alert_fields(model, clock.policy, policy, alert),
                conv.id,
            )
    following = await tx.clocks.next_check()
    return None if following is None else following / US


def _alert_fields(
    conv: Conversation, policy_id: str, policy: SlaPolicySettings | None, alert: Alert
) -> dict[str, Any]:
    seconds = None if policy is None else policy.target(alert.target)
    fields: dict[str, Any] = {
        "conversation": conv,
        "kind": alert.target,
        "policy": policy_id,
        "target_seconds": seconds,
        "started_at": rfc3339(_dt(alert.start)),
        "due_at": None if alert.due is None else rfc3339(_dt(alert.due)),
    }
    if alert.kind == "warning" and policy is not None:
        fields["warn_at"] = policy.warn_at
    return fields
