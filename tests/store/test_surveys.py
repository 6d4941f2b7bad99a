"""Surveys over every backend: scheduled at resolution, sent by the sweep as choices where
the chat window is open, the customer's picks recognised without reopening anything,
repeated and late picks, and the stats read back from what was stored."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from config.schema import RetentionSettings, SurveySettings
from connectors.facebook.render import reply_window as messenger_window
from connectors.windows import UNLIMITED
from connectors.zalo.render import reply_window as zalo_window
from gateway.domain import surveys
from gateway.events import EventBus
from gateway.replicas.leases import LeaseKeeper
from gateway.retention import Retention
from gateway.store import Store, open_store
from gateway.store.records import SurveyRecord, opt_dt
from gateway.store.transaction import Tx
from gateway.surveys import LEASE, Surveys
from kernel.envelope import InboundMessage, Sender
from kernel.ids import ConversationId
from kernel.models import ChoicesPart, ConversationStatus, ReplyWindow, TextPart
from kernel.secrets import Keyring
from tests.store.backends import Backend
from tests.store.conftest import Domain, Recorder
from tests.store.test_contract import FB, WEB, ZALO, inbound, ingest


def window(channel_id: str, last_inbound_at: int | None) -> ReplyWindow | None:
    """The channels' own rules (the gateway asks the running connector)."""
    now, last = datetime.now(UTC), opt_dt(last_inbound_at)
    if channel_id == FB:
        return messenger_window(last, now, human_agent_tag=True)
    if channel_id == ZALO:
        return zalo_window(last, now, zns=False)
    return UNLIMITED


PLAN = surveys.Plan(
    delay=0,
    expire_after=3600,
    questions=("csat", "nps", "ces"),
    channels=frozenset(),
    public_url="https://help.test",
    keys=Keyring([b"k" * 32]),
    window=window,
)


def planned(domain: Domain, plan: surveys.Plan = PLAN) -> Domain:
    domain.inbox.surveys = domain.assignments.surveys = plan
    return domain


async def sweep(store: Store, plan: surveys.Plan = PLAN) -> int:
    async def work(tx: Tx) -> tuple[int, bool]:
        return await surveys.send_due(tx, plan)

    written, _more = await store.transact(work)
    return written


async def survey_of(store: Store, conversation_id: str) -> SurveyRecord:
    async def work(tx: Tx) -> SurveyRecord | None:
        return await tx.surveys.of_conversation(conversation_id)

    found = await store.transact(work)
    assert found is not None
    return found


async def system_messages(store: Store, conversation_id: str) -> list[Any]:
    page = await store.messages.page(ConversationId(conversation_id), None, 100)
    return [m for m in page.items if m.author.type == "system"]


def pick(external_id: str, sender: str, text: str, **metadata: Any) -> InboundMessage:
    return InboundMessage(
        channel_id=FB,
        external_id=external_id,
        sender=Sender(external_id=sender),
        parts=[TextPart(text=text)],
        metadata=metadata,
    )


async def resolved_on_fb(domain: Domain, sender: str) -> str:
    result = await ingest(domain, inbound(FB, f"{sender}-1", sender, "Đơn hàng của tôi đâu?"))
    await domain.assignments.resolve(result.conversation_id)
    return str(result.conversation_id)


