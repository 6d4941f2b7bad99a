"""Contacts and their channel identities: rows inside units of work, and reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store import contact_search, rows
from gateway.store.contact_search import ContactQuery
from gateway.store.postgres.conversations import identity_contact
from gateway.store.postgres.reading import Reader, group, updates
from gateway.store.records import ContactRecord, IdentityRecord
from gateway.store.rows import CONTACT_COLUMN, CONTACT_COLUMNS, IDENTITY_COLUMNS
from kernel.ids import ChannelId, ContactId
from kernel.models import Contact, Identity
from kernel.pages import Page
from kernel.text import fold_name, name_tails

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

SERVED = (
    "UPDATE contacts SET last_agent_id = $1, last_served_at = $2 WHERE id = "
    "(SELECT COALESCE(merged_into, id) FROM contacts WHERE id = $3)"
)
_IDENTITY = f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE channel_id = $1 AND external_id = $2"
_INSERT = (
    f"INSERT INTO contacts ({CONTACT_COLUMNS}, name_key) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
_ADD_TAILS = (
    "INSERT INTO contact_names (tail, contact_id) SELECT unnest($1::text[]), $2 "
    "ON CONFLICT DO NOTHING"
)
_DROP_TAILS = "DELETE FROM contact_names WHERE tail = ANY($1::text[]) AND contact_id = $2"
_BY_ID = f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"
_UPDATES: dict[tuple[str, ...], str] = {}


async def load(conn: asyncpg.Connection, contact_id: str) -> Contact | None:
    row = await conn.fetchrow("SELECT * FROM contacts WHERE id = $1", contact_id)
    if row is None:
        return None
    idents = [
        rows.identity(r)
        for r in await conn.fetch(
            "SELECT * FROM identities WHERE contact_id = $1 "
            "ORDER BY created_at, channel_id, external_id",
            contact_id,
        )
    ]
    return rows.contact(row, idents)


class ContactTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def identity(self, channel_id: str, external_id: str) -> IdentityRecord | None:
        row = await self.tx.fetchrow(_IDENTITY, channel_id, external_id)
        return None if row is None else rows.identity_record(row)

    async def set_identity_profile(
        self,
        channel_id: str,
        external_id: str,
        display_name: str | None,
        avatar_url: str | None,
    ) -> None:
        await self.tx.execute(
            "UPDATE identities SET display_name = $1, avatar_url = $2 "
            "WHERE channel_id = $3 AND external_id = $4",
            display_name,
            avatar_url,
            channel_id,
            external_id,
        )

    async def insert(self, record: ContactRecord) -> None:
        await self.tx.execute(
            _INSERT,
            record.id,
            record.display_name,
            record.phone,
            record.email,
            record.created_at,
            bool(record.phone_verified),
            bool(record.email_verified),
            record.merged_into,
            record.attributes_json,
            fold_name(record.display_name),
        )
        await self._tails(record.id, [], name_tails(record.display_name))

    async def _tails(self, contact_id: str, old: list[str], new: list[str]) -> None:
        """Keep contact_names the tails of the contact's folded name."""
        gone = sorted(set(old) - set(new))
        added = sorted(set(new) - set(old))
        if gone:
            await self.tx.execute(_DROP_TAILS, gone, contact_id)
        if added:
            await self.tx.execute(_ADD_TAILS, added, contact_id)

    async def insert_identity(self, record: IdentityRecord) -> None:
        await self.tx.execute(
            "INSERT INTO identities (channel_id, external_id, channel_type, contact_id, "
            "original_contact_id, display_name, avatar_url, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            record.channel_id,
            record.external_id,
            record.channel_type,
            record.contact_id,
            record.original_contact_id,
            record.display_name,
            record.avatar_url,
            record.created_at,
        )

    async def get(self, contact_id: str) -> ContactRecord | None:
        row = await self.tx.fetchrow(_BY_ID, contact_id)
        return None if row is None else rows.contact_record(row)

    async def update(self, contact_id: str, **changes: Any) -> None:
        if "display_name" in changes:
            old = await self.tx.fetchval("SELECT name_key FROM contacts WHERE id = $1", contact_id)
            await self._tails(contact_id, name_tails(old), name_tails(changes["display_name"]))
            changes["name_key"] = fold_name(changes["display_name"])
        key = tuple(changes)
        sql = _UPDATES.get(key)
        if sql is None:
            sql = _UPDATES[key] = (
                f"UPDATE contacts SET {updates(key, CONTACT_COLUMN)} WHERE id = ${len(key) + 1}"
            )
        values = [bool(v) if k.endswith("_verified") else v for k, v in changes.items()]
        await self.tx.execute(sql, *values, contact_id)

    async def oldest_verified(self, *, email: str | None, phone: str | None) -> str | None:
        found = None
        if email:
            found = await self.tx.fetchval(
                "SELECT id FROM contacts WHERE email = $1 AND email_verified "
                "AND merged_into IS NULL ORDER BY created_at, id LIMIT 1",
                email,
            )
        if found is None and phone:
            found = await self.tx.fetchval(
                "SELECT id FROM contacts WHERE phone = $1 AND phone_verified "
                "AND merged_into IS NULL ORDER BY created_at, id LIMIT 1",
                phone,
            )
        return None if found is None else str(found)

    async def sharing_verified(
        self, contact_id: str, email: str | None, phone: str | None
    ) -> list[str]:
        return [
            r[0]
            for r in await self.tx.fetch(
                "SELECT id FROM contacts WHERE merged_into IS NULL AND ("
                "(email = $1 AND email_verified) OR (phone = $2 AND phone_verified) "
                "OR id = $3) ORDER BY created_at, id",
                email,
                phone,
                contact_id,
            )
        ]

    async def members(self, contact_id: str) -> list[str]:
        return await group(self.tx.conn, contact_id)

    async def oldest(self, contact_ids: Sequence[str]) -> list[str]:
        return [
            r[0]
            for r in await self.tx.fetch(
                "SELECT id FROM contacts WHERE id = ANY($1::text[]) ORDER BY created_at, id",
                list(contact_ids),
            )
        ]

    async def root_attributes_json(self, contact_id: str) -> str:
        found = await self.tx.fetchval(
            "SELECT r.attributes FROM contacts k JOIN contacts r "
            "ON r.id = COALESCE(k.merged_into, k.id) WHERE k.id = $1",
            contact_id,
        )
        return found if found else "{}"

    async def fold(self, survivor: str, other: str) -> None:
        await self.tx.execute(
            "UPDATE contacts SET merged_into = $1 WHERE id = $2 OR merged_into = $2",
            survivor,
            other,
        )
        await self.tx.execute(
            "UPDATE identities SET contact_id = $1 WHERE contact_id = $2", survivor, other
        )

    async def restore(self, original: str, from_contact: str) -> None:
        await self.tx.execute("UPDATE contacts SET merged_into = NULL WHERE id = $1", original)
        await self.tx.execute(
            "UPDATE identities SET contact_id = $1 "
            "WHERE original_contact_id = $1 AND contact_id = $2",
            original,
            from_contact,
        )

    async def move_identity(self, channel_id: str, external_id: str, contact_id: str) -> None:
        await self.tx.execute(
            "UPDATE identities SET contact_id = $1, original_contact_id = $1 "
            "WHERE channel_id = $2 AND external_id = $3",
            contact_id,
            channel_id,
            external_id,
        )

    async def set_apart(self, a: str, b: str, apart: bool, at: int) -> None:
        low, high = sorted((a, b))
        if apart:
            await self.tx.execute(
                "INSERT INTO contacts_apart (low, high, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                low,
                high,
                at,
            )
        else:
            await self.tx.execute(
                "DELETE FROM contacts_apart WHERE low = $1 AND high = $2", low, high
            )

    async def apart(self, a: str, b: str) -> bool:
        low, high = sorted((a, b))
        found = await self.tx.fetchval(
            "SELECT 1 FROM contacts_apart WHERE low = $1 AND high = $2", low, high
        )
        return found is not None

    async def identity_count(self, contact_id: str) -> int:
        found = await self.tx.fetchval(
            "SELECT COUNT(*) FROM identities WHERE contact_id = $1", contact_id
        )
        return int(found)

    async def load(self, contact_id: str) -> Contact | None:
        return await load(self.tx.conn, contact_id)

    async def served(self, contact_id: str, agent_id: str, at: int) -> None:
        await self.tx.execute(SERVED, agent_id, at, contact_id)


