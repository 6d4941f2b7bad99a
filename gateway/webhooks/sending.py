"""The HTTP side of webhook delivery: one aiohttp session for every endpoint (it connects
only to addresses the guard allows, checked at every connection: kernel.netguard), one
signed delivery posted, and how it went."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from yarl import URL

from config.webhooks import DeliverySettings
from gateway import __version__
from gateway.store.records import WebhookRecord
from kernel import webhook_signing as signing
from kernel.events import Event

RESPONSE_EXCERPT = 1024


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: float
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Endpoint(Protocol):
    """An endpoint as a request to it needs it (its worker): where, and the keys it
    signs with until `keys_refresh_at`, when they are looked up again."""

    record: WebhookRecord
    settings: DeliverySettings
    url: URL
    keys: list[bytes]
    keys_refresh_at: float | None


class WebhookClient:
    """Posts signed deliveries, for every endpoint, through one session."""

    def __init__(self, settings: DeliverySettings, keys_of: Callable[[WebhookRecord], Any]) -> None:
        self.settings = settings
        self.keys_of = keys_of
        self.session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        # Every connection's address is checked as its socket is made: names (IPv4 and
        # IPv6, resolved again later) and IP literals alike, for API and config endpoints.
        connector = aiohttp.TCPConnector(
            socket_factory=self.settings.guard().socket_factory,
            limit=0,
            limit_per_host=0,
            ttl_dns_cache=60,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # Deliveries carry no state between them: cookies a receiver sets are dropped.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            headers={"User-Agent": f"omnichannel-gateway/{__version__} (webhooks)"},
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def post(self, endpoint: Endpoint, event: Event) -> Outcome:
        assert self.session is not None
        if endpoint.keys_refresh_at is not None and time.time() >= endpoint.keys_refresh_at:
            found = self.keys_of(endpoint.record)  # a rotated-out secret just expired
            endpoint.keys, endpoint.keys_refresh_at = found.keys, found.refresh_at
        body = event.envelope().encode()
        headers = signing.headers(event.id, int(time.time()), body, endpoint.keys)
        # An endpoint with settings of its own (a bot) waits as long as they say.
        own: dict[str, Any] = (
            {}
            if endpoint.settings is self.settings
            else {"timeout": aiohttp.ClientTimeout(total=endpoint.settings.timeout)}
        )
        started = time.perf_counter()
        try:
            async with self.session.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False, **own
            ) as resp:
                excerpt = await resp.content.read(RESPONSE_EXCERPT)
                return Outcome(
                    resp.status,
                    (time.perf_counter() - started) * 1000,
                    response=excerpt.decode("utf-8", "replace") or None,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After"))
                    if resp.status == 429 or resp.status >= 500
                    else None,
                )
        except TimeoutError:
            return Outcome(None, (time.perf_counter() - started) * 1000, error="timeout")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(None, (time.perf_counter() - started) * 1000, error=_describe(exc))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
