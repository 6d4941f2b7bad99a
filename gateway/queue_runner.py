"""When the queue is dispatched (gateway.domain.dispatch runs the dispatch itself).

A dispatch runs whenever demand or capacity changed (a new or reopened conversation, a
resolve, a transfer, an agent coming online or getting more capacity), when a waiting
conversation reaches its next escalation step or an assignment its reassign deadline,
and at least every `dispatch_interval`. Requests made during a dispatch fold into one more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.domain.assignments import Assignments

log = logging.getLogger(__name__)


class QueueRunner:
    def __init__(
        self,
        assignments: Assignments,
        *,
        interval: float,
        on_customer_messages: Callable[[], None] | None = None,
    ) -> None:
        self.assignments = assignments
        self.interval = interval
        self._on_messages = on_customer_messages
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="routing-interval")
        self.kick()

    def kick(self) -> None:
        """Demand or capacity changed: dispatch the queue soon."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run(), name="routing-dispatch")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                result = await self.assignments.dispatch()
            except Exception:
                log.exception("routing dispatch failed; retried on the next change or tick")
            else:
                if result.customer_messages and self._on_messages is not None:
                    self._on_messages()
                self._schedule(result.next_wakeup)
                if result.more:
                    self._again = True  # the rest of a long queue, in the next transaction
            if not self._again:
                return

    def _schedule(self, at: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at is None:
            return
        delay = max(0.0, at - time.time()) + 0.01
        if delay < self.interval:
            self._timer = asyncio.get_running_loop().call_later(delay, self.kick)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.kick()

    async def settle(self) -> None:
        """Wait until no dispatch is running (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.settle()
