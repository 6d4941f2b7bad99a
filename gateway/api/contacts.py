"""Contacts and their cross-channel timeline."""

from __future__ import annotations

from typing import cast
from urllib.parse import quote

from aiohttp import web

from gateway.api.auth import MANAGE
from gateway.api.schemas import ContactPatch, Merge, PageQuery, Unmerge
from gateway.api.spec import Operations, Req
from gateway.domain.erasure import Erasure
from kernel.errors import NotFound
from kernel.ids import ChannelId, ContactId
from kernel.models import Contact, Message
from kernel.pages import Page

TAG = "contacts"
operations = Operations()


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
    record = await req.ctx.store.attachments.get(req.param("id"))
    if record is None:
        raise NotFound(f"attachment {req.param('id')} not found", code="attachment_not_found")
    inline = (
        record.mime.split("/", 1)[0] in ("image", "audio", "video") and "svg" not in record.mime
    )
    name = record.name or record.id
    disposition = "inline" if inline else "attachment"
    headers = {
        "Content-Type": record.mime,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=86400",
    }
    content = await req.ctx.attachments.content(record)
    if content is None:
        raise NotFound(f"attachment {record.id} not found", code="attachment_not_found")
    if isinstance(content, bytes):
        return web.Response(body=content, headers=headers)
    return web.FileResponse(content, headers=headers)
