"""What the connectors of providers with an HTTP API (Facebook, Zalo) share: background
tasks, coming back from BAD_CREDENTIALS, and handling one webhook event so that a
poisoned one cannot block the provider's retries forever."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from connectors.base import HealthState, WebhookConnector
from connectors.errors import AuthError, PermanentError, RateLimited, SendError, TransientError
from kernel.errors import StoreUnavailable
from kernel.ids import ChannelId

log = logging.getLogger(__name__)

T = TypeVar("T")

FAILURES_REMEMBERED = 10_000
# A webhook event that fails this often (the store answered, the event did not fit) is
# kept raw and acknowledged, so one poisoned event cannot get the channel unsubscribed.
MAX_EVENT_FAILURES = 3


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message, "details": None}}),
        content_type="application/json",
    )


async def read_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The request's body, or the 413 answer when it is larger than ``limit`` bytes
    (told by Content-Length when given, else while reading, never buffering more)."""
    too_large = json_error(413, "payload_too_large", f"the body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)


class ProviderConnector(WebhookConnector):
    """Subclasses set `settings` (with `credentials_recheck_seconds`) and implement
    `_check_credentials`, `_close_client` and `_handle`."""

    settings: Any

    def __init__(self, channel_id: ChannelId) -> None:
        super().__init__(channel_id)
        self._failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recheck: asyncio.Task[None] | None = None
        self._closing = False

    @abc.abstractmethod
    async def _check_credentials(self) -> None:
        """Raise SendError while the provider still refuses the credentials."""

    @abc.abstractmethod
    async def _close_client(self) -> None: ...

    @abc.abstractmethod
    async def _handle(self, event: Any) -> None: ...

    async def aclose(self) -> None:
        self._closing = True
        tasks = [*self._tasks, *([self._recheck] if self._recheck else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_client()
        await super().aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_health(self, state: HealthState, detail: str | None = None) -> None:
        super().set_health(state, detail)
        # Nothing else brings a channel back from BAD_CREDENTIALS (the send path holds its
        # messages without trying): try the credentials now and then until they work.
        idle = self._recheck is None or self._recheck.done()
        if state == HealthState.BAD_CREDENTIALS and not self._closing and idle:
            try:
                self._recheck = asyncio.get_running_loop().create_task(
                    self._recheck_credentials(), name=f"{self.type}-recheck:{self.channel_id}"
                )
            except RuntimeError:  # no running loop: nothing is running to recheck for
                self._recheck = None

    async def _recheck_credentials(self) -> None:
        while self.health.state == HealthState.BAD_CREDENTIALS:
            await asyncio.sleep(self.settings.credentials_recheck_seconds)
            try:
                await self._check_credentials()
            except SendError as exc:
                log.info("channel %s: credentials still failing: %s", self.channel_id, exc.code)
                continue
            except Exception:
                log.exception("channel %s: checking the credentials failed", self.channel_id)
                continue
            self.set_health(HealthState.CONNECTED)

    def _recoverable(self) -> bool:
        # BAD_CREDENTIALS ends only when the credentials work again (the recheck).
        return self.health.state not in (HealthState.BAD_CREDENTIALS, HealthState.STOPPED)

    async def _tracked(self, call: Awaitable[T], *, config_prefix: str | None) -> T:
        """Await a call to the provider and keep the channel's health in step with its
        outcome. A permanent error whose code starts with ``config_prefix`` is the
        channel's setup (BAD_CONFIG); None when the call's errors concern one customer."""
        try:
            result = await call
        except AuthError as exc:
            self.set_health(HealthState.BAD_CREDENTIALS, exc.reason)
            raise
        except RateLimited:
            raise
        except TransientError as exc:
            if self.health.state == HealthState.CONNECTED and exc.code in ("network", "timeout"):
                self.set_health(HealthState.TRANSIENT_DISCONNECT, exc.reason)
            raise
        except PermanentError as exc:
            setup = config_prefix is not None and exc.code.startswith(config_prefix)
            if setup and self._recoverable():
                self.set_health(HealthState.BAD_CONFIG, exc.reason)
            raise
        if self._recoverable() and self.health.state != HealthState.CONNECTED:
            self.set_health(HealthState.CONNECTED)
        return result

    async def _keep_raw(self, kind: str, raw: str, reason: str) -> None:
        log.info("channel %s: %s event kept raw and skipped: %s", self.channel_id, kind, reason)
        await self.sink.keep_raw(self.channel_id, kind, raw, reason)

    async def _handle_safely(self, event: Any, kind: str, raw: str) -> bool:
        """Handle one event; False when it must be retried (the provider sends it again)."""
        try:
            await self._handle(event)
            return True
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            # Not the event's fault: it is never counted towards giving it up (kept raw
            # and acknowledged), or a message retried across an outage would end raw.
            log.warning(
                "channel %s: a %s event waits for the store: %s", self.channel_id, kind, exc
            )
            return False
        except Exception as exc:
            key = hashlib.sha256(raw.encode()).hexdigest()
            count = self._failures.get(key, 0) + 1
            log.exception(
                "channel %s: a %s event failed (attempt %d)", self.channel_id, kind, count
            )
            if count < MAX_EVENT_FAILURES:
                if len(self._failures) >= FAILURES_REMEMBERED:
                    self._failures.clear()
                self._failures[key] = count
                return False
            self._failures.pop(key, None)
            try:
                await self.sink.keep_raw(
                    self.channel_id,
                    kind,
                    raw,
                    f"could not be handled after {count} attempts ({type(exc).__name__})",
                )
            except Exception:
                log.exception("channel %s: keeping an event raw failed too", self.channel_id)
                return False
            return True
