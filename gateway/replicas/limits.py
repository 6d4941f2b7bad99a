"""Rate limits shared by every replica through Redis: one token bucket per API token,
buckets by key for webchat's limits (`SharedBuckets`), and the failed logins of each
client address (gateway.api.logins, `SharedFailures`).

For the API, each replica takes tokens from the shared bucket a few at a time (a tenth
of a second's worth) and spends them locally, so a request costs a Redis round trip only
once per chunk. Webchat's buckets are small (a visitor's few frames a second): each take
is one round trip that takes from all of a frame's buckets at once. While Redis cannot be
reached, each replica enforces the whole limit on its own (a client spread over N
replicas then gets up to N times the rate until it is back).
"""

from __future__ import annotations

import asyncio
import time

from redis.exceptions import RedisError

from gateway.replicas.link import RedisLink
from kernel.ratelimit import Bucket, LocalBuckets, RateLimiter, TokenBucket

# KEYS[1]: the bucket; ARGV: rate, burst, wanted. Returns {granted, seconds to wait}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(b[1]) or burst
local stamp = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
if granted > 0 then
  return {granted, '0'}
end
return {0, tostring((1 - tokens) / rate)}
"""

# KEYS[1]: an address's bucket of failed logins; ARGV: rate, burst. Takes one failure (if
# one is left) and returns the seconds until the bucket holds one again ('0': it does).
_FAIL = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(b[1]) or burst
local stamp = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
if tokens >= 1 then
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
if tokens >= 1 then
  return '0'
end
return tostring((1 - tokens) / rate)
"""

ALLOWANCE_TTL = 1.0  # tokens taken from the shared bucket are spent within this, or dropped


class LocalLimits:
    """The limit of one process (no replicas)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.rate = limiter.rate
        self.burst = limiter.burst

    async def wait(self, key: str) -> float:
        return self.limiter.wait(key)


class SharedLimits:
    def __init__(self, link: RedisLink, rate: float, burst: int) -> None:
        self.link = link
        self.rate = rate
        self.burst = burst
        self.chunk = max(1, min(burst, int(rate * 0.1)))
        self.fallback = RateLimiter(rate, burst)
        self._script = link.client.register_script(_TAKE)
        # key -> (tokens taken from the shared bucket, when they were taken)
        self._allowance: dict[str, tuple[int, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        if not self.link.up:
            return self.fallback.wait(key)
        now = time.monotonic()
        held = self._allowance.get(key)
        if held is not None and held[0] > 0 and now - held[1] < ALLOWANCE_TTL:
            self._allowance[key] = (held[0] - 1, held[1])
            return 0.0
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one refill per key at a time
            held = self._allowance.get(key)
            if held is not None and held[0] > 0 and now - held[1] < ALLOWANCE_TTL:
                self._allowance[key] = (held[0] - 1, held[1])
                return 0.0
            try:
                granted, wait = await self._script(
                    keys=[self.link.topic(f"ratelimit:{key}")],
                    args=[self.rate, self.burst, self.chunk],
                )
            except (RedisError, OSError):
                return self.fallback.wait(key)
            granted = int(granted)
            if granted <= 0:
                return max(float(wait), 0.001)
            self._allowance[key] = (granted - 1, time.monotonic())
            if len(self._allowance) > 100_000:
                self._allowance.clear()
                self._locks.clear()
            return 0.0


# KEYS: the buckets; ARGV: cost, then rate and burst of each. Takes `cost` from every
# bucket or from none (cost 0: looks only); returns the seconds to wait as text (0 when
# taken).
_TAKE_ALL = """
local cost = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local have = {}
local wait = 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local b = redis.call('HMGET', KEYS[i], 'tokens', 'stamp')
  local tokens = tonumber(b[1]) or burst
  local stamp = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
  local need = math.min(math.max(cost, 1), burst)
  if tokens < need then
    wait = math.max(wait, (need - tokens) / rate)
  end
  have[i] = tokens
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tokens = have[i]
  if wait == 0 then
    tokens = tokens - math.min(cost, burst)
  end
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'stamp', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(burst / rate) + 60)
end
return tostring(wait)
"""


class SharedBuckets:
    """kernel.ratelimit.Buckets shared by every replica through Redis: one round trip per
    take, every bucket of it at once. While Redis cannot be reached, each replica keeps
    its own (the limits then hold per replica until it is back)."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.fallback = LocalBuckets()
        self._script = link.client.register_script(_TAKE_ALL)

    async def take(self, *buckets: Bucket, cost: int = 1) -> float:
        if not buckets:
            return 0.0
        if not self.link.up:
            return self.fallback.take_now(*buckets, cost=cost)
        args: list[float] = [cost]
        for b in buckets:
            args += [b.rate, b.burst]
        try:
            wait = await self._script(
                keys=[self.link.topic(f"buckets:{b.key}") for b in buckets], args=args
            )
        except (RedisError, OSError):
            return self.fallback.take_now(*buckets, cost=cost)
        return max(float(wait), 0.0)


class LocalFailures:
    """Failed logins per client address, counted in this process (one bucket each)."""

    MAX_KEYS = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    async def take(self, key: str) -> float:
        """Count one failure; the seconds until one more would fit (0.0: one does)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets.clear()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        bucket.wait()  # takes one when there is one
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate


class SharedFailures:
    """Failed logins per client address in one Redis bucket for every replica, so that
    spreading guesses over replicas gains nothing. Failures are rare: each is one round
    trip. While Redis cannot be reached, each process counts on its own."""

    def __init__(self, link: RedisLink, rate: float, burst: int) -> None:
        self.link = link
        self.rate = rate
        self.burst = burst
        self.fallback = LocalFailures(rate, burst)
        self._script = link.client.register_script(_FAIL)

    async def take(self, key: str) -> float:
        if not self.link.up:
            return await self.fallback.take(key)
        try:
            wait = await self._script(
                keys=[self.link.topic(f"logins:{key}")], args=[self.rate, self.burst]
            )
        except (RedisError, OSError):
            return await self.fallback.take(key)
        return max(float(wait), 0.0)
