"""The history store contract. Every backend must pass all of it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.store import open_store
from gateway.store.protocols import Store
from gateway.store.records import ConversationFilter, WebhookRecord
from kernel.envelope import InboundMessage, Sender, StatusUpdate
from kernel.errors import Conflict, Invalid, Malformed, NotFound
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId
from kernel.models import (
    Agent,
    Author,
    AuthorType,
    ChannelType,
    ConversationStatus,
    Direction,
    MessageError,
    MessageStatus,
    Presence,
    TextPart,
    utcnow,
)
from tests.store.backends import Backend
from tests.store.conftest import Domain, Recorder

WEB = ChannelId("webchat")
ZALO = ChannelId("zalo-oa")
MAIL = ChannelId("mail")
FB = ChannelId("fb")
TYPES = {
    WEB: ChannelType.WEBCHAT,
    ZALO: ChannelType.ZALO,
    MAIL: ChannelType.EMAIL,
    FB: ChannelType.FACEBOOK,
}


def inbound(
    channel: ChannelId,
    external_id: str,
    sender: str,
    text: str = "Xin chào",
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    verified: bool = False,
    refs: list[str] | None = None,
    direction: Direction = Direction.INBOUND,
) -> InboundMessage:
    return InboundMessage(
        channel_id=channel,
        external_id=external_id,
        sender=Sender(
            external_id=sender,
            display_name=name,
            email=email,
            phone=phone,
            verified=verified,
        ),
        parts=[TextPart(text=text)],
        thread_refs=refs or [],
        direction=direction,
    )


async def ingest(domain: Domain, msg: InboundMessage):  # type: ignore[no-untyped-def]
    return await domain.inbox.ingest(msg, TYPES[msg.channel_id])


# --- idempotent ingest --------------------------------------------------------------------


async def test_same_external_id_is_stored_once(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    first = await ingest(domain, inbound(WEB, "m1", "v1"))
    again = await ingest(domain, inbound(WEB, "m1", "v1", text="a different body"))
    assert not first.duplicate
    assert again.duplicate
    assert again.message.id == first.message.id
    assert again.message.parts == first.message.parts  # the first copy wins
    page = await store.messages.page(first.conversation_id, None, 50)
    assert [m.id for m in page.items] == [first.message.id]
    assert recorder.types().count("message.received") == 1


async def test_metadata_is_kept_beside_the_text(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    metadata = {"payload": "ORDER_RECEIVED_12345", "choice": {"id": "yes", "title": "Có ạ"}}
    msg = inbound(WEB, "m-meta", "v1", text="Đã nhận hàng").model_copy(
        update={"metadata": metadata}
    )
    plain = await ingest(domain, inbound(WEB, "m-plain", "v1"))
    result = await ingest(domain, msg)
    assert result.message.metadata == metadata
    page = await store.messages.page(result.conversation_id, None, 50)
    stored = {m.id: m for m in page.items}
    assert stored[result.message.id].metadata == metadata
    assert stored[result.message.id].parts == [TextPart(text="Đã nhận hàng")]
    assert stored[plain.message.id].metadata == {}
    received = [e for e in recorder.events if e.type == "message.received"]
    assert received[-1].data["message"]["metadata"] == metadata


async def test_same_external_id_on_two_channels_is_two_messages(
    domain: Domain, store: Store
) -> None:
    a = await ingest(domain, inbound(WEB, "same", "v1"))
    b = await ingest(domain, inbound(ZALO, "same", "z1"))
    assert a.message.id != b.message.id
    assert not b.duplicate


async def test_concurrent_duplicates_store_one_message(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    results = await asyncio.gather(*(ingest(domain, inbound(WEB, "race", "v1")) for _ in range(20)))
    assert len({r.message.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert recorder.types().count("message.received") == 1


# --- identity resolution ------------------------------------------------------------------


async def test_same_identity_is_always_the_same_contact(domain: Domain, store: Store) -> None:
    a = await ingest(domain, inbound(WEB, "m1", "v1"))
    b = await ingest(domain, inbound(WEB, "m2", "v1", name="Nguyễn Văn An"))
    assert a.contact_id == b.contact_id
    contact = await store.contacts.get(a.contact_id)
    assert contact is not None
    assert contact.display_name == "Nguyễn Văn An"
    assert [i.external_id for i in contact.identities] == ["v1"]
    assert contact.identities[0].display_name == "Nguyễn Văn An"


async def test_different_identities_are_different_contacts(domain: Domain, store: Store) -> None:
    a = await ingest(domain, inbound(WEB, "m1", "v1"))
    b = await ingest(domain, inbound(WEB, "m2", "v2"))
    assert a.contact_id != b.contact_id


async def test_verified_email_links_identities_across_channels(
    domain: Domain, store: Store
) -> None:
    a = await ingest(
        domain, inbound(MAIL, "<1@x>", "an@example.vn", email="An@Example.vn", verified=True)
    )
    b = await ingest(
        domain, inbound(ZALO, "z-1", "zalo-user-1", email="an@example.vn", verified=True)
    )
    assert a.contact_id == b.contact_id
    contact = await store.contacts.get(a.contact_id)
    assert contact is not None
    assert contact.email == "an@example.vn"
    assert {(i.channel_id, i.external_id) for i in contact.identities} == {
        (MAIL, "an@example.vn"),
        (ZALO, "zalo-user-1"),
    }


async def test_unverified_email_does_not_link(domain: Domain, store: Store) -> None:
    a = await ingest(
        domain, inbound(MAIL, "<1@x>", "an@example.vn", email="an@example.vn", verified=True)
    )
    b = await ingest(domain, inbound(WEB, "w-1", "v9", email="an@example.vn", verified=False))
    assert a.contact_id != b.contact_id


@pytest.mark.parametrize("second", ["0912 345 678", "84912345678", "+84 91 234 5678"])
async def test_verified_phone_links_in_any_vietnamese_form(
    domain: Domain, store: Store, second: str
) -> None:
    a = await ingest(domain, inbound(ZALO, "z-1", "zu1", phone="0912345678", verified=True))
    b = await ingest(domain, inbound(WEB, "w-1", "v1", phone=second, verified=True))
    assert a.contact_id == b.contact_id
    contact = await store.contacts.get(a.contact_id)
    assert contact is not None
    assert contact.phone == "+84912345678"


async def test_verification_merges_existing_contacts(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    older = await ingest(domain, inbound(ZALO, "z-1", "zu1"))
    newer = await ingest(domain, inbound(WEB, "w-1", "v1"))
    assert older.contact_id != newer.contact_id
    await domain.inbox.link_identity(
        ZALO, ChannelType.ZALO, Sender(external_id="zu1", phone="0912345678", verified=True)
    )
    survivor = await domain.inbox.link_identity(
        WEB, ChannelType.WEBCHAT, Sender(external_id="v1", phone="+84912345678", verified=True)
    )
    assert survivor == older.contact_id
    merged = await store.contacts.get(newer.contact_id)
    assert merged is not None
    assert merged.merged_into == older.contact_id
    assert "contact.merged" in recorder.types()
    timeline = await store.messages.timeline(older.contact_id, None, 50)
    assert {m.id for m in timeline.items} == {older.message.id, newer.message.id}
    # new traffic from the merged identity lands on the survivor
    later = await ingest(domain, inbound(WEB, "w-2", "v1"))
    assert later.contact_id == older.contact_id


async def test_merge_and_unmerge(domain: Domain, store: Store) -> None:
    a = await ingest(domain, inbound(WEB, "w-1", "v1"))
    b = await ingest(domain, inbound(ZALO, "z-1", "zu1"))
    merged = await domain.contacts.merge(a.contact_id, b.contact_id)
    assert {i.external_id for i in merged.identities} == {"v1", "zu1"}
    with pytest.raises(Conflict):
        await domain.contacts.merge(a.contact_id, b.contact_id)
    with pytest.raises(Invalid):
        await domain.contacts.merge(a.contact_id, a.contact_id)
    with pytest.raises(NotFound):
        await domain.contacts.merge(a.contact_id, ContactId("ct_missing"))
    restored = await domain.contacts.unmerge(a.contact_id, ZALO, "zu1")
    assert restored.id == b.contact_id
    assert restored.merged_into is None
    assert [i.external_id for i in restored.identities] == ["zu1"]
    remaining = await store.contacts.get(a.contact_id)
    assert remaining is not None
    assert [i.external_id for i in remaining.identities] == ["v1"]
    with pytest.raises(Conflict):
        await domain.contacts.unmerge(a.contact_id, WEB, "v1")  # the last identity stays
    with pytest.raises(NotFound):
        await domain.contacts.unmerge(a.contact_id, ZALO, "zu1")


# --- threading ----------------------------------------------------------------------------


async def test_inbound_joins_open_conversation_else_opens_one(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    a = await ingest(domain, inbound(WEB, "m1", "v1"))
    b = await ingest(domain, inbound(WEB, "m2", "v1"))
    assert a.conversation_id == b.conversation_id
    assert recorder.types().count("conversation.created") == 1
    await domain.assignments.resolve(a.conversation_id)
    c = await ingest(domain, inbound(WEB, "m3", "v1"))
    assert c.conversation_id != a.conversation_id
    assert c.conversation_status == ConversationStatus.QUEUED
    assert recorder.types().count("conversation.created") == 2


async def test_each_channel_has_its_own_conversation(domain: Domain, store: Store) -> None:
    a = await ingest(
        domain, inbound(MAIL, "<1@x>", "an@example.vn", email="an@example.vn", verified=True)
    )
    b = await ingest(domain, inbound(ZALO, "z1", "zu1", email="an@example.vn", verified=True))
    assert a.contact_id == b.contact_id
    assert a.conversation_id != b.conversation_id
    conv_b = await store.conversations.get(b.conversation_id)
    assert conv_b is not None
    assert conv_b.channel_id == ZALO


async def test_references_join_and_reopen_the_referenced_conversation(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    first = await ingest(domain, inbound(MAIL, "<a@x>", "an@example.vn"))
    await domain.assignments.resolve(first.conversation_id)
    reply = await ingest(domain, inbound(MAIL, "<b@x>", "an@example.vn", refs=["<zzz@x>", "<a@x>"]))
    assert reply.conversation_id == first.conversation_id
    assert reply.conversation_status == ConversationStatus.QUEUED
    assert "conversation.reopened" in recorder.types()


async def test_message_sent_outside_the_gateway_is_stored_outbound(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    await ingest(domain, inbound(WEB, "m1", "v1"))
    echo = await ingest(
        domain, inbound(WEB, "page-reply", "v1", text="trả lời", direction=Direction.OUTBOUND)
    )
    assert echo.message.direction == Direction.OUTBOUND
    assert echo.message.author.type == AuthorType.AGENT
    assert echo.message.status == MessageStatus.SENT
    conv = await store.conversations.get(echo.conversation_id)
    assert conv is not None
    assert conv.first_response_at is not None
    assert recorder.types()[-1] == "message.sent"


# --- timeline -----------------------------------------------------------------------------


async def test_timeline_spans_channels_newest_first_and_paginates(
    domain: Domain, store: Store
) -> None:
    ids = []
    for i in range(4):
        r = await ingest(
            domain,
            inbound(
                MAIL, f"<{i}@x>", "an@example.vn", f"mail {i}", email="an@example.vn", verified=True
            ),
        )
        ids.append(r.message.id)
        r = await ingest(
            domain, inbound(ZALO, f"z{i}", "zu1", f"zalo {i}", email="an@example.vn", verified=True)
        )
        ids.append(r.message.id)
    contact = r.contact_id
    seen, cursor = [], None
    for _ in range(10):
        page = await store.messages.timeline(contact, cursor, 3)
        assert len(page.items) <= 3
        seen.extend(m.id for m in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert {m.channel_id for m in (await store.messages.timeline(contact, None, 50)).items} == {
        MAIL,
        ZALO,
    }


async def test_bad_cursor_is_a_bad_request(domain: Domain, store: Store) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    with pytest.raises(Malformed):
        await store.messages.timeline(r.contact_id, "not-a-cursor!", 10)
    with pytest.raises(NotFound):
        await store.messages.timeline(ContactId("ct_nobody"), None, 10)


async def test_conversation_list_filters_and_paginates(domain: Domain, store: Store) -> None:
    convs = []
    for i in range(5):
        convs.append((await ingest(domain, inbound(WEB, f"m{i}", f"v{i}"))).conversation_id)
    await domain.assignments.resolve(convs[0])
    everything, cursor = [], None
    while True:
        page = await store.conversations.page(ConversationFilter(), cursor, 2)
        everything.extend(c.id for c in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert everything == list(reversed(convs))
    resolved = await store.conversations.page(
        ConversationFilter(status=ConversationStatus.RESOLVED), None, 10
    )
    assert [c.id for c in resolved.items] == [convs[0]]


async def test_channel_history_pages_both_ways(domain: Domain, store: Store) -> None:
    ids = [
        (await ingest(domain, inbound(WEB, f"m{i}", "v1", f"t{i}"))).message.id for i in range(7)
    ]
    latest = await store.messages.history(WEB, "v1", before=None, after=None, limit=3)
    assert [m.id for m in latest] == ids[-3:]
    older = await store.messages.history(WEB, "v1", before=ids[4], after=None, limit=3)
    assert [m.id for m in older] == ids[1:4]
    newer = await store.messages.history(WEB, "v1", before=None, after=ids[1], limit=3)
    assert [m.id for m in newer] == ids[2:5]
    assert await store.messages.history(WEB, "nobody", before=None, after=None, limit=3) == []


async def test_channel_history_is_the_identity_s_own(domain: Domain, store: Store) -> None:
    # Two visitors of one webchat, then merged into one contact: each one's history holds
    # what it wrote and what was written to it, never the other's; a reply goes to the
    # visitor it was written to even when the other one writes before it is sent.
    a1 = await ingest(domain, inbound(WEB, "va:1", "va", "A one"))
    b1 = await ingest(domain, inbound(WEB, "vb:1", "vb", "B one"))
    agent = Author(type=AuthorType.AGENT, id="lan")

    async def reply(result, text: str):  # type: ignore[no-untyped-def]
        msg, _ = await domain.outbox.create(result.conversation_id, agent, [TextPart(text=text)])
        return msg

    to_a1, to_b1 = await reply(a1, "to A"), await reply(b1, "to B")
    await domain.contacts.merge(a1.contact_id, b1.contact_id)
    b2 = await ingest(domain, inbound(WEB, "vb:2", "vb", "B two"))
    a2 = await ingest(domain, inbound(WEB, "va:2", "va", "A two"))
    assert a2.conversation_id == b2.conversation_id  # the merged contact's open one
    to_a2 = await reply(a2, "to A again")
    b3 = await ingest(domain, inbound(WEB, "vb:3", "vb", "B three"))  # before it is sent
    to_b3 = await reply(b3, "to B again")

    def ids(*items):  # type: ignore[no-untyped-def]
        return [i.id if hasattr(i, "id") else i.message.id for i in items]

    history_a = await store.messages.history(WEB, "va", before=None, after=None, limit=50)
    history_b = await store.messages.history(WEB, "vb", before=None, after=None, limit=50)
    assert [m.id for m in history_a] == ids(a1, to_a1, a2, to_a2)
    assert [m.id for m in history_b] == ids(b1, to_b1, b2, b3, to_b3)
    older = await store.messages.history(WEB, "vb", before=b3.message.id, after=None, limit=2)
    assert [m.id for m in older] == ids(to_b1, b2)
    newer = await store.messages.history(WEB, "va", before=None, after=to_a1.id, limit=5)
    assert [m.id for m in newer] == ids(a2, to_a2)
    sent_to = {
        j.outbound.message.id: j.outbound.recipient.external_id
        for j in await store.outbound.due(utcnow(), 10)
    }
    assert sent_to == {to_a1.id: "va", to_b1.id: "vb", to_a2.id: "va", to_b3.id: "vb"}


async def test_earlier_messages_get_their_peer_when_the_store_is_upgraded(
    backend: Backend,
) -> None:
    # Messages stored before messages had a peer: a webchat visitor's own name it in
    # their external id; the rest belong to their conversation's recipient.
    store = await open_store(backend.url)
    domain = Domain.over(store)
    a1 = await ingest(domain, inbound(WEB, "va:1", "va", "A one"))
    b1 = await ingest(domain, inbound(WEB, "vb:1", "vb", "B one"))
    to_a1, _ = await domain.outbox.create(
        a1.conversation_id, Author(type=AuthorType.AGENT, id="lan"), [TextPart(text="to A")]
    )
    await domain.contacts.merge(a1.contact_id, b1.contact_id)
    b2 = await ingest(domain, inbound(WEB, "vb:2", "vb", "B two"))
    a2 = await ingest(domain, inbound(WEB, "va:2", "va", "A two"))  # in B's conversation
    z1 = await ingest(domain, inbound(ZALO, "z-1", "zu1", "Zalo"))
    await store.close()
    # The peer's step undone: the upgrade applies it again.
    step = 9 if backend.name == "sqlite" else 2
    await backend.execute(
        "DROP INDEX messages_peer; ALTER TABLE messages DROP COLUMN peer_id; "
        f"DELETE FROM schema_migrations WHERE version = {step}"
    )
    store = await open_store(backend.url)
    try:

        async def history(channel: ChannelId, peer: str) -> list[str]:
            found = await store.messages.history(channel, peer, before=None, after=None, limit=9)
            return [m.id for m in found]

        assert await history(WEB, "va") == [a1.message.id, to_a1.id, a2.message.id]
        assert await history(WEB, "vb") == [b1.message.id, b2.message.id]
        assert await history(ZALO, "zu1") == [z1.message.id]
    finally:
        await store.close()


async def test_payloads_stored_as_text_move_to_metadata_when_the_store_is_upgraded(
    backend: Backend,
) -> None:
    # Earlier versions kept a Messenger quick reply's or button's payload as a second,
    # labelled text part. The upgrade moves it into metadata and leaves the words alone.
    store = await open_store(backend.url)
    domain = Domain.over(store)

    def old(channel: ChannelId, mid: str, *texts: str) -> InboundMessage:
        msg = inbound(channel, mid, "psid-1")
        return msg.model_copy(update={"parts": [TextPart(text=t) for t in texts]})

    quick = await ingest(domain, old(FB, "m1", "Màu đỏ", "[quick reply payload] COLOR_RED"))
    button = await ingest(domain, old(FB, "m2", "Bắt đầu", "[postback payload] GET_STARTED"))
    alone = await ingest(domain, old(FB, "m3", "[postback payload] ONLY"))
    typed = await ingest(domain, old(WEB, "w1", "[postback payload] typed by a visitor"))
    await store.close()
    step = 11 if backend.name == "sqlite" else 4
    await backend.execute(f"DELETE FROM schema_migrations WHERE version = {step}")
    store = await open_store(backend.url)
    try:

        async def stored(result) -> tuple[list[str], dict[str, object]]:  # type: ignore[no-untyped-def]
            page = await store.messages.page(result.conversation_id, None, 50)
            (found,) = [m for m in page.items if m.id == result.message.id]
            return [p.text for p in found.parts if isinstance(p, TextPart)], found.metadata

        assert await stored(quick) == (
            ["Màu đỏ"],
            {"payload": "COLOR_RED", "payload_from": "quick_reply"},
        )
        assert await stored(button) == (
            ["Bắt đầu"],
            {"payload": "GET_STARTED", "payload_from": "postback"},
        )
        # Nothing else to show: left as it was rather than a message without parts.
        assert await stored(alone) == (["[postback payload] ONLY"], {})
        # Only Messenger ever wrote these labels; a visitor's own words are theirs.
        assert await stored(typed) == (["[postback payload] typed by a visitor"], {})
    finally:
        await store.close()


# --- transactional outbox -----------------------------------------------------------------


async def test_every_change_is_announced_in_commit_order(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    assert recorder.types() == ["contact.created", "conversation.created", "message.received"]
    from_log = await store.events.after(0, 100)
    assert [e.id for e in from_log] == [e.id for e in recorder.events]
    assert [int(e.id) for e in from_log] == sorted({int(e.id) for e in from_log})
    assert from_log[-1].data["message"]["id"] == r.message.id
    assert await store.events.last_seq() == int(from_log[-1].id)


async def test_a_failed_event_write_leaves_neither_change_nor_event(
    domain: Domain, store: Store, recorder: Recorder, backend: Backend
) -> None:
    await backend.fail_event_inserts("message.received")
    with pytest.raises(Exception, match="injected"):
        await ingest(domain, inbound(WEB, "m1", "v1"))
    assert recorder.events == []
    assert await store.events.after(0, 100) == []
    assert await store.messages.history(WEB, "v1", before=None, after=None, limit=10) == []
    assert (await store.conversations.page(ConversationFilter(), None, 10)).items == []
    await backend.heal()
    ok = await ingest(domain, inbound(WEB, "m1", "v1"))
    assert not ok.duplicate
    assert recorder.types() == ["contact.created", "conversation.created", "message.received"]


async def test_one_failing_write_does_not_sink_concurrent_ones(
    domain: Domain, store: Store, recorder: Recorder, backend: Backend
) -> None:
    first = await ingest(domain, inbound(WEB, "m0", "v1"))
    await backend.fail_event_inserts("conversation.resolved")
    results = await asyncio.gather(
        domain.assignments.resolve(first.conversation_id),
        *(ingest(domain, inbound(WEB, f"n{i}", f"other{i}")) for i in range(10)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception)
    assert all(not isinstance(r, Exception) for r in results[1:])
    conv = await store.conversations.get(first.conversation_id)
    assert conv is not None
    assert conv.status != ConversationStatus.RESOLVED
    assert recorder.types().count("message.received") == 11


async def test_data_survives_reopening_the_store(backend: Backend) -> None:
    s = await open_store(backend.url)
    r = await ingest(Domain.over(s), inbound(WEB, "m1", "v1", "còn đó không?"))
    await s.close()
    s = await open_store(backend.url)
    try:
        page = await s.messages.page(r.conversation_id, None, 10)
        assert [m.parts for m in page.items] == [r.message.parts]
        assert (await ingest(Domain.over(s), inbound(WEB, "m1", "v1"))).duplicate
        assert await s.events.last_seq() == 3
    finally:
        await s.close()


# --- outbound -----------------------------------------------------------------------------


async def test_outbound_lifecycle_and_idempotency(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    author = Author(type=AuthorType.AGENT, id="lan")
    msg, replayed = await domain.outbox.create(
        r.conversation_id, author, [TextPart(text="Dạ")], idempotency_key="k1", request_hash="h1"
    )
    assert msg.status == MessageStatus.PENDING
    assert not replayed
    again, replayed = await domain.outbox.create(
        r.conversation_id, author, [TextPart(text="Dạ")], idempotency_key="k1", request_hash="h1"
    )
    assert replayed
    assert again.id == msg.id
    with pytest.raises(Invalid):
        await domain.outbox.create(
            r.conversation_id,
            author,
            [TextPart(text="khác")],
            idempotency_key="k1",
            request_hash="h2",
        )
    with pytest.raises(Invalid):
        await domain.outbox.create(
            r.conversation_id, author, [TextPart(text="x")], reply_to="msg_nope"
        )
    with pytest.raises(NotFound):
        await domain.outbox.create(ConversationId("cv_nope"), author, [TextPart(text="x")])
    due = await store.outbound.due(utcnow(), 10)
    assert [j.outbound.message.id for j in due] == [msg.id]
    assert due[0].outbound.recipient.external_id == "v1"
    conv = await store.conversations.get(r.conversation_id)
    assert conv is not None
    assert conv.first_response_at is not None

    error = MessageError(code="transient", reason="timeout", retryable=True)
    await store.outbound.defer(msg.id, utcnow() + timedelta(seconds=60), error)
    assert await store.outbound.due(utcnow(), 10) == []
    later = await store.outbound.due(utcnow() + timedelta(seconds=61), 10)
    assert later[0].attempts == 1
    # The channel came back: what waited for it is due at once (other channels untouched).
    assert await store.outbound.release_held(ChannelId("other"), utcnow()) == 0
    assert await store.outbound.due(utcnow(), 10) == []
    assert await store.outbound.release_held(msg.channel_id, utcnow()) == 1
    assert [j.outbound.message.id for j in await store.outbound.due(utcnow(), 10)] == [msg.id]

    sent = await domain.outbox.mark_sent(msg.id, "ext-1")
    assert sent.status == MessageStatus.SENT
    assert sent.external_id == "ext-1"
    assert sent.error is None
    assert recorder.types()[-1] == "message.sent"
    read = await domain.inbox.update_status(
        StatusUpdate(channel_id=WEB, status=MessageStatus.READ, external_ids=["ext-1"])
    )
    assert [m.status for m in read] == [MessageStatus.READ]
    late = await domain.inbox.update_status(
        StatusUpdate(channel_id=WEB, status=MessageStatus.DELIVERED, external_ids=["ext-1"])
    )
    assert late == []  # a late "delivered" never undoes "read"
    assert recorder.types()[-1] == "message.read"


async def test_failure_is_recorded_with_its_reason(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    msg, _ = await domain.outbox.create(
        r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="x")]
    )
    failed = await domain.outbox.mark_failed(
        msg.id, MessageError(code="window_closed", reason="24h", retryable=False)
    )
    assert failed.status == MessageStatus.FAILED
    assert failed.error == MessageError(code="window_closed", reason="24h", retryable=False)
    assert recorder.events[-1].type == "message.failed"
    assert recorder.events[-1].data["message"]["error"]["code"] == "window_closed"
    assert (await domain.outbox.mark_sent(msg.id, "late")).status == MessageStatus.FAILED


async def test_watermark_marks_everything_up_to_it(domain: Domain, store: Store) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    sent = []
    cut = None
    for i in range(3):
        m, _ = await domain.outbox.create(
            r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text=str(i))]
        )
        sent.append(await domain.outbox.mark_sent(m.id, f"e{i}"))
        if i == 1:
            cut = utcnow()  # the watermark: after the second went out
            await asyncio.sleep(0.002)
    assert cut is not None
    changed = await domain.inbox.update_status(
        StatusUpdate(
            channel_id=WEB,
            status=MessageStatus.DELIVERED,
            recipient_external_id="v1",
            watermark=cut,
        )
    )
    assert [m.id for m in changed] == [sent[0].id, sent[1].id]


# --- routing commits ----------------------------------------------------------------------


async def _agent(
    domain: Domain, agent_id: str, presence: Presence = Presence.ONLINE, total: int = 2
) -> None:
    await domain.assignments.put_agent(
        Agent(id=AgentId(agent_id), capacity={"total": total}, presence=presence),
        keep_presence=False,
    )


async def test_dispatch_assigns_queues_and_honours_capacity(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    await _agent(domain, "lan", total=1)
    a = await ingest(domain, inbound(WEB, "m1", "v1"))
    b = await ingest(domain, inbound(WEB, "m2", "v2"))
    await domain.assignments.dispatch()
    conv_a = await store.conversations.get(a.conversation_id)
    conv_b = await store.conversations.get(b.conversation_id)
    assert conv_a is not None
    assert conv_b is not None
    assert (conv_a.status, conv_a.assignee_id) == (ConversationStatus.ASSIGNED, "lan")
    assert conv_b.status == ConversationStatus.QUEUED
    queued = [e for e in recorder.events if e.type == "conversation.queued"]
    assert len(queued) == 1
    assert queued[0].data["position"] == 1
    await domain.assignments.dispatch()  # nothing changed: no new announcements
    assert recorder.types().count("conversation.queued") == 1
    await domain.assignments.resolve(a.conversation_id)
    await domain.assignments.dispatch()
    conv_b = await store.conversations.get(b.conversation_id)
    assert conv_b is not None
    assert conv_b.assignee_id == "lan"
    log = await store.conversations.decisions(b.conversation_id)
    assert [d["agent_id"] for d in log] == [None, "lan"]


async def test_queue_is_served_by_priority_then_age(domain: Domain, store: Store) -> None:
    await _agent(domain, "lan", presence=Presence.OFFLINE, total=1)
    first = await ingest(domain, inbound(WEB, "m1", "v1"))
    second = await ingest(domain, inbound(WEB, "m2", "v2"))
    await domain.assignments.dispatch()
    await domain.assignments.set_presence(AgentId("lan"), Presence.ONLINE)
    await domain.assignments.dispatch()
    c1 = await store.conversations.get(first.conversation_id)
    c2 = await store.conversations.get(second.conversation_id)
    assert c1 is not None
    assert c2 is not None
    assert c1.assignee_id == "lan"
    assert c2.status == ConversationStatus.QUEUED


async def test_the_queue_now_per_channel(domain: Domain, store: Store) -> None:
    assert await store.stats.queue() == {}
    await _agent(domain, "lan", presence=Presence.OFFLINE, total=1)
    await ingest(domain, inbound(WEB, "m1", "v1"))
    await asyncio.sleep(0.05)
    await ingest(domain, inbound(WEB, "m2", "v2"))
    await ingest(domain, inbound(ZALO, "z1", "u1"))
    await domain.assignments.dispatch()
    queue = await store.stats.queue()
    assert set(queue) == {WEB, ZALO}
    (web_length, web_oldest), (zalo_length, zalo_oldest) = queue[WEB], queue[ZALO]
    assert (web_length, zalo_length) == (2, 1)
    assert web_oldest is not None
    assert zalo_oldest is not None
    assert web_oldest - zalo_oldest >= 0.045 and zalo_oldest >= 0  # each channel's oldest
    await domain.assignments.set_presence(AgentId("lan"), Presence.ONLINE)
    await domain.assignments.dispatch()
    after = await store.stats.queue()
    assert sum(length for length, _ in after.values()) == 2  # one was assigned


async def test_manual_assignment_rules(domain: Domain, store: Store, recorder: Recorder) -> None:
    await _agent(domain, "lan", total=1)
    await _agent(domain, "minh", presence=Presence.OFFLINE)
    a = await ingest(domain, inbound(WEB, "m1", "v1"))
    b = await ingest(domain, inbound(WEB, "m2", "v2"))
    await domain.assignments.assign(a.conversation_id, AgentId("lan"))
    with pytest.raises(Conflict) as full:
        await domain.assignments.assign(b.conversation_id, AgentId("lan"))
    assert full.value.code == "agent_at_capacity"
    with pytest.raises(Conflict) as away:
        await domain.assignments.assign(b.conversation_id, AgentId("minh"))
    assert away.value.code == "agent_unavailable"
    with pytest.raises(NotFound):
        await domain.assignments.assign(b.conversation_id, AgentId("nobody"))
    forced = await domain.assignments.assign(b.conversation_id, AgentId("lan"), force=True)
    assert forced.assignee_id == "lan"
    moved = await domain.assignments.assign(a.conversation_id, AgentId("minh"), force=True)
    assert moved.assignee_id == "minh"
    assert recorder.events[-1].type == "conversation.transferred"
    assert recorder.events[-1].data["from_agent_id"] == "lan"
    requeued = await domain.assignments.transfer_to_skills(a.conversation_id, {"billing": 2})
    assert requeued.status == ConversationStatus.QUEUED
    assert requeued.skills == ["billing"]


async def test_resolve_and_reopen_state_rules(domain: Domain, store: Store) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    await domain.assignments.resolve(r.conversation_id)
    with pytest.raises(Conflict):
        await domain.assignments.resolve(r.conversation_id)
    reopened = await domain.assignments.reopen(r.conversation_id)
    assert reopened.status == ConversationStatus.QUEUED
    assert reopened.resolved_at is None
    with pytest.raises(Conflict):
        await domain.assignments.reopen(r.conversation_id)
    await domain.assignments.resolve(r.conversation_id)
    await ingest(domain, inbound(WEB, "m2", "v1"))  # a new conversation opens
    with pytest.raises(Conflict) as exc:
        await domain.assignments.reopen(r.conversation_id)
    assert exc.value.code == "open_conversation_exists"
    with pytest.raises(NotFound):
        await domain.assignments.resolve(ConversationId("cv_missing"))


# --- agents and tokens --------------------------------------------------------------------


async def test_agents_and_presence_events(domain: Domain, store: Store, recorder: Recorder) -> None:
    created, is_new = await domain.assignments.put_agent(
        Agent(id=AgentId("lan"), name="Lan", skills={"billing": 3})
    )
    assert is_new
    assert created.presence == Presence.OFFLINE
    await domain.assignments.set_presence(AgentId("lan"), Presence.ONLINE)
    await domain.assignments.set_presence(AgentId("lan"), Presence.ONLINE)  # no change, no event
    assert recorder.types().count("agent.presence_changed") == 1
    updated, is_new = await domain.assignments.put_agent(
        Agent(id=AgentId("lan"), name="Lan B", presence=Presence.OFFLINE)
    )
    assert not is_new
    assert updated.presence == Presence.ONLINE
    page = await store.agents.page(None, 10)
    assert [a.id for a in page.items] == ["lan"]
    with pytest.raises(NotFound):
        await domain.assignments.set_presence(AgentId("ghost"), Presence.ONLINE)


async def test_tokens_are_found_by_hash_until_revoked(store: Store) -> None:
    record = await store.tokens.create("tok_1", "helpdesk", "a" * 64, ["integration"], None)  # type: ignore[arg-type]
    assert record.scopes == ["integration"]
    found = await store.tokens.find("a" * 64)
    assert found is not None
    assert found.id == "tok_1"
    await store.tokens.revoke("tok_1")  # type: ignore[arg-type]
    assert await store.tokens.find("a" * 64) is None
    with pytest.raises(NotFound):
        await store.tokens.revoke("tok_1")  # type: ignore[arg-type]


async def test_a_deferred_message_holds_back_the_rest_of_its_conversation(
    domain: Domain, store: Store
) -> None:
    a = await ingest(domain, inbound(WEB, "m1", "v1"))
    b = await ingest(domain, inbound(WEB, "m2", "v2"))
    agent = Author(type=AuthorType.AGENT)
    first, _ = await domain.outbox.create(a.conversation_id, agent, [TextPart(text="1")])
    second, _ = await domain.outbox.create(a.conversation_id, agent, [TextPart(text="2")])
    other, _ = await domain.outbox.create(b.conversation_id, agent, [TextPart(text="x")])
    due = await store.outbound.due(utcnow(), 10)
    assert [j.outbound.message.id for j in due] == [first.id, second.id, other.id]
    error = MessageError(code="transient", reason="later", retryable=True)
    await store.outbound.defer(first.id, utcnow() + timedelta(seconds=30), error)
    due = await store.outbound.due(utcnow(), 10)
    assert [j.outbound.message.id for j in due] == [other.id]
    later = await store.outbound.due(utcnow() + timedelta(seconds=31), 10)
    assert [j.outbound.message.id for j in later] == [first.id, second.id, other.id]
    assert await store.outbound.next_due() is not None


async def test_reactions_are_one_per_reactor_and_announced(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    from kernel.models import Reaction

    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    customer = Author(type=AuthorType.CONTACT, id=r.contact_id)
    page = Author(type=AuthorType.AGENT)
    now = utcnow()
    liked = await domain.inbox.react(
        WEB, "m1", Reaction(reaction="like", emoji="👍", by=customer, at=now), customer
    )
    assert liked is not None
    assert [x.emoji for x in liked.reactions] == ["👍"]
    loved = await domain.inbox.react(
        WEB, "m1", Reaction(reaction="love", emoji="❤", by=customer, at=now), customer
    )
    assert loved is not None
    assert [x.reaction for x in loved.reactions] == ["love"]  # replaced, not added
    both = await domain.inbox.react(WEB, "m1", Reaction(emoji="😮", by=page, at=now), page)
    assert both is not None
    assert len(both.reactions) == 2
    removed = await domain.inbox.react(WEB, "m1", None, customer)
    assert removed is not None
    assert [x.by for x in removed.reactions] == [page]
    assert recorder.types().count("message.reacted") == 4
    assert recorder.events[-1].data["action"] == "unreact"
    again = await domain.inbox.react(WEB, "m1", None, customer)  # nothing left to remove
    assert again is not None
    assert recorder.types().count("message.reacted") == 4
    assert await domain.inbox.react(WEB, "unknown", None, customer) is None
    stored = await store.messages.get(r.message.id)
    assert stored is not None
    assert stored.reactions == removed.reactions


async def test_raw_events_are_kept(store: Store, backend: Backend) -> None:
    await store.raw_events.keep(WEB, "pass_thread_control", '{"x": "ữ"}', "not handled")
    await store.raw_events.keep(WEB, "pass_thread_control", '{"x": "ữ"}', "not handled")  # resent
    rows = await backend.fetch("SELECT channel_id, kind, reason, payload FROM raw_events")
    assert rows == [("webchat", "pass_thread_control", "not handled", '{"x": "ữ"}')]


async def test_a_conversation_hint_joins_and_reopens_its_conversation(
    domain: Domain, store: Store
) -> None:
    first = await ingest(domain, inbound(MAIL, "<a@x>", "an@example.vn"))
    await domain.assignments.resolve(first.conversation_id)
    hinted = InboundMessage(
        channel_id=MAIL,
        external_id="<b@x>",
        sender=Sender(external_id="someone-else@example.vn"),
        parts=[TextPart(text="trả lời qua địa chỉ có mã")],
        conversation_hint=first.conversation_id,
    )
    joined = await ingest(domain, hinted)
    assert joined.conversation_id == first.conversation_id
    assert joined.conversation_status == ConversationStatus.QUEUED
    elsewhere = hinted.model_copy(
        update={"external_id": "<c@x>", "conversation_hint": "cv_unknown"}
    )
    other = await ingest(domain, elsewhere)
    # an unknown hint is ignored: this sender has no conversation of their own yet
    assert other.conversation_id != first.conversation_id


async def test_channel_state_survives_and_is_per_channel(store: Store) -> None:
    assert await store.channel_state.load(MAIL, "imap:INBOX") is None
    await store.channel_state.save(MAIL, "imap:INBOX", {"uidvalidity": 7, "last_uid": 42})
    await store.channel_state.save(MAIL, "imap:INBOX", {"uidvalidity": 7, "last_uid": 43})
    await store.channel_state.save(ZALO, "imap:INBOX", "other")
    assert await store.channel_state.load(MAIL, "imap:INBOX") == {"uidvalidity": 7, "last_uid": 43}
    assert await store.channel_state.load(ZALO, "imap:INBOX") == "other"


async def test_sealed_values_are_replaced_only_if_unchanged(store: Store) -> None:
    """What a key rotation relies on: a value sealed again is written only over the value
    it was made from, so a change made meanwhile (a refreshed token) is never lost."""
    pair = {"seed": "s", "sealed": "old-seal", "expires_at": 1.5}
    await store.channel_state.save(ZALO, "tokens", pair)
    resealed = {**pair, "sealed": "new-seal"}
    assert await store.channel_state.replace(ZALO, "tokens", pair, resealed)
    assert await store.channel_state.load(ZALO, "tokens") == resealed
    assert not await store.channel_state.replace(ZALO, "tokens", pair, {"sealed": "late"})
    assert not await store.channel_state.replace(MAIL, "tokens", pair, {"sealed": "none"})
    assert await store.channel_state.load(ZALO, "tokens") == resealed
    assert await store.channel_state.load(MAIL, "tokens") is None

    await store.channels.put("shop", "webchat", "sealed-1", new=True)
    assert await store.channels.reseal("shop", "sealed-1", "sealed-2")
    assert not await store.channels.reseal("shop", "sealed-1", "sealed-3")
    assert not await store.channels.reseal("nowhere", "sealed-1", "sealed-3")
    [channel] = await store.channels.all()
    assert channel.sealed == "sealed-2" and channel.type == "webchat"

    record = WebhookRecord(id="wh_1", url="https://h.example/x", events=["*"], sealed_secrets="a")
    await store.webhooks.put(record, keep_cursor=False)
    assert await store.webhooks.reseal("wh_1", "a", "b")
    assert not await store.webhooks.reseal("wh_1", "a", "c")
    assert not await store.webhooks.reseal("wh_2", "a", "c")
    found = await store.webhooks.get("wh_1")
    assert found is not None and found.sealed_secrets == "b" and found.url == record.url


async def test_outbound_jobs_carry_the_last_inbound_time(domain: Domain, store: Store) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    await domain.outbox.create(
        r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="x")]
    )
    (job,) = await store.outbound.due(utcnow(), 10)
    assert job.outbound.last_inbound_at is not None
    assert abs((job.outbound.last_inbound_at - r.message.created_at).total_seconds()) < 1


async def test_outbound_jobs_carry_the_last_inbound_metadata(domain: Domain, store: Store) -> None:
    """An e-mail reply keeps the Cc of the customer's latest mail before it."""
    first = inbound(MAIL, "<1@x>", "an@example.vn")
    first = first.model_copy(update={"metadata": {"cc": [{"email": "a@x.vn", "name": "Á"}]}})
    r = await ingest(domain, first)
    latest = inbound(MAIL, "<2@x>", "an@example.vn", refs=["<1@x>"]).model_copy(
        update={"metadata": {"cc": [{"email": "b@x.vn", "name": "Bình"}]}}
    )
    await ingest(domain, latest)
    reply, _ = await domain.outbox.create(
        r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="x")]
    )
    await domain.outbox.mark_sent(reply.id, "<3@x>")
    await domain.outbox.create(
        r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="y")]
    )
    (job,) = await store.outbound.due(utcnow(), 10)
    assert job.outbound.last_inbound_metadata == {"cc": [{"email": "b@x.vn", "name": "Bình"}]}
    chat = await ingest(domain, inbound(WEB, "m1", "v1"))
    await domain.outbox.create(
        chat.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="z")]
    )
    jobs = await store.outbound.due(utcnow(), 10)
    assert [j.outbound.last_inbound_metadata for j in jobs] == [
        {"cc": [{"email": "b@x.vn", "name": "Bình"}]},
        {},
    ]


