"""The throw-away PostgreSQL and Redis of tests/servers.py, used through their fixtures."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.servers import PgServer, RedisServer

_databases: list[str] = []
_redis_urls: list[str] = []


async def test_postgres_gives_an_empty_utf8_database(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT 41 + 1") == 42
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        assert await conn.fetchval(tables) == 0
        assert await conn.fetchval("SELECT $1::text", "Cửa hàng Hoa Mai") == "Cửa hàng Hoa Mai"
    finally:
        await conn.close()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_a_database_of_its_own(pg_url: str, run: int) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith("t_")
        assert name not in _databases
        # in a database shared with the other run this table would exist already
        await conn.execute("CREATE TABLE marker (run int)")
        left = "SELECT count(*) FROM pg_database WHERE datname = any($1::text[])"
        assert await conn.fetchval(left, _databases) == 0, "the earlier test's database was kept"
        _databases.append(name)
    finally:
        await conn.close()


def _client(url: str) -> Redis:
    # One retry, no back-off: a stopped server fails the call at once, and a connection
    # the restarted server no longer knows is replaced by the retry.
    return Redis.from_url(url, retry=Retry(NoBackoff(), 1), socket_timeout=5)


async def _next_message(pubsub: PubSub) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=5)
            if message is not None:
                return message


async def test_redis_set_get_and_pubsub(redis_url: str) -> None:
    client = _client(redis_url)
    try:
        await client.set("greeting", "xin chào")
        assert await client.get("greeting") == "xin chào".encode()
        channel = f"test-{uuid.uuid4().hex}"  # channels are server-wide, not per database
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            assert (await _next_message(pubsub))["type"] == "subscribe"
            assert await client.publish(channel, "ticket 42") == 1
            message = await _next_message(pubsub)
            assert (message["channel"], message["data"]) == (channel.encode(), b"ticket 42")
    finally:
        await client.aclose()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_a_redis_database_of_its_own(redis_url: str, run: int) -> None:
    assert not redis_url.endswith("/0")
    assert redis_url not in _redis_urls
    client = _client(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("left-behind", run)
        _redis_urls.append(redis_url)
    finally:
        await client.aclose()


async def test_redis_stops_and_starts_again_on_the_same_port(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = _client(redis_url)
    try:
        await client.set("before", "1")
        redis_server.stop()
        with pytest.raises(RedisConnectionError):
            await client.ping()
        redis_server.start()
        assert await client.ping()
        assert await client.get("before") is None, "a restarted Redis comes back empty"
        with redis_server.down(), pytest.raises(RedisConnectionError):
            await client.ping()
        assert await client.ping()
    finally:
        await client.aclose()


async def test_postgres_stops_and_starts_again_with_its_data(
    pg_server: PgServer, pg_url: str
) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    try:
        await pool.execute("CREATE TABLE kept (v text)")
        await pool.execute("INSERT INTO kept VALUES ('before the restart')")
        pg_server.stop()
        # the pool's connection was closed by the server, or is seen closed and replaced
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, OSError)):
            await pool.fetchval("SELECT 1")
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(pg_url)
        pg_server.start()
        assert await pool.fetchval("SELECT v FROM kept") == "before the restart"
    finally:
        await pool.close()


@pytest.mark.parametrize("server", [PgServer, RedisServer])
def test_a_server_named_by_the_environment_cannot_be_stopped(
    server: type[PgServer] | type[RedisServer],
) -> None:
    with pytest.raises(pytest.skip.Exception, match=server.variable):
        server("postgresql://127.0.0.1:1/x", None).stop()
