"""Files: uploaded by agents and integrations (then sent as a part naming
``attachment_id``), and served, whoever sent them, at /v1/attachments/{id}."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel

from gateway.api.errors import PayloadTooLarge, UnsupportedMediaType
from gateway.api.spec import Operations, Req
from gateway.attachments import Attachments, type_allowed, upload_type
from gateway.store.records import AttachmentRecord
from kernel.errors import Malformed, NotFound
from kernel.ids import ChannelId

TAG = "messages"
operations = Operations()

FIELD = "file"
CHUNK = 64 * 1024
# Where files uploaded through the API are recorded as coming from.
API_UPLOADS = ChannelId("api")


class AttachmentInfo(BaseModel):
    """A kept file: send it as a part ``{type, attachment_id}``."""

    id: str
    name: str | None
    mime: str
    size: int
    url: str


_QUOTED = re.compile(r"%[0-9A-Fa-f]{2}")


def _decodes(name: str) -> bool:
    try:
        unquote(name, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Upload:
    data: bytes
    name: str | None
    mime: str


async def read_upload(request: web.Request, *, max_bytes: int, types: list[str]) -> Upload:
    """The file of a multipart/form-data request (field ``file``), within the size limit
    and of an allowed type; raises the API's errors otherwise."""
    if request.content_type != "multipart/form-data":
        raise Malformed(
            f"send the file as multipart/form-data, in a field named {FIELD!r}",
            code="not_multipart",
        )
    if request.content_length is not None and request.content_length > max_bytes + CHUNK:
        raise PayloadTooLarge(
            f"the file is over the {max_bytes}-byte limit", code="attachment_too_large"
        )
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise Malformed(f"no field named {FIELD!r} with a file", code="no_file")
            if isinstance(part, BodyPartReader) and part.name == FIELD:
                break
            await part.release()
        data = bytearray()
        while chunk := await part.read_chunk(CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise PayloadTooLarge(
                    f"the file is over the {max_bytes}-byte limit", code="attachment_too_large"
                )
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise Malformed(f"the multipart body cannot be read: {exc}", code="bad_multipart") from None
    name = part.filename
    if name and _QUOTED.search(name):
        # Some clients (aiohttp's among them) send a name percent-encoded; browsers send
        # it as UTF-8.
        name = unquote(name, errors="strict") if _decodes(name) else name
    return checked_upload(
        bytes(data), name, part.headers.get("Content-Type"), max_bytes=max_bytes, types=types
    )


def checked_upload(
    data: bytes, name: str | None, declared: str | None, *, max_bytes: int, types: list[str]
) -> Upload:
    """A file as uploads are taken (also from a form the console has read): not empty,
    within the size limit, of an allowed type (an image by its bytes)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the file is over the {max_bytes}-byte limit", code="attachment_too_large"
        )
    if not data:
        raise Malformed("the file is empty", code="empty_file")
    try:
        mime = upload_type(data, name, declared)
    except ValueError as exc:
        raise UnsupportedMediaType(str(exc)) from None
    if not type_allowed(mime, types):
        raise UnsupportedMediaType(
            f"files of type {mime} are not taken here", details={"allowed": types}
        )
    return Upload(data, name, mime)


def serve(record: AttachmentRecord, content: bytes | Path) -> web.StreamResponse:
    """A kept file as an answer that can never run as a page of the gateway: its stored
    type with nosniff and a sandboxing CSP; images (not SVG), audio and video inline,
    anything else as a download."""
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
    if isinstance(content, bytes):
        return web.Response(body=content, headers=headers)
    return web.FileResponse(content, headers=headers)


async def file_response(attachments: Attachments, attachment_id: str) -> web.StreamResponse:
    record = await attachments.records.get(attachment_id)
    content = None if record is None else await attachments.content(record)
    if record is None or content is None:
        raise NotFound(f"attachment {attachment_id} not found", code="attachment_not_found")
    return serve(record, content)


@operations.add(
    "POST",
    "/v1/attachments",
    summary="Upload a file to send",
    description="multipart/form-data with the file in a field named `file`. Within "
    "`[server] max_attachment_bytes` (413 beyond) and of a type of `[attachments] "
    "upload_types` (415 otherwise; an image is taken by what its bytes are). Send it as a "
    "message part `{type, attachment_id}`: each channel sends it its own way.",
    tag=TAG,
    response=AttachmentInfo,
    status=201,
    errors=(400, 413, 415),
)
async def upload(req: Req) -> AttachmentInfo:
    attachments = req.ctx.attachments
    found = await read_upload(
        req.request,
        max_bytes=attachments.max_bytes,
        types=req.ctx.settings.attachments.upload_types,
    )
    part = await attachments.save(API_UPLOADS, found.data, name=found.name, mime=found.mime)
    return AttachmentInfo(
        id=part.attachment_id or "",
        name=part.name,
        mime=part.mime or found.mime,
        size=part.size or len(found.data),
        url=part.url or "",
    )