async def load_many(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> list[Contact]:
    """These contacts with their identities, in the order given (unknown ones left out)."""
    if not contact_ids:
        return []
    ids = list(contact_ids)
    idents: dict[str, list[Identity]] = {}
    for r in await conn.fetch(
        "SELECT * FROM identities WHERE contact_id = ANY($1::text[]) "
        "ORDER BY created_at, channel_id, external_id",
        ids,
    ):
        idents.setdefault(r["contact_id"], []).append(rows.identity(r))
    found = {
        r["id"]: rows.contact(r, idents.get(r["id"], []))
        for r in await conn.fetch("SELECT * FROM contacts WHERE id = ANY($1::text[])", ids)
    }
    return [found[i] for i in ids if i in found]


async def search(
    conn: asyncpg.Connection, query: ContactQuery, cursor: str | None, limit: int
) -> Page[Contact]:
    plan = contact_search.plan(query, cursor, limit, postgres=True)
    found = await conn.fetch(contact_search.numbered(plan.sql), *plan.args)
    ids, next_cursor = contact_search.page_ids(found, plan, limit)
    return Page[Contact](items=await load_many(conn, ids), next_cursor=next_cursor)


async def sharing(conn: asyncpg.Connection, contact_id: str, limit: int) -> list[Contact]:
    """Contacts (not merged away, not in this one's group) with its phone or e-mail."""
    found = await conn.fetch(
        "SELECT c.id FROM contacts k JOIN contacts c ON c.merged_into IS NULL "
        "AND c.id != k.id AND ((k.phone IS NOT NULL AND c.phone = k.phone) "
        "OR (k.email IS NOT NULL AND c.email = k.email)) "
        "WHERE k.id = $1 ORDER BY c.created_at, c.id LIMIT $2",
        contact_id,
        limit,
    )
    return await load_many(conn, [r[0] for r in found])


class ContactReads:
    def __init__(self, reader: Reader) -> None:
        self._read = reader

    async def search(self, query: ContactQuery, cursor: str | None, limit: int) -> Page[Contact]:
        found: Page[Contact] = await self._read(search, query, cursor, limit)
        return found

    async def sharing(self, contact_id: ContactId, limit: int) -> list[Contact]:
        found: list[Contact] = await self._read(sharing, contact_id, limit)
        return found

    async def get(self, contact_id: ContactId) -> Contact | None:
        found: Contact | None = await self._read(load, contact_id)
        return found

    async def of_identity(self, channel_id: ChannelId, external_id: str) -> ContactId | None:
        found: ContactId | None = await self._read(identity_contact, channel_id, external_id)
        return found
