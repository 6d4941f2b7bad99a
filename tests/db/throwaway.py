"""Throw-away PostgreSQL and Redis servers on free loopback ports, started with
start-db.sh in a world-traversable folder under /tmp and removed afterwards.

The test fixtures (tests/servers.py) and the benchmarks (bench/scale.py) both start their
servers here; nothing in this module needs pytest.

    with started(pg=True, redis=True, pg_fsync=True) as servers:
        servers.pg_url, servers.redis_url, servers.pg_pid(), servers.redis_pid()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SCRIPTS = Path(__file__).resolve().parent
REDIS_DATABASES = 256


def free_ports(n: int) -> list[int]:
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


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run one of this folder's scripts; its stdout, or RuntimeError with its stderr."""
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


def with_path(url: str, path: str) -> str:
    """The URL with its path replaced: a database name or a Redis database number."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{path}"))


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Servers:
    """What `started` runs: `pg_url` names database `postgres` as superuser, `redis_url`
    database 0; None for a server not asked for."""

    dir: Path
    pg_url: str | None
    redis_url: str | None

    def pg_pid(self) -> int | None:
        """The postmaster's process id (its backends are its children)."""
        return _pid(self.dir / "pg" / "data" / "postmaster.pid")

    def redis_pid(self) -> int | None:
        return _pid(self.dir / "redis" / "redis.pid")


@contextlib.contextmanager
def started(
    *,
    pg: bool = True,
    redis: bool = True,
    pg_fsync: bool = False,
    redis_databases: int = REDIS_DATABASES,
) -> Iterator[Servers]:
    """Start the servers asked for with start-db.sh; yield them; stop and remove them.

    `pg_fsync=False` (tests) trades durability for speed; a benchmark comparing with
    SQLite's `synchronous=full` asks for True.
    """
    # Not pytest's tmp_path or mkdtemp's default mode: PostgreSQL runs as user postgres.
    root = tempfile.mkdtemp(prefix="omnigw-db-", dir="/tmp")
    os.chmod(root, 0o755)
    folder = Path(root) / "db"
    try:
        last_error: Exception | None = None
        for _ in range(3):  # a port picked as free may be taken before the server binds it
            pg_port, redis_port = free_ports(2)
            env = {
                **os.environ,
                "START_PG": "1" if pg else "0",
                "START_REDIS": "1" if redis else "0",
                "PG_PORT": str(pg_port),
                "REDIS_PORT": str(redis_port),
                "PG_FSYNC": "on" if pg_fsync else "off",
                "REDIS_DATABASES": str(redis_databases),
            }
            try:
                out = run_script("start-db.sh", str(folder), env=env)
            except RuntimeError as exc:
                last_error = exc
                run_script("stop-db.sh", str(folder))
                continue
            urls = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            break
        else:
            raise RuntimeError(f"the throw-away servers did not start: {last_error}")
        try:
            yield Servers(folder, urls.get("DATABASE_URL"), urls.get("REDIS_URL"))
        finally:
            run_script("stop-db.sh", str(folder))
    finally:
        shutil.rmtree(root, ignore_errors=True)
