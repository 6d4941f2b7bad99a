"""The history store: a protocol (`base`) and its backends."""

from gateway.store.base import Store, open_store

__all__ = ["Store", "open_store"]
