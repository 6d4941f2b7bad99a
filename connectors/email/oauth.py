"""OAuth 2.0 logins of an e-mail channel (Gmail, Microsoft 365): the SASL strings of
XOAUTH2 and OAUTHBEARER (RFC 7628), and the access token, refreshed with the refresh
token before it expires and when a server refuses it.

One refresh at a time: in this process under a lock, among every process sharing the
store under the named lease ``email-oauth:<channel>`` (a provider may rotate the refresh
token, and two refreshing at once would leave one holding a spent token). The token pair
is kept sealed in the channel's state (``connectors.registry.EMAIL_OAUTH``), so replicas and
restarts share it; it descends from the configured refresh token, and a newly configured
one replaces it. Tokens go to the token endpoint and the mail servers only: they are in
no log line, repr or error raised here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.base import Sink
from connectors.email.settings import OAuthSettings
from connectors.errors import AuthError, TransientError
from kernel.ids import ChannelId
from kernel.secrets import SecretBox

log = logging.getLogger(__name__)

STATE_KEY = "oauth"  # sealed: connectors.registry.EMAIL_OAUTH declares it for rotation
REFRESH_WAIT = 30.0  # at most this long for another process's refresh to end
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


@dataclass
class _Pair:
    access: SecretStr
    refresh: SecretStr
    expires_at: float | None

    def __repr__(self) -> str:
        return f"_Pair(expires_at={self.expires_at})"


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
        self._box = box
        self._sink = sink
        self._http_factory = http
        self._http: httpx.AsyncClient | None = None
        self._clock = clock
        # Which configured refresh token (and client) the stored pair descends from.
        seed = f"{settings.token_url}\x00{settings.client_id}\x00"
        seed += settings.refresh_token.get_secret_value()
        self._seed = hashlib.sha256(seed.encode()).hexdigest()
        self._pair: _Pair | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0  # token endpoint calls made by this process

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
            await self._claim()
            try:
                await self._load()  # another process may have refreshed meanwhile
                if self._newer_than(seen):
                    assert self._pair is not None
                    return self._pair.access.get_secret_value()
                pair = await self._request()
                await self._save(pair)  # durable before use: the old refresh token may be spent
            finally:
                await self._sink().release(self.lease)
            self._pair = pair
            log.info("channel %s: OAuth access token refreshed", self.channel_id)
            return pair.access.get_secret_value()

    def _due(self, pair: _Pair) -> bool:
        if pair.expires_at is None:
            return False
        return self._clock() >= pair.expires_at - self.settings.refresh_ahead_seconds

    def _newer_than(self, seen: str | None) -> bool:
        pair = self._pair
        if pair is None or self._due(pair):
            return False
        return pair.access.get_secret_value() != seen

    async def _claim(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REFRESH_WAIT
        while await self._sink().claim(self.lease) is None:
            if loop.time() > deadline:
                raise TransientError(
                    "another process is refreshing the OAuth token", code="token_refresh_busy"
                )
            await asyncio.sleep(0.2)

    async def _load(self) -> None:
        stored = await self._sink().load_state(self.channel_id, STATE_KEY)
        if not isinstance(stored, dict) or stored.get("seed") != self._seed:
            return  # none yet, or the configured refresh token is newer than the stored pair
        try:
            found = json.loads(self._box.open(str(stored.get("sealed"))))
            access, refresh = str(found["access_token"]), str(found["refresh_token"])
        except (ValueError, KeyError, TypeError):
            log.error(
                "channel %s: the stored OAuth tokens cannot be read (sealed with a secret key "
                "this gateway does not have?); using the configured refresh token",
                self.channel_id,
            )
            return
        expires = stored.get("expires_at")
        self._pair = _Pair(
            SecretStr(access),
            SecretStr(refresh),
            float(expires) if isinstance(expires, int | float) else None,
        )

    async def _save(self, pair: _Pair) -> None:
        sealed = self._box.seal(
            json.dumps(
                {
                    "access_token": pair.access.get_secret_value(),
                    "refresh_token": pair.refresh.get_secret_value(),
                }
            )
        )
        value = {"seed": self._seed, "sealed": sealed, "expires_at": pair.expires_at}
        await self._sink().save_state(self.channel_id, STATE_KEY, value)

    async def _request(self) -> _Pair:
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
        self.refreshes += 1
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
            lifetime = body.get("expires_in")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME
            rotated = body.get("refresh_token")
            return _Pair(
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
