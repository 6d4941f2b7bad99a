"""Which URLs and addresses the gateway may call out to (webhook endpoints, and every
other outbound call that takes a URL from outside): http(s) only, no credentials in the
URL, and no address of the gateway's own networks unless allowed. Link-local addresses
(cloud metadata) are never allowed."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


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
