"""Who is who: the contact behind a channel identity, linking on verified values, merges
and unmerges, and profile changes.

Only values a channel vouches for (a mail's sender, an HMAC-verified identify) link
contacts by themselves: every contact sharing a verified email or phone becomes one, the
oldest surviving. A verified value replaces an unverified one; otherwise a profile only
fills what is empty.
"""

from __future__ import annotations

import json
import logging

from gateway.store.protocols import Store
from gateway.store.records import ContactRecord, IdentityRecord
from gateway.store.transaction import Tx
from kernel.envelope import Sender
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import ChannelId, ContactId, new_contact_id
from kernel.models import ChannelType, Contact, Frozen
from kernel.text import InvalidPhoneNumber, fold_name, normalize_email, normalize_phone

log = logging.getLogger(__name__)

# How many likely duplicates GET /v1/contacts/{id}/suggestions lists at most.
MAX_SUGGESTIONS = 50


class Suggestion(Frozen):
    """A contact that is likely the same person, and why (``same_phone``, ``same_email``,
    ``same_name``). Never merged by itself: what links by itself is a verified value."""

    contact: Contact
    reasons: list[str]


def suggestions(contact: Contact, candidates: list[Contact]) -> list[Suggestion]:
    """The reasons each candidate (sharing a phone or an e-mail) may be ``contact``; the
    ones with most reasons first."""
    name = fold_name(contact.display_name)
    found = []
    for other in candidates:
        if other.id == contact.id:
            continue
        reasons = []
        if contact.phone and other.phone == contact.phone:
            reasons.append("same_phone")
        if contact.email and other.email == contact.email:
            reasons.append("same_email")
        if reasons and name and fold_name(other.display_name) == name:
            reasons.append("same_name")
        if reasons:
            found.append(Suggestion(contact=other, reasons=reasons))
    return sorted(found, key=lambda s: -len(s.reasons))


