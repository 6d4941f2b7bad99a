"""The socket side of webchat: which sockets each visitor has open, and pushing to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

log = logging.getLogger(__name__)

SEND_TIMEOUT = 10.0


class Hub:
    """Open sockets by visitor; a visitor may have several tabs open."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}

    def add(self, visitor_id: str, ws: web.WebSocketResponse) -> None:
        self._sockets.setdefault(visitor_id, set()).add(ws)

    def remove(self, visitor_id: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(visitor_id)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._sockets[visitor_id]

    def count(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    def has_other(self, visitor_id: str, ws: web.WebSocketResponse) -> bool:
        """Whether the visitor has a socket open besides ``ws`` (another tab)."""
        return any(other is not ws for other in self._sockets.get(visitor_id, ()))

    async def push(
        self, visitor_id: str, frame: str, *, skip: web.WebSocketResponse | None = None
    ) -> int:
        """Send a frame to every open socket of a visitor; returns how many got it."""
        targets = [ws for ws in self._sockets.get(visitor_id, ()) if ws is not skip]
        if not targets:
            return 0
        results = await asyncio.gather(*(self._send(ws, frame) for ws in targets))
        return sum(results)

    @staticmethod
    async def _send(ws: web.WebSocketResponse, frame: str) -> bool:
        if ws.closed:
            return False
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await ws.send_str(frame)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            log.debug("push to a closing socket failed: %s", exc)
            with contextlib.suppress(Exception):
                await ws.close()
            return False
        return True

    async def close_all(self) -> None:
        sockets = [ws for group in self._sockets.values() for ws in group]
        await asyncio.gather(
            *(ws.close(code=1001, message=b"server shutting down") for ws in sockets),
            return_exceptions=True,
        )
        self._sockets.clear()
