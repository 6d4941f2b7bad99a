"""OAuth 2.0 logins of an e-mail channel (Gmail, Microsoft 365): the SASL strings of
XOAUTH2 and OAUTHBEARER (RFC 7628), and the access token, refreshed with the refresh
token before it expires and when a server refuses it.

One refresh at a time: in this process under a lock, among every process sharing the
store under the named lease ``email-oauth:<channel>`` (a provider may rotate the refresh
token). The token pair is kept sealed in the channel's state
(``connectors.registry.EMAIL_OAUTH``, through :mod:`connectors.tokens`), so replicas and
restarts share it; a newly configured refresh token replaces it. Tokens go to the token
endpoint and the mail servers only: they are in no log line, repr or error raised here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.base import Sink
from connectors.email.settings import OAuthSettings
from connectors.errors import AuthError, TransientError
from connectors.tokens import SealedPair, Tokens, claim_refresh, seed_of
from kernel.ids import ChannelId
from kernel.secrets import SecretBox

log = logging.getLogger(__name__)

STATE_KEY = "oauth"  # sealed: connectors.registry.EMAIL_OAUTH declares it for rotation
DEFAULT_LIFETIME = 3600.0  # when the endpoint does not say (Google and Microsoft: 1 h)
# Answers of the token endpoint that mean the grant itself is refused (RFC 6749 5.2).
REFUSED = {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope"}


def sasl_xoauth2(user: str, token: str) -> str:
    """The initial response of XOAUTH2 (Google's and Microsoft's), base64."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode("ascii")


def sasl_oauthbearer(user: str, token: str, host: str, port: int) -> str:
    """The initial response of OAUTHBEARER (RFC 7628 3.1), base64."""
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    raw = f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode("ascii")


def sasl(mechanism: str, user: str, token: str, host: str, port: int) -> str:
    if mechanism.lower() == "oauthbearer":
        return sasl_oauthbearer(user, token, host, port)
    return sasl_xoauth2(user, token)


class OAuthTokens:
    """The access token of one channel's OAuth login."""

    def __init__(
        self,
        channel_id: ChannelId,
        settings: OAuthSettings,
        box: SecretBox,
        sink: Callable[[], Sink],
        http: Callable[[], httpx.AsyncClient],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel_id = channel_id
        self.settings = settings
        self._sink = sink
        self._http_factory = http
        self._http: httpx.AsyncClient | None = None
        self._clock = clock
        # Which configured refresh token (and client) the stored pair descends from.
        seed = seed_of(
            settings.token_url, settings.client_id, settings.refresh_token.get_secret_value()
        )
        self._stored = SealedPair(STATE_KEY, box, seed, "OAuth tokens")
        self._pair: Tokens | None = None
        self._lock = asyncio.Lock()

    @property
    def lease(self) -> str:
        return f"email-oauth:{self.channel_id}"

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def access(self) -> str:
        """An access token to log in with, refreshed first when it is (about to be) stale."""
        if self._pair is None:
            await self._load()
        pair = self._pair
        if pair is None or self._due(pair):
            return await self.refresh(pair.access.get_secret_value() if pair else None)
        return pair.access.get_secret_value()

    async def refresh(self, seen: str | None) -> str:
        """A new access token in place of ``seen`` (None: there is none yet), unless one
        newer than it is already at hand. Raises AuthError when the grant is refused."""
        async with self._lock:
            if self._newer_than(seen):
                assert self._pair is not None
                return self._pair.access.get_secret_value()
            await claim_refresh(self._sink(), self.lease, "OAuth token")
            try:
                await self._load()  # another process may have refreshed meanwhile
                if self._newer_than(seen):
                    assert self._pair is not None
                    return self._pair.access.get_secret_value()
                pair = await self._request()
                # Durable before use: the old refresh token may be spent.
                await self._stored.save(self._sink(), self.channel_id, pair)
            finally:
                await self._sink().release(self.lease)
            self._pair = pair
            log.info("channel %s: OAuth access token refreshed", self.channel_id)
            return pair.access.get_secret_value()

    def _due(self, pair: Tokens) -> bool:
        if pair.expires_at is None:
            return False
        return self._clock() >= pair.expires_at - self.settings.refresh_ahead_seconds

    def _newer_than(self, seen: str | None) -> bool:
        pair = self._pair
        if pair is None or self._due(pair):
            return False
        return pair.access.get_secret_value() != seen

    async def _load(self) -> None:
        found = await self._stored.load(self._sink(), self.channel_id)
        if found is not None:
            self._pair = found

    async def _request(self) -> Tokens:
        """Ask the token endpoint (RFC 6749 6) for a new access token."""
        s = self.settings
        refresh = self._pair.refresh if self._pair is not None else s.refresh_token
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh.get_secret_value(),
            "client_id": s.client_id,
        }
        if s.client_secret is not None:
            form["client_secret"] = s.client_secret.get_secret_value()
        if s.scope:
            form["scope"] = s.scope
        if self._http is None:
            self._http = self._http_factory()
        try:
            resp = await self._http.post(
                s.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TransientError(
                f"token endpoint unreachable: {type(exc).__name__}", code="token_unreachable"
            ) from None
        body = _json(resp)
        if resp.status_code == 200 and isinstance(body.get("access_token"), str):
            seconds = _lifetime(body.get("expires_in"))
            rotated = body.get("refresh_token")
            return Tokens(
                SecretStr(body["access_token"]),
                SecretStr(rotated) if isinstance(rotated, str) and rotated else refresh,
                self._clock() + seconds,
            )
        error = body.get("error") if isinstance(body.get("error"), str) else None
        if resp.status_code in (400, 401) and error in REFUSED:
            raise AuthError(f"the token endpoint refused the grant: {error}", code="oauth_refused")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(
                f"token endpoint: HTTP {resp.status_code}", code="token_endpoint_busy"
            )
        raise AuthError(
            f"the token endpoint answered HTTP {resp.status_code}"
            + (f" ({error[:60]})" if error else ""),
            code="oauth_refused",
        )


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        found = resp.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _lifetime(value: Any) -> float:
    """``expires_in`` in seconds (some endpoints send it as a string)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME
    return seconds if 0 < seconds < 10**8 else DEFAULT_LIFETIME
