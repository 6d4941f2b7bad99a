"""Identity resolution and contact linking, inside a write transaction."""

from __future__ import annotations

import json
import logging

from gateway.store.sqlite import rows
from gateway.store.sqlite.engine import Tx
from kernel.envelope import Sender
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import ChannelId, ContactId, new_contact_id
from kernel.models import ChannelType, Contact
from kernel.text import InvalidPhoneNumber, normalize_email, normalize_phone

log = logging.getLogger(__name__)


def safe_phone(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(value)
    except InvalidPhoneNumber:
        log.info("ignoring a phone number that cannot be normalised")
        return None


def group(tx: Tx, contact_id: str) -> list[str]:
    """A contact and every contact merged into it."""
    return [
        r[0]
        for r in tx.execute(
            "SELECT id FROM contacts WHERE id = ? OR merged_into = ?", (contact_id, contact_id)
        )
    ]


def load_contact(tx: Tx, contact_id: str) -> Contact:
    row = tx.one("SELECT * FROM contacts WHERE id = ?", (contact_id,))
    if row is None:
        raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
    idents = [
        rows.identity(r)
        for r in tx.execute(
            "SELECT * FROM identities WHERE contact_id = ? ORDER BY created_at, channel_id, "
            "external_id",
            (contact_id,),
        )
    ]
    return rows.contact(row, idents)


def resolve(tx: Tx, channel_id: ChannelId, channel_type: ChannelType, sender: Sender) -> ContactId:
    """The contact behind a channel identity, creating or linking it as needed."""
    email = normalize_email(sender.email)
    phone = safe_phone(sender.phone)
    row = tx.one(
        "SELECT contact_id, display_name, avatar_url FROM identities "
        "WHERE channel_id = ? AND external_id = ?",
        (channel_id, sender.external_id),
    )
    created = False
    if row is not None:
        contact_id = ContactId(row["contact_id"])
        name = sender.display_name or row["display_name"]
        avatar = sender.avatar_url or row["avatar_url"]
        if name != row["display_name"] or avatar != row["avatar_url"]:
            tx.execute(
                "UPDATE identities SET display_name = ?, avatar_url = ? "
                "WHERE channel_id = ? AND external_id = ?",
                (name, avatar, channel_id, sender.external_id),
            )
    else:
        found = _find_verified(tx, email, phone) if sender.verified else None
        if found is None:
            contact_id = new_contact_id()
            tx.execute(
                "INSERT INTO contacts (id, display_name, phone, phone_verified, email, "
                "email_verified, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    contact_id,
                    sender.display_name,
                    phone,
                    int(sender.verified and phone is not None),
                    email,
                    int(sender.verified and email is not None),
                    tx.now,
                ),
            )
            created = True
        else:
            contact_id = found
        tx.execute(
            "INSERT INTO identities (channel_id, external_id, channel_type, contact_id, "
            "original_contact_id, display_name, avatar_url, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                channel_id,
                sender.external_id,
                channel_type.value,
                contact_id,
                contact_id,
                sender.display_name,
                sender.avatar_url,
                tx.now,
            ),
        )
    if created:
        tx.emit("contact.created", {"contact": load_contact(tx, contact_id)})
    elif sender.display_name or email or phone:
        _apply_profile(tx, contact_id, sender.display_name, email, phone, sender.verified)
    if sender.verified and (email or phone):
        contact_id = _link_verified(tx, contact_id, email, phone)
    return contact_id


def resolve_linked(
    tx: Tx,
    channel_id: ChannelId,
    channel_type: ChannelType,
    sender: Sender,
    link_to: Sender | None,
) -> ContactId:
    """Resolve ``sender``; with ``link_to``, make both identities one contact."""
    first = resolve(tx, channel_id, channel_type, sender)
    if link_to is None:
        return first
    second = resolve(tx, channel_id, channel_type, link_to)
    if first == second:
        return first
    older = tx.execute(
        "SELECT id FROM contacts WHERE id IN (?, ?) ORDER BY created_at, id", (first, second)
    ).fetchall()
    survivor, other = ContactId(older[0][0]), ContactId(older[1][0])
    merge(tx, survivor, other)
    return survivor


def _apply_profile(
    tx: Tx,
    contact_id: str,
    name: str | None,
    email: str | None,
    phone: str | None,
    verified: bool,
) -> None:
    row = tx.one("SELECT * FROM contacts WHERE id = ?", (contact_id,))
    assert row is not None
    updates: dict[str, object] = {}
    if name and not row["display_name"]:
        updates["display_name"] = name
    # A verified value replaces an unverified one; otherwise only fill what is empty.
    if email and (not row["email"] or (verified and not row["email_verified"])):
        updates["email"] = email
        updates["email_verified"] = int(verified)
    if phone and (not row["phone"] or (verified and not row["phone_verified"])):
        updates["phone"] = phone
        updates["phone_verified"] = int(verified)
    if updates:
        assignments = ", ".join(f"{k} = ?" for k in updates)
        tx.execute(
            f"UPDATE contacts SET {assignments} WHERE id = ?",
            (*updates.values(), contact_id),
        )


def _find_verified(tx: Tx, email: str | None, phone: str | None) -> ContactId | None:
    row = None
    if email:
        row = tx.one(
            "SELECT id FROM contacts WHERE email = ? AND email_verified = 1 "
            "AND merged_into IS NULL ORDER BY created_at, id LIMIT 1",
            (email,),
        )
    if row is None and phone:
        row = tx.one(
            "SELECT id FROM contacts WHERE phone = ? AND phone_verified = 1 "
            "AND merged_into IS NULL ORDER BY created_at, id LIMIT 1",
            (phone,),
        )
    return None if row is None else ContactId(row["id"])


