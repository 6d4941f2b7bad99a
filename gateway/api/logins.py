"""Failed logins throttled per client address.

Every bearer token that is not valid, and every event-stream ticket that is not, counts
one failure against the address it came from (a bucket of failures: a burst, then a
steady rate; shared by the replicas through Redis, gateway.replicas.limits). Once an
address has none left, its requests get 429 with Retry-After and their tokens are not
even looked up, so guessing goes no faster than the rate. Valid tokens never count; and
one already accepted from the same address keeps working while the address waits (a
helpdesk behind the same proxy as a bad client is not locked out with it: such a token
is known to whoever sent it from there already).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from gateway.api.auth import Authenticator, Principal, hash_token
from gateway.api.errors import TooManyRequests, Unauthorized

KNOWN_SECONDS = 3600.0  # a token accepted from an address is remembered this long
KNOWN_MAX = 10_000
BLOCKS_MAX = 100_000


class Failures(Protocol):
    """Buckets of failures by address (gateway.replicas.limits)."""

    rate: float
    burst: int

    async def take(self, key: str) -> float:
        """Count one failure; the seconds until one more would fit (0.0: one does)."""
        ...


def bucket_of(address: str) -> str:
    """Whose count an address's failures go to: an IPv6 address's /64 (one subscriber
    usually holds a whole /64, and could otherwise change address at every guess)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return hash_token(token) if scheme.lower() == "bearer" and token else None


class LoginGuard:
    """Authenticates API requests, throttling failed logins per client address."""

    def __init__(self, auth: Authenticator, failures: Failures) -> None:
        self.auth = auth
        self.failures = failures
        self._blocked: dict[str, float] = {}  # address -> monotonic time the block ends
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Called when an address is refused from now on (replicas tell each other).
        self.on_block: Callable[[str, float], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.failures.rate > 0

    async def authenticate(self, request: web.Request, *, token: str | None = None) -> Principal:
        """The request's bearer token, or ``token`` when given (typed into the console's
        sign-in form): each counts against the client address's failed logins alike."""
        header = request.headers.get("Authorization") if token is None else f"Bearer {token}"
        if not self.enabled:
            return await self.auth.authenticate(header)
        # Behind trusted proxies, the client's (gateway.api.forwarded).
        address = bucket_of(request.remote or "")
        digest = _digest(header)
        now = time.monotonic()
        until = self._blocked.get(address)
        if until is not None:
            if until <= now:
                del self._blocked[address]
            elif not self._accepted_before(address, digest, now):
                raise self._refusal(until - now)
        try:
            principal = await self.auth.authenticate(header)
        except Unauthorized as exc:
            if exc.code == "invalid_token":  # a token was tried: a guess
                await self._failed(address)
            raise
        if digest is not None:
            self._remember(address, digest, now)
        return principal

    async def redeem(self, request: web.Request, ticket: str) -> Principal:
        """The token an event-stream ticket stands for (gateway.api.auth). A ticket that
        is not valid counts as a failed login, so tickets go no faster to guess than
        tokens; an address that has none left is refused before its ticket is looked at
        (and the ticket stays unused)."""
        if not self.enabled:
            return await self.auth.redeem(ticket)
        address = bucket_of(request.remote or "")
        until = self._blocked.get(address)
        if until is not None:
            now = time.monotonic()
            if until <= now:
                del self._blocked[address]
            else:
                raise self._refusal(until - now)
        try:
            return await self.auth.redeem(ticket)
        except Unauthorized:
            await self._failed(address)
            raise

    async def _failed(self, address: str) -> None:
        wait = await self.failures.take(address)
        if wait > 0:
            self.block(address, wait)
            if self.on_block is not None:
                self.on_block(address, wait)

    def block(self, address: str, seconds: float) -> None:
        """Refuse the address's tokens for ``seconds`` (its failures are used up)."""
        if len(self._blocked) >= BLOCKS_MAX:
            self._blocked.clear()
        self._blocked[address] = max(self._blocked.get(address, 0.0), time.monotonic() + seconds)

    def _accepted_before(self, address: str, digest: str | None, now: float) -> bool:
        if digest is None:
            return False
        seen = self._known.get((address, digest))
        return seen is not None and now - seen < KNOWN_SECONDS

    def _remember(self, address: str, digest: str, now: float) -> None:
        key = (address, digest)
        self._known[key] = now
        self._known.move_to_end(key)
        if len(self._known) > KNOWN_MAX:
            self._known.popitem(last=False)

    def _refusal(self, wait: float) -> TooManyRequests:
        per_minute = self.failures.rate * 60
        return TooManyRequests(
            f"too many failed logins from this address: {self.failures.burst} at once, then "
            f"{per_minute:g} per minute",
            retry_after=wait,
            code="too_many_failed_logins",
            details={"retry_after_seconds": round(wait, 3)},
        )
