"""Bearer tokens with scopes. Tokens are random and stored only as SHA-256 hashes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from gateway.api.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from gateway.store.protocols import Tokens


class Scope(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    INTEGRATION = "integration"
    BOT = "bot"


ANY_SCOPE = frozenset({Scope.ADMIN, Scope.AGENT, Scope.INTEGRATION})
ADMIN_ONLY = frozenset({Scope.ADMIN})
MANAGE = frozenset({Scope.ADMIN, Scope.INTEGRATION})
# What a bot's token may do besides: read and answer the conversations it holds, and
# hand them over.
WITH_BOT = ANY_SCOPE | {Scope.BOT}
# The scope of `[server] metrics_token` alone (no API token can be given it): /metrics and
# the details of /readyz, nothing else.
METRICS_SCOPE = "metrics"
READ_METRICS = frozenset({Scope.ADMIN, METRICS_SCOPE})

TOKEN_PREFIX = "ogw_"  # noqa: S105 (a prefix, not a secret)
TICKET_PREFIX = "ogt_"
CACHE_SECONDS = 10.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# The ids of the tokens given by configuration (not stored, never revoked).
ADMIN_TOKEN_ID = "admin"  # noqa: S105 (the id of OMNIGW_ADMIN_TOKEN, not a secret)
METRICS_TOKEN_ID = "metrics"  # noqa: S105 ([server] metrics_token's id, not a secret)


@dataclass(frozen=True)
class Principal:
    token_id: str
    scopes: frozenset[str]
    agent_id: str | None = None
    bot_id: str | None = None  # a token of scope bot: the bot it speaks for
    # The token's hash, to look it up again (a long-lived answer checks it is not revoked).
    digest: str = field(default="", repr=False, compare=False)

    def require(self, allowed: frozenset[str]) -> None:
        if not self.scopes & allowed:
            raise Forbidden(
                "this token lacks the scope for this operation",
                code="insufficient_scope",
                details={"needed_any_of": sorted(allowed), "token_scopes": sorted(self.scopes)},
            )

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    @property
    def bot(self) -> str | None:
        """The bot a token speaks for, when it is only a bot's."""
        if self.bot_id is None or self.scopes & ANY_SCOPE:
            return None
        return self.bot_id


class Authenticator:
    def __init__(
        self,
        tokens: Tokens,
        admin_token: str,
        *,
        cache_seconds: float = CACHE_SECONDS,
        metrics_token: str = "",
    ) -> None:
        self._tokens = tokens
        self._admin_hash = hash_token(admin_token)
        self._metrics_hash = hash_token(metrics_token) if metrics_token else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        # A token revoked on another replica stops working here within this time.
        self.cache_seconds = cache_seconds
        # Set (and replaced) when tokens change here: open streams check theirs at once.
        self._changed = asyncio.Event()

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise Unauthorized("an Authorization: Bearer <token> header is required")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("use Authorization: Bearer <token>", code="bad_auth_scheme")
        principal = await self._of(hash_token(token))
        if principal is None:
            raise Unauthorized("the token is not valid", code="invalid_token")
        return principal

    async def _of(self, digest: str) -> Principal | None:
        """Whose token has this hash (None: no valid token has)."""
        if hmac.compare_digest(digest, self._admin_hash):
            return Principal(ADMIN_TOKEN_ID, frozenset({Scope.ADMIN}), digest=digest)
        if self._metrics_hash is not None and hmac.compare_digest(digest, self._metrics_hash):
            return Principal(METRICS_TOKEN_ID, frozenset({METRICS_SCOPE}), digest=digest)
        return await self._lookup(digest)

    async def make_ticket(self, principal: Principal, seconds: float) -> tuple[str, datetime]:
        """A single-use ticket that opens one event stream as ``principal``'s token within
        ``seconds`` (kept in the store, by its hash only, so any replica takes it)."""
        ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
        expires = await self._tokens.add_ticket(
            hash_token(ticket), principal.token_id, principal.digest, seconds
        )
        return ticket, expires

    async def redeem(self, ticket: str) -> Principal:
        """The token a ticket was made with; the ticket is used up. Unauthorized
        ``invalid_ticket`` when it is unknown, used, expired, or its token was revoked."""
        record = await self._tokens.redeem_ticket(hash_token(ticket)) if ticket else None
        principal = None
        if record is not None:
            principal = await self._of(record.token_hash)
            if principal is not None and principal.token_id != record.token_id:
                principal = None  # the configuration's token changed meanwhile
        if principal is None:
            raise Unauthorized(
                "the ticket is not valid: unknown, expired or used already (a ticket opens "
                "one stream; make another with POST /v1/events/tickets)",
                code="invalid_ticket",
            )
        return principal

    async def by_digest(self, digest: str) -> Principal | None:
        """The API token whose hash is ``digest``, if it still works (a console session
        keeps the hash, never the token)."""
        if hmac.compare_digest(digest, self._admin_hash):
            return Principal(ADMIN_TOKEN_ID, frozenset({Scope.ADMIN}), digest=digest)
        if self._metrics_hash is not None and hmac.compare_digest(digest, self._metrics_hash):
            return None
        return await self._lookup(digest)

    async def _lookup(self, digest: str) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await self._tokens.find(digest)
        principal = (
            None
            if record is None
            else Principal(
                record.id, frozenset(record.scopes), record.agent_id, record.bot_id, digest
            )
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self.cache_seconds, principal)
        return principal

    async def still_valid(self, principal: Principal) -> bool:
        """Whether the token ``principal`` came from still works (not revoked here or, within
        ``cache_seconds``, on another replica). The tokens of the configuration work while
        configured."""
        if principal.token_id in (ADMIN_TOKEN_ID, METRICS_TOKEN_ID):
            return True
        return await self._lookup(principal.digest) is not None

    def changed(self) -> asyncio.Event:
        """Set when tokens next change in this process (a revocation, a new token)."""
        return self._changed

    def forget(self) -> None:
        """Drop cached lookups (after a revocation), and wake whoever waits on changed()."""
        self._cache.clear()
        self._changed.set()
        self._changed = asyncio.Event()
