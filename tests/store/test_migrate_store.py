"""`omnigw migrate-store`: an embedded SQLite installation copied into an empty
PostgreSQL database answers every API read the same, keeps its event ids (SSE cursors and
webhook ids stay valid), and new events continue after the copied ones. A target that is
not empty is refused, a copy that fails writes nothing, and the CLI never prints a
password."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import load_settings
from gateway.app import Gateway
from gateway.cli import main as omnigw
from gateway.store import open_store
from gateway.store.copying import (
    ATTACHMENT_DATA,
    NOT_COPIED,
    TABLES,
    CopyError,
    TargetNotEmpty,
    copy_sqlite_to_postgres,
)
from gateway.store.postgres.store import run_migrations
from kernel.envelope import InboundMessage, Sender
from kernel.events import Event
from kernel.ids import ChannelId
from kernel.models import TextPart
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.api.sse import read_events
from tests.conftest import ADMIN, AUTH, GatewayFactory
from tests.webhooks.receiver import Delivery, Receiver

Client = TestClient  # type: ignore[type-arg]
ROOT = Path(__file__).resolve().parents[2]
KEY = "migrate-store-secret-key-0123456789abcdef"
SHOP_SECRET = "shop-identity-secret-Qx7"
CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
name = "Lan"
presence = "online"
capacity = { total = 20 }

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 0.05, 0.1, 0.2]
timeout = 2
"""
# The helpdesk hears of messages and conversations (not of channels starting or stopping,
# so that nothing new reaches it until the test writes something).
HOOKED = ["message.*", "conversation.*"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both installations are given the same key, as replicas are.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", KEY)


# A message the helpdesk never accepts: its delivery ends dead (kept as a row).
POISON = "ERR-42"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    # The helpdesk's first three answers are errors too: the delivery log has retries.
    async def flaky(d: Delivery, n: int) -> web.StreamResponse:
        return web.Response(status=503 if n <= 3 or POISON.encode() in d.body else 204)

    r = await Receiver(behaviour=flaky).start()
    yield r
    await r.stop()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'omnigw.db'}"


async def all_events(url: str) -> list[Event]:
    store = await open_store(url)
    try:
        return await store.events.after(0, 1_000_000)
    finally:
        await store.close()


