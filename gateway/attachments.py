"""Files received on channels (e-mail attachments, inline images), kept in the data
directory (SQLite) or in the store itself (PostgreSQL: every replica serves every file),
and served to API clients at /v1/attachments/{id}."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.store.protocols import AttachmentRecords
from gateway.store.records import AttachmentRecord
from kernel.ids import ATTACHMENT_ID, ChannelId, ulid
from kernel.models import MediaPart
from kernel.text import clean_text

_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


# Where the gateway serves its files; their URLs are this path, after `public_url` if set.
OWN_PATH = "/v1/attachments/"
_OWN_URL = re.compile(re.escape(OWN_PATH) + rf"({ATTACHMENT_ID})$")


class AttachmentTooLarge(ValueError):
    """The file is over the configured limit."""


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
