"""Running as one of several replicas on a shared store (PostgreSQL).

- link.py: the Redis connection replicas tell each other things through (fast, and
  allowed to be lost: nothing durable lives only there).
- leases.py: work one replica at a time does, held by leases in the store and handed
  over on request.
- follower.py: this replica's view kept current with what the others did (their events,
  channels and webhook endpoints changed through their API), woken by Redis, and by a
  timer whenever Redis is absent or unreachable.
- limits.py: rate-limit buckets shared through Redis.

With the embedded SQLite store there is one process, and none of this runs.
"""
