"""Satisfaction surveys after resolution: CSAT (1-5), optionally NPS (0-10) and CES (1-7),
and one optional comment.

A resolution schedules a survey (``schedule``, in the resolving unit of work); a reopening
before it went out withdraws it (``threads.reopen_record``). When due, ``send_due`` picks
the way the channel allows:

- ``choices`` on a chat channel whose reply window is open (the channel's own rules,
  ``Plan.window``: Messenger 24 h after the customer's last message, not its human-agent
  tag; Zalo while its replies are free, 48 h): the questions one after the other, each a
  ``choices`` part (a question with more answers than the channel has buttons asks for a
  number instead); the customer's pick comes back as an inbound
  message (``recognise``), is kept in the resolved conversation, which it never reopens,
  and the next question follows; the last answer is thanked with a link to the page for
  a comment;
- ``link`` on e-mail and webchat: a signed, expiring link to the survey page
  (``GET /surveys/{token}``), answered there (``answer``), which works without JavaScript;
- otherwise it is skipped with the reason (``window_closed``, ``window_billable``,
  ``no_public_url``, ``no_key``, ``unsupported_channel``, ``reopened``).

The first answer to each question counts. A repeated answer (the same question again,
or the page sent twice) changes nothing; a late one (after ``expires_at``) neither: both
are kept as messages in the conversation, marked, without an event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.domain import outbox
from gateway.store.records import US, ConversationRecord, SurveyRecord, to_us
from gateway.store.transaction import Tx
from kernel.errors import Invalid
from kernel.ids import ConversationId, new_survey_id
from kernel.models import (
    Author,
    AuthorType,
    Choice,
    ChoicesPart,
    ConversationStatus,
    LinkPart,
    Part,
    ReplyWindow,
    TextPart,
    WindowState,
)
from kernel.secrets import Keyring
from kernel.texts import system_text

# Each question's scale.
SCALES: dict[str, tuple[int, int]] = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
# Channels that get a link to the survey page.
LINKED = frozenset({"email", "webchat"})
# Answers a channel shows as buttons at most; a longer scale asks for a number.
BUTTONS: dict[str, int] = {"zalo": 5, "facebook": 13}
# A choice id of a survey's question: "survey.csat.5".
_CHOICE = re.compile(r"^survey\.(csat|nps|ces)\.(\d{1,2})$")
_NUMBER = re.compile(r"^\s*#?(\d{1,2})\s*[.)!]?\s*$")
KEY_PURPOSE = "survey-links"


# A channel's reply window for a customer who last wrote at (µs; None: never), or None
# when the channel is not running here.
WindowOf = Callable[[str, int | None], ReplyWindow | None]


@dataclass(frozen=True)
class Plan:
    """What the surveys' rules need from the settings and the keyring."""

    delay: float  # seconds after resolution
    expire_after: float
    questions: tuple[str, ...]
    channels: frozenset[str]  # empty: all
    public_url: str
    keys: Keyring  # the gateway's keyring, derived for survey links
    window: WindowOf


@dataclass(frozen=True)
class Pick:
    survey: SurveyRecord
    question: str
    score: int


# --- signed links -----------------------------------------------------------------------


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(keys: Keyring, survey_id: str, expires_us: int) -> str:
    """The token of a survey's link: its id and expiry, signed with the newest key."""
    body = f"{survey_id}.{expires_us // US}"
    return f"{body}.{_mac(keys.newest, body)}"


def verify(keys: Keyring, token: str) -> tuple[str, int]:
    """(survey id, expiry in µs) of a token signed with any of the keys; Invalid if not."""
    head, _, given = token.rpartition(".")
    survey_id, _, expires = head.partition(".")
    if not (survey_id and expires.isdigit() and given and len(token) <= 200):
        raise Invalid("not a survey link", code="invalid_survey_link")
    if not any(hmac.compare_digest(_mac(key, head), given) for key in keys):
        raise Invalid("not a survey link", code="invalid_survey_link")
    return survey_id, int(expires) * US


def link(plan: Plan, survey: SurveyRecord) -> str | None:
    if not plan.public_url or not plan.keys or survey.expires_at is None:
        return None
    token = sign(plan.keys, survey.id, survey.expires_at)
    return f"{plan.public_url.rstrip('/')}/surveys/{token}"


# --- scheduling and sending -------------------------------------------------------------


