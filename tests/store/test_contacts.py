"""Finding contacts, likely duplicates, and the events of every contact change: over every
backend."""

from __future__ import annotations

import pytest

from gateway.domain.contacts import suggestions
from gateway.store.contact_search import ContactQuery
from gateway.store.protocols import Store
from kernel.envelope import Sender
from kernel.errors import Malformed
from kernel.ids import ChannelId
from kernel.models import ChannelType, Contact
from tests.store.backends import Backend
from tests.store.conftest import Domain, Recorder
from tests.store.test_contract import MAIL, WEB, ZALO, inbound, ingest


async def person(
    domain: Domain,
    channel: ChannelId,
    external_id: str,
    name: str | None,
    *,
    phone: str | None = None,
    email: str | None = None,
    verified: bool = False,
) -> str:
    got = await ingest(
        domain,
        inbound(
            channel,
            f"m-{external_id}",
            external_id,
            name=name,
            phone=phone,
            email=email,
            verified=verified,
        ),
    )
    return got.contact_id


async def names(store: Store, query: ContactQuery, limit: int = 50) -> list[str | None]:
    page = await store.contacts.search(query, None, limit)
    return sorted(c.display_name or "" for c in page.items)


async def everything(store: Store, query: ContactQuery, limit: int) -> list[Contact]:
    found: list[Contact] = []
    cursor = None
    for _ in range(100):
        page = await store.contacts.search(query, cursor, limit)
        assert len(page.items) <= limit
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found
    raise AssertionError("the pages never end")


async def test_names_are_found_whatever_their_diacritics_and_case(
    domain: Domain, store: Store
) -> None:
    await person(domain, WEB, "v1", "Nguyễn Văn An")
    await person(domain, WEB, "v2", "NGUYỄN THỊ ANH")
    await person(domain, WEB, "v3", "Đặng Văn Đức")
    await person(domain, WEB, "v4", "Trần An Nguyên")
    await person(domain, WEB, "v5", None)
    # decomposed input (NFD) is the same name
    await person(domain, WEB, "v6", "Le\u0302 Va\u0306n Ba\u0301")

    assert await names(store, ContactQuery(q="nguyen van a")) == ["Nguyễn Văn An"]
    assert await names(store, ContactQuery(q="Nguyễn")) == [
        "NGUYỄN THỊ ANH",
        "Nguyễn Văn An",
        "Trần An Nguyên",
    ]
    assert await names(store, ContactQuery(q="dang van duc")) == ["Đặng Văn Đức"]
    assert await names(store, ContactQuery(q="ĐỨC")) == ["Đặng Văn Đức"]
    assert await names(store, ContactQuery(q="an")) == [
        "NGUYỄN THỊ ANH",
        "Nguyễn Văn An",
        "Trần An Nguyên",
    ]
    assert await names(store, ContactQuery(q="van")) == [
        "Lê Văn Bá",
        "Nguyễn Văn An",
        "Đặng Văn Đức",
    ]
    assert await names(store, ContactQuery(q="lê văn bá")) == ["Lê Văn Bá"]
    # a later run of the name's words, the last one cut short
    assert await names(store, ContactQuery(q="van a")) == ["Nguyễn Văn An"]
    assert await names(store, ContactQuery(q="an ng")) == ["Trần An Nguyên"]
    # the words in order, each but the last whole
    assert await names(store, ContactQuery(q="nguy van")) == []
    assert await names(store, ContactQuery(q="nguyen an")) == []
    assert await names(store, ContactQuery(q="an tran")) == []
    assert await names(store, ContactQuery(q="xyz")) == []
    assert await names(store, ContactQuery(q="nguyen xyz")) == []
    # punctuation and spacing do not count
    assert await names(store, ContactQuery(q="  nguyễn,  thị-anh ")) == ["NGUYỄN THỊ ANH"]
    with pytest.raises(Malformed):
        await store.contacts.search(ContactQuery(q=" !! "), None, 10)


async def test_a_prefix_of_several_words_lists_the_contact_once(
    domain: Domain, store: Store
) -> None:
    # "an" begins three tails of the first name ("an anh anh", "anh anh", "anh"): one
    # row each in the index
    await person(domain, WEB, "v1", "An Anh Ánh")
    await person(domain, WEB, "v2", "Bình An")
    found = await everything(store, ContactQuery(q="an"), 1)
    assert sorted(c.display_name or "" for c in found) == ["An Anh Ánh", "Bình An"]


