"""Contacts and their channel identities: rows inside units of work, and reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.store import contact_search, rows
from gateway.store.contact_search import ContactQuery
from gateway.store.records import ContactRecord, IdentityRecord
from gateway.store.rows import CONTACT_COLUMN, CONTACT_COLUMNS, IDENTITY_COLUMNS
from gateway.store.sqlite.conversations import identity_contact
from gateway.store.sqlite.reading import Reader, group, marks
from kernel.ids import ChannelId, ContactId
from kernel.models import Contact, Identity
from kernel.pages import Page
from kernel.text import fold_name, name_tails

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

SERVED = (
    "UPDATE contacts SET last_agent_id = ?, last_served_at = ? WHERE id = "
    "(SELECT COALESCE(merged_into, id) FROM contacts WHERE id = ?)"
)

_IDENTITY = f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE channel_id = ? AND external_id = ?"
_INSERT = (
    f"INSERT INTO contacts ({CONTACT_COLUMNS}, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADD_TAIL = "INSERT OR IGNORE INTO contact_names (tail, contact_id) VALUES (?, ?)"
_DROP_TAIL = "DELETE FROM contact_names WHERE tail = ? AND contact_id = ?"
_BY_ID = f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?"


def load(conn: sqlite3.Connection, contact_id: str) -> Contact | None:
    row = conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    if row is None:
        return None
    idents = [
        rows.identity(r)
        for r in conn.execute(
            "SELECT * FROM identities WHERE contact_id = ? ORDER BY created_at, channel_id, "
            "external_id",
            (contact_id,),
        )
    ]
    return rows.contact(row, idents)


class ContactTx:
    __slots__ = ("tx",)

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx

    async def identity(self, channel_id: str, external_id: str) -> IdentityRecord | None:
        row = self.tx.one(_IDENTITY, (channel_id, external_id))
        return None if row is None else rows.identity_record(row)

    async def set_identity_profile(
        self,
        channel_id: str,
        external_id: str,
        display_name: str | None,
        avatar_url: str | None,
    ) -> None:
        self.tx.execute(
            "UPDATE identities SET display_name = ?, avatar_url = ? "
            "WHERE channel_id = ? AND external_id = ?",
            (display_name, avatar_url, channel_id, external_id),
        )

    async def insert(self, record: ContactRecord) -> None:
        self.tx.execute(
            _INSERT,
            (
                record.id,
                record.display_name,
                record.phone,
                record.email,
                record.created_at,
                int(record.phone_verified),
                int(record.email_verified),
                record.merged_into,
                record.attributes_json,
                fold_name(record.display_name),
            ),
        )
        self._tails(record.id, [], name_tails(record.display_name))

    def _tails(self, contact_id: str, old: list[str], new: list[str]) -> None:
        """Keep contact_names the tails of the contact's folded name."""
        for tail in set(old) - set(new):
            self.tx.execute(_DROP_TAIL, (tail, contact_id))
        for tail in set(new) - set(old):
            self.tx.execute(_ADD_TAIL, (tail, contact_id))

    async def insert_identity(self, record: IdentityRecord) -> None:
        self.tx.execute(
            "INSERT INTO identities (channel_id, external_id, channel_type, contact_id, "
            "original_contact_id, display_name, avatar_url, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.channel_id,
                record.external_id,
                record.channel_type,
                record.contact_id,
                record.original_contact_id,
                record.display_name,
                record.avatar_url,
                record.created_at,
            ),
        )

    async def get(self, contact_id: str) -> ContactRecord | None:
        row = self.tx.one(_BY_ID, (contact_id,))
        return None if row is None else rows.contact_record(row)

    async def update(self, contact_id: str, **changes: Any) -> None:
        if "display_name" in changes:
            row = self.tx.one("SELECT name_key FROM contacts WHERE id = ?", (contact_id,))
            old = name_tails(row[0]) if row is not None else []
            self._tails(contact_id, old, name_tails(changes["display_name"]))
            changes["name_key"] = fold_name(changes["display_name"])
        sets, values = rows.assignments(changes, CONTACT_COLUMN)
        self.tx.execute(f"UPDATE contacts SET {sets} WHERE id = ?", (*values, contact_id))

    async def oldest_verified(self, *, email: str | None, phone: str | None) -> str | None:
        row = None
        if email:
            row = self.tx.one(
                "SELECT id FROM contacts WHERE email = ? AND email_verified = 1 "
                "AND merged_into IS NULL ORDER BY created_at, id LIMIT 1",
                (email,),
            )
        if row is None and phone:
            row = self.tx.one(
                "SELECT id FROM contacts WHERE phone = ? AND phone_verified = 1 "
                "AND merged_into IS NULL ORDER BY created_at, id LIMIT 1",
                (phone,),
            )
        return None if row is None else str(row[0])

    async def sharing_verified(
        self, contact_id: str, email: str | None, phone: str | None
    ) -> list[str]:
        return [
            r[0]
            for r in self.tx.execute(
                "SELECT id FROM contacts WHERE merged_into IS NULL AND ("
                "(email = ? AND email_verified = 1) OR (phone = ? AND phone_verified = 1) "
                "OR id = ?) ORDER BY created_at, id",
                (email, phone, contact_id),
            ).fetchall()
        ]

    async def members(self, contact_id: str) -> list[str]:
        return group(self.tx.conn, contact_id)

    async def oldest(self, contact_ids: Sequence[str]) -> list[str]:
        return [
            r[0]
            for r in self.tx.execute(
                f"SELECT id FROM contacts WHERE id IN ({marks(contact_ids)}) "
                "ORDER BY created_at, id",
                tuple(contact_ids),
            ).fetchall()
        ]

    async def root_attributes_json(self, contact_id: str) -> str:
        row = self.tx.one(
            "SELECT r.attributes FROM contacts k JOIN contacts r "
            "ON r.id = COALESCE(k.merged_into, k.id) WHERE k.id = ?",
            (contact_id,),
        )
        return row[0] if row is not None and row[0] else "{}"

    async def fold(self, survivor: str, other: str) -> None:
        self.tx.execute(
            "UPDATE contacts SET merged_into = ? WHERE id = ? OR merged_into = ?",
            (survivor, other, other),
        )
        self.tx.execute(
            "UPDATE identities SET contact_id = ? WHERE contact_id = ?", (survivor, other)
        )

    async def restore(self, original: str, from_contact: str) -> None:
        self.tx.execute("UPDATE contacts SET merged_into = NULL WHERE id = ?", (original,))
        self.tx.execute(
            "UPDATE identities SET contact_id = ? WHERE original_contact_id = ? AND contact_id = ?",
            (original, original, from_contact),
        )

    async def move_identity(self, channel_id: str, external_id: str, contact_id: str) -> None:
        self.tx.execute(
            "UPDATE identities SET contact_id = ?, original_contact_id = ? "
            "WHERE channel_id = ? AND external_id = ?",
            (contact_id, contact_id, channel_id, external_id),
        )

    async def set_apart(self, a: str, b: str, apart: bool, at: int) -> None:
        low, high = sorted((a, b))
        if apart:
            self.tx.execute(
                "INSERT OR IGNORE INTO contacts_apart (low, high, created_at) VALUES (?, ?, ?)",
                (low, high, at),
            )
        else:
            self.tx.execute("DELETE FROM contacts_apart WHERE low = ? AND high = ?", (low, high))

    async def apart(self, a: str, b: str) -> bool:
        low, high = sorted((a, b))
        row = self.tx.one("SELECT 1 FROM contacts_apart WHERE low = ? AND high = ?", (low, high))
        return row is not None

    async def identity_count(self, contact_id: str) -> int:
        row = self.tx.one("SELECT COUNT(*) FROM identities WHERE contact_id = ?", (contact_id,))
        return 0 if row is None else int(row[0])

    async def load(self, contact_id: str) -> Contact | None:
        return load(self.tx.conn, contact_id)

    async def served(self, contact_id: str, agent_id: str, at: int) -> None:
        self.tx.execute(SERVED, (agent_id, at, contact_id))


