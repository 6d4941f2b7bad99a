"""Storage only: the role protocols a backend implements (`protocols`), the records that
cross the boundary (`records`), opening a backend by URL (`opening`), and the backends."""

from gateway.store.opening import open_store
from gateway.store.protocols import Store, Tx

__all__ = ["Store", "Tx", "open_store"]
