"""Console sessions: a sealed cookie naming the API token it was opened with (by its
hash, never the token), its CSRF token and when it ends. Each request looks the token up
again, so a revoked token ends its sessions at once."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

from gateway.api.auth import Authenticator, Principal, hash_token
from kernel.secrets import Keyring, derive

COOKIE = "omnigw_console"
# Before sign-in: the value the sign-in form must send back (login CSRF).
SIGNIN_COOKIE = "omnigw_console_signin"
LANGUAGE_COOKIE = "omnigw_console_lang"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# A session ends this long after sign-in, whatever is done with it.
LIFETIME_SECONDS = 12 * 3600
# Cookies longer than this are not read (a browser never sends one of ours this long).
MAX_COOKIE = 4096


@dataclass(frozen=True)
class Session:
    digest: str  # the API token's SHA-256, to look it up again
    csrf: str
    expires_at: float
    principal: Principal

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """Seals and opens session cookies with keys derived from the gateway's secret key
    (any replica opens what another sealed); without one, with a key of this process."""

    def __init__(self, auth: Authenticator, keys: Keyring) -> None:
        self._auth = auth
        raw = list(keys) or [secrets.token_bytes(32)]
        self._fernets = [Fernet(_fernet_key(key)) for key in raw]

    def open_for(self, token: str) -> tuple[str, str]:
        """A new session's cookie value and CSRF token, for a token already checked."""
        csrf = secrets.token_urlsafe(32)
        body = {"d": hash_token(token), "c": csrf, "x": time.time() + LIFETIME_SECONDS}
        return self._fernets[0].encrypt(json.dumps(body).encode()).decode(), csrf

    async def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, if it is ours, not ended and its token still works."""
        if not cookie or len(cookie) > MAX_COOKIE:
            return None
        body = self._unseal(cookie)
        if body is None:
            return None
        try:
            digest, csrf, expires = str(body["d"]), str(body["c"]), float(str(body["x"]))
        except (KeyError, TypeError, ValueError):
            return None
        if expires <= time.time():
            return None
        principal = await self._auth.by_digest(digest)
        if principal is None:
            return None
        return Session(digest, csrf, expires, principal)

    def _unseal(self, cookie: str) -> dict[str, object] | None:
        for fernet in self._fernets:
            try:
                body = json.loads(fernet.decrypt(cookie.encode()))
            except (InvalidToken, ValueError):
                continue
            return body if isinstance(body, dict) else None
        return None


def _fernet_key(key: bytes) -> bytes:
    return base64.urlsafe_b64encode(derive(key, "console-sessions"))
