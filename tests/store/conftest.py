from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.domain.assignments import Assignments
from gateway.domain.clocks import Clocks
from gateway.domain.contacts import Contacts
from gateway.domain.inbox import Inbox
from gateway.domain.outbox import Outbox
from gateway.domain.state import RoutingState
from gateway.store import Store, open_store
from kernel.events import Event
from routing.settings import RoutingSettings
from tests.store.backends import BACKENDS, Backend, PostgresBackend, SqliteBackend


class Recorder:
    """Collects what the store announces after each commit."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: list[Event]) -> None:
        self.events.extend(events)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@dataclass
class Domain:
    """The domain's services over one store, as the gateway wires them."""

    store: Store
    inbox: Inbox
    outbox: Outbox
    assignments: Assignments
    contacts: Contacts

    @classmethod
    def over(
        cls, store: Store, routing: RoutingSettings | None = None, clocks: Clocks | None = None
    ) -> Domain:
        state = RoutingState(routing or RoutingSettings(), clocks=clocks)
        return cls(
            store, Inbox(store, state), Outbox(store), Assignments(store, state), Contacts(store)
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("pg_url"))
    return SqliteBackend(tmp_path / "store.db")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def store(backend: Backend, recorder: Recorder) -> AsyncIterator[Store]:
    s = await open_store(backend.url, on_events=recorder)
    yield s
    await s.close()


@pytest.fixture
def domain(store: Store) -> Domain:
    return Domain.over(store)
