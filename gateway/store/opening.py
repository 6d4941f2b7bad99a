"""Opening a store: the backend a URL names."""

from __future__ import annotations

from collections.abc import Callable

from gateway.store.protocols import EventsCallback, Store


async def open_store(
    url: str,
    on_events: EventsCallback | None = None,
    *,
    pool_size: int = 10,
    lease_seconds: float = 10.0,
    on_commit: Callable[[], None] | None = None,
) -> Store:
    """Open the backend named by ``url`` (``sqlite:///path``, ``postgresql://...``);
    committed events are handed to ``on_events`` in commit order. ``pool_size`` and
    ``lease_seconds`` apply to PostgreSQL (how many connections a process opens for
    reads; how long a process that stopped answering keeps its work; ``on_commit`` is
    called after this process committed events, for the other processes to hear of)."""
    if url.startswith("sqlite:"):
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(url, on_events=on_events)
    if url.startswith(("postgresql:", "postgres:")):
        from gateway.store.postgres import PostgresStore

        return await PostgresStore.open(
            url,
            on_events=on_events,
            pool_size=pool_size,
            lease_seconds=lease_seconds,
            on_commit=on_commit,
        )
    scheme = url.split(":", 1)[0]
    raise ValueError(
        f"unsupported store url scheme {scheme!r} (expected sqlite:///path or postgresql://...)"
    )
