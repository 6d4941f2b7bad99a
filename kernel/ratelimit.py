"""Token buckets: a burst at once, refilled at a steady rate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class TokenBucket:
    """``burst`` at once, refilled at ``rate`` per second."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        return self.wait() == 0.0

    def wait(self) -> float:
        """Take one if there is one (0.0); otherwise how many seconds until there is."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key (an API token); `rate` 0 lets everything through."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def wait(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket.wait()


@dataclass(frozen=True)
class Bucket:
    """A named bucket: ``burst`` at once, refilled at ``rate`` per second."""

    key: str
    rate: float
    burst: int


class Buckets(Protocol):
    """Token buckets by key, kept in one process or shared by replicas."""

    async def take(self, *buckets: Bucket, cost: int = 1) -> float:
        """Take ``cost`` tokens from every bucket, or from none when one has too few:
        0.0 when taken, otherwise the seconds until all of them could give it. With
        ``cost=0`` nothing is taken: 0.0 says that every bucket has a token."""
        ...


class LocalBuckets:
    """The buckets of one process. Full buckets are forgotten from time to time (a full
    bucket is the same as none), so a flood of new keys does not pile up."""

    PRUNE_ABOVE = 10_000

    def __init__(self) -> None:
        # key -> [tokens, stamp, rate, burst]
        self._state: dict[str, list[float]] = {}
        self._pruned = time.monotonic()

    async def take(self, *buckets: Bucket, cost: int = 1) -> float:
        return self.take_now(*buckets, cost=cost)

    def take_now(self, *buckets: Bucket, cost: int = 1) -> float:
        now = time.monotonic()
        if len(self._state) > self.PRUNE_ABOVE and now - self._pruned > 1.0:
            self._prune(now)
        states = []
        wait = 0.0
        for b in buckets:
            state = self._state.get(b.key)
            if state is None:
                state = self._state[b.key] = [float(b.burst), now, b.rate, float(b.burst)]
            state[2], state[3] = b.rate, float(b.burst)
            state[0] = min(state[3], state[0] + (now - state[1]) * b.rate)
            state[1] = now
            need = min(float(max(cost, 1)), state[3])
            if state[0] < need:
                wait = max(wait, (need - state[0]) / b.rate)
            states.append((state, need if cost > 0 else 0.0))
        if wait > 0:
            return wait
        for state, need in states:
            state[0] -= need
        return 0.0

    def _prune(self, now: float) -> None:
        self._pruned = now
        full = [
            key
            for key, (tokens, stamp, rate, burst) in self._state.items()
            if tokens + (now - stamp) * rate >= burst
        ]
        for key in full:
            del self._state[key]