async def schedule(tx: Tx, conv: ConversationRecord, plan: Plan) -> None:
    """A conversation was resolved: its survey is due after the delay (once per
    conversation: one withdrawn by a reopening is scheduled again)."""
    if plan.channels and conv.channel_id not in plan.channels:
        return
    due = tx.now + int(plan.delay * US)
    existing = await tx.surveys.of_conversation(conv.id)
    if existing is not None:
        if existing.status == "skipped" and existing.reason == "reopened":
            await tx.surveys.update(
                existing.id, status="scheduled", reason=None, due_at=due, agent_id=conv.assignee_id
            )
        return
    await tx.surveys.insert(
        SurveyRecord(
            id=new_survey_id(),
            conversation_id=conv.id,
            contact_id=conv.contact_id,
            channel_id=conv.channel_id,
            channel_type=conv.channel_type,
            agent_id=conv.assignee_id,
            language=conv.language,
            questions=",".join(plan.questions),
            status="scheduled",
            way=None,
            reason=None,
            step=None,
            created_at=tx.now,
            due_at=due,
        )
    )


def way_for(survey: SurveyRecord, last_inbound_at: int | None, now: int, plan: Plan) -> str:
    """``choices``, ``link``, or the reason there is no way (see the module)."""
    if survey.channel_type in LINKED:
        if not plan.public_url:
            return "no_public_url"
        return "link" if plan.keys else "no_key"
    window = plan.window(survey.channel_id, last_inbound_at)
    if window is None or window.state == WindowState.UNLIMITED:
        return "unsupported_channel"
    if window.state != WindowState.OPEN:
        return "window_closed"  # a tag or a template is for other things than surveys
    if window.free_until is not None and now >= to_us(window.free_until):
        return "window_billable"
    return "choices"


def question_part(question: str, channel_type: str, language: str | None) -> Part:
    low, high = SCALES[question]
    text = system_text(f"survey_{question}", language)
    if high - low + 1 > BUTTONS.get(channel_type, 13):
        hint = system_text("survey_reply_number", language).format(low=low, high=high)
        return TextPart(text=f"{text}\n{hint}")
    return ChoicesPart(
        text=text,
        choices=[Choice(id=f"survey.{question}.{n}", title=str(n)) for n in range(low, high + 1)],
    )


async def _say(tx: Tx, conversation_id: str, parts: list[Part]) -> None:
    await outbox.create(
        tx, ConversationId(conversation_id), Author(type=AuthorType.SYSTEM), parts, None, None, None
    )


async def send_due(tx: Tx, plan: Plan, limit: int = 50) -> tuple[int, bool]:
    """Send (or skip) the surveys whose time has come; (messages written, more due)."""
    due = await tx.surveys.due(tx.now, limit)
    written = 0
    for survey in due:
        conv = await tx.conversations.get(survey.conversation_id)
        if conv is None or conv.status != ConversationStatus.RESOLVED.value:
            await tx.surveys.update(survey.id, status="skipped", reason="reopened")
            continue
        way = way_for(survey, conv.last_inbound_at, tx.now, plan)
        if way not in ("choices", "link"):
            await tx.surveys.update(survey.id, status="skipped", reason=way)
            continue
        survey.expires_at = tx.now + int(plan.expire_after * US)
        language = survey.language
        if way == "link":
            url = link(plan, survey)
            assert url is not None
            parts: list[Part] = [
                TextPart(text=system_text("survey_invite", language)),
                LinkPart(url=url, title=system_text("survey_link", language)),
            ]
            step = None
        else:
            step = survey.asked()[0]
            parts = [question_part(step, survey.channel_type, language)]
        await _say(tx, conv.id, parts)
        written += 1
        await tx.surveys.update(
            survey.id,
            status="sent",
            way=way,
            step=step,
            sent_at=tx.now,
            expires_at=survey.expires_at,
        )
    return written, len(due) == limit


# --- answers ----------------------------------------------------------------------------


def _given_id(metadata: dict[str, Any]) -> tuple[str, int] | None:
    for key in ("choice_id", "payload"):
        value = metadata.get(key)
        if isinstance(value, str):
            found = _CHOICE.match(value)
            if found is not None:
                return found.group(1), int(found.group(2))
    return None


