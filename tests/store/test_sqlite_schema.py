"""SQLite-only: versioned migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store.base import open_store
from gateway.store.sqlite import schema


def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


async def test_an_old_database_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert _versions(path) == [1]
    monkeypatch.undo()
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert _versions(path) == [m[0] for m in schema.MIGRATIONS]
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "conversations_recipient" in names


async def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    with pytest.raises(schema.SchemaTooNew, match="upgrade the gateway"):
        await open_store(f"sqlite:///{path}")


@pytest.mark.parametrize(
    "url", ["sqlite://", "postgres://x", "sqlite:///x.db?synchronous=sometimes"]
)
async def test_bad_store_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"url|synchronous"):
        await open_store(url)