async def test_watermarks_count_from_when_a_message_went_out(domain: Domain, store: Store) -> None:
    r = await ingest(domain, inbound(WEB, "m1", "v1"))
    early, _ = await domain.outbox.create(
        r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="1")]
    )
    watermark = utcnow()
    await asyncio.sleep(0.01)
    await domain.outbox.mark_sent(early.id, "e1")  # written before the watermark, sent after it
    changed = await domain.inbox.update_status(
        StatusUpdate(
            channel_id=WEB,
            status=MessageStatus.READ,
            recipient_external_id="v1",
            watermark=watermark,
        )
    )
    assert changed == []


async def test_reply_windows_start_at_the_providers_time(domain: Domain, store: Store) -> None:
    from datetime import timedelta

    wrote = utcnow() - timedelta(hours=3)
    late = InboundMessage(
        channel_id=WEB,
        external_id="retried-late",
        sender=Sender(external_id="v1"),
        parts=[TextPart(text="gửi từ 3 giờ trước")],
        sent_at=wrote,
    )
    r = await ingest(domain, late)
    await domain.outbox.create(
        r.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text="x")]
    )
    (job,) = await store.outbound.due(utcnow(), 10)
    assert job.outbound.last_inbound_at is not None
    assert abs((job.outbound.last_inbound_at - wrote).total_seconds()) < 0.01


