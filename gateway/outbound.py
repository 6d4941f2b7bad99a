"""The send path: pending outbound messages -> their connector -> status and events.

Messages of one conversation go out one at a time in order; different conversations go
out concurrently. A retryable failure holds the rest of that conversation back so the
customer never sees replies out of order. Pending messages survive restarts: the worker
picks them up from the store when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from connectors.base import Connector, HealthState
from connectors.degrade import degrade
from connectors.errors import AuthError, RateLimited, SendError, TransientError
from gateway.domain.outbox import Outbox
from gateway.metrics import Metrics
from gateway.store.protocols import OutboundQueue
from gateway.store.records import OutboundJob
from kernel.ids import ChannelId
from kernel.models import MessageError, utcnow

log = logging.getLogger(__name__)

# Seconds before retry n (n = attempts already made); the last value repeats.
BACKOFF = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
MAX_ATTEMPTS = 12
HELD_RECHECK = 60.0  # how often messages of a channel with bad credentials are looked at
IDLE_POLL = 30.0
BATCH = 200
CONCURRENCY = 64


def backoff(attempts: int) -> float:
    base = BACKOFF[min(attempts, len(BACKOFF) - 1)]
    return base * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)


class OutboundWorker:
    def __init__(
        self,
        queue: OutboundQueue,
        outbox: Outbox,
        connectors: Callable[[], Mapping[ChannelId, Connector]],
        metrics: Metrics,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.queue = queue
        self.outbox = outbox
        self._connectors = connectors
        self.metrics = metrics
        self._clock = clock
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}  # conversation id -> its sender
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbound-worker")

    def wake(self) -> None:
        self._wake.set()

    async def channel_recovered(self, channel_id: ChannelId) -> None:
        """The channel works again: what waited for it goes out now, not at its next
        scheduled look."""
        released = await self.queue.release_held(channel_id, self._clock())
        if released:
            log.info("channel %s is back: %d waiting message(s) released", channel_id, released)
            self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._busy.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            # A read that starts while a conversation is being sent may see messages that
            # are sent by the time it returns: skip those conversations this round.
            busy_before = set(self._busy)
            try:
                jobs = await self.queue.due(self._clock(), BATCH)
            except Exception:
                log.exception("reading pending messages failed")
                jobs = []
            groups: dict[str, list[OutboundJob]] = {}
            for job in jobs:
                key = str(job.outbound.conversation.id)
                if key not in self._busy and key not in busy_before:
                    groups.setdefault(key, []).append(job)
            for key, group in groups.items():
                task = asyncio.create_task(self._send_group(group))
                self._busy[key] = task
                task.add_done_callback(functools.partial(self._finished, key))
            await self._sleep(len(jobs) >= BATCH)

    def _finished(self, conversation_id: str, _task: asyncio.Task[None]) -> None:
        self._busy.pop(conversation_id, None)
        self._wake.set()

    async def _sleep(self, more_waiting: bool) -> None:
        if more_waiting and not self._busy:
            return
        timeout = IDLE_POLL
        with contextlib.suppress(Exception):
            due = await self.queue.next_due()
            if due is not None:
                timeout = min(max((due - self._clock()).total_seconds(), 0.05), IDLE_POLL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _send_group(self, group: list[OutboundJob]) -> None:
        async with self._limit:
            for job in group:
                if not await self._send(job):
                    return  # held back: later messages of this conversation wait their turn

    async def _send(self, job: OutboundJob) -> bool:
        """Try one message; True when it is settled (sent or failed for good)."""
        out = job.outbound
        message = out.message
        connector = self._connectors().get(message.channel_id)
        if connector is None:
            await self._fail(job, "channel_unavailable", "the channel no longer exists", False)
            return True
        if connector.health.state == HealthState.BAD_CREDENTIALS:
            await self._defer(job, HELD_RECHECK, AuthError("the channel's credentials are broken"))
            return False
        parts = degrade(message.parts, connector.capabilities, out.conversation.language)
        if not parts:
            await self._fail(job, "empty_message", "nothing in this message can be sent", False)
            return True
        outbound = out.model_copy(update={"message": message.model_copy(update={"parts": parts})})
        try:
            receipt = await connector.send(outbound)
        except RateLimited as exc:
            await self._retry_or_fail(job, exc, exc.retry_after)
            return False
        except AuthError as exc:
            connector.set_health(HealthState.BAD_CREDENTIALS, exc.reason)
            await self._defer(job, HELD_RECHECK, exc)
            return False
        except TransientError as exc:
            await self._retry_or_fail(job, exc, None)
            return False
        except SendError as exc:
            await self._fail(job, exc.code, exc.reason, exc.retryable)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("connector %s crashed while sending", message.channel_id)
            await self._retry_or_fail(job, TransientError(f"{type(exc).__name__}"), None)
            return False
        await self.outbox.mark_sent(message.id, receipt.external_id)
        self.metrics.outbound_sent.labels(message.channel_id).inc()
        return True

    async def _retry_or_fail(
        self, job: OutboundJob, exc: SendError, retry_after: float | None
    ) -> None:
        if job.attempts + 1 >= MAX_ATTEMPTS:
            await self._fail(
                job, exc.code, f"gave up after {MAX_ATTEMPTS} attempts: {exc.reason}", True
            )
            return
        await self._defer(
            job, retry_after if retry_after is not None else backoff(job.attempts), exc
        )

    async def _defer(self, job: OutboundJob, seconds: float, exc: SendError) -> None:
        self.metrics.outbound_deferred.labels(job.outbound.message.channel_id).inc()
        error = MessageError(code=exc.code, reason=exc.reason, retryable=True)
        until = self._clock() + timedelta(seconds=seconds)
        await self.queue.defer(job.outbound.message.id, until, error)

    async def _fail(self, job: OutboundJob, code: str, reason: str, retryable: bool) -> None:
        self.metrics.outbound_failed.labels(job.outbound.message.channel_id).inc()
        error = MessageError(code=code, reason=reason, retryable=retryable)
        await self.outbox.mark_failed(job.outbound.message.id, error)
