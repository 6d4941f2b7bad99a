"""Reply windows and conversations the business starts, over every backend: starting is
one unit of work (a refused check leaves nothing), idempotent by key; what windows are
worked out from; the candidates for conversation.window_closing and its once-only mark."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.domain.outbox import Address
from gateway.store.protocols import Store
from gateway.store.records import ConversationFilter, to_us
from gateway.store.transaction import Tx
from kernel.envelope import InboundMessage, Sender
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import ChannelId, ContactId, ConversationId
from kernel.models import (
    Author,
    AuthorType,
    ChannelType,
    TemplatePart,
    TextPart,
    utcnow,
)
from tests.store.conftest import Domain, Recorder

ZALO = ChannelId("zalo-oa")
ORDER = TemplatePart(name="order_confirmed", data={"order_code": "DH-1"})


def start_args(**given: object) -> dict[str, object]:
    args: dict[str, object] = {
        "channel_id": ZALO,
        "channel_type": ChannelType.ZALO,
        "contact_id": None,
        "to": Address(phone="+84912345678"),
        "author": Author(type=AuthorType.AGENT),
        "parts": [ORDER],
        "subject": None,
        "idempotency_key": None,
        "request_hash": None,
        "check": lambda last, phone: None,
    }
    args.update(given)
    return args


async def start(domain: Domain, **given: object):  # type: ignore[no-untyped-def]
    return await domain.outbox.start(domain.assignments.state, **start_args(**given))


async def test_a_start_is_one_unit_of_work(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    seen: list[tuple[int | None, str | None]] = []

    def refuse(last: int | None, phone: str | None) -> None:
        seen.append((last, phone))
        raise Invalid("the reply window is closed", code="window_closed")

    with pytest.raises(Invalid):
        await start(domain, check=refuse)
    assert seen == [(None, "+84912345678")]
    assert recorder.types() == []  # neither the contact nor the conversation
    assert (await store.conversations.page(ConversationFilter(), None, 10)).items == []

    started = await start(domain, idempotency_key="k1", request_hash="h1")
    assert not started.replayed
    assert started.message.parts == [ORDER]
    assert started.message.conversation_id == started.conversation.id
    assert recorder.types() == ["contact.created", "conversation.created"]
    contact = await store.contacts.get(started.conversation.contact_id)
    assert contact is not None and contact.phone == "+84912345678"
    (job,) = await store.outbound.due(utcnow(), 10)
    assert job.outbound.phone == "+84912345678"
    assert job.outbound.recipient.external_id == "+84912345678"

    again = await start(domain, idempotency_key="k1", request_hash="h1")
    assert again.replayed
    assert (again.conversation.id, again.message.id) == (
        started.conversation.id,
        started.message.id,
    )
    with pytest.raises(Invalid) as reused:
        await start(domain, idempotency_key="k1", request_hash="other")
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(Conflict) as busy:
        await start(domain, contact_id=started.conversation.contact_id, to=None)
    assert busy.value.details == {"conversation_id": started.conversation.id}
    with pytest.raises(NotFound):
        await start(domain, contact_id=ContactId("ct_nobody"), to=None)


async def test_windows_are_worked_out_from_the_last_interaction_and_the_phone(
    domain: Domain, store: Store
) -> None:
    wrote = utcnow() - timedelta(hours=30)
    r = await domain.inbox.ingest(
        InboundMessage(
            channel_id=ZALO,
            external_id="z1",
            sender=Sender(external_id="u1", phone="0912 345 678"),
            parts=[TextPart(text="Xin chào")],
            sent_at=wrote,
        ),
        ChannelType.ZALO,
    )
    facts = await store.conversations.window_facts([r.conversation_id, "cv_nothing"])
    assert list(facts) == [r.conversation_id]
    assert facts[r.conversation_id].phone == "+84912345678"
    assert facts[r.conversation_id].last_inbound_at == to_us(wrote)
    await domain.assignments.resolve(r.conversation_id)
    # a start on the same channel counts from the customer's last message there
    seen: list[int | None] = []
    started = await start(
        domain,
        to=Address(external_id="u1"),
        parts=[TextPart(text="Shop hỏi thăm")],
        check=lambda last, phone: seen.append(last),
    )
    assert seen == [to_us(wrote)]
    facts = await store.conversations.window_facts([started.conversation.id])
    assert facts[started.conversation.id].last_inbound_at == to_us(wrote)


async def test_closing_candidates_and_the_once_only_mark(domain: Domain, store: Store) -> None:
    now = utcnow()
    wrote = now - timedelta(days=7) + timedelta(minutes=30)
    r = await domain.inbox.ingest(
        InboundMessage(
            channel_id=ZALO,
            external_id="z1",
            sender=Sender(external_id="u1"),
            parts=[TextPart(text="Xin chào")],
            sent_at=wrote,
        ),
        ChannelType.ZALO,
    )
    closes = to_us(wrote + timedelta(days=7))
    hour = timedelta(hours=1)
    inside = [(to_us(now - timedelta(days=7)), to_us(now - timedelta(days=7) + hour))]
    outside = [(to_us(now - timedelta(days=1)), to_us(now - timedelta(days=1) + hour))]

    async def candidates(spans: list[tuple[int, int]], types: list[str]) -> list[str]:
        async def work(tx: Tx) -> list[str]:
            found = await tx.conversations.window_candidates(types, spans, to_us(now), 10)
            return [c.record.id for c in found]

        return await store.transact(work)

    assert await candidates(inside, ["zalo"]) == [r.conversation_id]
    assert await candidates(inside + outside, ["zalo", "facebook"]) == [r.conversation_id]
    assert await candidates(outside, ["zalo"]) == []
    assert await candidates(inside, ["facebook"]) == []

    async def warn(at: int) -> bool:
        async def work(tx: Tx) -> bool:
            return await tx.conversations.warn_window(r.conversation_id, at)

        return await store.transact(work)

    assert await warn(closes)
    assert not await warn(closes)  # never twice
    assert await candidates(inside, ["zalo"]) == []  # its mark is read back
    assert await warn(closes + 1)  # another window
    await domain.assignments.resolve(ConversationId(r.conversation_id))
    assert await candidates(inside, ["zalo"]) == []  # resolved: nobody to warn