def _link_verified(
    tx: Tx, contact_id: ContactId, email: str | None, phone: str | None
) -> ContactId:
    """Merge every contact sharing a verified email or phone; the oldest survives."""
    found = tx.execute(
        "SELECT id, created_at FROM contacts WHERE merged_into IS NULL AND ("
        "(email = ? AND email_verified = 1) OR (phone = ? AND phone_verified = 1) OR id = ?) "
        "ORDER BY created_at, id",
        (email, phone, contact_id),
    ).fetchall()
    if len(found) < 2:
        return contact_id
    survivor = ContactId(found[0]["id"])
    for other in found[1:]:
        merge(tx, survivor, ContactId(other["id"]))
    return survivor


def merge(tx: Tx, survivor: ContactId, other: ContactId) -> None:
    """Fold ``other`` (and whatever was merged into it) into ``survivor``."""
    if survivor == other:
        raise Invalid("cannot merge a contact into itself", code="same_contact")
    rows_ = {
        r["id"]: r
        for r in tx.execute("SELECT * FROM contacts WHERE id IN (?, ?)", (survivor, other))
    }
    for cid in (survivor, other):
        if cid not in rows_:
            raise NotFound(f"contact {cid} not found", code="contact_not_found")
        if rows_[cid]["merged_into"] is not None:
            raise Conflict(
                f"contact {cid} is already merged into {rows_[cid]['merged_into']}",
                code="contact_merged",
                details={"merged_into": rows_[cid]["merged_into"]},
            )
    tx.execute(
        "UPDATE contacts SET merged_into = ? WHERE id = ? OR merged_into = ?",
        (survivor, other, other),
    )
    tx.execute("UPDATE identities SET contact_id = ? WHERE contact_id = ?", (survivor, other))
    s, o = rows_[survivor], rows_[other]
    _apply_profile(tx, survivor, o["display_name"], o["email"], o["phone"], False)
    for field in ("email", "phone"):
        if o[f"{field}_verified"] and not s[f"{field}_verified"] and o[field]:
            tx.execute(
                f"UPDATE contacts SET {field} = ?, {field}_verified = 1 WHERE id = ?",
                (o[field], survivor),
            )
    tx.emit(
        "contact.merged",
        {"contact": load_contact(tx, survivor), "merged_contact_id": other},
    )


def unmerge(tx: Tx, contact_id: ContactId, channel_id: str, external_id: str) -> ContactId:
    """Detach an identity from a contact; returns the contact the identity now belongs to."""
    row = tx.one(
        "SELECT * FROM identities WHERE channel_id = ? AND external_id = ?",
        (channel_id, external_id),
    )
    if row is None or row["contact_id"] != contact_id:
        raise NotFound(
            f"contact {contact_id} has no identity {channel_id}/{external_id}",
            code="identity_not_found",
        )
    original = row["original_contact_id"]
    orig_row = tx.one("SELECT merged_into FROM contacts WHERE id = ?", (original,))
    if original != contact_id and orig_row is not None and orig_row["merged_into"] == contact_id:
        # Undo the merge that brought this identity here: its own contact comes back,
        # with every identity it had.
        tx.execute("UPDATE contacts SET merged_into = NULL WHERE id = ?", (original,))
        tx.execute(
            "UPDATE identities SET contact_id = ? WHERE original_contact_id = ? AND contact_id = ?",
            (original, original, contact_id),
        )
        target = ContactId(original)
    else:
        remaining = tx.one("SELECT COUNT(*) FROM identities WHERE contact_id = ?", (contact_id,))
        if remaining is not None and remaining[0] <= 1:
            raise Conflict("the contact's only identity cannot be detached", code="last_identity")
        target = new_contact_id()
        tx.execute(
            "INSERT INTO contacts (id, display_name, created_at) VALUES (?, ?, ?)",
            (target, row["display_name"], tx.now),
        )
        tx.execute(
            "UPDATE identities SET contact_id = ?, original_contact_id = ? "
            "WHERE channel_id = ? AND external_id = ?",
            (target, target, channel_id, external_id),
        )
        tx.emit("contact.created", {"contact": load_contact(tx, target)})
    return target


def update(
    tx: Tx,
    contact_id: ContactId,
    *,
    display_name: str | None,
    email: str | None,
    phone: str | None,
    attributes: dict[str, object] | None,
) -> Contact:
    """Set profile fields; attributes merge (a None value removes the attribute)."""
    row = tx.one("SELECT * FROM contacts WHERE id = ?", (contact_id,))
    if row is None:
        raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
    updates: dict[str, object] = {}
    if display_name is not None:
        updates["display_name"] = display_name
    if email is not None:
        normalized = normalize_email(email)
        if normalized is None:
            raise Invalid("email is not an e-mail address", code="invalid_email")
        if normalized != row["email"]:
            updates["email"] = normalized
            updates["email_verified"] = 0
    if phone is not None:
        try:
            normalized = normalize_phone(phone)
        except InvalidPhoneNumber as exc:
            raise Invalid(f"phone: {exc}", code="invalid_phone") from None
        if normalized != row["phone"]:
            updates["phone"] = normalized
            updates["phone_verified"] = 0
    if attributes is not None:
        merged = json.loads(row["attributes"] or "{}")
        for key, value in attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        updates["attributes"] = json.dumps(merged, ensure_ascii=False, sort_keys=True)
    if updates:
        assignments = ", ".join(f"{k} = ?" for k in updates)
        tx.execute(
            f"UPDATE contacts SET {assignments} WHERE id = ?",
            (*updates.values(), contact_id),
        )
    return load_contact(tx, contact_id)
