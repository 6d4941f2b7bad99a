from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.base import Store, open_store
from kernel.events import Event
from tests.store.backends import BACKENDS, SqliteBackend, make_backend


class Recorder:
    """Collects what the store announces after each commit."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: list[Event]) -> None:
        self.events.extend(events)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> SqliteBackend:
    return make_backend(request.param, tmp_path)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def store(backend: SqliteBackend, recorder: Recorder) -> AsyncIterator[Store]:
    s = await open_store(backend.url, on_events=recorder)
    yield s
    await s.close()
