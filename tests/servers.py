"""Throw-away PostgreSQL and Redis for tests.

`pg_server` and `redis_server` (session) start a server with tests/db/start-db.sh on free
ports in a world-traversable folder under /tmp (tests/db/throwaway.py, which bench/scale.py
uses too) the first time a test asks for one, and stop it at the end of the session;
OMNIGW_TEST_PG_URL / OMNIGW_TEST_REDIS_URL name an existing server to use instead.
`pg_url` and `redis_url` give each test a database of its own:

    async def test_store(pg_url: str, redis_url: str) -> None:
        conn = await asyncpg.connect(pg_url)           # an empty database t_<hex>
        client = redis.asyncio.Redis.from_url(redis_url)  # an empty database number

Fault tests call `pg_server.stop()` / `.start()` (same port, same data) or use
`with redis_server.down(): ...`; these skip the test on a server named by the environment.
They block for the 0.1-0.3 s the script takes: an async test that needs its event loop to
run meanwhile calls them through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from tests.db import throwaway
from tests.db.throwaway import REDIS_DATABASES  # per-test numbers 1..255, round-robin
from tests.db.throwaway import with_path as _with_path


@dataclass
class _Server:
    url: str
    dir: Path | None  # None: a server named by the environment, not ours to stop
    running: bool = field(default=True, init=False)

    kind: ClassVar[str]
    variable: ClassVar[str]

    @property
    def controllable(self) -> bool:
        return self.dir is not None

    def stop(self) -> None:
        self._ctl("stop")
        self.running = False

    def start(self) -> None:
        """Start it again on the same port (PostgreSQL with the same data, Redis empty)."""
        self._ctl("start")
        self.running = True

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _ctl(self, verb: str) -> None:
        if self.dir is None:
            pytest.skip(f"{self.variable} names a server the tests did not start: cannot {verb} it")
        throwaway.run_script("ctl.sh", str(self.dir), f"{self.kind}-{verb}")


@dataclass
class PgServer(_Server):
    """A PostgreSQL server; `url` names its database `postgres` as superuser."""

    kind = "pg"
    variable = "OMNIGW_TEST_PG_URL"


@dataclass
class RedisServer(_Server):
    """A Redis server; `url` names its database 0, which `redis_url` never hands out."""

    kind = "redis"
    variable = "OMNIGW_TEST_REDIS_URL"
    databases: int = REDIS_DATABASES
    _next: Iterator[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._next = itertools.cycle(range(1, self.databases))

    def database(self) -> int:
        return next(self._next)


@contextlib.contextmanager
def _started(kind: str) -> Iterator[tuple[Path, str]]:
    """Start one server (pg or redis); yield its folder and URL; stop and remove it."""
    with throwaway.started(pg=kind == "pg", redis=kind == "redis") as servers:
        url = servers.pg_url if kind == "pg" else servers.redis_url
        assert url is not None
        yield servers.dir, url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if url := os.environ.get(PgServer.variable):
        yield PgServer(url, None)
        return
    with _started("pg") as (folder, url):
        yield PgServer(url, folder)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if url := os.environ.get(RedisServer.variable):
        yield RedisServer(url, None, databases=_redis_databases(url))
        return
    with _started("redis") as (folder, url):
        yield RedisServer(url, folder)


def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A loop of our own, not set as current: the fixture works for sync and async tests alike
    # and leaves pytest-asyncio's loop alone.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A new, empty UTF8 database (t_<hex>) on `pg_server`, dropped after the test.

    From template0: it is pristine whatever template1 holds, and nobody can be connected to
    it, which would make CREATE DATABASE fail. It costs the copy of ~300 small files: 10 to
    100 ms on the development machine, by how busy its disk is.
    """
    if not pg_server.running:  # an earlier fault test failed before starting it again
        pg_server.start()
    name = f"t_{uuid.uuid4().hex[:12]}"
    _pg_admin(pg_server.url, f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    try:
        yield _with_path(pg_server.url, name)
    finally:
        if not pg_server.running:
            pg_server.start()
        # FORCE terminates the connections the test left open (pg_terminate_backend) first
        _pg_admin(pg_server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _redis_databases(url: str) -> int:
    import redis

    with redis.Redis.from_url(url, socket_timeout=10) as client:
        try:
            return int(client.config_get("databases").get("databases", 16))
        except redis.ResponseError:  # CONFIG may be disabled; 16 is Redis's default
            return 16


def _flushdb(url: str) -> None:
    import redis

    with redis.Redis.from_url(url, socket_timeout=10) as client:
        client.flushdb()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of a database number of its own on `redis_server`, emptied before and after.

    Numbers 1..N-1 go round-robin (N = 256 on our server, the server's `databases` on one
    named by OMNIGW_TEST_REDIS_URL: those databases are emptied); tests run one at a time,
    so a number is never shared. Pub/sub channels are server-wide in Redis, not per
    database: a test names its channels uniquely.
    """
    if not redis_server.running:
        redis_server.start()
    url = _with_path(redis_server.url, str(redis_server.database()))
    _flushdb(url)
    try:
        yield url
    finally:
        if not redis_server.running:
            redis_server.start()
        _flushdb(url)