async def test_nul_in_a_providers_names_does_not_fail_the_write(
    domain: Domain, store: Store
) -> None:
    # The API and the webchat refuse U+0000; a provider's payload may still carry one (in
    # a profile name, a subject): the message is stored all the same, on every backend.
    r = await ingest(domain, inbound(WEB, "m\x00nul", "v1", "Xin chào", name="Lan\x00 Anh"))
    assert not r.duplicate
    contact = await store.contacts.get(r.contact_id)
    assert contact is not None
    assert (contact.display_name or "").replace("\x00", "") == "Lan Anh"
    page = await store.messages.page(r.conversation_id, None, 10)
    assert [m.id for m in page.items] == [r.message.id]


# --- canned replies -------------------------------------------------------------------------


async def test_templates_keep_their_variants_and_refuse_a_taken_name(store: Store) -> None:
    from kernel.models import ChoicesPart, Template

    now = utcnow()

    def template(tid: str, language: str, **body: object) -> Template:
        return Template.model_validate(
            {
                "id": tid,
                "name": "cảm ơn",
                "language": language,
                "created_at": now,
                "updated_at": now,
                **body,
            }
        )

    vi = template("tpl_1", "vi", text="Cảm ơn {{contact.display_name}}")
    en = template(
        "tpl_2",
        "en",
        parts=[ChoicesPart(text="Received?", choices=[{"id": "y", "title": "Yes"}])],
    )
    assert await store.templates.put(vi, new=True)
    assert await store.templates.put(en, new=True)
    assert await store.templates.get("tpl_1") == vi
    assert await store.templates.get("tpl_2") == en
    assert [t.id for t in await store.templates.all("cảm ơn")] == ["tpl_2", "tpl_1"]
    with pytest.raises(Conflict):
        await store.templates.put(template("tpl_3", "vi", text="again"), new=True)
    with pytest.raises(Conflict):
        await store.templates.put(en.model_copy(update={"language": "vi"}), new=False)
    assert await store.templates.get("tpl_3") is None
    changed = vi.model_copy(update={"text": "Cảm ơn ạ"})
    assert await store.templates.put(changed, new=False)
    assert (await store.templates.get("tpl_1")) == changed
    assert await store.templates.delete("tpl_1")
    assert not await store.templates.delete("tpl_1")
    assert not await store.templates.put(changed, new=False)
    assert [t.id for t in await store.templates.all()] == ["tpl_2"]