async def recognise(
    tx: Tx,
    contact_id: str,
    channel_id: str,
    text: str,
    metadata: dict[str, Any],
    has_open: Callable[[], Awaitable[bool]],
) -> Pick | None:
    """The survey answer an inbound chat message is, if it is one: a survey choice's id
    (always), or, as the first message after a question and while the customer has no
    open conversation on the channel, a number on the question's scale."""
    survey = await tx.surveys.asked_on_chat(await tx.contacts.members(contact_id), channel_id)
    if survey is None:
        return None
    by_id = _given_id(metadata)
    if by_id is not None:
        question, score = by_id
        low, high = SCALES[question]
        return Pick(survey, question, score) if low <= score <= high else None
    step = survey.step
    if step is None or (survey.expires_at is not None and tx.now > survey.expires_at):
        return None
    number = _NUMBER.match(text)
    if number is None:
        return None
    score = int(number.group(1))
    low, high = SCALES[step]
    if not low <= score <= high:
        return None
    if await has_open():
        return None
    asked = await tx.messages.asked(survey.conversation_id)
    if asked is None or asked.answered:
        return None
    return Pick(survey, step, score)


async def _announce(
    tx: Tx, survey: SurveyRecord, question: str | None, score: int | None, via: str
) -> None:
    """``via``: where the answer came from, the chat channel (``choices``) or the page
    (``link``; also a comment on a survey asked on a chat channel)."""
    await tx.emit(
        "survey.answered",
        {"survey": survey.model(), "question": question, "score": score, "via": via},
        survey.conversation_id,
    )


async def take(tx: Tx, pick: Pick, plan: Plan | None) -> str:
    """Record a pick made on the chat channel: ``answered``, ``repeated``, ``late`` or
    ``ignored`` (not one of this survey's questions). After an answer the next question
    is asked, or the customer is thanked (with the page's link, for a comment)."""
    survey, question = pick.survey, pick.question
    if survey.expires_at is not None and tx.now > survey.expires_at:
        return "late"
    if question not in survey.asked():
        return "ignored"
    if survey.score(question) is not None:
        return "repeated"
    setattr(survey, question, pick.score)
    survey.status, survey.answered_at = "answered", tx.now
    survey.step = next((q for q in survey.asked() if survey.score(q) is None), None)
    await tx.surveys.update(
        survey.id,
        **{question: pick.score},
        status=survey.status,
        answered_at=tx.now,
        step=survey.step,
    )
    await _announce(tx, survey, question, pick.score, "choices")
    language = survey.language
    if survey.step is not None:
        await _say(
            tx, survey.conversation_id, [question_part(survey.step, survey.channel_type, language)]
        )
        return "answered"
    parts: list[Part] = [TextPart(text=system_text("survey_thanks", language))]
    url = None if plan is None else link(plan, survey)
    if url is not None and survey.comment is None:
        parts.append(LinkPart(url=url, title=system_text("survey_comment", language)))
    await _say(tx, survey.conversation_id, parts)
    return "answered"


def pick_metadata(metadata: dict[str, Any], pick: Pick, outcome: str) -> dict[str, Any]:
    """An answer's message metadata: the choice picked and what became of it."""
    kept = {k: v for k, v in metadata.items() if k != "choice_id"}
    kept["choice"] = {"id": f"survey.{pick.question}.{pick.score}", "title": str(pick.score)}
    kept["survey"] = {
        "id": pick.survey.id,
        "question": pick.question,
        "score": pick.score,
        "outcome": outcome,
    }
    return kept


async def answer(
    tx: Tx, survey_id: str, scores: dict[str, int], comment: str | None
) -> tuple[str, SurveyRecord | None]:
    """An answer from the survey page: ``answered``, ``repeated`` (nothing new: every
    question and the comment were answered before), ``incomplete`` (a question not
    answered before is missing), ``late``, or ``unknown``. Scores given before stand."""
    survey = await tx.surveys.get(survey_id)
    if survey is None or survey.status not in ("sent", "answered"):
        return "unknown", survey
    if survey.expires_at is not None and tx.now > survey.expires_at:
        return "late", survey
    open_questions = [q for q in survey.asked() if survey.score(q) is None]
    if any(q not in scores for q in open_questions):
        return "incomplete", survey
    new = {q: scores[q] for q in open_questions}
    note = comment.strip() if comment else ""
    if not new and (not note or survey.comment is not None):
        return "repeated", survey
    changes: dict[str, Any] = dict(new)
    for q, value in new.items():
        setattr(survey, q, value)
    if note and survey.comment is None:
        survey.comment = changes["comment"] = note
    survey.status, survey.step = "answered", None
    if survey.answered_at is None or new:
        survey.answered_at = tx.now
    await tx.surveys.update(
        survey.id, **changes, status="answered", step=None, answered_at=survey.answered_at
    )
    question = next(iter(new), None)
    await _announce(tx, survey, question, None if question is None else new[question], "link")
    return "answered", survey


async def read(tx: Tx, survey_id: str) -> SurveyRecord | None:
    return await tx.surveys.get(survey_id)