async def test_a_renamed_contact_is_found_by_its_new_name_only(
    domain: Domain, store: Store
) -> None:
    cid = await person(domain, WEB, "v1", "Phạm Thị Hoa")
    await domain.contacts.update(cid, display_name="Võ Thị Lan")  # type: ignore[arg-type]
    assert await names(store, ContactQuery(q="hoa")) == []
    assert await names(store, ContactQuery(q="vo thi lan")) == ["Võ Thị Lan"]
    assert await names(store, ContactQuery(q="thi")) == ["Võ Thị Lan"]


async def test_phone_email_channel_and_external_id(domain: Domain, store: Store) -> None:
    a = await person(domain, ZALO, "zu1", "Hoa", phone="0912 345 678")
    b = await person(domain, MAIL, "hoa@example.vn", "Hoa", email="hoa@example.vn")
    c = await person(domain, WEB, "v1", "Lan", phone="+84 90 312 3456")

    async def ids(query: ContactQuery) -> set[str]:
        return {x.id for x in (await store.contacts.search(query, None, 50)).items}

    assert await ids(ContactQuery(phone="+84912345678")) == {a}
    assert await ids(ContactQuery(email="hoa@example.vn")) == {b}
    assert await ids(ContactQuery(channel_id=WEB)) == {c}
    assert await ids(ContactQuery(external_id="zu1")) == {a}
    assert await ids(ContactQuery(external_id="zu1", channel_id=WEB)) == set()
    assert await ids(ContactQuery(q="hoa", channel_id=MAIL)) == {b}
    assert await ids(ContactQuery(q="hoa", phone="+84912345678")) == {a}
    assert await ids(ContactQuery()) == {a, b, c}


async def test_pages_cover_every_match_once(domain: Domain, store: Store) -> None:
    for i in range(7):
        await person(domain, WEB, f"v{i}", f"Nguyễn Văn Số {i}")
        await person(domain, WEB, f"w{i}", f"Lê Thị {i}")
    for query in (ContactQuery(q="nguyen van"), ContactQuery(q="ng"), ContactQuery(channel_id=WEB)):
        found = await everything(store, query, 3)
        assert len(found) == len({c.id for c in found})
        expected = 14 if query.channel_id else 7
        assert len(found) == expected
    with pytest.raises(Malformed):
        await store.contacts.search(ContactQuery(q="ng"), "not-a-cursor", 3)


async def test_merged_contacts_are_found_as_their_survivor(domain: Domain, store: Store) -> None:
    a = await person(domain, WEB, "v1", "Hồ Minh")
    b = await person(domain, ZALO, "zu1", "Hồ Minh")
    await domain.contacts.merge(a, b)  # type: ignore[arg-type]
    found = (await store.contacts.search(ContactQuery(q="ho minh"), None, 10)).items
    assert [c.id for c in found] == [a]
    by_identity = (await store.contacts.search(ContactQuery(external_id="zu1"), None, 10)).items
    assert [c.id for c in by_identity] == [a]
    # two webchat visitors of one contact: listed once by channel, page after page
    c = await person(domain, WEB, "v2", "Hồ Minh")
    await domain.contacts.merge(a, c)  # type: ignore[arg-type]
    d = await person(domain, WEB, "v3", "Khác")
    found = await everything(store, ContactQuery(channel_id=WEB), 1)
    assert sorted(x.id for x in found) == sorted([a, d])


