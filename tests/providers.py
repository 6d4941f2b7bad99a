"""What the tests of the provider connectors (Messenger, Zalo) share: a gateway with one
provider channel and a test client, webhook bodies posted to it signed, what it stored
read back, and the JSON fixtures.

Each provider's own folder keeps its wire format: the config, how a body is encoded and
signed, the fixture folder, and the provider's HTTP API faked at httpx's transport with
respx (tests/<provider>/conftest.py).
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import GatewayFactory

Json = dict[str, Any]

# aiohttp's test client wants bodies larger than this as a stream
STREAM_OVER = 512 * 1024


# --- the gateway ----------------------------------------------------------------------------


@dataclass
class ProviderGateway:
    """A started gateway with one provider channel, and a test client for it. Subclasses
    name the channel and say how the provider encodes and signs a webhook body."""

    gw: Gateway
    client: TestClient  # type: ignore[type-arg]

    channel: ClassVar[str]

    def encode(self, payload: Json) -> bytes:
        """A payload as the provider's webhook body."""
        raise NotImplementedError

    def signed_headers(self, body: bytes) -> dict[str, str]:
        """The headers the provider sends with ``body``, its signature among them."""
        raise NotImplementedError

    @property
    def data_dir(self) -> Path:
        return self.gw.settings.server.data_dir

    async def post(
        self, body: bytes | Json, headers: dict[str, str] | None = None
    ) -> ClientResponse:
        """POST a webhook body (signed, unless ``headers`` are given) to the channel."""
        data = body if isinstance(body, bytes) else self.encode(body)
        payload: bytes | io.BytesIO = io.BytesIO(data) if len(data) > STREAM_OVER else data
        return await self.client.post(
            f"/webhooks/{self.channel}",
            data=payload,
            headers=self.signed_headers(data) if headers is None else headers,
        )

    async def deliver(self, body: bytes | Json) -> Json:
        """POST a signed webhook body; the 200 answer."""
        resp = await self.post(body)
        answer: Json = await resp.json()
        assert resp.status == 200, answer
        return answer


class Served:
    """Gateways started from TOML for one test, each with a test client; ``async with``
    closes the clients (the gateways are stopped by the ``make_gateway`` fixture)."""

    def __init__(self, make_gateway: GatewayFactory) -> None:
        self._make_gateway = make_gateway
        self._clients: list[TestClient] = []  # type: ignore[type-arg]

    async def start(self, toml: str) -> tuple[Gateway, TestClient]:  # type: ignore[type-arg]
        gw = await self._make_gateway(toml)
        client = TestClient(TestServer(gw.web_app()))
        await client.start_server()
        self._clients.append(client)
        return gw, client

    async def __aenter__(self) -> Served:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for client in self._clients:
            await client.close()


def toml_options(options: dict[str, Any]) -> str:
    """Keyword options of a test config as TOML lines (for the channel's table)."""
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())


# --- what the gateway stored, through its API -----------------------------------------------


async def conversations(p: ProviderGateway) -> list[Json]:
    page = await get_json(p.client, f"/v1/conversations?channel_id={p.channel}&limit=100")
    items: list[Json] = page["items"]
    return items


async def messages(p: ProviderGateway, conversation_id: str) -> list[Json]:
    page = await get_json(p.client, f"/v1/conversations/{conversation_id}/messages?limit=100")
    items: list[Json] = page["items"]
    return items


async def all_messages(p: ProviderGateway) -> list[Json]:
    """Every message of the channel, in the order they were stored."""
    found = []
    for conv in await conversations(p):
        found.extend(await messages(p, conv["id"]))
    return sorted(found, key=lambda m: m["id"])


async def events(p: ProviderGateway, type_: str) -> list[Json]:
    """The data of every event of one type in the gateway's event log."""
    return [e.data for e in await p.gw.store.events.after(0, 10_000, types=[type_])]


async def reply(p: ProviderGateway, conv_id: str, body: Json) -> str:
    """An agent's reply through the API; its message id."""
    msg = await post_json(p.client, f"/v1/conversations/{conv_id}/messages", body, status=202)
    assert msg["status"] == "pending"
    return str(msg["id"])


async def settled(p: ProviderGateway, message_id: str, within: float = 5.0) -> Json:
    """The message once it is no longer pending."""

    async def check() -> Json | None:
        msg: Json = await get_json(p.client, f"/v1/messages/{message_id}")
        return msg if msg["status"] != "pending" else None

    result: Json = await eventually(check, within=within)
    return result


# --- what the gateway stored, in its SQLite file --------------------------------------------


@contextmanager
def read_only_db(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The gateway's SQLite file, opened read-only."""
    conn = sqlite3.connect(f"file:{data_dir / 'omnigw.db'}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def db_counts(data_dir: Path) -> dict[str, int]:
    """Rows per table, read from the SQLite file (to prove nothing was half-stored)."""
    tables = ["messages", "conversations", "contacts", "identities", "raw_events", "events"]
    with read_only_db(data_dir) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def raw_events(data_dir: Path) -> list[tuple[str, str, str]]:
    """(kind, reason, payload) of every event kept raw."""
    with read_only_db(data_dir) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute("SELECT kind, reason, payload FROM raw_events ORDER BY rowid")
        ]


# --- fixtures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixtures:
    """A folder of webhook bodies in a provider's format, one ``<name>.json`` each."""

    folder: Path

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def read(self, name: str) -> bytes:
        return (self.folder / f"{name}.json").read_bytes()

    def load(self, name: str) -> Json:
        data: Json = json.loads(self.read(name))
        return data
