"""Store backends the contract suite runs against, each with a way to make the database
itself refuse a write (so atomicity is tested through the real engine)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SqliteBackend:
    path: Path

    name = "sqlite"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def fail_event_inserts(self, event_type: str) -> None:
        """From now on the database aborts any insert of an event of this type."""
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "CREATE TRIGGER test_fail_events BEFORE INSERT ON events "
                f"WHEN NEW.type = '{event_type}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )

    def heal(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("DROP TRIGGER IF EXISTS test_fail_events")


def make_backend(name: str, tmp_path: Path) -> SqliteBackend:
    if name == "sqlite":
        return SqliteBackend(tmp_path / "store.db")
    raise ValueError(name)


BACKENDS = ["sqlite"]
