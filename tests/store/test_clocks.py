"""Business hours and SLA clocks over every backend: the off-hours reply once per closed
period, SLA warnings and breaches once each, Conversation.sla and compliance figures.
The rules take the time as an argument: these tests give the instants."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.domain import clocks
from gateway.domain.clocks import Clocks
from gateway.stats import compliance
from gateway.store import open_store
from gateway.store.protocols import Store
from gateway.store.records import ConversationFilter
from gateway.store.transaction import Tx
from kernel.ids import AgentId, ConversationId
from kernel.models import Author, AuthorType, Message, TextPart
from routing.hours import BusinessHoursSettings
from routing.rules import Match, Rule
from routing.settings import RoutingSettings
from routing.sla import SlaPolicySettings
from tests.store.conftest import Domain, Recorder
from tests.store.test_contract import MAIL, WEB, inbound, ingest

VN = ZoneInfo("Asia/Ho_Chi_Minh")
OFFICE = BusinessHoursSettings(
    id="office",
    hours={d: ["08:00-12:00", "13:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
    holidays="VN",
    channels=["webchat"],
)


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=VN).timestamp()  # type: ignore[misc]


async def system_messages(store: Store, conversation_id: ConversationId) -> list[Message]:
    page = await store.messages.page(conversation_id, None, 100)
    return [m for m in page.items if m.author.type == AuthorType.SYSTEM]


async def test_the_off_hours_reply_is_written_once_per_closed_period(
    domain: Domain, store: Store
) -> None:
    first = await ingest(domain, inbound(WEB, "m1", "v1", text="Chào shop"))
    conv_id = first.conversation_id
    hours = Clocks([OFFICE], default_language="vi")

    async def customer_writes(now: float) -> bool:
        async def work(tx: Tx) -> bool:
            return await clocks.customer_wrote(tx, hours, conv_id, WEB, "webchat", now)

        return await store.transact(work)

    # Wednesday 3 February 2027, evening; Tết closes 4-10 February.
    assert await customer_writes(at(2027, 2, 3, 19, 0))
    assert not await customer_writes(at(2027, 2, 3, 19, 5))
    assert not await customer_writes(at(2027, 2, 6, 10, 0))  # same closed period, Tết
    # open again: nothing; then the lunch break is a new closed period
    assert not await customer_writes(at(2027, 2, 11, 9, 0))
    assert await customer_writes(at(2027, 2, 11, 12, 15))
    assert not await customer_writes(at(2027, 2, 11, 13, 0))
    notices = await system_messages(store, conv_id)
    assert [n.parts for n in notices] == [
        [
            TextPart(
                text="Cảm ơn bạn đã liên hệ. Hiện đã ngoài giờ làm việc; chúng tôi sẽ trả lời "
                "bạn lúc 08:00 thứ Năm, 11/02."
            )
        ],
        [
            TextPart(
                text="Cảm ơn bạn đã liên hệ. Hiện đã ngoài giờ làm việc; chúng tôi sẽ trả lời "
                "bạn lúc 13:30 thứ Năm, 11/02."
            )
        ],
    ]
    assert notices[0].metadata == {
        "automatic": "off_hours",
        "business_hours": "office",
        "next_opening": "2027-02-11T01:00:00.000000Z",
    }
    assert all(n.status == "pending" for n in notices)


async def test_one_off_hours_reply_per_closed_period_across_a_customers_conversations(
    domain: Domain, store: Store
) -> None:
    # a customer whose conversation was resolved writes again the same night: a new
    # conversation, but no second reply for the same closed period
    mail = OFFICE.model_copy(update={"channels": ["mail"]})
    hours = Clocks([mail])
    first = await ingest(domain, inbound(MAIL, "<m1@example.com>", "an@example.com"))
    await domain.assignments.resolve(first.conversation_id)
    second = await ingest(domain, inbound(MAIL, "<m2@example.com>", "an@example.com"))
    other = await ingest(domain, inbound(MAIL, "<b@example.com>", "binh@example.com"))
    assert first.conversation_id != second.conversation_id

    async def writes(conversation_id: ConversationId, now: float) -> bool:
        async def work(tx: Tx) -> bool:
            return await clocks.customer_wrote(tx, hours, conversation_id, MAIL, "email", now)

        return await store.transact(work)

    night = at(2027, 3, 1, 20, 0)
    assert await writes(first.conversation_id, night)
    assert not await writes(second.conversation_id, night + 60)
    assert await writes(other.conversation_id, night + 120)  # another customer
    assert await writes(second.conversation_id, at(2027, 3, 2, 12, 30))  # lunch
    replied = [len(await system_messages(store, c.conversation_id)) for c in (first, second)]
    assert replied == [1, 1]


async def test_the_off_hours_reply_speaks_the_conversations_language(
    domain: Domain, store: Store
) -> None:
    english = OFFICE.model_copy(
        update={"texts": {"en": "Closed. Back at {opening}.", "vi": "Đóng cửa, mở lúc {opening}."}}
    )
    first = await ingest(domain, inbound(WEB, "m1", "v1", text="Hello, is anyone there?"))
    conv = await store.conversations.get(first.conversation_id)
    assert conv is not None

    async def work(tx: Tx) -> None:
        await tx.conversations.update(conv.id, language="en")
        await clocks.customer_wrote(
            tx, Clocks([english]), conv.id, WEB, "webchat", at(2027, 4, 15, 18, 0)
        )

    await store.transact(work)
    (notice,) = await system_messages(store, conv.id)
    # Giỗ Tổ Hùng Vương 2027 is Friday 16 April: back on Monday
    assert notice.parts == [TextPart(text="Closed. Back at 08:00 on Monday, 19/04.")]


async def test_sla_warnings_and_breaches_fire_once_and_show_on_the_conversation(
    store: Store, recorder: Recorder
) -> None:
    policy = SlaPolicySettings(
        id="chat", channels=["webchat"], first_response="1h", resolution="4h", warn_at=0.5
    )
    sla = Clocks([], [policy])
    domain = Domain.over(store, clocks=sla)
    first = await ingest(domain, inbound(WEB, "m1", "v1"))
    conv = await store.conversations.get(first.conversation_id)
    assert conv is not None and conv.sla is not None
    t0 = conv.created_at.timestamp()
    assert conv.sla.policy == "chat"
    assert conv.sla.first_response_due == conv.created_at + timedelta(hours=1)
    assert conv.sla.resolution_due == conv.created_at + timedelta(hours=4)
    assert conv.sla.next_response_due is None
    assert conv.sla.breached == []

    async def sweep(now: float) -> float | None:
        async def work(tx: Tx) -> float | None:
            return await clocks.sweep(tx, sla, now)

        return await store.transact(work)

    def sla_events() -> list[tuple[str, str]]:
        return [(e.type, e.data["kind"]) for e in recorder.events if e.type.startswith("sla.")]

    assert await sweep(t0 + 600) == t0 + 1800  # next: the first response warning
    assert sla_events() == []
    await sweep(t0 + 1801)
    await sweep(t0 + 1900)
    assert sla_events() == [("sla.warning", "first_response")]
    await sweep(t0 + 3601)
    await sweep(t0 + 3700)
    assert sla_events() == [
        ("sla.warning", "first_response"),
        ("sla.breached", "first_response"),
    ]
    breach = next(e for e in recorder.events if e.type == "sla.breached")
    assert breach.data["policy"] == "chat"
    assert breach.data["target_seconds"] == 3600
    assert breach.data["conversation"]["sla"]["breached"] == ["first_response"]
    shown = await store.conversations.get(first.conversation_id)
    assert shown is not None and shown.sla is not None
    assert shown.sla.breached == ["first_response"]
    listed = await store.conversations.page(ConversationFilter(), None, 10)
    assert [c.sla.breached for c in listed.items if c.sla is not None] == [["first_response"]]

    # an agent's answer ends the first response clock; resolving ends the rest
    await domain.outbox.create(
        first.conversation_id,
        Author(type=AuthorType.AGENT, id=AgentId("a1")),
        [TextPart(text="Dạ")],
    )
    await domain.assignments.resolve(first.conversation_id)
    assert await sweep(t0 + 5 * 3600) is None  # nothing left to fire
    assert len(sla_events()) == 2

    samples = await store.stats.samples(
        datetime.fromtimestamp(t0 - 60, UTC), datetime.fromtimestamp(t0 + 60, UTC), None
    )
    (chat,) = compliance(samples[WEB].sla_clocks)
    assert (chat.conversations, chat.compliant, chat.breached) == (1, 0, 1)
    assert (chat.first_response.missed, chat.resolution.kept) == (1, 1)


async def test_the_dispatch_sweeps_sla_clocks(store: Store, recorder: Recorder) -> None:
    policy = SlaPolicySettings(id="fast", first_response="1s", warn_at=0.5)
    domain = Domain.over(store, clocks=Clocks([], [policy]))
    first = await ingest(domain, inbound(WEB, "m1", "v1"))
    await asyncio.sleep(1.2)
    await domain.assignments.dispatch()
    await domain.assignments.dispatch()
    found = [(e.type, e.conversation_id) for e in recorder.events if e.type.startswith("sla.")]
    assert found == [("sla.breached", first.conversation_id)]


async def test_a_teams_hours_follow_its_routing_rule_whatever_the_channel(
    store: Store,
) -> None:
    # The billing team works one hour, on one day; the chat channel is open 24/7.
    day = datetime.now(VN).date() + timedelta(days=30)
    billing_hours = BusinessHoursSettings(
        id="billing",
        rules=["billing"],
        make_up_days=[day],
        make_up_hours=["09:00-10:00"],
    )
    routing = RoutingSettings(
        rules=[Rule(name="billing", match=Match(keywords=["hoá đơn"]), skills={"billing": 1})]
    )
    policy = SlaPolicySettings(id="all", first_response="30m")
    domain = Domain.over(store, routing, Clocks([billing_hours], [policy]))
    billing = await ingest(domain, inbound(WEB, "m1", "v1", text="Cho mình xin hoá đơn"))
    other = await ingest(domain, inbound(WEB, "m2", "v2", text="Chào shop"))
    team = await store.conversations.get(billing.conversation_id)
    anyone = await store.conversations.get(other.conversation_id)
    assert team is not None and team.sla is not None
    assert anyone is not None and anyone.sla is not None
    assert team.sla.first_response_due == datetime(day.year, day.month, day.day, 9, 30, tzinfo=VN)
    assert anyone.sla.first_response_due == anyone.created_at + timedelta(minutes=30)


async def test_two_replicas_on_postgresql_fire_each_sla_alert_once(pg_url: str) -> None:
    policy = SlaPolicySettings(id="fast", first_response="1s", resolution="2s", warn_at=0.5)
    recorders = [Recorder(), Recorder()]
    stores = [await open_store(pg_url, on_events=r) for r in recorders]
    try:
        domains = [Domain.over(s, clocks=Clocks([], [policy])) for s in stores]
        convs = [await ingest(domains[i % 2], inbound(WEB, f"m{i}", f"v{i}")) for i in range(20)]
        await asyncio.sleep(2.5)  # every target of every conversation is past due
        await asyncio.gather(*(d.assignments.dispatch() for d in domains for _ in range(3)))
        # each replica announces what it committed: together, every alert exactly once
        fired = [
            (e.conversation_id, e.type, e.data["kind"])
            for r in recorders
            for e in r.events
            if e.type.startswith("sla.")
        ]
        assert sorted(fired) == sorted(
            (c.conversation_id, "sla.breached", kind)
            for c in convs
            for kind in ("first_response", "resolution")
        )
    finally:
        for s in stores:
            await s.close()
