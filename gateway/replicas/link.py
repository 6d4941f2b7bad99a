"""The Redis link between replicas: publish/subscribe on a few topics, and the state of
the connection for /readyz.

Everything sent here is a hint that makes replicas quicker, never the only copy of
anything: when Redis is away, the followers poll the store instead, and catch up when it
is back. Topic names carry a namespace (the Redis URL's database number) because Redis's
publish/subscribe ignores database numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kernel.secrets import url_without_password

log = logging.getLogger(__name__)

RETRY_MAX = 5.0
TIMEOUT = 2.0


def namespace_of(url: str) -> str:
    db = urlsplit(url).path.strip("/") or "0"
    return f"omnigw:{db}:"


class RedisLink:
    def __init__(self, url: str) -> None:
        self.url = url
        self.namespace = namespace_of(url)
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            health_check_interval=10,
        )
        self.up = False
        self.problem: str | None = "not connected yet"
        self._handlers: dict[str, Callable[[str], None]] = {}
        self._on_up: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def topic(self, name: str) -> str:
        return self.namespace + name

    def on(self, name: str, handler: Callable[[str], None]) -> None:
        """Call ``handler(payload)`` for every message on the topic (set before start)."""
        self._handlers[self.topic(name)] = handler

    def on_up(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` each time the link (re)connects: what was said meanwhile is lost."""
        self._on_up.append(fn)

    @property
    def state(self) -> str:
        return "ok" if self.up else f"unreachable: {self.problem}"

    async def start(self, wait: float = TIMEOUT) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-link")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._connected.wait()

    async def publish(self, name: str, payload: str) -> bool:
        """Best effort: False when Redis cannot be reached (never raises)."""
        if not self.up:
            return False
        try:
            await self.client.publish(self.topic(name), payload)
        except (RedisError, OSError) as exc:
            self._down(exc)
            return False
        return True

    def _down(self, exc: BaseException) -> None:
        if self.up:
            log.warning(
                "redis %s unreachable (%s): polling the store", url_without_password(self.url), exc
            )
        self.up = False
        self.problem = type(exc).__name__

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self.up, self.problem = True, None
                self._connected.set()
                delay = 0.2
                log.info("redis %s connected", url_without_password(self.url))
                for fn in self._on_up:
                    fn()
                while True:
                    message = await pubsub.get_message(timeout=TIMEOUT)
                    if message is None:
                        continue
                    handler = self._handlers.get(message["channel"].decode())
                    if handler is not None:
                        try:
                            handler(message["data"].decode())
                        except Exception:
                            log.exception("redis message handler failed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._down(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            await self.client.aclose()
