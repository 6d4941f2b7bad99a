"""The SQLite files and the data directory are the owner's only: they hold every
customer's messages."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import open_store
from kernel.ids import AgentId
from kernel.models import Presence
from tests.conftest import GatewayFactory


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems start services with: new files readable by everyone."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
async def test_a_new_installation_is_readable_by_its_owner_only(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await make_gateway()
    data = tmp_path / "data"
    db = data / "omnigw.db"
    await gw.commands.set_presence(AgentId("demo"), Presence.AWAY)  # a write: the WAL holds it
    files = {p.name: oct(mode(p)) for p in [db, Path(f"{db}-wal"), Path(f"{db}-shm")]}
    assert files == {n: "0o600" for n in ["omnigw.db", "omnigw.db-wal", "omnigw.db-shm"]}
    assert oct(mode(data)) == "0o700"


@pytest.mark.usefixtures("usual_umask")
async def test_an_existing_database_readable_by_others_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "shared" / "old.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
    for name in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        name.touch()
        name.chmod(0o644)
    store = await open_store(f"sqlite:///{db}")
    try:
        for name in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert oct(mode(name)) == "0o600", name
        # a folder the operator made (and may share with other things) is left as it is
        assert oct(mode(db.parent)) == "0o755"
    finally:
        await store.close()