async def pg_rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def pages(client: Client, path: str) -> list[Any]:
    """Every item of a paginated list, read two at a time (so cursors are used)."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        sep = "&" if "?" in path else "?"
        page = await get_json(
            client, f"{path}{sep}limit=2" + (f"&cursor={cursor}" if cursor else "")
        )
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def sse(client: Client, after: int, count: int) -> list[tuple[str | None, Any]]:
    resp = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": str(after)})
    try:
        return [(e.id, e.data) for e in await asyncio.wait_for(read_events(resp, count), 10)]
    finally:
        resp.close()


async def populate(gw: Gateway, client: Client, receiver: Receiver) -> dict[str, Any]:
    """Use an installation as a helpdesk and its customers would; returns what the test
    needs to know of it."""
    hook = await post_json(
        client,
        "/v1/webhooks",
        {"url": receiver.url, "events": HOOKED, "description": "Helpdesk chính"},
        201,
    )
    minh = await client.put(
        "/v1/agents/minh",
        json={
            "name": "Nguyễn Văn Minh",
            "skills": {"billing": 3, "tiếng_việt": 5},
            "languages": ["vi", "en"],
            "capacity": {"total": 10, "webchat": 5},
            "presence": "online",
        },
        headers=AUTH,
    )
    assert minh.status == 201, await minh.text()
    await post_json(
        client,
        "/v1/channels",
        {"id": "shop", "type": "webchat", "identity_secret": SHOP_SECRET},
        201,
    )
    token = await post_json(
        client,
        "/v1/tokens",
        {"name": "Minh's desk", "scopes": ["agent"], "agent_id": "minh"},
        201,
    )

    visitors = []
    for n, (channel, text) in enumerate(
        [
            ("webchat", "Xin chào, tôi muốn hỏi về đơn hàng #1024"),
            ("webchat", "Cho mình hỏi phí vận chuyển ra Đà Nẵng bao nhiêu ạ?"),
            ("shop", "Sản phẩm này còn hàng màu xanh lá không shop?"),
            ("webchat", "Hóa đơn VAT của tôi bị sai mã số thuế"),
        ]
    ):
        ws, _session = await open_visitor(client, channel=channel)
        assert (await say(ws, text, f"c{n}"))["type"] == "ack"
        visitors.append(ws)
    await gw.queue.settle()

    # the cursor a helpdesk's SSE reader holds, taken in the middle
    cursor = await gw.store.events.last_seq()

    convs = (await get_json(client, "/v1/conversations?limit=100"))["items"]
    assert len(convs) == 4 and all(c["status"] == "assigned" for c in convs)
    for n, conv in enumerate(convs):
        await post_json(
            client,
            f"/v1/conversations/{conv['id']}/messages",
            {"text": f"Dạ, em chào anh/chị. Em kiểm tra ngay ạ ({n})"},
            202,
        )
    for n, ws in enumerate(visitors):
        text = f"Cảm ơn em nhiều nhé {n}" + (f" ({POISON})" if n == 3 else "")
        await ws.send_json({"type": "message", "client_id": f"d{n}", "text": text})
        while (await ws.receive_json(timeout=5))["type"] != "ack":
            pass  # the agent's reply came first
    await gw.queue.settle()
    first, second = convs[0]["id"], convs[1]["id"]
    other = "minh" if convs[0]["assignee_id"] == "lan" else "lan"
    await post_json(client, f"/v1/conversations/{first}/transfer", {"agent_id": other})
    await post_json(client, f"/v1/conversations/{second}/resolve", {})
    contact = convs[2]["contact_id"]
    resp = await client.patch(
        f"/v1/contacts/{contact}",
        json={"display_name": "Chị Hương", "attributes": {"hạng": "vàng", "tỉnh": "Huế"}},
        headers=AUTH,
    )
    assert resp.status == 200, await resp.text()

    # a file received on a channel, in a customer's message
    part = await gw.pipeline.save_attachment(
        ChannelId("webchat"), PNG, name="ảnh hóa đơn.png", mime="image/png"
    )
    await gw.pipeline.ingest(
        InboundMessage(
            channel_id=ChannelId("webchat"),
            external_id="with-file",
            sender=Sender(external_id="khach-anh", display_name="Khách gửi ảnh"),
            parts=[TextPart(text="Ảnh hóa đơn đây ạ"), part],
        )
    )
    await gw.store.raw_events.keep(
        ChannelId("webchat"), "unparsed", '{"lạ": "gói tin\x00"}', "no parser for this"
    )
    await gw.queue.settle()

    # every reply sent, every event the helpdesk asked for delivered and logged
    async def replies_sent() -> bool:
        for c in convs:
            for m in await pages(client, f"/v1/conversations/{c['id']}/messages"):
                if m["direction"] == "outbound" and m["status"] != "sent":
                    return False
        return True

    await eventually(replies_sent)
    hooked = [
        e
        for e in await gw.store.events.after(0, 100_000)
        if e.type.startswith(("message.", "conversation."))
    ]
    poisoned = {e.id for e in hooked if POISON in e.data_json}
    assert len(poisoned) == 1
    wanted = {e.id for e in hooked} - poisoned

    async def delivered() -> bool:
        log = await get_json(client, f"/v1/webhooks/{hook['id']}/deliveries?limit=200")
        done = {i["event_id"] for i in log["items"] if i["outcome"] == "succeeded"}
        dead = {i["event_id"] for i in log["items"] if i["outcome"] == "dead"}
        return wanted <= done and poisoned == dead

    await eventually(delivered)
    for ws in visitors:
        await ws.close()
    return {
        "cursor": cursor,
        "hook": hook,
        "token": token["token"],
        "attachment": part.url,
        "conversations": [c["id"] for c in convs],
    }


async def api_reads(client: Client, known: dict[str, Any]) -> dict[str, Any]:
    """Every read of the API a helpdesk makes, answered."""
    reads: dict[str, Any] = {}
    convs = await pages(client, "/v1/conversations")
    reads["conversations"] = convs
    for conv in convs:
        cid = conv["id"]
        reads[f"conversation {cid}"] = await get_json(client, f"/v1/conversations/{cid}")
        reads[f"messages {cid}"] = await pages(client, f"/v1/conversations/{cid}/messages")
        reads[f"routing {cid}"] = await get_json(client, f"/v1/conversations/{cid}/routing")
        contact = conv["contact_id"]
        reads[f"contact {contact}"] = await get_json(client, f"/v1/contacts/{contact}")
        reads[f"timeline {contact}"] = await pages(client, f"/v1/contacts/{contact}/timeline")
        for message in reads[f"messages {cid}"]:
            mid = message["id"]
            reads[f"message {mid}"] = await get_json(client, f"/v1/messages/{mid}")
    reads["agents"] = await pages(client, "/v1/agents")
    reads["agent minh"] = await get_json(client, "/v1/agents/minh")
    reads["queue"] = await get_json(client, "/v1/queue")
    reads["webhooks"] = await get_json(client, "/v1/webhooks")
    for hook in reads["webhooks"]["items"]:
        reads[f"webhook {hook['id']}"] = await get_json(client, f"/v1/webhooks/{hook['id']}")
        reads[f"attempts {hook['id']}"] = await pages(
            client, f"/v1/webhooks/{hook['id']}/deliveries"
        )
    # (`since`: when this process started running the channel)
    channels = (await get_json(client, "/v1/channels"))["items"]
    reads["channels"] = [{k: v for k, v in c.items() if k != "since"} for c in channels]
    shop = await get_json(client, "/v1/channels/shop")
    reads["channel shop"] = {k: v for k, v in shop.items() if k != "since"}
    reads["tokens"] = await get_json(client, "/v1/tokens")
    resp = await client.get(known["attachment"], headers=AUTH)
    assert resp.status == 200
    reads["attachment"] = (await resp.read(), resp.headers["Content-Type"])
    # the agent token made before still works, and sees what it saw
    agent = {"Authorization": f"Bearer {known['token']}"}
    reads["as minh"] = await get_json(client, "/v1/agents/minh", headers=agent)
    return reads


async def test_a_copied_installation_answers_the_same_and_continues(
    pg_url: str, receiver: Receiver, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    # (pg_url first: its database is dropped after the gateways on it stopped)
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        known = await populate(gw, client, receiver)
        before = await api_reads(client, known)
        logged = await gw.store.events.last_seq()
        stream_before = await sse(client, 0, logged)
    await gw.close_connections()
    await gw.stop()
    source = await all_events(sqlite_url(tmp_path))
    delivered_before = receiver.ids()
    # a provider's file still to be fetched when the installation moves
    db = sqlite3.connect(tmp_path / "data" / "omnigw.db")
    with db:
        (message_id,) = db.execute("SELECT id FROM messages ORDER BY id LIMIT 1").fetchone()
        job = (message_id, "shop", 2, 1_900_000_000_000_000, 1_800_000_000_000_000)
        db.execute("INSERT INTO media_downloads VALUES (?, ?, ?, ?, ?)", job)
    db.close()

    report = await copy_sqlite_to_postgres(sqlite_url(tmp_path), pg_url)
    assert report.rows["media_downloads"] == 1
    (copied,) = await pg_rows(pg_url, "SELECT * FROM media_downloads")
    assert (copied["message_id"], copied["channel_id"], copied["attempts"]) == job[:3]
    assert copied["next_at"] == datetime.fromtimestamp(1_900_000_000, UTC)

    last = source[-1].seq
    assert report.last_event_id == last >= logged
    assert report.problems == []
    assert report.rows["events"] == len(source)
    assert report.rows["attachments"] == report.rows[ATTACHMENT_DATA] == 1
    assert report.rows["api_channels"] == 1 and report.rows["api_tokens"] == 1
    assert report.rows["webhook_endpoints"] == 1 and report.rows["webhook_attempts"] >= 8
    assert report.rows["webhook_deliveries"] == 1  # the dead one
    (head,) = await pg_rows(pg_url, "SELECT last FROM event_head")
    assert head["last"] == last
    (stored,) = await pg_rows(pg_url, "SELECT path FROM attachments")
    assert stored["path"] == ""
    raw = await pg_rows(pg_url, "SELECT payload, digest FROM raw_events")
    assert [r["payload"] for r in raw] == ['{"lạ": "gói tin\\u0000"}']

    # a replica on PostgreSQL, with a data directory of its own (no files there)
    replica = await make_gateway(
        CONFIG, **{"store.url": pg_url, "server.data_dir": str(tmp_path / "replica")}
    )
    async with TestClient(TestServer(replica.web_app())) as client:
        after = await api_reads(client, known)
        assert after.keys() == before.keys()
        for key, value in before.items():
            assert after[key] == value, f"{key}: {after[key]} != {value}"

        # the whole log, with the same ids and data
        assert await sse(client, 0, len(source)) == [
            (e.id, json.loads(e.envelope())) for e in source
        ]
        assert stream_before == (await sse(client, 0, logged))

        # a helpdesk resumes from the cursor it held: exactly the events that followed,
        # then what is new (starting the replica announced its channels), ids continuing
        cursor = known["cursor"]
        resp = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": str(cursor)})
        copied = await asyncio.wait_for(read_events(resp, last - cursor), 10)
        assert [(e.id, e.data) for e in copied] == [
            (e.id, json.loads(e.envelope())) for e in source if e.seq > cursor
        ]
        ws, _ = await open_visitor(client)
        assert (await say(ws, "Tôi là khách mới sau khi chuyển sang PostgreSQL", "n1"))[
            "type"
        ] == "ack"
        await replica.queue.settle()
        newer = await replica.store.events.after(last, 1000)
        assert [e.seq for e in newer] == list(range(last + 1, last + 1 + len(newer)))
        fresh = await asyncio.wait_for(read_events(resp, len(newer)), 10)
        resp.close()
        assert [e.id for e in fresh] == [e.id for e in newer]
        received = [e for e in fresh if e.event == "message.received"]
        assert len(received) == 1 and int(received[0].id or 0) > last
        await ws.close()
        # routed and logged, next to the copied decisions
        (newest, *_) = (await get_json(client, "/v1/conversations"))["items"]
        assert newest["id"] not in known["conversations"]
        assert newest["status"] == "assigned"
        routing = await get_json(client, f"/v1/conversations/{newest['id']}/routing")
        assert routing["decisions"]
        await replica.store.raw_events.keep(ChannelId("webchat"), "unparsed", "{}", "again")
        assert len(await pg_rows(pg_url, "SELECT id FROM raw_events")) == 2

        # the helpdesk's webhook goes on after its cursor: only the new events, signed
        # with the secret it was given before, with ids that follow the copied ones
        hooked = {e.id for e in newer if e.type.startswith(("message.", "conversation."))}
        await eventually(lambda: _received(receiver, hooked))
        again = receiver.ids() - delivered_before
        assert again == hooked
        receiver.verified(known["hook"]["secret"])
        attempts = f"/v1/webhooks/{known['hook']['id']}/deliveries"
        copied_attempts = before[f"attempts {known['hook']['id']}"]

        async def logged_after() -> bool:
            log = await pages(client, attempts)
            return {i["event_id"] for i in log[: -len(copied_attempts)]} == hooked

        await eventually(logged_after)
        log = await pages(client, attempts)
        assert log[-len(copied_attempts) :] == copied_attempts
        assert min(i["id"] for i in log[: -len(copied_attempts)]) > copied_attempts[0]["id"]


async def _received(receiver: Receiver, ids: set[str]) -> bool:
    return ids <= {d.id for d in receiver.accepted()}


async def test_a_running_installation_is_copied_as_one_snapshot(
    pg_url: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await make_gateway(CONFIG)
    stop = asyncio.Event()

    async def customers() -> int:
        n = 0
        while not stop.is_set():
            await gw.pipeline.ingest(
                InboundMessage(
                    channel_id=ChannelId("webchat"),
                    external_id=f"w{n}",
                    sender=Sender(external_id=f"khach-{n % 7}"),
                    parts=[TextPart(text=f"Tin nhắn số {n}")],
                )
            )
            n += 1
        return n

    writing = asyncio.create_task(customers())
    await asyncio.sleep(0.05)
    report = await copy_sqlite_to_postgres(sqlite_url(tmp_path), pg_url)
    stop.set()
    written = await writing

    # one moment of the installation: every message copied with the event announcing it,
    # no event of a message that was not copied, the log without gaps
    messages = {r["id"] for r in await pg_rows(pg_url, "SELECT id FROM messages")}
    announced = {
        json.loads(r["data"])["message"]["id"]
        for r in await pg_rows(pg_url, "SELECT data FROM events WHERE type = 'message.received'")
    }
    assert messages == announced
    assert 0 < len(messages) < written
    seqs = [r["seq"] for r in await pg_rows(pg_url, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, report.last_event_id + 1))


# --- refusals, all or nothing, the command line -------------------------------------------


async def small_installation(tmp_path: Path) -> str:
    """A SQLite installation with a little of everything common: contacts, messages,
    routing, an attachment, a secret key check."""
    settings = load_settings(None, env={}, overrides={"server.data_dir": str(tmp_path / "data")})
    gw = Gateway(settings, admin_token=ADMIN)
    await gw.start()
    try:
        for v in range(3):
            for n in range(2):
                await gw.pipeline.ingest(
                    InboundMessage(
                        channel_id=ChannelId("webchat"),
                        external_id=f"v{v}:{n}",
                        sender=Sender(external_id=f"v{v}"),
                        parts=[TextPart(text=f"Chào shop, lần {n}")],
                    )
                )
        await gw.pipeline.save_attachment(ChannelId("webchat"), PNG, name="a.png", mime=None)
        await gw.queue.settle()
    finally:
        await gw.close_connections()
        await gw.stop()
    return sqlite_url(tmp_path)


async def counts(url: str) -> dict[str, int]:
    found = {}
    for name in [t.name for t in TABLES] + [ATTACHMENT_DATA]:
        (row,) = await pg_rows(url, f"SELECT count(*) AS n FROM {name}")
        found[name] = row["n"]
    (head,) = await pg_rows(url, "SELECT last FROM event_head")
    found["event_head"] = head["last"]
    return found


@pytest.mark.parametrize("what", ["a row", "an event id"])
async def test_a_target_that_is_not_empty_is_refused_and_left_alone(
    pg_url: str, tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await small_installation(tmp_path)
    await run_migrations(pg_url)
    if what == "a row":  # what a replica started on the database first writes
        sql = "INSERT INTO channel_state VALUES ('_gateway', 'secret_key_check', '\"x\"', now())"
    else:
        sql = "UPDATE event_head SET last = 7"
    await pg_rows(pg_url, sql)
    there = await counts(pg_url)

    with pytest.raises(TargetNotEmpty) as refused:
        await copy_sqlite_to_postgres(source, pg_url)
    named = "channel_state (1 row)" if what == "a row" else "event_head.last = 7"
    assert named in str(refused.value)

    status = await asyncio.to_thread(omnigw, ["migrate-store", "--from", source, "--to", pg_url])
    assert status == 1
    out, err = capsys.readouterr()
    assert named in err and "not empty" in err and out == ""
    assert await counts(pg_url) == there


async def test_a_copy_that_fails_writes_nothing(pg_url: str, tmp_path: Path) -> None:
    source = await small_installation(tmp_path)
    db = sqlite3.connect(urlsplit(source).path[1:])
    # PostgreSQL's jsonb cannot hold a NUL character: this message cannot be copied
    (bad,) = db.execute("SELECT id FROM messages ORDER BY id DESC LIMIT 1").fetchone()
    db.execute(
        "UPDATE messages SET parts = ? WHERE id = ?", ('[{"type":"text","text":"a\\u0000"}]', bad)
    )
    db.commit()
    db.close()
    with pytest.raises(CopyError) as failed:
        await copy_sqlite_to_postgres(source, pg_url)
    assert "messages" in str(failed.value) and bad in str(failed.value)
    assert set((await counts(pg_url)).values()) == {0}


async def test_missing_source_and_files(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(CopyError, match="no SQLite database"):
        await copy_sqlite_to_postgres(f"sqlite:///{tmp_path / 'nothing.db'}", pg_url)
    assert not (tmp_path / "nothing.db").exists()

    source = await small_installation(tmp_path)
    for found in (tmp_path / "data" / "attachments").rglob("att_*"):
        found.unlink()
    report = await copy_sqlite_to_postgres(source, pg_url)
    assert report.rows["attachments"] == 1 and report.rows[ATTACHMENT_DATA] == 0
    (problem,) = report.problems
    assert "is missing" in problem


def test_every_column_of_both_schemas_is_accounted_for(tmp_path: Path, pg_url: str) -> None:
    """A column added to one backend's schema and not copied fails here."""
    db = sqlite3.connect(tmp_path / "s.db")
    from gateway.store.sqlite.schema import migrate

    migrate(db)
    sqlite_tables = {
        name
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name not in ("schema_migrations", "sqlite_sequence")
    }
    assert sqlite_tables - NOT_COPIED == {t.name for t in TABLES}
    assert sqlite_tables >= NOT_COPIED  # none of them gone unnoticed
    for table in TABLES:
        columns = {r[1] for r in db.execute(f"PRAGMA table_info({table.name})")}
        assert columns == set(table.columns), table.name

    async def pg_columns() -> dict[str, set[str]]:
        await run_migrations(pg_url)
        found: dict[str, set[str]] = {}
        for r in await pg_rows(
            pg_url,
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'",
        ):
            found.setdefault(r["table_name"], set()).add(r["column_name"])
        return found

    pg = asyncio.run(pg_columns())
    # PostgreSQL's own: the event log's head, routing's version, leases, file bytes
    own = {"schema_migrations", "event_head", "routing_state", "leases", ATTACHMENT_DATA}
    assert set(pg) - own == sqlite_tables  # the tables not copied included
    extra = {"messages": {"lease_owner", "lease_until"}}
    for table in TABLES:
        assert pg[table.name] - extra.get(table.name, set()) == set(table.columns), table.name


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


