"""Erasing a person and the retention sweep, over every backend: what is left in the
database (read through the API's reads and straight from the tables), the figures, and the
database's files searched byte for byte for the erased values."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.schema import RetentionSettings
from gateway.attachments import Attachments
from gateway.domain.contacts import load as load_contact
from gateway.events import EventBus
from gateway.replicas.leases import LeaseKeeper
from gateway.retention import LEASE, Retention
from gateway.stats import figures
from gateway.store import open_store
from gateway.store.protocols import Store
from gateway.store.records import AttemptLog, WebhookRecord
from gateway.store.transaction import Tx
from kernel.envelope import InboundMessage, Sender
from kernel.errors import Conflict, Gone, NotFound
from kernel.ids import ChannelId, ContactId
from kernel.models import (
    Author,
    AuthorType,
    ChannelType,
    Direction,
    MessageStatus,
    Part,
    TextPart,
    utcnow,
)
from kernel.text import fold_name
from tests.servers import PgServer
from tests.store.backends import Backend, PostgresBackend, SqliteBackend
from tests.store.conftest import Domain

WEB = ChannelId("webchat")
MAIL = ChannelId("mail")
TYPES = {WEB: ChannelType.WEBCHAT, MAIL: ChannelType.EMAIL}
HOUR_US = 3_600_000_000
DAY = 86400.0


@dataclass
class Person:
    """Values of one person, unique to the test (the PostgreSQL cluster is shared)."""

    name: str
    email: str
    phone: str  # as the gateway stores it (E.164)
    local_phone: str  # as the customer wrote it
    visitor: str
    text: str
    mail_text: str
    file_bytes: bytes
    file_name: str
    cc: str  # someone the person copied in

    @classmethod
    def new(cls) -> Person:
        tag = uuid.uuid4().hex[:10]
        digits = str(int(tag, 16))[-8:].rjust(8, "7")
        return cls(
            name=f"Nguyễn Thị Hồng {tag}",
            email=f"hong.{tag}@khach.example",
            phone=f"+849{digits}",
            local_phone=f"09{digits}",
            visitor=f"v_{tag}visitor",
            text=f"Địa chỉ của tôi là 12 Lý Thường Kiệt {tag}",
            mail_text=f"Số tài khoản {tag} xin hoàn tiền",
            file_bytes=f"CCCD-scan-{tag}".encode() * 20,
            file_name=f"cccd-{tag}.png",
            cc=f"chong.{tag}@nha.example",
        )

    def values(self) -> list[bytes]:
        texts = [self.name, self.email, self.phone, self.local_phone, self.visitor, self.text]
        # The name as contact search keeps it, folded ("nguyen thi hong ...").
        texts.append(fold_name(self.name))
        return [t.encode() for t in [*texts, self.mail_text, self.cc]] + [self.file_bytes]


def message(
    channel: ChannelId,
    external_id: str,
    sender: Sender,
    parts: list[Part],
    direction: Direction = Direction.INBOUND,
    metadata: dict[str, Any] | None = None,
) -> InboundMessage:
    return InboundMessage(
        channel_id=channel,
        external_id=external_id,
        sender=sender,
        parts=parts,
        direction=direction,
        metadata=metadata or {},
    )


async def ingest(domain: Domain, msg: InboundMessage) -> Any:
    return await domain.inbox.ingest(msg, TYPES[msg.channel_id])


@dataclass
class World:
    person: Person
    web_contact: ContactId
    mail_contact: ContactId
    web_conversation: str
    mail_conversation: str
    other_contact: ContactId
    other_text: str
    attachment_id: str


async def populate(domain: Domain, store: Store, files: Path) -> World:
    """A person who wrote on the webchat (with a file) and by e-mail, the two contacts
    merged by hand; an agent's answers; a reply still waiting; a provider event kept raw
    that names them; a webhook answer that echoes them; someone else beside them."""
    p = Person.new()
    attachments = Attachments(files, store.attachments, max_bytes=1 << 20)
    media = await attachments.save(WEB, p.file_bytes, name=p.file_name, mime="image/png")
    web_sender = Sender(external_id=p.visitor, display_name=p.name, phone=p.local_phone)
    web = await ingest(
        domain, message(WEB, f"{p.visitor}:c1", web_sender, [TextPart(text=p.text), media])
    )
    # An agent answers and resolves: first response, resolution.
    await domain.outbox.create(
        web.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text=f"Chào {p.name}")]
    )
    await domain.assignments.resolve(web.conversation_id)
    mail_sender = Sender(external_id=p.email, display_name=p.name, email=p.email, verified=True)
    mail = await ingest(
        domain,
        message(
            MAIL,
            f"<m1.{p.visitor}@khach.example>",
            mail_sender,
            [TextPart(text=p.mail_text)],
            metadata={"cc": [p.cc]},
        ),
    )
    # Reopened and resolved again: not a first-contact resolution.
    await domain.assignments.resolve(mail.conversation_id)
    await domain.assignments.reopen(mail.conversation_id)
    await domain.assignments.resolve(mail.conversation_id)
    await domain.contacts.merge(web.contact_id, mail.contact_id)
    # A reply written while the person is being erased: still waiting to go.
    await domain.assignments.reopen(web.conversation_id)
    await domain.outbox.create(
        web.conversation_id, Author(type=AuthorType.AGENT), [TextPart(text=f"Gửi {p.email}")]
    )
    await store.raw_events.keep(
        MAIL,
        "bounce",
        json.dumps({"to": p.email, "phone": p.local_phone, "note": "mailbox full"}),
        "unknown kind",
    )
    await store.raw_events.keep(MAIL, "bounce", json.dumps({"to": "lan@else.example"}), "x")
    # What a connector keeps about one customer (Messenger: customer:<psid>), and not.
    await store.channel_state.save(WEB, f"customer:{p.visitor}", {"page": "104000000000001"})
    await store.channel_state.save(WEB, "checkpoint", {"uid": 42})
    hook = WebhookRecord(id="wh_1", url="https://h.example/x", events=["*"], sealed_secrets="s")
    await store.webhooks.put(hook, keep_cursor=False)
    seq = await store.events.last_seq()
    await store.webhooks.record_progress(
        "wh_1",
        cursor=seq,
        attempts=[
            AttemptLog(seq, 1, 0, 500, 3.0, "retry", "HTTP 500", f"no such user {p.email}"),
        ],
        rows=[],
        settled=[],
        success_at=None,
        failed_at=None,
    )
    other_text = f"Người khác {uuid.uuid4().hex[:8]}"
    other = await ingest(
        domain,
        message(WEB, "other:c1", Sender(external_id="other-visitor"), [TextPart(text=other_text)]),
    )
    return World(
        person=p,
        web_contact=web.contact_id,
        mail_contact=mail.contact_id,
        web_conversation=web.conversation_id,
        mail_conversation=mail.conversation_id,
        other_contact=other.contact_id,
        other_text=other_text,
        attachment_id=media.url.rsplit("/", 1)[-1] if media.url else "",
    )


def retention(store: Store, files: Path, **ages: float) -> Retention:
    settings = RetentionSettings(
        **{"raw_events": 0, "delivery_logs": 0, **ages}  # type: ignore[arg-type]
    )
    return Retention(store, files, EventBus(), settings)


async def figures_of(store: Store) -> dict[str, Any]:
    since, until = utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)
    out = {}
    for channel, samples in (await store.stats.samples(since, until, None)).items():
        shown = figures(samples).model_dump()
        shown["queue_wait"].pop("oldest_waiting_seconds")  # grows with the clock
        out[channel] = shown
    return out


# --- what erasure leaves ------------------------------------------------------------------


async def test_erasure_takes_the_person_out_and_keeps_the_figures(
    domain: Domain, store: Store, tmp_path: Path, backend: Backend
) -> None:
    files = tmp_path / "attachments"
    w = await populate(domain, store, files)
    before = await figures_of(store)
    assert before[WEB]["fcr"]["resolved"] == 1 and before[MAIL]["fcr"]["first_contact"] == 0
    assert before[WEB]["frt"]["count"] == 1

    # Asking with the contact merged away erases the whole person.
    report = await retention(store, files).erase(w.mail_contact)

    assert report.contact_id == w.web_contact
    assert set(report.erased_contact_ids) == {w.web_contact, w.mail_contact}
    assert set(report.conversation_ids) == {w.web_conversation, w.mail_conversation}
    assert report.messages == 4 and report.attachments == 1 and report.raw_events == 1
    assert await figures_of(store) == before

    contact = await store.contacts.get(w.web_contact)
    assert contact is not None
    assert (contact.display_name, contact.email, contact.phone) == (None, None, None)
    assert contact.identities == [] and contact.attributes == {}
    assert await store.contacts.of_identity(WEB, w.person.visitor) is None
    timeline = await store.messages.timeline(w.web_contact, None, 50)
    assert len(timeline.items) == 4
    assert all(m.parts == [] and m.external_id is None for m in timeline.items)
    replies = [m for m in timeline.items if m.direction == Direction.OUTBOUND]
    assert len(replies) == 2  # never sent: nobody to send them to now
    assert all(
        m.status == MessageStatus.FAILED
        and m.error is not None
        and m.error.code == "contact_erased"
        for m in replies
    )
    conversation = await store.conversations.get(w.web_conversation)  # type: ignore[arg-type]
    assert conversation is not None and conversation.subject is None
    assert await store.attachments.get(w.attachment_id) is None
    assert not any(files.rglob(w.attachment_id))

    log = await store.events.after(0, 10_000)
    erased = [e for e in log if e.type == "contact.erased"]
    assert len(erased) == 1
    assert erased[0].data["contact_id"] == w.web_contact
    everything = "\n".join(e.data_json for e in log)
    for value in w.person.values()[:-1]:
        assert value.decode() not in everything, value
    assert w.other_text in everything  # someone else's messages are theirs still
    attempts = await store.webhooks.attempts("wh_1", None, 10, None)
    assert attempts and all(a.get("response") is None for a in attempts)
    other = await store.messages.timeline(w.other_contact, None, 10)
    assert other.items[0].parts == [TextPart(text=w.other_text)]
    assert await store.channel_state.load(WEB, f"customer:{w.person.visitor}") is None
    assert await store.channel_state.load(WEB, "checkpoint") == {"uid": 42}
    remaining_raw = await backend.fetch("SELECT payload FROM raw_events")
    assert len(remaining_raw) == 1 and "lan@else.example" in remaining_raw[0][0]


async def test_erasure_twice_is_gone_and_unknown_is_not_found(
    domain: Domain, store: Store, tmp_path: Path
) -> None:
    w = await populate(domain, store, tmp_path)
    service = retention(store, tmp_path)
    await service.erase(w.web_contact)
    with pytest.raises(Gone) as gone:
        await service.erase(w.mail_contact)
    assert gone.value.code == "contact_erased"
    with pytest.raises(NotFound):
        await service.erase(ContactId("ct_nobody"))
    # Nobody to write to any more.
    with pytest.raises(Conflict) as refused:
        await domain.outbox.create(
            w.web_conversation,  # type: ignore[arg-type]
            Author(type=AuthorType.AGENT),
            [TextPart(text="còn đó không?")],
        )
    assert refused.value.code == "contact_erased"


async def test_a_returning_customer_is_a_new_contact(
    domain: Domain, store: Store, tmp_path: Path
) -> None:
    w = await populate(domain, store, tmp_path)
    await retention(store, tmp_path).erase(w.web_contact)
    again = await ingest(
        domain,
        message(
            WEB,
            f"{w.person.visitor}:c9",
            Sender(external_id=w.person.visitor),
            [TextPart(text="lại")],
        ),
    )
    assert again.contact_id not in (w.web_contact, w.mail_contact)
    assert again.conversation_id != w.web_conversation

    async def check(tx: Tx) -> None:
        contact = await load_contact(tx, again.contact_id)
        assert [i.external_id for i in contact.identities] == [w.person.visitor]

    await store.transact(check)


# --- the database's files -----------------------------------------------------------------


def found_in(paths: list[Path], values: list[bytes]) -> dict[bytes, list[str]]:
    hits: dict[bytes, list[str]] = {}
    for path in paths:
        if not path.is_file():
            continue
        data = path.read_bytes()
        for value in values:
            if value in data:
                hits.setdefault(value, []).append(path.name)
    return hits


async def test_erased_values_are_nowhere_in_the_sqlite_files(
    domain: Domain, store: Store, tmp_path: Path, backend: Backend
) -> None:
    if not isinstance(backend, SqliteBackend):
        pytest.skip("the SQLite file; PostgreSQL has its own test below")
    files = tmp_path / "attachments"
    w = await populate(domain, store, files)
    db = backend.path
    where = [db, Path(f"{db}-wal"), *files.rglob("*")]
    values = w.person.values()
    assert set(found_in(where, values)) == set(values)  # all there before

    await retention(store, files).erase(w.web_contact)

    where = [db, Path(f"{db}-wal"), Path(f"{db}-journal"), *files.rglob("*")]
    assert found_in(where, values) == {}
    assert found_in([db, Path(f"{db}-wal")], [w.other_text.encode()])  # not all erased


async def test_erased_values_are_nowhere_in_postgres_data_files(
    domain: Domain, store: Store, tmp_path: Path, backend: Backend, request: pytest.FixtureRequest
) -> None:
    if not isinstance(backend, PostgresBackend):
        pytest.skip("PostgreSQL's data directory; SQLite has its own test above")
    server: PgServer = request.getfixturevalue("pg_server")
    if server.dir is None:
        pytest.skip("the data directory of a server the tests did not start is not ours")
    data = server.dir / "pg" / "data"
    w = await populate(domain, store, tmp_path)
    values = w.person.values()
    await backend.execute("CHECKPOINT")
    tables = sorted((data / "base").rglob("*"))
    assert set(await asyncio.to_thread(found_in, tables, values)) == set(values)

    await retention(store, tmp_path).erase(w.web_contact)
    await backend.execute("CHECKPOINT")

    tables = sorted(p for sub in ("base", "global") for p in (data / sub).rglob("*"))
    assert await asyncio.to_thread(found_in, tables, values) == {}
    assert await asyncio.to_thread(found_in, tables, [w.other_text.encode()])

    # The write-ahead log still has them until its segments are done with: PostgreSQL
    # renames a finished segment for reuse (old bytes in it) unless wal_recycle is off.
    await backend.execute("ALTER SYSTEM SET wal_recycle = off")
    try:
        await backend.execute("SELECT pg_reload_conf()")
        for _ in range(2):
            await backend.execute("SELECT pg_switch_wal()")
            await backend.execute("CHECKPOINT")
        wal = sorted((data / "pg_wal").glob("0*"))
        assert await asyncio.to_thread(found_in, wal, values) == {}
    finally:
        await backend.execute("ALTER SYSTEM RESET wal_recycle")
        await backend.execute("SELECT pg_reload_conf()")


# --- retention ------------------------------------------------------------------------------


async def test_the_sweep_takes_out_what_is_older_than_its_age(
    domain: Domain, store: Store, tmp_path: Path, backend: Backend
) -> None:
    files = tmp_path / "attachments"
    w = await populate(domain, store, files)
    await domain.assignments.resolve(w.web_conversation)  # type: ignore[arg-type]
    fresh_text = f"Mới {uuid.uuid4().hex[:8]}"
    fresh = await ingest(
        domain,
        message(WEB, "fresh:c1", Sender(external_id="fresh-visitor"), [TextPart(text=fresh_text)]),
    )
    await domain.assignments.resolve(fresh.conversation_id)
    old = f"(SELECT MIN(created_at) FROM conversations) - {40 * 24 * HOUR_US}"
    if isinstance(backend, PostgresBackend):
        old = "now() - interval '40 days'"
    await backend.execute(
        f"UPDATE raw_events SET created_at = {old} WHERE payload LIKE '%mailbox full%';"
        f"UPDATE webhook_attempts SET at = {old};"
        f"UPDATE attachments SET created_at = {old};"
        f"UPDATE conversations SET resolved_at = {old} "
        f"WHERE id IN ('{w.web_conversation}', '{w.mail_conversation}');"
    )
    before = await figures_of(store)
    sweep = retention(
        store,
        files,
        raw_events=30 * DAY,
        delivery_logs=30 * DAY,
        attachments=30 * DAY,
        resolved_conversations=30 * DAY,
    )
    swept = await sweep.sweep()
    assert (swept.raw_events, swept.delivery_logs, swept.attachments, swept.conversations) == (
        1,
        1,
        1,
        2,
    )
    raw = await backend.fetch("SELECT payload FROM raw_events")
    assert len(raw) == 1 and "lan@else.example" in raw[0][0]
    assert await store.webhooks.attempts("wh_1", None, 10, None) == []
    assert await store.attachments.get(w.attachment_id) is None
    assert not any(files.rglob(w.attachment_id))
    for conversation_id in (w.web_conversation, w.mail_conversation):
        page = await store.messages.page(conversation_id, None, 50)  # type: ignore[arg-type]
        assert page.items and all(m.parts == [] for m in page.items)
    kept = await store.messages.page(fresh.conversation_id, None, 50)
    assert kept.items[0].parts == [TextPart(text=fresh_text)]
    # The contact stays itself: retention is not erasure.
    contact = await store.contacts.get(w.web_contact)
    assert contact is not None and contact.display_name == w.person.name
    log = "\n".join(e.data_json for e in await store.events.after(0, 10_000))
    assert w.person.text not in log and w.person.mail_text not in log and fresh_text in log
    assert await figures_of(store) == before
    # Nothing more to do the second time.
    again = await sweep.sweep()
    assert not again.anything


async def test_one_replica_sweeps_at_a_time(pg_url: str, tmp_path: Path) -> None:
    here, there = await open_store(pg_url), await open_store(pg_url)
    keepers = [LeaseKeeper(s.leases, 10.0) for s in (here, there)]

    async def nothing() -> None:
        return None

    try:
        await here.raw_events.keep(MAIL, "bounce", '{"to": "cu@khach.example"}', "unknown kind")
        await PostgresBackend(pg_url).execute(
            "UPDATE raw_events SET created_at = now() - interval '40 days'"
        )
        sweeper = Retention(there, tmp_path, EventBus(), RetentionSettings(), keepers[1])
        assert await keepers[0].claim(LEASE, nothing)
        assert await sweeper.sweep_if_mine() is None  # the other replica sweeps
        assert len(await PostgresBackend(pg_url).fetch("SELECT id FROM raw_events")) == 1
        await keepers[0].release(LEASE)
        swept = await sweeper.sweep_if_mine()
        assert swept is not None and swept.raw_events == 1
        assert await keepers[0].claim(LEASE, nothing)  # given back after the sweep
    finally:
        for keeper in keepers:
            await keeper.close()
        await here.close()
        await there.close()