def safe_phone(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(value)
    except InvalidPhoneNumber:
        log.info("ignoring a phone number that cannot be normalised")
        return None


async def load(tx: Tx, contact_id: str) -> Contact:
    found = await tx.contacts.load(contact_id)
    if found is None:
        raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
    return found


async def resolve(
    tx: Tx, channel_id: ChannelId, channel_type: ChannelType, sender: Sender
) -> ContactId:
    """The contact behind a channel identity, creating or linking it as needed."""
    email = normalize_email(sender.email)
    phone = safe_phone(sender.phone)
    known = await tx.contacts.identity(channel_id, sender.external_id)
    created = False
    identity_changed: list[str] = []
    if known is not None:
        contact_id = ContactId(known.contact_id)
        name = sender.display_name or known.display_name
        avatar = sender.avatar_url or known.avatar_url
        if name != known.display_name or avatar != known.avatar_url:
            await tx.contacts.set_identity_profile(channel_id, sender.external_id, name, avatar)
            identity_changed.append("identities")
    else:
        found = None
        if sender.verified:
            found = await tx.contacts.oldest_verified(email=email, phone=phone)
        if found is None:
            contact_id = new_contact_id()
            await tx.contacts.insert(
                ContactRecord(
                    id=contact_id,
                    display_name=sender.display_name,
                    phone=phone,
                    email=email,
                    created_at=tx.now,
                    phone_verified=sender.verified and phone is not None,
                    email_verified=sender.verified and email is not None,
                )
            )
            created = True
        else:
            contact_id = ContactId(found)
            identity_changed.append("identities")
        await tx.contacts.insert_identity(
            IdentityRecord(
                channel_id=channel_id,
                external_id=sender.external_id,
                channel_type=channel_type.value,
                contact_id=contact_id,
                original_contact_id=contact_id,
                display_name=sender.display_name,
                avatar_url=sender.avatar_url,
                created_at=tx.now,
            )
        )
    if created:
        await tx.emit("contact.created", {"contact": await load(tx, contact_id)})
    else:
        changed = identity_changed
        if sender.display_name or email or phone:
            changed += await _apply_profile(
                tx, contact_id, sender.display_name, email, phone, sender.verified
            )
        if changed:
            await _announce_update(tx, contact_id, changed)
    if sender.verified and (email or phone):
        contact_id = await _link_verified(tx, contact_id, email, phone)
    return contact_id


async def _announce_update(tx: Tx, contact_id: str, changed: list[str]) -> None:
    """``contact.updated`` with the contact as it is now and the fields that changed."""
    await tx.emit(
        "contact.updated",
        {"contact": await load(tx, contact_id), "changed": sorted(set(changed))},
    )


async def resolve_linked(
    tx: Tx,
    channel_id: ChannelId,
    channel_type: ChannelType,
    sender: Sender,
    link_to: Sender | None,
) -> ContactId:
    """Resolve ``sender``; with ``link_to``, make both identities one contact."""
    first = await resolve(tx, channel_id, channel_type, sender)
    if link_to is None:
        return first
    second = await resolve(tx, channel_id, channel_type, link_to)
    if first == second or await tx.contacts.apart(first, second):
        return first
    survivor, other = await tx.contacts.oldest([first, second])
    await merge(tx, ContactId(survivor), ContactId(other))
    return ContactId(survivor)


async def _apply_profile(
    tx: Tx,
    contact_id: str,
    name: str | None,
    email: str | None,
    phone: str | None,
    verified: bool,
) -> list[str]:
    """Fill or correct the profile; returns the fields that changed."""
    current = await tx.contacts.get(contact_id)
    assert current is not None
    updates: dict[str, object] = {}
    if name and not current.display_name:
        updates["display_name"] = name
    # A verified value replaces an unverified one; otherwise only fill what is empty.
    if email and (not current.email or (verified and not current.email_verified)):
        updates["email"] = email
        updates["email_verified"] = verified
    if phone and (not current.phone or (verified and not current.phone_verified)):
        updates["phone"] = phone
        updates["phone_verified"] = verified
    if updates:
        await tx.contacts.update(contact_id, **updates)
    return _changed(current, updates)


def _changed(current: ContactRecord, updates: dict[str, object]) -> list[str]:
    """The public fields ``updates`` changes (a value verified counts as a change)."""
    names = {"display_name": "display_name", "email": "email", "phone": "phone"}
    names |= {"email_verified": "email", "phone_verified": "phone"}
    names["attributes_json"] = "attributes"
    return sorted({names[k] for k, v in updates.items() if k in names and getattr(current, k) != v})


async def _link_verified(
    tx: Tx, contact_id: ContactId, email: str | None, phone: str | None
) -> ContactId:
    """Merge every contact sharing a verified email or phone; the oldest survives. Contacts
    separated by hand stay apart."""
    found = await tx.contacts.sharing_verified(contact_id, email, phone)
    if len(found) < 2:
        return contact_id
    survivor = ContactId(found[0])
    if await tx.contacts.apart(survivor, contact_id):
        return contact_id
    for other in found[1:]:
        if not await tx.contacts.apart(survivor, other):
            await merge(tx, survivor, ContactId(other))
    return survivor


async def merge(tx: Tx, survivor: ContactId, other: ContactId) -> None:
    """Fold ``other`` (and whatever was merged into it) into ``survivor``."""
    if survivor == other:
        raise Invalid("cannot merge a contact into itself", code="same_contact")
    records = {}
    for cid in (survivor, other):
        record = await tx.contacts.get(cid)
        if record is None:
            raise NotFound(f"contact {cid} not found", code="contact_not_found")
        if record.merged_into is not None:
            raise Conflict(
                f"contact {cid} is already merged into {record.merged_into}",
                code="contact_merged",
                details={"merged_into": record.merged_into},
            )
        records[cid] = record
    await tx.contacts.fold(survivor, other)
    s, o = records[survivor], records[other]
    await _apply_profile(tx, survivor, o.display_name, o.email, o.phone, False)
    verified: dict[str, object] = {}
    if o.email_verified and not s.email_verified and o.email:
        verified.update(email=o.email, email_verified=True)
    if o.phone_verified and not s.phone_verified and o.phone:
        verified.update(phone=o.phone, phone_verified=True)
    if verified:
        await tx.contacts.update(survivor, **verified)
    await tx.emit(
        "contact.merged",
        {"contact": await load(tx, survivor), "merged_contact_id": other},
    )


async def unmerge(tx: Tx, contact_id: ContactId, channel_id: str, external_id: str) -> ContactId:
    """Detach an identity from a contact; returns the contact the identity now belongs to."""
    identity = await tx.contacts.identity(channel_id, external_id)
    if identity is None or identity.contact_id != contact_id:
        raise NotFound(
            f"contact {contact_id} has no identity {channel_id}/{external_id}",
            code="identity_not_found",
        )
    original = identity.original_contact_id
    original_record = await tx.contacts.get(original)
    if (
        original != contact_id
        and original_record is not None
        and original_record.merged_into == contact_id
    ):
        # Undo the merge that brought this identity here: its own contact comes back,
        # with every identity it had.
        await tx.contacts.restore(original, contact_id)
        await tx.contacts.set_apart(original, contact_id, True, tx.now)
        await _announce_unmerge(tx, contact_id, original, channel_id, external_id)
        return ContactId(original)
    if await tx.contacts.identity_count(contact_id) <= 1:
        raise Conflict("the contact's only identity cannot be detached", code="last_identity")
    target = new_contact_id()
    await tx.contacts.insert(
        ContactRecord(
            id=target,
            display_name=identity.display_name,
            phone=None,
            email=None,
            created_at=tx.now,
        )
    )
    await tx.contacts.move_identity(channel_id, external_id, target)
    await tx.contacts.set_apart(target, contact_id, True, tx.now)
    await tx.emit("contact.created", {"contact": await load(tx, target)})
    await _announce_unmerge(tx, contact_id, target, channel_id, external_id)
    return target


async def _announce_unmerge(
    tx: Tx, contact_id: str, other: str, channel_id: str, external_id: str
) -> None:
    """``contact.unmerged``: the contact as it is left, and the one taken out of it."""
    await tx.emit(
        "contact.unmerged",
        {
            "contact": await load(tx, contact_id),
            "unmerged_contact": await load(tx, other),
            "identity": {"channel_id": channel_id, "external_id": external_id},
        },
    )


async def update(
    tx: Tx,
    contact_id: ContactId,
    *,
    display_name: str | None,
    email: str | None,
    phone: str | None,
    attributes: dict[str, object] | None,
) -> Contact:
    """Set profile fields; attributes merge (a None value removes the attribute)."""
    current = await tx.contacts.get(contact_id)
    if current is None:
        raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
    updates: dict[str, object] = {}
    if display_name is not None:
        updates["display_name"] = display_name
    if email is not None:
        normalized = normalize_email(email)
        if normalized is None:
            raise Invalid("email is not an e-mail address", code="invalid_email")
        if normalized != current.email:
            updates["email"] = normalized
            updates["email_verified"] = False
    if phone is not None:
        try:
            normalized = normalize_phone(phone)
        except InvalidPhoneNumber as exc:
            raise Invalid(f"phone: {exc}", code="invalid_phone") from None
        if normalized != current.phone:
            updates["phone"] = normalized
            updates["phone_verified"] = False
    if attributes is not None:
        merged = json.loads(current.attributes_json or "{}")
        for key, value in attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        updates["attributes_json"] = json.dumps(merged, ensure_ascii=False, sort_keys=True)
    changed = _changed(current, updates)
    if changed:
        await tx.contacts.update(contact_id, **updates)
        await _announce_update(tx, contact_id, changed)
    return await load(tx, contact_id)


class Contacts:
    """Changes to contacts asked for through the API, each one unit of work."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def update(
        self,
        contact_id: ContactId,
        *,
        display_name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        attributes: dict[str, object] | None = None,
    ) -> Contact:
        async def work(tx: Tx) -> Contact:
            return await update(
                tx,
                contact_id,
                display_name=display_name,
                email=email,
                phone=phone,
                attributes=attributes,
            )

        return await self.store.transact(work)

    async def merge(self, contact_id: ContactId, other_id: ContactId) -> Contact:
        async def work(tx: Tx) -> Contact:
            await merge(tx, contact_id, other_id)
            # merged by hand: whatever an unmerge had kept apart is joined again
            await tx.contacts.set_apart(contact_id, other_id, False, tx.now)
            return await load(tx, contact_id)

        return await self.store.transact(work)

    async def unmerge(
        self, contact_id: ContactId, channel_id: ChannelId, external_id: str
    ) -> Contact:
        async def work(tx: Tx) -> Contact:
            return await load(tx, await unmerge(tx, contact_id, channel_id, external_id))

        return await self.store.transact(work)
