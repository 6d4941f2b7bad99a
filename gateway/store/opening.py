"""Opening a store: the backend a URL names."""

from __future__ import annotations

from gateway.store.protocols import EventsCallback, Store


async def open_store(url: str, on_events: EventsCallback | None = None) -> Store:
    """Open the backend named by ``url`` (``sqlite:///path``); committed events are handed
    to ``on_events`` in commit order."""
    if url.startswith("sqlite:"):
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(url, on_events=on_events)
    scheme = url.split(":", 1)[0]
    raise ValueError(f"unsupported store url scheme {scheme!r} (expected sqlite:///path)")
