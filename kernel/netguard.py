"""Which URLs and addresses the gateway may call out to (webhook endpoints, and every
other outbound call that takes a URL from outside): http(s) only, no credentials in the
URL, and no address of the gateway's own networks unless allowed. Link-local addresses
(cloud metadata) are never allowed.

A ``NetGuard`` is checked twice for a URL:

- when it is given (``check_url``): its form, and every address its host resolves to now
  (IPv4 and IPv6), or the address it names;
- at every connection (``socket_factory``, for aiohttp's ``TCPConnector``): the address
  the socket is about to connect to, whatever it came from: a name resolved again (DNS
  rebinding), an IP literal (which aiohttp never resolves), a URL from the config file.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL may not be used as a webhook target."""


class UnsafeAddress(OSError):
    """A connection to an address that may not be called was refused."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


# IPv6 addresses that reach an IPv4 one through a translator (NAT64, RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def forbidden(address: str, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """Why an IP address may not be called, or None."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded(ip) or ip
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
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[" and the like
        raise UnsafeUrl("the URL cannot be read (a bracket or port out of place?)") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("webhook URLs are http:// or https://")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed; use the signature")
    try:
        parts.port  # noqa: B018 (read for its check)
    except ValueError:
        raise UnsafeUrl("the URL's port is not a port number") from None


def ip_literal(host: str) -> str | None:
    """The address when ``host`` is an IP literal (IPv6 without its brackets), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


@dataclass(frozen=True)
class NetGuard:
    """The addresses outbound calls of one kind (webhooks, media downloads) may reach."""

    allow_private: bool = False
    allow_loopback: bool = False

    def why_not(self, address: str) -> str | None:
        """Why ``address`` may not be called, or None."""
        return forbidden(
            address, allow_private=self.allow_private, allow_loopback=self.allow_loopback
        )

    def check_address(self, address: str) -> None:
        """Raises UnsafeAddress when ``address`` may not be called."""
        why = self.why_not(address)
        if why is not None:
            raise UnsafeAddress(f"{address} may not be called ({why})")

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """A socket for one address aiohttp is about to connect to, or UnsafeAddress (an
        OSError: aiohttp tries the host's next address, and fails with it if none is
        left). ``TCPConnector(socket_factory=guard.socket_factory)``."""
        family, kind, proto, _name, sockaddr = addr_info
        self.check_address(str(sockaddr[0]))
        return socket.socket(family=family, type=kind, proto=proto)

    async def check_url(self, url: str) -> None:
        """The URL's form, and that its host is, or resolves only to, addresses that may
        be called (IPv4 and IPv6). Raises UnsafeUrl with the reason."""
        check_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        literal = ip_literal(host)
        if literal is not None:
            why = self.why_not(literal)
            if why is not None:
                raise UnsafeUrl(f"{literal} may not be called ({why})")
            return
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host,
                parts.port or (443 if parts.scheme == "https" else 80),
                type=socket.SOCK_STREAM,
            )
        except (OSError, UnicodeError) as exc:
            raise UnsafeUrl(f"{host} does not resolve: {exc}") from None
        addresses = sorted({str(info[4][0]) for info in found})
        refused = {a: why for a in addresses if (why := self.why_not(a)) is not None}
        if refused:
            listed = ", ".join(f"{a} ({why})" for a, why in refused.items())
            raise UnsafeUrl(f"{host} resolves to addresses that may not be called: {listed}")