def load_many(conn: sqlite3.Connection, contact_ids: Sequence[str]) -> list[Contact]:
    """These contacts with their identities, in the order given (unknown ones left out)."""
    if not contact_ids:
        return []
    ids = tuple(contact_ids)
    idents: dict[str, list[Identity]] = {}
    for r in conn.execute(
        f"SELECT * FROM identities WHERE contact_id IN ({marks(ids)}) "
        "ORDER BY created_at, channel_id, external_id",
        ids,
    ):
        idents.setdefault(r["contact_id"], []).append(rows.identity(r))
    found = {
        r["id"]: rows.contact(r, idents.get(r["id"], []))
        for r in conn.execute(f"SELECT * FROM contacts WHERE id IN ({marks(ids)})", ids)
    }
    return [found[i] for i in ids if i in found]


def search(
    conn: sqlite3.Connection, query: ContactQuery, cursor: str | None, limit: int
) -> Page[Contact]:
    plan = contact_search.plan(query, cursor, limit)
    found = conn.execute(plan.sql, plan.args).fetchall()
    ids, next_cursor = contact_search.page_ids(found, plan, limit)
    return Page[Contact](items=load_many(conn, ids), next_cursor=next_cursor)


def sharing(conn: sqlite3.Connection, contact_id: str, limit: int) -> list[Contact]:
    """Contacts (not merged away, not in this one's group) with its phone or e-mail."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT c.id FROM contacts k JOIN contacts c ON c.merged_into IS NULL "
            "AND c.id != k.id AND ((k.phone IS NOT NULL AND c.phone = k.phone) "
            "OR (k.email IS NOT NULL AND c.email = k.email)) "
            "WHERE k.id = ? ORDER BY c.created_at, c.id LIMIT ?",
            (contact_id, limit),
        )
    ]
    return load_many(conn, ids)


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