# --- choices ----------------------------------------------------------------------------------


async def test_an_answer_to_a_question_is_the_pick(domain: Domain, store: Store) -> None:
    from kernel.models import ChoicesPart

    question = ChoicesPart.model_validate(
        {
            "text": "Anh/chị đã nhận được hàng chưa ạ?",
            "choices": [
                {"id": "received", "title": "Đã nhận hàng"},
                {"id": "not_yet", "title": "Chưa nhận"},
                {"id": "other", "title": "Khác"},
            ],
        }
    )
    first = await ingest(domain, inbound(WEB, "q0", "v1", "Đơn của em đâu rồi?"))
    agent = Author(type=AuthorType.AGENT, id="lan")

    async def ask() -> None:
        await domain.outbox.create(first.conversation_id, agent, [question])

    async def answer(mid: str, text: str, **metadata: str) -> dict[str, object]:
        msg = inbound(WEB, mid, "v1", text).model_copy(update={"metadata": metadata})
        result = await ingest(domain, msg)
        assert result.message.parts == [TextPart(text=text)]
        return result.message.metadata

    received = {"choice": {"id": "received", "title": "Đã nhận hàng"}}
    not_yet = {"choice": {"id": "not_yet", "title": "Chưa nhận"}}
    await ask()
    assert await answer("a1", "2.") == not_yet  # by number
    # Only the first answer after the question is read as a pick...
    assert await answer("a2", "1") == {}
    # ...but an id from the channel always is; the widget's own key is not kept.
    assert await answer("a3", "Đã nhận hàng", choice_id="received") == received
    assert await answer("a4", "x", choice_id="nope") == {}
    await ask()
    assert await answer("a5", "  da NHAN hang! ") == received  # title, diacritics ignored
    await ask()
    assert await answer("a6", "4") == {}  # no such number
    await ask()
    # A Messenger quick reply: its payload names the choice, and stays beside it.
    assert await answer("a7", "Chưa nhận", payload="not_yet", payload_from="quick_reply") == {
        "payload": "not_yet",
        "payload_from": "quick_reply",
        **not_yet,
    }
    # No question asked (a plain reply came after it): nothing is a pick.
    await domain.outbox.create(first.conversation_id, agent, [TextPart(text="Dạ vâng ạ")])
    assert await answer("a8", "1") == {}


