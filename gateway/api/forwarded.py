"""The client's address behind trusted proxies (``[server] trusted_proxies``).

A proxy appends the address it was reached from to X-Forwarded-For, so the header is
read from the right: each hop that is a trusted proxy hands over to the address it names,
and the first one that is not trusted is the client. Whatever the client wrote itself
(the left of the header) is never reached past an untrusted hop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import hdrs, web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address, given the connection's peer and the X-Forwarded-For
    header(s) in the order they came."""
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    current = peer
    while hops:
        ip = _ip(current) if current else None
        if ip is None or not any(ip in net for net in trusted):
            break
        named = _ip(hops.pop())
        if named is None:
            break  # not an address: keep the last trusted hop's
        current = str(named)
    return current


def middleware(trusted_proxies: Sequence[str]) -> Any:
    """Requests from a trusted proxy carry the client's address as ``request.remote``."""
    trusted = [ipaddress.ip_network(n) for n in trusted_proxies]

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers.getall(hdrs.X_FORWARDED_FOR, [])
        if headers:
            found = client_address(request.remote, headers, trusted)
            if found is not None and found != request.remote:
                request = request.clone(remote=found)
        return await handler(request)

    return forwarded