async def test_the_command_line(pg_url: str, tmp_path: Path) -> None:
    source = await small_installation(tmp_path)
    # the test server trusts loopback: any password is accepted, and must never be shown
    password = "Pa55-w0rd-never-shown"
    target = _with_password(pg_url, password)

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    status, out, err = await run("migrate-store", "--from", source, "--to", target)
    assert status == 0, err
    assert password not in out + err
    assert ":***@" in out
    rows = {
        words[0]: int(words[1])
        for words in (line.split() for line in out.splitlines() if line.startswith("    "))
    }
    assert rows["messages"] == 6 and rows["conversations"] == 3
    assert rows["attachments"] == rows["attachment_data"] == 1
    events = await all_events(source)
    assert f"last event id: {events[-1].seq} " in out
    (head,) = await pg_rows(pg_url, "SELECT last FROM event_head")
    assert head["last"] == events[-1].seq

    status, out, err = await run("migrate-store", "--from", source, "--to", target)
    assert status == 1
    assert "not empty" in err and password not in out + err

    status, _out, err = await run("migrate-store", "--from", source, "--to", "mysql://x@y/z")
    assert status == 2 and "PostgreSQL" in err
    status, _out, err = await run("migrate-store", "--from", "/a/path.db", "--to", target)
    assert status == 2 and password not in err
