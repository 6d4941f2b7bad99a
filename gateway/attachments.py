"""Files received on channels (e-mail attachments, inline images), kept in the data
directory (SQLite) or in the store itself (PostgreSQL: every replica serves every file),
and served to API clients at /v1/attachments/{id}."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.store.protocols import AttachmentRecords
from gateway.store.records import AttachmentRecord
from kernel.errors import Invalid
from kernel.ids import ATTACHMENT_ID, ChannelId, ulid
from kernel.models import MediaPart, Part
from kernel.text import clean_text

log = logging.getLogger(__name__)

_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


# Where the gateway serves its files; their URLs are this path, after `public_url` if set.
OWN_PATH = "/v1/attachments/"
_OWN_URL = re.compile(re.escape(OWN_PATH) + rf"({ATTACHMENT_ID})$")


def remove_files(root: Path, paths: Iterable[str]) -> None:
    """Remove files of the data directory (paths relative to ``root``) whose records are
    gone; one that is missing already is no error, one outside ``root`` is never touched."""
    top = root.resolve()
    for relative in paths:
        if not relative:
            continue  # kept in the store itself
        path = (top / relative).resolve()
        if not path.is_relative_to(top):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("attachment file %s could not be removed: %s", relative, exc)


class AttachmentTooLarge(ValueError):
    """The file is over the configured limit."""


_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<?xml")


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes are, by their first bytes; None when not an image."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "image/avif" if data[8:12] == b"avif" else "image/heic"
    return None


def looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(_HTML_STARTS)


def type_allowed(mime: str, patterns: list[str]) -> bool:
    """Whether ``mime`` is one of ``patterns`` ("image/png", or "image/*" for a family,
    "application/vnd.openxmlformats-officedocument.*" for a prefix)."""
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern in ("*", "*/*") or pattern == mime:
            return True
        if pattern.endswith("*") and mime.startswith(pattern[:-1]):
            return True
    return False


def upload_type(data: bytes, name: str | None, declared: str | None) -> str:
    """The type to keep an uploaded file as: an image by its bytes, anything else as
    declared (or, declared as nothing in particular, by its name). Raises ValueError
    when the bytes are not the image they are declared to be."""
    mime = safe_mime(declared)
    if mime == "application/octet-stream" and name:
        mime = safe_mime(mimetypes.guess_type(name)[0])
    found = sniff_image(data)
    if found is not None:
        return found
    if mime.startswith("image/"):
        raise ValueError(f"the file is declared as {mime} but is not an image")
    return mime


def safe_name(name: str | None) -> str | None:
    """A file name that is only a name: no directories, no control characters."""
    if not name:
        return None
    cleaned = _UNSAFE_NAME.sub("_", clean_text(name)).strip(" .")
    return cleaned[:200] or None


def safe_mime(mime: str | None) -> str:
    value = (mime or "").split(";", 1)[0].strip().lower()
    return value if _MIME.match(value) else "application/octet-stream"


def kind_of(mime: str) -> Literal["image", "audio", "video", "file"]:
    major = mime.split("/", 1)[0]
    if major == "image":
        return "image"
    if major == "audio":
        return "audio"
    if major == "video":
        return "video"
    return "file"


class Attachments:
    def __init__(
        self,
        root: Path,
        records: AttachmentRecords,
        *,
        max_bytes: int,
        public_url: str | None = None,
    ) -> None:
        self.root = root
        self.records = records
        self.max_bytes = max_bytes
        self.public_url = (public_url or "").rstrip("/")

    def url(self, attachment_id: str) -> str:
        return f"{self.public_url}{OWN_PATH}{attachment_id}"

    async def save(
        self, channel_id: ChannelId, data: bytes, *, name: str | None, mime: str | None
    ) -> MediaPart:
        """Keep a file durably (written and synced before it is recorded)."""
        if len(data) > self.max_bytes:
            raise AttachmentTooLarge(
                f"{len(data)} bytes is over the {self.max_bytes}-byte attachment limit"
            )
        attachment_id = "att_" + ulid()
        in_store = self.records.keeps_data
        relative = "" if in_store else f"{attachment_id[-2:]}/{attachment_id}"
        if not in_store:
            await asyncio.to_thread(self._write, self.root / relative, data)
        record = AttachmentRecord(
            id=attachment_id,
            channel_id=channel_id,
            name=safe_name(name),
            mime=safe_mime(mime),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            path=relative,
        )
        await self.records.add(record, data if in_store else None)
        return MediaPart(
            type=kind_of(record.mime),
            url=self.url(attachment_id),
            name=record.name,
            mime=record.mime,
            size=record.size,
            attachment_id=attachment_id,
        )

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    async def part(self, attachment_id: str, part: MediaPart | None = None) -> MediaPart | None:
        """The part that sends a kept file (a part given by a client, naming it, keeps
        its name); None when there is no such file."""
        record = await self.records.get(attachment_id)
        if record is None:
            return None
        return MediaPart(
            type=kind_of(record.mime),  # what the file is, whatever the client called it
            url=self.url(record.id),
            name=(part.name if part is not None else None) or record.name,
            mime=record.mime,
            size=record.size,
            attachment_id=record.id,
        )

    async def resolve(self, parts: Sequence[Part]) -> list[Part]:
        """Parts as they are stored: one naming a kept file (``attachment_id``) gets its
        URL, type and size. Raises Invalid for a file that does not exist."""
        out: list[Part] = []
        for given in parts:
            if isinstance(given, MediaPart) and given.attachment_id is not None:
                found = await self.part(given.attachment_id, given)
                if found is None:
                    raise Invalid(
                        f"attachment {given.attachment_id} not found",
                        code="attachment_not_found",
                    )
                out.append(found)
            else:
                out.append(given)
        return out

    def path_of(self, record: AttachmentRecord) -> Path:
        return self.root / record.path

    async def content(self, record: AttachmentRecord) -> bytes | Path | None:
        """The file's bytes (kept in the store) or its path (in the data directory)."""
        if record.path:
            return self.path_of(record)
        return await self.records.data(record.id)

    async def read(self, url: str, limit: int) -> bytes | None:
        """The bytes of one of our own attachments, given its URL (as in a MediaPart).

        None when the URL is not one of ours, the file is unknown, or it is over
        ``limit`` bytes.
        """
        found = _OWN_URL.search(urlsplit(url).path)
        if found is None:
            return None
        record = await self.records.get(found.group(1))
        if record is None or record.size > limit:
            return None
        content = await self.content(record)
        if not isinstance(content, Path):
            return content
        try:
            return await asyncio.to_thread(content.read_bytes)
        except FileNotFoundError:
            return None