async def test_each_email_thread_is_its_own_conversation(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    """design.md 10: on e-mail a mail joins only the thread it names; chat joins the open one."""
    sender = {"email": "an@example.vn", "verified": True}
    a = await ingest(domain, inbound(MAIL, "<1@x>", "an@example.vn", "đơn hàng 1", **sender))
    b = await ingest(domain, inbound(MAIL, "<2@x>", "an@example.vn", "đơn hàng 2", **sender))
    assert b.conversation_id != a.conversation_id  # a new thread, though one is open
    assert b.conversation_status == ConversationStatus.QUEUED
    assert recorder.types().count("conversation.created") == 2
    to_a = await ingest(domain, inbound(MAIL, "<3@x>", "an@example.vn", refs=["<1@x>"]))
    to_b = await ingest(domain, inbound(MAIL, "<4@x>", "an@example.vn", refs=["<9@x>", "<2@x>"]))
    assert (to_a.conversation_id, to_b.conversation_id) == (a.conversation_id, b.conversation_id)
    # The newest open one answers "the sender's open conversation" (typing, the widget).
    assert await store.conversations.open_for(MAIL, "an@example.vn") == b.conversation_id

    # A resolved thread named again reopens, beside the other open thread.
    await domain.assignments.resolve(a.conversation_id)
    again = await ingest(domain, inbound(MAIL, "<5@x>", "an@example.vn", refs=["<3@x>"]))
    assert again.conversation_id == a.conversation_id
    assert again.conversation_status == ConversationStatus.QUEUED
    assert "conversation.reopened" in recorder.types()
    # So does reopening one by hand.
    await domain.assignments.resolve(b.conversation_id)
    reopened = await domain.assignments.reopen(b.conversation_id)
    assert reopened.status == ConversationStatus.QUEUED

    # Chat channels keep joining the open conversation, with the same contact.
    z1 = await ingest(domain, inbound(ZALO, "z1", "zu1", "chào", **sender))
    z2 = await ingest(domain, inbound(ZALO, "z2", "zu1", "chào lại", **sender))
    assert z1.contact_id == a.contact_id
    assert z1.conversation_id == z2.conversation_id
