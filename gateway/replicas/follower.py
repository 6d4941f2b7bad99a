"""This replica's view kept current with what the others did.

- Events: after each commit that wrote events, a replica says so on Redis ("events");
  the others read the new events from the store's log, in order, and publish them here
  (SSE, webchat sockets, webhook workers). Without Redis, or while it is away, each
  replica reads the log every `[redis] poll_seconds`; with it, still every few seconds
  in case a word was lost. Nothing is ever read from Redis but the wake-up.
- Settings changed through the API (channels, webhook endpoints) are read back from the
  store every second, and at once when a replica says so ("config"). Agents need no such
  step: routing reloads its index whenever the store's routing version moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.replicas.link import RedisLink
from gateway.store.protocols import Store

log = logging.getLogger(__name__)

SAFETY_POLL = 2.0  # with Redis up: the log is read at least this often anyway
CONFIG_POLL = 1.0


class Follower:
    def __init__(
        self,
        store: Store,
        link: RedisLink | None,
        *,
        poll_seconds: float,
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.link = link
        self.poll_seconds = poll_seconds
        self._resync = resync
        self._events = asyncio.Event()
        self._config = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._announcing = False
        self._announce_again = False
        self._background: set[asyncio.Task[Any]] = set()
        if link is not None:
            link.on("events", lambda _payload: self._events.set())
            link.on("config", lambda _payload: self._config.set())
            link.on_up(self._caught_up_on_return)

    def _caught_up_on_return(self) -> None:
        # Whatever was said while the link was down is lost: look now.
        self._events.set()
        self._config.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow_events(), name="follow-events"),
            asyncio.create_task(self._follow_config(), name="follow-config"),
        ]

    # --- what this replica tells the others ---------------------------------------------

    def committed(self) -> None:
        """This replica committed events: tell the others (one message in flight at a
        time; commits meanwhile fold into the next)."""
        if self.link is None or not self.link.up:
            return
        if self._announcing:
            self._announce_again = True
            return
        self._announcing = True
        self.spawn(self._announce())

    async def _announce(self) -> None:
        assert self.link is not None
        try:
            while True:
                self._announce_again = False
                await self.link.publish("events", "")
                if not self._announce_again:
                    return
        finally:
            self._announcing = False

    def config_changed(self) -> None:
        """Channels or webhook endpoints changed here: the others read them again now."""
        if self.link is not None:
            self.spawn(self.link.publish("config", ""))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- what the others did ---------------------------------------------------------

    def _poll_interval(self) -> float:
        if self.link is not None and self.link.up:
            return SAFETY_POLL
        return self.poll_seconds

    async def _follow_events(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval()):
                    await self._events.wait()
            self._events.clear()
            try:
                await self.store.follow()
            except Exception as exc:  # the store is away: the next round catches up
                log.debug("reading other replicas' events failed: %s", exc)

    async def _follow_config(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONFIG_POLL):
                    await self._config.wait()
            self._config.clear()
            try:
                await self._resync()
            except Exception as exc:
                log.debug("reading settings changed elsewhere failed: %s", exc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
