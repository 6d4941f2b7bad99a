"""Download jobs of provider files, over every backend: written with the message, held by
the process that takes them, done or tried again with the parts they changed."""

from __future__ import annotations

from datetime import timedelta

from gateway.domain.media import Recorded, record
from gateway.store.protocols import Store
from gateway.store.records import AttachmentRecord, to_us
from gateway.store.transaction import Tx
from kernel.envelope import InboundMessage, Sender
from kernel.ids import ChannelId
from kernel.models import ChannelType, MediaPart, PartError, TextPart, utcnow
from tests.store.conftest import Domain, Recorder

FB = ChannelId("fb-shop")
CDN = "https://scontent.xx.fbcdn.net/v/t1/photo.jpg?oe=1"
OWN = "/v1/attachments/att_01JB0000000000000000000000"


def with_files(external_id: str, *urls: str) -> InboundMessage:
    return InboundMessage(
        channel_id=FB,
        external_id=external_id,
        sender=Sender(external_id="7012345678901234"),
        parts=[TextPart(text="Ảnh nè"), *(MediaPart(type="image", url=u) for u in urls)],
    )


async def test_a_job_is_written_with_its_message_once(domain: Domain, store: Store) -> None:
    now = utcnow()
    first = await domain.inbox.ingest(with_files("m1", CDN), ChannelType.FACEBOOK)
    await domain.inbox.ingest(with_files("m1", CDN), ChannelType.FACEBOOK)  # a retry
    await domain.inbox.ingest(with_files("m2"), ChannelType.FACEBOOK)  # text only
    await domain.inbox.ingest(with_files("m3", OWN), ChannelType.FACEBOOK)  # kept already
    (job,) = await store.media_downloads.due(now + timedelta(seconds=1), 10, 60)
    assert job.message.id == first.message.id and job.attempts == 0
    assert job.message.parts == first.message.parts
    # Held by whoever took it: not due for anyone else meanwhile.
    assert await store.media_downloads.due(now + timedelta(seconds=2), 10, 60) == []
    due = await store.media_downloads.next_due()
    assert due is not None and due >= now + timedelta(seconds=60)
    (again,) = await store.media_downloads.due(now + timedelta(seconds=62), 10, 60)
    assert again.message.id == first.message.id


async def test_outcomes_replace_parts_then_the_job_ends(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    other = "https://scontent.xx.fbcdn.net/v/t1/second.jpg?oe=2"
    stored = await domain.inbox.ingest(with_files("m1", CDN, other), ChannelType.FACEBOOK)
    message_id = stored.message.id
    kept = MediaPart(
        type="image",
        url=OWN,
        mime="image/png",
        size=10,
        attachment_id="att_01JB0000000000000000000000",
        source_url=CDN,
    )
    later = to_us(utcnow() + timedelta(minutes=5))

    async def first_try(tx: Tx) -> bool:
        return await record(tx, message_id, {1: kept}, attempts=1, again_at=later)

    assert (await store.transact(first_try)).changed
    message = await store.messages.get(message_id)
    assert message is not None and message.parts[1] == kept
    assert message.parts[2] == MediaPart(type="image", url=other)
    assert await store.media_downloads.due(utcnow(), 10, 60) == []
    (job,) = await store.media_downloads.due(utcnow() + timedelta(minutes=6), 10, 60)
    assert job.attempts == 1 and job.message.parts[1] == kept

    lost = MediaPart(
        type="image",
        url=other,
        source_url=other,
        error=PartError(code="not_available", reason="the provider answered 404"),
    )
    stale = kept.model_copy(update={"source_url": "https://elsewhere.example/x.jpg"})

    async def last_try(tx: Tx) -> bool:
        # index 1 is no longer a provider's file: what names another source is ignored
        return await record(tx, message_id, {1: stale, 2: lost}, attempts=2, again_at=None)

    assert (await store.transact(last_try)).changed
    message = await store.messages.get(message_id)
    assert message is not None
    assert message.parts[1:] == [kept, lost]
    assert message.parts[0] == TextPart(text="Ảnh nè")
    assert await store.media_downloads.next_due() is None
    assert recorder.types().count("message.updated") == 2


async def test_a_file_for_a_message_erased_meanwhile_is_not_kept(
    domain: Domain, store: Store
) -> None:
    stored = await domain.inbox.ingest(with_files("m1", CDN), ChannelType.FACEBOOK)
    message_id = stored.message.id
    file = AttachmentRecord(
        id="att_01JB0000000000000000000001",
        channel_id=FB,
        mime="image/png",
        size=3,
        sha256="0" * 64,
        path="" if store.attachments.keeps_data else "01/att_01JB0000000000000000000001",
    )
    await store.attachments.add(file, b"png" if store.attachments.keeps_data else None)

    async def erase(tx: Tx) -> None:  # what erasure leaves of a message
        await tx.messages.set_parts(message_id, [])

    await store.transact(erase)
    kept = MediaPart(
        type="image", url=OWN, attachment_id=file.id, mime="image/png", size=3, source_url=CDN
    )

    async def late(tx: Tx) -> Recorded:
        return await record(tx, message_id, {1: kept}, attempts=1, again_at=None)

    recorded = await store.transact(late)
    assert not recorded.changed
    assert recorded.paths == [file.path]
    assert await store.attachments.get(file.id) is None
    message = await store.messages.get(message_id)
    assert message is not None and message.parts == []
    assert await store.media_downloads.next_due() is None
