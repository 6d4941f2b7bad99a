"""Work one replica at a time does: named leases in the store, renewed here in the
background, handed over when another replica asks (an admin change made there).

The holder renews every lease it has once a second (and outbound messages it is
sending, with them). A replica that cannot renew for most of the lease's length stops
the work itself, before another can take it; one that died loses its leases when they
lapse (`[store] lease_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.store.protocols import Leases

log = logging.getLogger(__name__)

RENEW_EVERY = 1.0

# Stops the work a lease covers (its progress written) when the lease goes.
Stop = Callable[[], Awaitable[None]]
TAKE_POLL = 0.1


class LeaseKeeper:
    def __init__(self, leases: Leases, seconds: float) -> None:
        self.leases = leases
        self.seconds = seconds
        # name -> what to call when this process must stop that work
        self._held: dict[str, Stop] = {}
        self._renewed_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Called after asking another process for a lease (to wake it through Redis).
        self.on_want: Callable[[], None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop(), name="lease-keeper")

    def holds(self, name: str) -> bool:
        return name in self._held

    async def claim(self, name: str, on_lost: Stop) -> bool:
        """Take the lease when nobody holds it; ``on_lost`` is called if it goes."""
        if name in self._held:
            self._held[name] = on_lost
            return True
        if not await self.leases.claim(name, self.seconds):
            return False
        self._held[name] = on_lost
        return True

    async def take(self, name: str, on_lost: Stop, within: float) -> bool:
        """Take the lease, asking its holder to hand it over; False after ``within``
        seconds."""
        if await self.claim(name, on_lost):
            return True
        await self.leases.want(name)
        if self.on_want is not None:
            self.on_want()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            await asyncio.sleep(TAKE_POLL)
            if await self.claim(name, on_lost):
                return True
        return False

    async def wait_for(self, name: str, on_lost: Stop, every: float) -> None:
        """Take the lease as soon as it is free (trying every ``every`` seconds)."""
        while True:
            if await self._try_claim(name, on_lost):
                return
            await asyncio.sleep(every)

    async def _try_claim(self, name: str, on_lost: Stop) -> bool:
        try:
            return await self.claim(name, on_lost)
        except Exception as exc:  # the store is away: try again later
            log.debug("claiming %s failed: %s", name, exc)
            return False

    async def release(self, name: str) -> None:
        if self._held.pop(name, None) is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(name)

    def wake(self) -> None:
        """Another replica asked for one of our leases: look now, not at the next tick."""
        self._wake.set()

    async def _renew_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RENEW_EVERY):
                    await self._wake.wait()
            self._wake.clear()
            await self.renew_once()

    async def renew_once(self) -> None:
        try:
            held, wanted = await self.leases.renew(self.seconds)
        except Exception as exc:
            # Not renewed: before the store could give them away, stop the work.
            if time.monotonic() - self._renewed_at > self.seconds * 0.6 and self._held:
                log.warning("leases could not be renewed (%s): their work stops here", exc)
                for name in list(self._held):
                    await self._lose(name)
            return
        self._renewed_at = time.monotonic()
        kept = set(held)
        for name in [n for n in self._held if n not in kept]:
            log.warning("lease %s was lost: its work stops here", name)
            await self._lose(name)
        for name in wanted:
            if name in self._held:
                log.info("lease %s handed over to another replica", name)
                await self._lose(name)
                with contextlib.suppress(Exception):
                    await self.leases.release(name)

    async def _lose(self, name: str) -> None:
        on_lost = self._held.pop(name, None)
        if on_lost is not None:
            try:
                await on_lost()
            except Exception:
                log.exception("stopping the work of lease %s failed", name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for name in list(self._held):
            self._held.pop(name, None)
            with contextlib.suppress(Exception):
                await self.leases.release(name)
