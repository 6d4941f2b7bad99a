"""Storage only: the role protocols a backend implements (`protocols` on the store,
`transaction` inside a unit of work), the records that cross the boundary (`records`),
opening a backend by URL (`opening`), and the backends."""

from gateway.store.opening import open_store
from gateway.store.protocols import Store
from gateway.store.transaction import Tx

__all__ = ["Store", "Tx", "open_store"]
