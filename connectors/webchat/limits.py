"""What one visitor and one client address may do on a webchat channel.

Rates are token buckets (kernel.ratelimit.Buckets: per process, or shared by replicas
through Redis) keyed by the visitor id of the socket's token and by the client address;
open sockets are counted in this process. Nothing here does I/O of its own.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from connectors.webchat.settings import WebchatSettings
from kernel.ratelimit import Bucket, Buckets

HISTORY_PAGE = 50  # a history frame costs one frame per this many messages asked for


def address_key(remote: str | None) -> str:
    """The client address limits are kept by: an IPv4 address, or the /64 network of an
    IPv6 one (one host usually holds a whole /64 and may change addresses within it)."""
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def history_cost(limit: int) -> int:
    return max(1, math.ceil(limit / HISTORY_PAGE))


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str
    retry_after: float


class Limits:
    def __init__(self, settings: WebchatSettings, buckets: Buckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self._prefix = f"webchat:{settings.id}:"
        self._open: dict[str, int] = {}
        self.open_total = 0

    # --- sockets open in this process ------------------------------------------------

    def admit(self, address: str) -> Refused | None:
        """Count a socket of this address in, or say why not (release it when it ends)."""
        s = self.settings
        if self.open_total >= s.max_sockets:
            return Refused(503, "too_many_sockets", "the chat is full; try again soon", 5.0)
        if self._open.get(address, 0) >= s.address_sockets:
            return Refused(429, "rate_limited", "too many chat sockets from this address", 5.0)
        self._open[address] = self._open.get(address, 0) + 1
        self.open_total += 1
        return None

    def release(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)
        self.open_total -= 1

    # --- rates -------------------------------------------------------------------------

    def _visitor_frames(self, visitor: str) -> Bucket:
        s = self.settings
        return Bucket(f"{self._prefix}v:{visitor}:frames", s.frames_per_second, s.frames_burst)

    def _address_frames(self, address: str) -> Bucket:
        s = self.settings
        return Bucket(
            f"{self._prefix}a:{address}:frames",
            s.address_frames_per_second,
            s.address_frames_burst,
        )

    async def connect(self, address: str, visitor: str | None) -> float:
        """A handshake, by a returning visitor or (None) a new one."""
        buckets = [self._address_frames(address)]
        if visitor is not None:
            buckets.append(self._visitor_frames(visitor))
        return await self.buckets.take(*buckets)

    async def frame(
        self, address: str, visitor: str, *, cost: int = 1, message: bool = False
    ) -> float:
        """A frame of this visitor's; a message also counts against their messages."""
        buckets = [self._address_frames(address), self._visitor_frames(visitor)]
        if message:
            s = self.settings
            buckets.append(
                Bucket(f"{self._prefix}v:{visitor}:messages", s.rate_per_second, s.rate_burst)
            )
        return await self.buckets.take(*buckets, cost=cost)

    async def newcomer(self, address: str, visitor: str) -> float:
        """A visitor without an open conversation is about to store something (its first
        message opens a conversation; identify makes its contact): the first time in a
        window, that counts against the address's new conversations."""
        s = self.settings
        window = s.address_conversations_window
        seen = Bucket(f"{self._prefix}v:{visitor}:counted", 1 / window, 1)
        if await self.buckets.take(seen, cost=0):
            return 0.0  # counted in this window already
        conversations = Bucket(
            f"{self._prefix}a:{address}:conversations",
            s.address_conversations / window,
            s.address_conversations,
        )
        wait = await self.buckets.take(seen, conversations)
        if wait and await self.buckets.take(seen, cost=0):
            return 0.0  # another socket of the visitor's counted it meanwhile
        return wait