async def test_choices_on_messenger_answered_without_reopening(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    planned(domain)
    conv_id = await resolved_on_fb(domain, "psid-1")
    assert (await survey_of(store, conv_id)).status == "scheduled"
    assert await sweep(store) == 1
    assert await sweep(store) == 0  # sent once
    survey = await survey_of(store, conv_id)
    assert (survey.status, survey.way, survey.step) == ("sent", "choices", "csat")
    (question,) = await system_messages(store, conv_id)
    (part,) = question.parts
    assert isinstance(part, ChoicesPart)
    assert [c.id for c in part.choices] == [f"survey.csat.{n}" for n in range(1, 6)]

    # A tap: the quick reply's payload names the answer.
    result = await ingest(domain, pick("tap-1", "psid-1", "4", payload="survey.csat.4"))
    assert str(result.conversation_id) == conv_id
    assert result.conversation_status == ConversationStatus.RESOLVED
    assert result.message.metadata["survey"]["outcome"] == "answered"
    assert result.message.metadata["choice"] == {"id": "survey.csat.4", "title": "4"}
    survey = await survey_of(store, conv_id)
    assert (survey.csat, survey.step, survey.status) == (4, "nps", "answered")
    conv = await store.conversations.get(ConversationId(conv_id))
    assert conv is not None and conv.status == ConversationStatus.RESOLVED
    answered = [e for e in recorder.events if e.type == "survey.answered"]
    assert len(answered) == 1 and answered[0].data["score"] == 4
    assert answered[0].data["via"] == "choices"

    # The next question (NPS, 11 answers: still chips on Messenger); typed as a number.
    nps_question = (await system_messages(store, conv_id))[-1]
    assert isinstance(nps_question.parts[0], ChoicesPart)
    typed = await ingest(domain, pick("typed-1", "psid-1", "9"))
    assert typed.message.metadata["survey"] == {
        "id": survey.id,
        "question": "nps",
        "score": 9,
        "outcome": "answered",
    }
    # The CSAT chip tapped again: the first answer stands.
    again = await ingest(domain, pick("tap-2", "psid-1", "1", payload="survey.csat.1"))
    assert again.message.metadata["survey"]["outcome"] == "repeated"
    assert str(again.conversation_id) == conv_id
    assert (await survey_of(store, conv_id)).csat == 4

    # CES answered; then thanks, with the page's link for a comment.
    await ingest(domain, pick("tap-3", "psid-1", "6", payload="survey.ces.6"))
    survey = await survey_of(store, conv_id)
    assert (survey.csat, survey.nps, survey.ces, survey.step) == (4, 9, 6, None)
    thanks = (await system_messages(store, conv_id))[-1]
    assert [p.type for p in thanks.parts] == ["text", "link"]
    assert thanks.parts[1].url.startswith("https://help.test/surveys/" + survey.id + ".")

    # A number now is a new message: a new conversation, not an answer.
    later = await ingest(domain, pick("new-1", "psid-1", "5"))
    assert str(later.conversation_id) != conv_id
    assert "survey" not in later.message.metadata
    assert len([e for e in recorder.events if e.type == "survey.answered"]) == 3
    assert "conversation.reopened" not in recorder.types()


async def test_a_number_while_another_conversation_is_open_is_not_an_answer(
    domain: Domain, store: Store
) -> None:
    planned(domain)
    conv_id = await resolved_on_fb(domain, "psid-2")
    await sweep(store)
    # The customer writes about something else first: a new conversation.
    other = await ingest(domain, pick("other-1", "psid-2", "Cho tôi hỏi thêm"))
    assert str(other.conversation_id) != conv_id
    in_other = await ingest(domain, pick("other-2", "psid-2", "3"))
    assert in_other.conversation_id == other.conversation_id
    assert (await survey_of(store, conv_id)).csat is None
    # A tap on the survey's chip still counts: its payload names it.
    tap = await ingest(domain, pick("tap-9", "psid-2", "5", payload="survey.csat.5"))
    assert str(tap.conversation_id) == conv_id
    assert (await survey_of(store, conv_id)).csat == 5


async def test_late_picks_and_closed_windows(domain: Domain, store: Store) -> None:
    short = replace(PLAN, expire_after=0)
    planned(domain, short)
    conv_id = await resolved_on_fb(domain, "psid-3")
    await sweep(store, short)
    late = await ingest(domain, pick("late-1", "psid-3", "5", payload="survey.csat.5"))
    assert str(late.conversation_id) == conv_id  # kept in the survey's conversation
    assert late.message.metadata["survey"]["outcome"] == "late"
    assert late.conversation_status == ConversationStatus.RESOLVED
    assert (await survey_of(store, conv_id)).csat is None

    # A customer whose last message is older than Messenger's 24 hours: skipped.
    planned(domain)
    old = await ingest(
        domain,
        InboundMessage(
            channel_id=FB,
            external_id="old-1",
            sender=Sender(external_id="psid-4"),
            parts=[TextPart(text="Xin chào")],
            sent_at=datetime.now(UTC) - timedelta(hours=25),
        ),
    )
    await domain.assignments.resolve(old.conversation_id)
    await sweep(store)
    survey = await survey_of(store, str(old.conversation_id))
    assert (survey.status, survey.reason) == ("skipped", "window_closed")
    assert await system_messages(store, str(old.conversation_id)) == []

    # Zalo three days on: its window is open but billable; a survey is not worth a fee.
    zalo = await ingest(
        domain,
        InboundMessage(
            channel_id=ZALO,
            external_id="zalo-old-1",
            sender=Sender(external_id="zalo-user-4"),
            parts=[TextPart(text="Xin chào")],
            sent_at=datetime.now(UTC) - timedelta(days=3),
        ),
    )
    await domain.assignments.resolve(zalo.conversation_id)
    await sweep(store)
    survey = await survey_of(store, str(zalo.conversation_id))
    assert (survey.status, survey.reason) == ("skipped", "window_billable")


async def test_page_answers_and_stats_over_the_store(
    domain: Domain, store: Store, backend: Backend
) -> None:
    planned(domain)
    given = [(5, 10, 7), (4, 6, 3), (2, 0, 1), None]
    ids = []
    for n in range(len(given)):
        result = await ingest(domain, inbound(WEB, f"w-{n}", f"visitor-{n}"))
        await domain.assignments.resolve(result.conversation_id)
        ids.append(str(result.conversation_id))
    assert await sweep(store) == len(given)
    for conv_id, scores in zip(ids, given, strict=True):
        survey = await survey_of(store, conv_id)
        assert survey.way == "link"
        if scores is None:
            continue
        csat, nps, ces = scores

        async def work(tx: Tx, sid: str = survey.id, s: tuple[int, ...] = scores) -> str:
            outcome, _ = await surveys.answer(
                tx, sid, {"csat": s[0], "nps": s[1], "ces": s[2]}, "Cảm ơn shop"
            )
            return outcome

        assert await store.transact(work) == "answered"
        assert await store.transact(work) == "repeated"
        stored = await survey_of(store, conv_id)
        assert (stored.csat, stored.nps, stored.ces, stored.comment) == (
            csat,
            nps,
            ces,
            "Cảm ơn shop",
        )
    now = datetime.now(UTC)
    found = await store.stats.samples(now - timedelta(hours=1), now + timedelta(seconds=1), None)
    samples = found[WEB].surveys
    rows = await backend.fetch("SELECT csat, nps, ces FROM surveys ORDER BY id")
    assert sorted((s.csat, s.nps, s.ces) for s in samples if s.csat is not None) == sorted(
        r for r in rows if r[0] is not None
    )
    assert len(samples) == len(given)
    assert len(found[WEB].resolved) == len(given)
    assert all(r.contained and not r.came_back and r.window_open for r in found[WEB].resolved)


async def test_two_processes_sweeping_send_each_survey_once(
    domain: Domain, store: Store, backend: Backend
) -> None:
    planned(domain)
    ids = []
    for n in range(12):
        result = await ingest(domain, inbound(WEB, f"twin-{n}", f"twin-visitor-{n}"))
        await domain.assignments.resolve(result.conversation_id)
        ids.append(str(result.conversation_id))
    other = await open_store(backend.url)
    try:

        async def sweep_small(s: Store) -> int:
            async def work(tx: Tx) -> tuple[int, bool]:
                return await surveys.send_due(tx, PLAN, limit=2)

            total = 0
            while True:
                written, more = await s.transact(work)
                total += written
                if not more:
                    return total

        counts = await asyncio.gather(sweep_small(store), sweep_small(other))
    finally:
        await other.close()
    assert sum(counts) == len(ids)
    for conv_id in ids:
        assert len(await system_messages(store, conv_id)) == 1
        assert (await survey_of(store, conv_id)).status == "sent"


async def test_on_postgres_one_replica_sweeps_at_a_time(pg_url: str) -> None:
    stores = [await open_store(pg_url), await open_store(pg_url)]
    keepers = [LeaseKeeper(s.leases, 10.0) for s in stores]
    woken: list[int] = []
    try:
        services = [
            Surveys(
                s,
                SurveySettings(enabled=True, delay=0),
                "https://help.test",
                Keyring([b"k" * 32]),
                window,
                wake_sender=lambda n=n: woken.append(n),
                keeper=keepers[n],
            )
            for n, s in enumerate(stores)
        ]
        domain = planned(Domain.over(stores[0]), services[0].plan)
        result = await ingest(domain, inbound(WEB, "lease-1", "lease-visitor"))
        await domain.assignments.resolve(result.conversation_id)
        assert await services[0].sweep() == 1
        assert keepers[0].holds(LEASE)
        # The other replica does not sweep while the lease is held elsewhere.
        result = await ingest(domain, inbound(WEB, "lease-2", "lease-visitor-2"))
        await domain.assignments.resolve(result.conversation_id)
        assert await services[1].sweep() == 0
        assert not keepers[1].holds(LEASE)
        assert (await survey_of(stores[0], str(result.conversation_id))).status == "scheduled"
        # Released (the holder stopped): the other takes the sweep over.
        await services[0].stop()
        assert await services[1].sweep() == 1
        assert woken == [0, 1]
    finally:
        for s in stores:
            await s.close()


async def test_erasing_the_person_takes_their_survey_comment_out(
    domain: Domain, store: Store, backend: Backend, recorder: Recorder, tmp_path: Path
) -> None:
    planned(domain)
    answered = await ingest(domain, inbound(WEB, "erase-1", "erase-visitor"))
    await domain.assignments.resolve(answered.conversation_id)
    await sweep(store)
    survey = await survey_of(store, str(answered.conversation_id))
    comment = "Chị Hồng ở 12 Lý Thường Kiệt rất hài lòng"

    async def work(tx: Tx) -> str:
        outcome, _ = await surveys.answer(tx, survey.id, {"csat": 5, "nps": 9, "ces": 7}, comment)
        return outcome

    assert await store.transact(work) == "answered"
    # The same person's second conversation, resolved with its survey not sent yet.
    late = replace(PLAN, delay=3600)
    planned(domain, late)
    pending = await ingest(domain, inbound(WEB, "erase-2", "erase-visitor", "Còn một việc"))
    await domain.assignments.resolve(pending.conversation_id)

    await Retention(store, tmp_path, EventBus(), RetentionSettings()).erase(answered.contact_id)
    after = await survey_of(store, str(answered.conversation_id))
    assert (after.comment, after.csat, after.nps, after.ces) == (None, 5, 9, 7)
    withdrawn = await survey_of(store, str(pending.conversation_id))
    assert (withdrawn.status, withdrawn.reason) == ("skipped", "erased")
    rows = await backend.fetch("SELECT data FROM events WHERE type = 'survey.answered'")
    assert rows and all("Lý Thường Kiệt" not in str(r[0]) for r in rows)
    assert all(comment not in str(r) for r in await backend.fetch("SELECT comment FROM surveys"))
