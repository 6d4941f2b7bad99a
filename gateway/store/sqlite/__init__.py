"""The embedded SQLite backend."""

from gateway.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
