"""Refuse webhook URLs that reach the gateway's own network.

Checked twice: when an endpoint is saved (its URL's form and current DNS answer), and at
every connection, through the resolver aiohttp uses, so a name that later resolves to a
private address (DNS rebinding) is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver


class UnsafeUrl(ValueError):
    """The URL may not be used as a webhook target."""


def forbidden(address: str, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """Why an IP address may not be called, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_link_local:
        return "link-local"  # cloud metadata lives here: never allowed
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "not a unicast address"
    if ip.is_private or not ip.is_global:
        return None if allow_private else "private network"
    return None


def check_url(url: str) -> None:
    """The URL's form: http(s), a host, no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("webhook URLs are http:// or https://")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed; use the signature")


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
