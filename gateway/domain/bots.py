"""Bots first, humans after: which bot holds a new conversation, and the handovers.

Like a switchboard (Sunshine Conversations'), one party is active on a conversation at a
time: a bot (status ``bot``, ``bot_id``) or the humans (queued or assigned, as routing
decides). Control moves by a handover, one unit of work with its
``conversation.handover`` event: a bot passes it to humans or to another bot (a triage
bot to a sales bot), humans give it back to a bot, an agent takes it, and the gateway
takes it from a bot that is unreachable, silent past its ``timeout``, or whose customer
asks for a person.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from config.bots import BotSettings
from gateway.domain.dispatch import requeue
from gateway.store.records import ConversationRecord
from gateway.store.transaction import Tx
from kernel.errors import Conflict, Invalid, NotFound
from kernel.models import Author, AuthorType, Conversation, ConversationStatus
from routing.language import strip_diacritics

# Why control moved (`reason` of conversation.handover when the gateway moves it).
CUSTOMER_ASKED = "customer_asked"
BOT_TIMEOUT = "bot_timeout"
BOT_UNREACHABLE = "bot_unreachable"
AGENT_TOOK = "agent_took"
# Messenger's handover protocol moved the thread: to this gateway, or to another app.
THREAD_PASSED = "thread_passed"
THREAD_TAKEN = "thread_taken"

HUMANS = "humans"
BOT = "bot"


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", strip_diacritics(text))) + " "


@dataclass(frozen=True)
class BotRules:
    """The ``[[bots]]`` of the config: which bot takes a new conversation, and the
    phrases by which a customer asks for a person."""

    bots: tuple[BotSettings, ...] = ()

    def __post_init__(self) -> None:
        phrases = {b.id: tuple(_words(p) for p in b.handover_phrases) for b in self.bots}
        object.__setattr__(self, "_phrases", phrases)

    def get(self, bot_id: str | None) -> BotSettings | None:
        return next((b for b in self.bots if b.id == bot_id), None)

    def for_app(self, app_id: str) -> BotSettings | None:
        """The bot behind a Messenger app (its ``facebook_app_id``)."""
        return next((b for b in self.bots if b.facebook_app_id == app_id), None)

    def for_new(self, channel_id: str, rule: str | None) -> BotSettings | None:
        """The bot a new conversation goes to first: by its routing rule, else by its
        channel (the first bot naming it)."""
        if rule is not None:
            for bot in self.bots:
                if rule in bot.routing_rules:
                    return bot
        return next((b for b in self.bots if channel_id in b.channels), None)

    def asks_for_person(self, bot_id: str | None, text: str) -> bool:
        """Does the customer's text ask for a person (any bot's phrases when the bot is
        no longer configured)?"""
        if not text:
            return False
        phrases: dict[str, tuple[str, ...]] = self._phrases  # type: ignore[attr-defined]
        wanted = phrases.get(bot_id or "")
        if wanted is None:
            wanted = tuple(p for ps in phrases.values() for p in ps)
        words = _words(text)
        return any(p.strip() and p in words for p in wanted)


async def _held(tx: Tx, conversation_id: str) -> ConversationRecord:
    found = await tx.conversations.get(conversation_id)
    if found is None:
        raise NotFound(f"conversation {conversation_id} not found", code="conversation_not_found")
    return found


def _actor(conv: ConversationRecord) -> dict[str, str | None]:
    if conv.status == ConversationStatus.BOT:
        return {"type": AuthorType.BOT.value, "id": conv.bot_id}
    if conv.status == ConversationStatus.ASSIGNED:
        return {"type": AuthorType.AGENT.value, "id": conv.assignee_id}
    return {"type": HUMANS, "id": None}


async def to_humans(
    tx: Tx,
    conv: ConversationRecord,
    *,
    reason: str | None,
    by: Author | None,
    skills: Mapping[str, int] | None = None,
    priority: int | None = None,
    action: str = "pass",
    detail: str | None = None,
) -> Conversation:
    """A bot's conversation goes to the queue, with everything said so far (the record
    is changed to match). ``by``: who asked (None: the gateway)."""
    if conv.status != ConversationStatus.BOT:
        raise Conflict(
            f"conversation {conv.id} is not held by a bot (it is {conv.status})",
            code="not_with_bot",
        )
    before = _actor(conv)
    changes: dict[str, object] = {"bot_id": None}
    if skills:
        conv.skills_json = json.dumps(sorted(skills))
        conv.required_skills_json = json.dumps(dict(skills))
        changes["skills_json"] = conv.skills_json
        changes["required_skills_json"] = conv.required_skills_json
    if priority is not None:
        conv.priority = priority
        changes["priority"] = priority
    conv.bot_id = None
    await tx.conversations.update(conv.id, **changes)
    await requeue(tx, conv, queued_at=tx.now, announced=False)
    model = conv.model()
    await tx.emit(
        "conversation.handover",
        {
            "conversation": model,
            "action": action,
            "from": before,
            "to": HUMANS,
            "bot_id": None,
            "reason": reason,
            "detail": detail,
            "by": by,
        },
        model.id,
    )
    return model


async def to_bot(
    tx: Tx,
    conv: ConversationRecord,
    bot_id: str | None,
    *,
    reason: str | None,
    by: Author | None,
    detail: str | None = None,
) -> tuple[Conversation, str | None]:
    """The conversation goes to a bot: from another bot (a chain) or from the humans;
    ``bot_id`` None: an app outside the gateway holds it (Messenger's handover protocol).
    Returns the conversation and the agent who had it (its capacity is freed)."""
    if conv.status == ConversationStatus.RESOLVED:
        raise Conflict("conversation is resolved; reopen it first", code="conversation_resolved")
    if conv.status == ConversationStatus.BOT and conv.bot_id == bot_id:
        raise Conflict(f"conversation {conv.id} is already with bot {bot_id}", code="already_there")
    before = _actor(conv)
    previous = conv.assignee_id if conv.status == ConversationStatus.ASSIGNED else None
    conv.status, conv.bot_id, conv.assignee_id = ConversationStatus.BOT.value, bot_id, None
    conv.queued_at, conv.queue_announced = None, False
    # The new holder answers from now: the customer's wait restarts with it.
    waiting = conv.awaiting_since is not None
    conv.awaiting_since = tx.now if waiting else None
    await tx.conversations.update(
        conv.id,
        status=conv.status,
        bot_id=bot_id,
        assignee_id=None,
        queued_at=None,
        queue_announced=False,
        awaiting_since=conv.awaiting_since,
    )
    model = conv.model()
    await tx.emit(
        "conversation.handover",
        {
            "conversation": model,
            "action": "pass",
            "from": before,
            "to": BOT,
            "bot_id": bot_id,
            "reason": reason,
            "detail": detail,
            "by": by,
        },
        model.id,
    )
    return model, previous


async def handover(
    tx: Tx,
    rules: BotRules,
    conversation_id: str,
    *,
    to: str,
    bot_id: str | None,
    reason: str | None,
    by: Author | None,
    skills: Mapping[str, int] | None = None,
    priority: int | None = None,
) -> tuple[Conversation, str | None]:
    """``POST /v1/conversations/{id}/handover``. A bot (``by.type == bot``) hands over only
    the conversations it holds. Returns the conversation and the agent it left (if any)."""
    conv = await _held(tx, conversation_id)
    if (
        by is not None
        and by.type == AuthorType.BOT
        and (conv.status != ConversationStatus.BOT or conv.bot_id != by.id)
    ):
        raise Conflict(
            f"conversation {conversation_id} is not held by bot {by.id}", code="not_with_bot"
        )
    if to == HUMANS:
        return await to_humans(
            tx, conv, reason=reason, by=by, skills=skills, priority=priority
        ), None
    if bot_id is None:
        found = rules.for_new(conv.channel_id, conv.routing_rule)
        if found is None:
            raise Invalid("name the bot to hand over to (bot_id)", code="bot_id_required")
        bot_id = found.id
    if rules.get(bot_id) is None:
        raise Invalid(f"bot {bot_id} not found", code="bot_not_found")
    return await to_bot(tx, conv, bot_id, reason=reason, by=by)


async def overdue(tx: Tx, rules: BotRules, now: int) -> list[tuple[ConversationRecord, str]]:
    """Bots' conversations whose customer has waited longer than the bot's timeout."""
    found: list[tuple[ConversationRecord, str]] = []
    for bot in rules.bots:
        cutoff = now - int(bot.timeout * 1_000_000)
        found += [(c, BOT_TIMEOUT) for c in await tx.conversations.bot_waiting(bot.id, cutoff)]
    return found


async def release_overdue(tx: Tx, rules: BotRules, limit: int = 200) -> list[Conversation]:
    """Hand the bots' overdue conversations to humans (the timeout sweep)."""
    moved = []
    for conv, reason in (await overdue(tx, rules, tx.now))[:limit]:
        moved.append(await to_humans(tx, conv, reason=reason, by=None))
    return moved


async def unreachable(
    tx: Tx, conversation_id: str, bot_id: str, detail: str | None
) -> Conversation | None:
    """A delivery to the bot died: its conversation goes to humans, if the bot still
    holds it."""
    conv = await tx.conversations.get(conversation_id)
    if conv is None or conv.status != ConversationStatus.BOT or conv.bot_id != bot_id:
        return None
    return await to_humans(tx, conv, reason=BOT_UNREACHABLE, by=None, detail=detail)


async def thread_control(
    tx: Tx,
    rules: BotRules,
    conversation_id: str,
    owner_app_id: str | None,
    detail: str | None,
) -> tuple[Conversation | None, str | None]:
    """The channel moved control of the customer's thread: to this gateway (None: the
    humans take a conversation an app held) or to another app (a conversation with the
    humans is then held by that app's bot, or by the app alone). Returns the
    conversation when it moved, and the agent it left."""
    conv = await tx.conversations.get(conversation_id)
    if conv is None or conv.status == ConversationStatus.RESOLVED:
        return None, None
    if owner_app_id is None:
        if conv.status != ConversationStatus.BOT:
            return None, None
        return await to_humans(tx, conv, reason=THREAD_PASSED, by=None, detail=detail), None
    bot = rules.for_app(owner_app_id)
    bot_id = None if bot is None else bot.id
    if conv.status == ConversationStatus.BOT and conv.bot_id == bot_id:
        return None, None
    return await to_bot(tx, conv, bot_id, reason=THREAD_TAKEN, by=None, detail=detail)


def bot_author(bot_id: str) -> Author:
    return Author(type=AuthorType.BOT, id=bot_id)
