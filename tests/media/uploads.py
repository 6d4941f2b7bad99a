"""Uploading files the way browsers and helpdesks do: multipart/form-data, field ``file``."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH


def form(data: bytes, name: str, mime: str, field: str = "file") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field(field, data, filename=name, content_type=mime)
    return body


async def upload(
    client: TestClient,  # type: ignore[type-arg]
    data: bytes,
    name: str,
    mime: str,
    *,
    path: str = "/v1/attachments",
    headers: dict[str, str] | None = None,
    status: int = 201,
) -> dict[str, Any]:
    resp = await client.post(
        path, data=form(data, name, mime), headers=AUTH if headers is None else headers
    )
    answer: dict[str, Any] = await resp.json()
    assert resp.status == status, answer
    return answer
