"""The client's address behind trusted proxies: X-Forwarded-For read from the right."""

from __future__ import annotations

import ipaddress

import pytest

from config import ConfigError, load_settings
from gateway.api.forwarded import client_address

LOCAL = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
CHAIN = [*LOCAL, ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "client"),
    [
        # no trusted proxy: the header is anyone's words
        ("127.0.0.1", ["203.0.113.5"], [], "127.0.0.1"),
        # an untrusted peer's header is ignored
        ("198.51.100.1", ["203.0.113.5"], LOCAL, "198.51.100.1"),
        ("127.0.0.1", ["203.0.113.5"], LOCAL, "203.0.113.5"),
        ("::ffff:127.0.0.1", ["203.0.113.5"], LOCAL, "203.0.113.5"),
        ("::1", ["2001:db8::7"], LOCAL, "2001:db8::7"),
        # what the client wrote itself is left of what the proxy appended
        ("127.0.0.1", ["6.6.6.6, 203.0.113.5"], LOCAL, "203.0.113.5"),
        ("127.0.0.1", ["6.6.6.6", "203.0.113.5"], LOCAL, "203.0.113.5"),
        # a chain of trusted proxies is walked through
        ("127.0.0.1", ["6.6.6.6, 203.0.113.5, 10.1.2.3"], CHAIN, "203.0.113.5"),
        ("127.0.0.1", ["6.6.6.6, 203.0.113.5, 10.1.2.3"], LOCAL, "10.1.2.3"),
        # every hop trusted: the first one named
        ("127.0.0.1", ["10.9.9.9, 10.1.2.3"], CHAIN, "10.9.9.9"),
        # not an address: the last trusted hop stays the client
        ("127.0.0.1", ["203.0.113.5, unknown"], LOCAL, "127.0.0.1"),
        ("127.0.0.1", [""], LOCAL, "127.0.0.1"),
        ("127.0.0.1", [], LOCAL, "127.0.0.1"),
        (None, ["203.0.113.5"], LOCAL, None),
    ],
)
def test_client_address(
    peer: str | None,
    headers: list[str],
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    client: str | None,
) -> None:
    assert client_address(peer, headers, trusted) == client


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = load_settings(
        None, env={}, overrides={"server.trusted_proxies": ["127.0.0.1", " 10.0.0.0/8", "::1"]}
    )
    assert settings.server.trusted_proxies == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    with pytest.raises(ConfigError) as exc:
        load_settings(None, env={}, overrides={"server.trusted_proxies": ["nginx"]})
    assert "trusted_proxies" in str(exc.value)
    assert "'nginx' is not an IP address" in str(exc.value)
