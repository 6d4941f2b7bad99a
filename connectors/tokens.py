"""A refreshed token pair that providers connectors share the handling of (Zalo's OA
tokens, an e-mail channel's OAuth tokens): kept sealed in the channel's state, so restarts
and replicas use the newest, and refreshed one process at a time under a named lease (a
refresh token may be single use: two refreshing at once would leave one holding a spent
token).

The stored value is ``{"seed", "sealed", "expires_at"}``: ``sealed`` the pair sealed with a
:class:`kernel.secrets.SecretBox` (declared as a ``SealedState`` in
``connectors/registry.py`` so that ``omnigw rotate-secrets`` seals it again), ``seed`` a
digest of the configured credentials the pair descends from, so that newly configured
ones replace it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass

from pydantic import SecretStr

from connectors.base import Sink
from connectors.errors import TransientError
from kernel.ids import ChannelId
from kernel.secrets import SecretBox

log = logging.getLogger(__name__)

REFRESH_WAIT = 30.0  # at most this long for another process's refresh to end


@dataclass(frozen=True)
class Tokens:
    access: SecretStr
    refresh: SecretStr
    expires_at: float | None  # epoch seconds; None when not known (a configured pair)

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at})"


def seed_of(*configured: str) -> str:
    """The digest naming the configured credentials a stored pair descends from."""
    return hashlib.sha256("\x00".join(configured).encode()).hexdigest()


class SealedPair:
    """One channel's token pair in its state under ``key``."""

    def __init__(self, key: str, box: SecretBox, seed: str, what: str) -> None:
        self.key = key
        self._box = box
        self._seed = seed
        self._what = what

    async def load(self, sink: Sink, channel_id: ChannelId) -> Tokens | None:
        """The stored pair; None when there is none, or it descends from other credentials,
        or no key of this gateway opens it (logged)."""
        stored = await sink.load_state(channel_id, self.key)
        if not isinstance(stored, dict) or stored.get("seed") != self._seed:
            return None
        try:
            pair = json.loads(self._box.open(str(stored.get("sealed"))))
            access, refresh = str(pair["access_token"]), str(pair["refresh_token"])
        except (ValueError, KeyError, TypeError):
            log.error(
                "channel %s: the stored %s cannot be read (sealed with a secret key this "
                "gateway does not have?); using the configured ones",
                channel_id,
                self._what,
            )
            return None
        expires = stored.get("expires_at")
        return Tokens(
            SecretStr(access),
            SecretStr(refresh),
            float(expires) if isinstance(expires, int | float) else None,
        )

    async def save(self, sink: Sink, channel_id: ChannelId, pair: Tokens) -> None:
        sealed = self._box.seal(
            json.dumps(
                {
                    "access_token": pair.access.get_secret_value(),
                    "refresh_token": pair.refresh.get_secret_value(),
                }
            )
        )
        value = {"seed": self._seed, "sealed": sealed, "expires_at": pair.expires_at}
        await sink.save_state(channel_id, self.key, value)


async def claim_refresh(sink: Sink, lease: str, what: str, wait: float = REFRESH_WAIT) -> None:
    """Take the lease of a refresh, waiting while another process holds it; then
    ``sink.release(lease)``. Raises TransientError after ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while await sink.claim(lease) is None:
        if loop.time() > deadline:
            raise TransientError(
                f"another process is refreshing the {what}", code="token_refresh_busy"
            )
        await asyncio.sleep(0.2)
