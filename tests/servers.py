"""Throw-away PostgreSQL and Redis for tests.

`pg_server` and `redis_server` (session) start a server with tests/db/start-db.sh on free
ports in a world-traversable folder under /tmp the first time a test asks for one, and stop
it at the end of the session; OMNIGW_TEST_PG_URL / OMNIGW_TEST_REDIS_URL name an existing
server to use instead. `pg_url` and `redis_url` give each test a database of its own:

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
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import pytest

SCRIPTS = Path(__file__).resolve().parent / "db"
REDIS_DATABASES = 256  # per-test database numbers 1..255 of our own server, round-robin


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,  # start-db.sh may first have to apt-get install the servers
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{path}"))


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
        _run("ctl.sh", str(self.dir), f"{self.kind}-{verb}")


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
def _started(kind: str, key: str) -> Iterator[tuple[Path, str]]:
    """Start one server with start-db.sh; yield its folder and URL; stop and remove it."""
    # Not pytest's tmp_path: it is 0700, and PostgreSQL runs as user postgres.
    root = tempfile.mkdtemp(prefix=f"omnigw-{kind}-", dir="/tmp")
    os.chmod(root, 0o755)
    folder = Path(root) / "db"
    try:
        last_error: Exception | None = None
        for _ in range(3):  # a port picked as free may be taken before the server binds it
            (port,) = _free_ports(1)
            env = {
                **os.environ,
                "START_PG": "1" if kind == "pg" else "0",
                "START_REDIS": "1" if kind == "redis" else "0",
                "PG_PORT": str(port),
                "REDIS_PORT": str(port),
                "PG_FSYNC": "off",
                "REDIS_DATABASES": str(REDIS_DATABASES),
            }
            try:
                out = _run("start-db.sh", str(folder), env=env)
            except RuntimeError as exc:
                last_error = exc
                _run("stop-db.sh", str(folder))
                continue
            urls = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            break
        else:
            raise RuntimeError(f"the test {kind} server did not start: {last_error}")
        try:
            yield folder, urls[key]
        finally:
            _run("stop-db.sh", str(folder))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if url := os.environ.get(PgServer.variable):
        yield PgServer(url, None)
        return
    with _started("pg", "DATABASE_URL") as (folder, url):
        yield PgServer(url, folder)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if url := os.environ.get(RedisServer.variable):
        yield RedisServer(url, None, databases=_redis_databases(url))
        return
    with _started("redis", "REDIS_URL") as (folder, url):
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