async def test_unverified_matches_are_suggested_never_merged(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    # a phone typed into the widget (nothing vouches for it) and the same name
    zalo = await person(domain, ZALO, "zu1", "Ngô Bảo Châu", phone="0912345678", verified=True)
    web = await person(domain, WEB, "v1", "Ngo Bao Chau", phone="84912345678")
    mail = await person(domain, MAIL, "chau@example.vn", "Châu", email="chau@example.vn")
    other = await person(domain, WEB, "v2", "Ngô Bảo Châu")
    assert len({zalo, web, mail, other}) == 4
    assert "contact.merged" not in recorder.types()
    contact = await store.contacts.get(zalo)  # type: ignore[arg-type]
    assert contact is not None
    found = suggestions(contact, await store.contacts.sharing(contact.id, 50))
    assert [(s.contact.id, s.reasons) for s in found] == [(web, ["same_phone", "same_name"])]
    # the webchat contact gives its e-mail, unverified: now it shares one with the mail's
    await domain.contacts.update(
        web, display_name=None, email="CHAU@example.vn", phone=None, attributes=None
    )  # type: ignore[arg-type]
    contact = await store.contacts.get(web)  # type: ignore[arg-type]
    assert contact is not None
    found = suggestions(contact, await store.contacts.sharing(contact.id, 50))
    assert {s.contact.id: s.reasons for s in found} == {
        zalo: ["same_phone", "same_name"],
        mail: ["same_email"],
    }
    assert "contact.merged" not in recorder.types()


async def test_every_contact_change_is_an_event(
    domain: Domain, store: Store, recorder: Recorder
) -> None:
    cid = await person(domain, ZALO, "zu1", None)
    recorder.events.clear()
    # Zalo's shared phone arrives: the contact is updated (phone, name)
    await domain.inbox.link_identity(
        ZALO,
        ChannelType.ZALO,
        Sender(external_id="zu1", display_name="Vũ Hà", phone="0912345678", verified=True),
    )
    [event] = recorder.events
    assert event.type == "contact.updated"
    assert event.data["contact"]["phone"] == "+84912345678"
    assert event.data["changed"] == ["display_name", "identities", "phone"]
    # the same again changes nothing, and says nothing
    await domain.inbox.link_identity(
        ZALO,
        ChannelType.ZALO,
        Sender(external_id="zu1", display_name="Vũ Hà", phone="0912345678", verified=True),
    )
    assert len(recorder.events) == 1
    await domain.contacts.update(cid, attributes={"vip": True})  # type: ignore[arg-type]
    assert recorder.events[-1].type == "contact.updated"
    assert recorder.events[-1].data["changed"] == ["attributes"]
    # a verified e-mail elsewhere with the same phone: linked, with contact.merged
    other = await person(domain, MAIL, "ha@example.vn", "Hà", email="ha@example.vn", verified=True)
    assert other != cid
    await domain.inbox.link_identity(
        MAIL,
        ChannelType.EMAIL,
        Sender(external_id="ha@example.vn", phone="0912 345 678", verified=True),
    )
    assert "contact.merged" in recorder.types()
    merged = await store.contacts.get(other)  # type: ignore[arg-type]
    assert merged is not None and merged.merged_into == cid
    # unmerge undoes it, with an event naming both
    before = len(recorder.events)
    restored = await domain.contacts.unmerge(cid, MAIL, "ha@example.vn")  # type: ignore[arg-type]
    assert restored.id == other and restored.merged_into is None
    [unmerged] = [e for e in recorder.events[before:] if e.type == "contact.unmerged"]
    assert unmerged.data["contact"]["id"] == cid
    assert unmerged.data["unmerged_contact"]["id"] == other
    assert unmerged.data["identity"] == {"channel_id": MAIL, "external_id": "ha@example.vn"}
    timeline = await store.messages.timeline(cid, None, 50)  # type: ignore[arg-type]
    assert all(m.channel_id == ZALO for m in timeline.items)
    # separated by hand, they stay apart when the verified phone comes again...
    merges = recorder.types().count("contact.merged")
    await domain.inbox.link_identity(
        MAIL,
        ChannelType.EMAIL,
        Sender(external_id="ha@example.vn", phone="0912 345 678", verified=True),
    )
    await ingest(
        domain, inbound(MAIL, "<2@x>", "ha@example.vn", email="ha@example.vn", verified=True)
    )
    assert recorder.types().count("contact.merged") == merges
    apart = await store.contacts.get(other)  # type: ignore[arg-type]
    assert apart is not None and apart.merged_into is None
    # ... until someone merges them again
    await domain.contacts.merge(cid, other)  # type: ignore[arg-type]
    await domain.contacts.unmerge(cid, MAIL, "ha@example.vn")  # type: ignore[arg-type]
    await domain.contacts.merge(cid, other)  # type: ignore[arg-type]
    joined = await store.contacts.get(other)  # type: ignore[arg-type]
    assert joined is not None and joined.merged_into == cid


async def test_names_stored_before_the_upgrade_are_found(
    backend: Backend, domain: Domain, store: Store
) -> None:
    # as a store written before name search knew them: no folded name, no words
    await person(domain, WEB, "v1", "Trương Thị Mỹ")
    await backend.execute("DELETE FROM contact_names; UPDATE contacts SET name_key = ''")
    assert await names(store, ContactQuery(q="truong")) == []
    if backend.name == "sqlite":
        import sqlite3

        from gateway.store.sqlite.schema import fold_names

        with sqlite3.connect(backend.path) as conn:  # type: ignore[attr-defined]
            fold_names(conn)
    else:
        import asyncpg

        from gateway.store.postgres.schema import fold_names as pg_fold_names

        conn = await asyncpg.connect(backend.url)
        try:
            await pg_fold_names(conn)
        finally:
            await conn.close()
    assert await names(store, ContactQuery(q="truong thi my")) == ["Trương Thị Mỹ"]
