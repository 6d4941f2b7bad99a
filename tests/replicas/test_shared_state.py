"""Two gateways in this process on one PostgreSQL database and one Redis, as two replicas:
what one changes or holds, the other sees. In-process so that Zalo's API can be faked
at httpx's transport (respx) for both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from kernel.ids import ChannelId
from tests.api.helpers import AUTH, eventually, get_json
from tests.conftest import GatewayFactory
from tests.email.conftest import Mailboxes, MailServer
from tests.zalo.conftest import ZaloFake
from tests.zalo.helpers import CHANNEL as ZALO_CHANNEL
from tests.zalo.helpers import REFRESH, USER
from tests.zalo.helpers import config as zalo_config

PROPAGATION = 2.0  # seconds: a change through one replica's API is live on the others

Pair = tuple[Gateway, TestClient, Gateway, TestClient]  # type: ignore[type-arg]


def shared(pg_url: str, redis_url: str) -> str:
    return f'[store]\nurl = "{pg_url}"\n\n[redis]\nurl = "{redis_url}"\n\n'


@pytest.fixture
async def replicas(
    pg_url: str, redis_url: str, make_gateway: GatewayFactory
) -> AsyncIterator[Callable[[str], Awaitable[Pair]]]:
    clients: list[TestClient] = []  # type: ignore[type-arg]

    async def start(extra: str = "") -> Pair:
        toml = shared(pg_url, redis_url) + extra
        a = await make_gateway(toml)
        b = await make_gateway(toml)
        for gw in (a, b):
            client = TestClient(TestServer(gw.web_app()))
            await client.start_server()
            clients.append(client)
        return a, clients[-2], b, clients[-1]

    yield start
    for client in clients:
        await client.close()


async def test_one_zalo_token_refresh_among_replicas(
    replicas: Callable[[str], Awaitable[Pair]], zalo: ZaloFake
) -> None:
    a, _, b, _ = await replicas(zalo_config())
    connectors = [gw.connectors[ChannelId(ZALO_CHANNEL)] for gw in (a, b)]
    zalo.expire()
    zalo.refresh = REFRESH  # the one both replicas hold: it can be spent once

    async def profile(connector: Any) -> Any:
        return await connector._api(lambda token: connector.client.profile(token, USER))

    found = await asyncio.gather(*(profile(c) for c in connectors * 3))
    assert {p.name for p in found} == {"Nguyễn Thị Thu"}
    assert zalo.token.call_count == 1, "the single-use refresh token was spent twice"


async def test_an_attachment_kept_by_one_replica_is_served_by_the_other(
    replicas: Callable[[str], Awaitable[Pair]],
) -> None:
    a, _, _, client_b = await replicas("")
    data = "Hóa đơn tháng 12 — số 0042".encode() * 100
    part = await a.pipeline.save_attachment(
        ChannelId("webchat"), data, name="hoá đơn.pdf", mime="application/pdf"
    )
    assert part.url is not None
    resp = await client_b.get(part.url, headers=AUTH)
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Content-Type"] == "application/pdf"
    assert not list(a.settings.server.data_dir.glob("attachments/**/att_*"))  # in the store


async def within(seconds: float, check: Callable[[], Awaitable[Any]], what: str) -> float:
    started = time.monotonic()
    await eventually(check, within=seconds)
    took = time.monotonic() - started
    assert took < seconds, what
    return took


async def test_changes_through_one_replica_reach_the_other_within_2_seconds(
    replicas: Callable[[str], Awaitable[Pair]],
) -> None:
    _, client_a, _, client_b = await replicas('[[channels]]\nid = "webchat"\ntype = "webchat"\n')

    # A channel added through A's admin API serves on B.
    resp = await client_a.post(
        "/v1/channels", json={"id": "chat2", "type": "webchat"}, headers=AUTH
    )
    assert resp.status == 201, await resp.text()

    async def b_has_channel() -> bool:
        body = await get_json(client_b, "/v1/channels")
        return any(c["id"] == "chat2" for c in body["items"])

    took_channel = await within(PROPAGATION, b_has_channel, "channel")
    async with client_b.ws_connect("/webchat/chat2/ws") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "session"

    # A token created on A works on B; revoked on A, it stops working on B.
    resp = await client_a.post(
        "/v1/tokens", json={"name": "helpdesk", "scopes": ["admin"]}, headers=AUTH
    )
    assert resp.status == 201, await resp.text()
    token = await resp.json()
    bearer = {"Authorization": f"Bearer {token['token']}"}
    assert (await client_b.get("/v1/agents", headers=bearer)).status == 200
    assert (await client_a.delete(f"/v1/tokens/{token['id']}", headers=AUTH)).status == 204

    async def b_refuses() -> bool:
        return (await client_b.get("/v1/agents", headers=bearer)).status == 401

    took_token = await within(PROPAGATION, b_refuses, "revocation")

    # An agent put online on A takes B's next customer.
    resp = await client_a.put(
        "/v1/agents/minh",
        json={"name": "Minh", "capacity": {"total": 3}, "presence": "online"},
        headers=AUTH,
    )
    assert resp.status == 201, await resp.text()
    async with client_b.ws_connect("/webchat/webchat/ws") as ws:
        await ws.receive_json(timeout=5)
        await ws.send_json({"type": "message", "client_id": "c1", "text": "Chào shop"})
        assert (await ws.receive_json(timeout=5))["type"] == "ack"

    async def assigned_to_minh() -> bool:
        body = await get_json(client_b, "/v1/conversations?status=assigned")
        return any(c["assignee_id"] == "minh" for c in body["items"])

    took_agent = await within(PROPAGATION, assigned_to_minh, "agent")

    # A channel removed on A stops on B.
    assert (await client_a.delete("/v1/channels/chat2", headers=AUTH)).status == 204

    async def b_dropped_channel() -> bool:
        return not await b_has_channel()

    took_removal = await within(PROPAGATION, b_dropped_channel, "channel removal")
    print(
        f"\nreached the other replica in: channel {took_channel:.2f}s, revocation "
        f"{took_token:.2f}s, agent {took_agent:.2f}s, channel removal {took_removal:.2f}s"
    )


def _mail(pair: Mailboxes, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Khách {n} <{pair.customer}>"
    msg["To"] = pair.support
    msg["Subject"] = f"Đơn hàng #{n}"
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(f"Chào shop, đơn #{n} của mình chưa tới.")
    return msg


async def test_a_mailbox_is_read_by_one_replica_at_a_time(
    pg_url: str,
    redis_url: str,
    make_gateway: GatewayFactory,
    mail_server: MailServer,
    mailboxes: Mailboxes,
) -> None:
    toml = shared(pg_url, redis_url) + mail_server.channel_toml(mailboxes.support)
    replicas = [await make_gateway(toml), await make_gateway(toml)]

    def holders() -> list[Gateway]:
        return [gw for gw in replicas if gw.keeper is not None and gw.keeper.holds("poll:mail")]

    async def one_holder() -> Gateway | None:
        found = holders()
        return found[0] if len(found) == 1 else None

    holder = await eventually(one_holder, within=10)
    standby = next(gw for gw in replicas if gw is not holder)

    async def inbound() -> list[str]:
        rows = await holder_store.messages.history(  # any replica reads the same store
            ChannelId("mail"), mailboxes.customer, before=None, after=None, limit=100
        )
        return sorted(m.external_id or "" for m in rows)

    holder_store = standby.store
    for n in range(5):
        await mail_server.send(_mail(mailboxes, n), mailboxes.customer, mailboxes.support)
    await eventually(lambda: _count(inbound, 5), within=15)
    assert [gw for gw in replicas if gw.keeper is not None and gw.keeper.holds("poll:mail")] == [
        holder
    ]

    # The holder stops: the other takes the mailbox over and reads on from its checkpoint.
    stopped_at = time.monotonic()
    await holder.close_connections()
    await holder.stop()
    await eventually(lambda: _true(holders() == [standby]), within=10)
    taken_over = time.monotonic() - stopped_at
    for n in range(5, 10):
        await mail_server.send(_mail(mailboxes, n), mailboxes.customer, mailboxes.support)
    await eventually(lambda: _count(inbound, 10), within=15)
    found = await inbound()
    assert len(found) == len(set(found)) == 10, found
    print(f"\nmailbox taken over {taken_over:.2f}s after its reader stopped")


async def _count(read: Callable[[], Awaitable[list[str]]], n: int) -> bool:
    return len(await read()) >= n


async def _true(value: bool) -> bool:
    return value


async def test_a_replica_with_another_secret_key_says_so(
    pg_url: str,
    redis_url: str,
    make_gateway: GatewayFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    toml = shared(pg_url, redis_url)
    await make_gateway(toml)
    assert "secret key is not the one" not in caplog.text
    # Another data directory and no key: none is generated beside the store's, it says so.
    elsewhere = tmp_path / "elsewhere"
    await make_gateway(toml, **{"server.data_dir": str(elsewhere)})
    assert "no secret key" in caplog.text
    assert not (elsewhere / "secret.key").exists()
    # Another key given: it says so.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", "another-replica-secret-key-0123456789abcdef")
    await make_gateway(toml, **{"server.data_dir": str(tmp_path / "third")})
    assert "secret key is not the one the store's secrets were sealed with" in caplog.text


async def test_failed_logins_are_counted_across_replicas(
    replicas: Callable[[str], Awaitable[Pair]],
) -> None:
    # Guesses spread over the replicas use one count: the address is refused on both.
    _, one, _, other = await replicas(
        "[server]\nlogin_failures_per_minute = 1\nlogin_failures_burst = 4\n"
    )

    async def status(client: TestClient, token: str) -> int:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {token}"}
        async with client.get("/v1/conversations", headers=headers) as resp:
            return resp.status

    for guess in range(4):
        assert await status(one if guess % 2 else other, f"guess-{guess}") == 401
    assert await status(one, "guess-4") == 429
    await asyncio.sleep(0.2)  # the other replica is told through Redis
    assert await status(other, "guess-5") == 429
    assert await status(other, "guess-6") == 429


async def test_a_token_revoked_on_one_replica_loses_its_stream_on_the_other(
    replicas: Callable[[str], Awaitable[Pair]],
) -> None:
    _, client_a, b, client_b = await replicas("")
    resp = await client_a.post(
        "/v1/tokens", json={"name": "helpdesk", "scopes": ["integration"]}, headers=AUTH
    )
    token = await resp.json()
    bearer = {"Authorization": f"Bearer {token['token']}"}
    stream = await client_b.get("/v1/events", headers=bearer)
    assert stream.status == 200
    assert (await stream.content.readline()).startswith(b"retry:")
    assert (await client_a.delete(f"/v1/tokens/{token['id']}", headers=AUTH)).status == 204
    started = time.monotonic()

    async def ended() -> None:
        while await stream.content.readline():
            pass

    await asyncio.wait_for(ended(), 10)
    took = time.monotonic() - started
    assert took < PROPAGATION + b.auth.cache_seconds, took
    assert b.lifecycle.streams == 0


async def test_a_ticket_made_on_one_replica_opens_one_stream_on_either(
    replicas: Callable[[str], Awaitable[Pair]],
) -> None:
    _, client_a, _, client_b = await replicas("")

    async def ticket() -> str:
        async with client_a.post("/v1/events/tickets", headers=AUTH) as resp:
            assert resp.status == 201
            made: str = (await resp.json())["ticket"]
            return made

    made = await ticket()
    stream = await client_b.get(f"/v1/events?ticket={made}")
    assert stream.status == 200
    assert (await stream.content.readline()).startswith(b"retry:")
    stream.close()
    again = await client_a.get(f"/v1/events?ticket={made}")
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "invalid_ticket"
    # the same ticket given to both replicas at once opens one stream
    for _ in range(5):
        made = await ticket()
        answers = await asyncio.gather(
            client_a.get(f"/v1/events?ticket={made}"), client_b.get(f"/v1/events?ticket={made}")
        )
        assert sorted(r.status for r in answers) == [200, 401]
        for r in answers:
            r.close()
