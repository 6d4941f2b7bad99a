"""Refuse webhook URLs that reach the gateway's own network.

Checked twice: when an endpoint is saved (its URL's form and current DNS answer), and at
every connection, through the resolver aiohttp uses, so a name that later resolves to a
private address (DNS rebinding) is refused too.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from kernel.netguard import UnsafeUrl, check_url, forbidden


async def check_resolves(url: str, *, allow_private: bool, allow_loopback: bool) -> None:
    """The URL's host resolves only to addresses that may be called."""
    check_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    resolver = GuardedResolver(allow_private=allow_private, allow_loopback=allow_loopback)
    try:
        await resolver.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as exc:
        raise UnsafeUrl(f"{host} does not resolve: {exc}") from None
    finally:
        await resolver.close()


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops forbidden addresses (and fails if none is left)."""

    def __init__(self, *, allow_private: bool, allow_loopback: bool) -> None:
        self._inner = ThreadedResolver()
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        reasons = set()
        for result in results:
            why = forbidden(
                result["host"],
                allow_private=self.allow_private,
                allow_loopback=self.allow_loopback,
            )
            if why is None:
                allowed.append(result)
            else:
                reasons.add(why)
        if not allowed:
            raise UnsafeUrl(f"{host} resolves to a {', '.join(sorted(reasons))} address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def describe(exc: Any) -> str:
    return str(exc)
