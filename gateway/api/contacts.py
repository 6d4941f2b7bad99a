"""Contacts and their cross-channel timeline."""

from __future__ import annotations

from typing import cast

from aiohttp import web
from pydantic import BaseModel

from gateway.api.attachments import file_response
from gateway.api.auth import MANAGE
from gateway.api.schemas import ContactPatch, ContactSearchQuery, Merge, PageQuery, Unmerge
from gateway.api.spec import Operations, Req
from gateway.domain.contacts import MAX_SUGGESTIONS, Suggestion, suggestions
from gateway.domain.erasure import Erasure
from gateway.store.contact_search import ContactQuery
from kernel.errors import Conflict, Malformed, NotFound
from kernel.ids import ChannelId, ContactId
from kernel.models import Contact, Message
from kernel.pages import Page
from kernel.text import InvalidPhoneNumber, normalize_email, normalize_phone

TAG = "contacts"
operations = Operations()


class Suggestions(BaseModel):
    items: list[Suggestion]


@operations.add(
    "GET",
    "/v1/contacts",
    summary="Find contacts by name, phone, e-mail or channel identity",
    description="Every filter given must match; contacts merged into another are not "
    "listed (their identities are the survivor's). Each kind of search reads an index in "
    "order, so a page costs the same on a million contacts.",
    tag=TAG,
    query=ContactSearchQuery,
    response=Page[Contact],
    errors=(400,),
)
async def find_contacts(req: Req) -> Page[Contact]:
    q = cast(ContactSearchQuery, req.query)
    phone = None
    if q.phone is not None:
        try:
            phone = normalize_phone(q.phone)
        except InvalidPhoneNumber as exc:
            raise Malformed(f"phone: {exc}", code="invalid_phone") from None
    email = None
    if q.email is not None:
        email = normalize_email(q.email)
        if email is None:
            raise Malformed("email is not an e-mail address", code="invalid_email")
    query = ContactQuery(
        q=q.q, phone=phone, email=email, channel_id=q.channel_id, external_id=q.external_id
    )
    return await req.ctx.store.contacts.search(query, q.cursor, q.limit)


@operations.add(
    "GET", "/v1/contacts/{id}", summary="Get a contact", tag=TAG, response=Contact, errors=(404,)
)
async def get_contact(req: Req) -> Contact:
    contact = await req.ctx.store.contacts.get(ContactId(req.param("id")))
    if contact is None:
        raise NotFound(f"contact {req.param('id')} not found", code="contact_not_found")
    return contact


@operations.add(
    "PATCH",
    "/v1/contacts/{id}",
    summary="Update a contact's name, e-mail, phone or attributes",
    description="E-mail and phone set here are not treated as verified (they never link "
    "contacts). Attributes are merged; a null value removes one.",
    tag=TAG,
    body=ContactPatch,
    response=Contact,
    errors=(404, 422),
)
async def patch_contact(req: Req) -> Contact:
    body = cast(ContactPatch, req.body)
    return await req.ctx.commands.update_contact(
        ContactId(req.param("id")),
        display_name=body.display_name,
        email=body.email,
        phone=body.phone,
        attributes=dict(body.attributes) if body.attributes is not None else None,
    )


@operations.add(
    "DELETE",
    "/v1/contacts/{id}",
    summary="Erase a person",
    description="Erases the contact and every contact merged into it (one person): names, "
    "e-mail, phone, attributes and identities; the content and files of their messages; "
    "their conversations' subjects; the person's values in the event log's data; webhook "
    "answers logged for those events; kept provider events that mention them. Rows stay "
    "anonymised, so figures still add up; replies still waiting fail with "
    "`contact_erased`. Announced by `contact.erased`. Irreversible: a second call answers "
    "410 `contact_erased`.",
    tag=TAG,
    scopes=MANAGE,
    response=Erasure,
    errors=(404, 410),
)
async def erase(req: Req) -> Erasure:
    return await req.ctx.commands.erase_contact(ContactId(req.param("id")))


@operations.add(
    "GET",
    "/v1/contacts/{id}/timeline",
    summary="Every message of the contact across channels, newest first",
    tag=TAG,
    query=PageQuery,
    response=Page[Message],
    errors=(404,),
)
async def timeline(req: Req) -> Page[Message]:
    q = cast(PageQuery, req.query)
    return await req.ctx.store.messages.timeline(ContactId(req.param("id")), q.cursor, q.limit)


@operations.add(
    "GET",
    "/v1/contacts/{id}/suggestions",
    summary="Contacts that are likely the same person, with the reasons",
    description="Contacts sharing this one's phone or e-mail (`same_phone`, `same_email`; "
    "`same_name` when the names match too, diacritics and case aside). Only verified "
    "values link contacts by themselves; these are for someone to merge, or not.",
    tag=TAG,
    response=Suggestions,
    errors=(404, 409),
)
async def contact_suggestions(req: Req) -> Suggestions:
    contact = await req.ctx.store.contacts.get(ContactId(req.param("id")))
    if contact is None:
        raise NotFound(f"contact {req.param('id')} not found", code="contact_not_found")
    if contact.merged_into is not None:
        raise Conflict(
            f"contact {contact.id} is merged into {contact.merged_into}",
            code="contact_merged",
            details={"merged_into": contact.merged_into},
        )
    candidates = await req.ctx.store.contacts.sharing(contact.id, MAX_SUGGESTIONS)
    return Suggestions(items=suggestions(contact, candidates))


@operations.add(
    "POST",
    "/v1/contacts/{id}/merge",
    summary="Merge another contact into this one",
    tag=TAG,
    scopes=MANAGE,
    body=Merge,
    response=Contact,
    errors=(404, 409, 422),
)
async def merge(req: Req) -> Contact:
    body = cast(Merge, req.body)
    return await req.ctx.commands.merge(ContactId(req.param("id")), ContactId(body.other_id))


@operations.add(
    "POST",
    "/v1/contacts/{id}/unmerge",
    summary="Detach an identity; answers the contact it belongs to afterwards",
    tag=TAG,
    scopes=MANAGE,
    body=Unmerge,
    response=Contact,
    errors=(404, 409),
)
async def unmerge(req: Req) -> Contact:
    body = cast(Unmerge, req.body)
    return await req.ctx.commands.unmerge(
        ContactId(req.param("id")),
        ChannelId(body.identity.channel_id),
        body.identity.external_id,
    )


@operations.add(
    "GET",
    "/v1/attachments/{id}",
    summary="A file received on a channel",
    description="Images (other than SVG), audio and video are served inline; everything "
    "else as a download. The stored content type is sent with nosniff and a sandboxing "
    "CSP, so a file can never run as a page of the gateway.",
    tag="messages",
    raw=True,
    content_type="application/octet-stream",
    errors=(404,),
)
async def get_attachment(req: Req) -> web.StreamResponse:
    return await file_response(req.ctx.attachments, req.param("id"))
