"""A provider's CDN as respx serves it: files on URLs that expire (404 afterwards)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import respx


@dataclass
class CdnFile:
    data: bytes
    mime: str
    expires_at: float  # time.monotonic()
    # While set, the CDN holds the request (the file is fetched only once it is cleared).
    gate: asyncio.Event | None = None
    # Answers before the file: e.g. 503 twice, then the file.
    failures: list[int] = field(default_factory=list)
    streamed: bool = False
    requests: int = 0


class Cdn:
    """Files served by respx on ``router``, each on its own URL."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.router = router
        self.files: dict[str, CdnFile] = {}

    def add(
        self,
        url: str,
        data: bytes,
        mime: str,
        *,
        expires_in: float = 3600.0,
        gate: asyncio.Event | None = None,
        failures: list[int] | None = None,
        streamed: bool = False,
    ) -> CdnFile:
        served = CdnFile(
            data, mime, time.monotonic() + expires_in, gate, list(failures or []), streamed
        )
        self.files[url] = served
        self.router.get(url).mock(side_effect=lambda request: self._answer(request, served))
        return served

    async def _answer(self, request: httpx.Request, served: CdnFile) -> httpx.Response:
        served.requests += 1
        if served.gate is not None:
            await served.gate.wait()
        if served.failures:
            return httpx.Response(served.failures.pop(0), text="busy")
        if time.monotonic() >= served.expires_at:
            # What Meta's and Zalo's CDNs answer for a link past its expiry.
            return httpx.Response(404, text="URL signature expired")
        if served.streamed:  # no Content-Length: the size shows only while reading
            return httpx.Response(
                200, headers={"Content-Type": served.mime}, stream=_chunks(served.data)
            )
        return httpx.Response(200, content=served.data, headers={"Content-Type": served.mime})


class _chunks(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        step = 1024 * 1024
        for start in range(0, len(self.data), step):
            yield self.data[start : start + step]


class Endless(httpx.AsyncByteStream):
    """A body that goes on (a 200 MB file, without saying so up front); counts what was
    read of it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"\xff\xd8\xff" + b"\x00" * (1024 * 1024 - 3)
        while self.sent < self.total:
            self.sent += len(chunk)
            yield chunk
