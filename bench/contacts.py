"""Finding contacts among a million: GET /v1/contacts by each kind of search, through the
HTTP API of a real `omnigw serve`, on SQLite and on PostgreSQL.

    .venv/bin/python bench/contacts.py                      # 1,000,000 contacts, both stores
    .venv/bin/python bench/contacts.py --contacts 100000 --backend sqlite
    .venv/bin/python bench/contacts.py --help

1. Fill: the store is created empty by the gateway's own migrations, then the contacts,
   their identities and the words of their folded names are written straight into the
   tables (SQLite: executemany in one transaction with synchronous=OFF; PostgreSQL: COPY),
   with the same folding as the gateway (kernel.text.fold_name / name_tails). Vietnamese
   names drawn with the real frequency of family names (Nguyễn about 38%), middle names and
   given names; 70% have a phone, 30% an e-mail; one identity each, on webchat, Zalo,
   Facebook or e-mail.
2. Plans: the SQL of each kind of search (gateway/store/contact_search.py) is explained by
   the database: every kind must read an index, never scan the contacts.
3. Serve and measure: `omnigw serve` on the filled store; one client sends the requests of
   each kind one after the other (so latency is the server's, not a queue's) and keeps
   p50 / p99 / max. The same client against a bare aiohttp handler answering a page of the
   same size (`--role bare`) gives the floor; ratio = gateway p50 / bare p50.

The last line of the output is a JSON summary. Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    ServerProcess,
    gateway_server,
    machine_facts,
    percentiles,
    serve_until_signalled,
)

ADMIN_TOKEN = "ogw_admin_bench_" + uuid.uuid4().hex
CHANNELS = (("webchat", "webchat"), ("zalo-oa", "zalo"), ("fb-page", "facebook"), ("mail", "email"))

# Family names with their share of the population (the rest spread over the last ones).
FAMILY = (
    ("Nguyễn", 38.4),
    ("Trần", 11.0),
    ("Lê", 9.5),
    ("Phạm", 7.1),
    ("Hoàng", 5.1),
    ("Huỳnh", 5.0),
    ("Phan", 4.5),
    ("Vũ", 3.9),
    ("Võ", 3.0),
    ("Đặng", 2.1),
    ("Bùi", 2.0),
    ("Đỗ", 1.4),
    ("Hồ", 1.3),
    ("Ngô", 1.3),
    ("Dương", 1.0),
    ("Lý", 0.5),
    ("Đào", 0.4),
    ("Đoàn", 0.4),
    ("Trương", 0.4),
    ("Lâm", 0.3),
    ("Mai", 0.3),
    ("Trịnh", 0.3),
    ("Cao", 0.3),
    ("Tạ", 0.2),
    ("Quách", 0.1),
)
MIDDLE = (
    "Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Thu", "Hoàng", "Xuân",
    "Kim", "Bảo", "Gia", "Phương", "Thùy", "Anh", "Công", "Đình", "Mỹ",
)  # fmt: skip
GIVEN = (
    "An", "Anh", "Bảo", "Bình", "Châu", "Chi", "Cường", "Dũng", "Duy", "Dương", "Đạt",
    "Đức", "Giang", "Hà", "Hải", "Hạnh", "Hiền", "Hiếu", "Hoa", "Hòa", "Hùng", "Huy",
    "Hương", "Khánh", "Khoa", "Lan", "Linh", "Long", "Mai", "Minh", "My", "Nam", "Nga",
    "Ngân", "Ngọc", "Nhung", "Phong", "Phúc", "Phương", "Quân", "Quang", "Quỳnh", "Sơn",
    "Tâm", "Thảo", "Thắng", "Thành", "Thịnh", "Thu", "Thủy", "Tiến", "Trang", "Trung",
    "Tú", "Tuấn", "Tùng", "Uyên", "Vân", "Việt", "Vy", "Yến",
)  # fmt: skip


# =========================================================================================
# The contacts
# =========================================================================================


def people(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """``n`` contacts, oldest first, the same for the same seed."""
    from kernel.ids import new_contact_id
    from kernel.text import fold_name, name_tails

    rng = random.Random(seed)
    families = [f for f, _ in FAMILY]
    weights = [w for _, w in FAMILY]
    start_us = int((time.time() - 3 * 365 * 86400) * 1_000_000)
    step = (3 * 365 * 86400 * 1_000_000) // max(n, 1)
    for i in range(n):
        name = None
        if rng.random() < 0.95:
            words = [rng.choices(families, weights)[0], rng.choice(MIDDLE)]
            if rng.random() < 0.15:
                words.append(rng.choice(MIDDLE))
            words.append(rng.choice(GIVEN))
            name = " ".join(words)
        phone = f"+849{rng.randrange(10**8):08d}" if rng.random() < 0.7 else None
        channel, kind = CHANNELS[i % len(CHANNELS)]
        email = f"khach{i}@example.vn" if kind == "email" or rng.random() < 0.1 else None
        if kind == "email":
            external = email
        elif kind == "zalo":
            external = str(rng.randrange(10**18, 10**19))
        elif kind == "facebook":
            external = str(rng.randrange(10**15, 10**16))
        else:
            external = f"v_{uuid.UUID(int=rng.getrandbits(128)).hex}"
        yield {
            "id": new_contact_id(),
            "name": name,
            "name_key": fold_name(name),
            "tails": name_tails(name),
            "phone": phone,
            "email": email,
            "created_at": start_us + i * step,
            "channel": channel,
            "channel_type": kind,
            "external_id": external,
        }


def fill_sqlite(db: Path, n: int, seed: int, known: Known) -> float:
    """Write ``n`` contacts straight into the tables of a migrated store; seconds taken."""
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    conn.execute("BEGIN")
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        conn.executemany(
            "INSERT INTO contacts (id, display_name, phone, phone_verified, email, "
            "email_verified, created_at, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p["id"],
                    p["name"],
                    p["phone"],
                    int(p["phone"] is not None),
                    p["email"],
                    int(p["channel_type"] == "email"),
                    p["created_at"],
                    p["name_key"],
                )
                for p in batch
            ],
        )
        conn.executemany(
            "INSERT INTO identities (channel_id, external_id, channel_type, contact_id, "
            "original_contact_id, display_name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p["channel"],
                    p["external_id"],
                    p["channel_type"],
                    p["id"],
                    p["id"],
                    p["name"],
                    p["created_at"],
                )
                for p in batch
            ],
        )
        conn.executemany(
            "INSERT INTO contact_names (tail, contact_id) VALUES (?, ?)",
            [(t, p["id"]) for p in batch for t in p["tails"]],
        )
        batch.clear()

    for person in people(n, seed):
        known.see(person)
        batch.append(person)
        if len(batch) >= 20_000:
            flush()
    flush()
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


async def fill_postgres(url: str, n: int, seed: int, known: Known) -> float:
    import asyncpg

    from gateway.store.postgres.database import setup_connection

    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    await setup_connection(conn)
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        await conn.copy_records_to_table(
            "contacts",
            columns=[
                "id",
                "display_name",
                "phone",
                "phone_verified",
                "email",
                "email_verified",
                "created_at",
                "name_key",
            ],
            records=[
                (
                    p["id"],
                    p["name"],
                    p["phone"],
                    p["phone"] is not None,
                    p["email"],
                    p["channel_type"] == "email",
                    p["created_at"],
                    p["name_key"],
                )
                for p in batch
            ],
        )
        await conn.copy_records_to_table(
            "identities",
            columns=[
                "channel_id",
                "external_id",
                "channel_type",
                "contact_id",
                "original_contact_id",
                "display_name",
                "created_at",
            ],
            records=[
                (
                    p["channel"],
                    p["external_id"],
                    p["channel_type"],
                    p["id"],
                    p["id"],
                    p["name"],
                    p["created_at"],
                )
                for p in batch
            ],
        )
        await conn.copy_records_to_table(
            "contact_names",
            columns=["tail", "contact_id"],
            records=[(t, p["id"]) for p in batch for t in p["tails"]],
        )
        batch.clear()

    try:
        for person in people(n, seed):
            known.see(person)
            batch.append(person)
            if len(batch) >= 20_000:
                await flush()
        await flush()
        await conn.execute("VACUUM ANALYZE contacts, identities, contact_names")
    finally:
        await conn.close()
    return time.perf_counter() - started


# =========================================================================================
# What is searched
# =========================================================================================


def samples(rng: random.Random, found: dict[str, list[Any]], k: int) -> dict[str, list[str]]:
    """Query strings of each kind, ``k`` each, from values the store holds."""
    names = [n for n in found["names"] if n]
    phones = found["phones"]
    kinds: dict[str, list[str]] = {}

    def phone_form(e164: str) -> str:
        local = "0" + e164[3:]
        forms = (e164, e164[1:], local, f"{local[:4]} {local[4:7]} {local[7:]}")
        return rng.choice(forms)

    kinds["q: full name"] = [f"q={quote(rng.choice(names).lower())}" for _ in range(k)]
    kinds["q: name without diacritics"] = ["q=" + quote(_bare(rng.choice(names))) for _ in range(k)]
    kinds["q: middle + start of given"] = []
    for _ in range(k):
        words = rng.choice(names).split()
        kinds["q: middle + start of given"].append(
            "q=" + quote(f"{_bare(words[-2])} {_bare(words[-1])[:2]}")
        )
    common = ["nguyen", "tran", "le", "van", "thi", "an", "ng", "h"]
    kinds["q: one common word or prefix"] = [f"q={rng.choice(common)}" for _ in range(k)]
    kinds["phone (any form)"] = [f"phone={quote(phone_form(rng.choice(phones)))}" for _ in range(k)]
    kinds["email"] = [f"email={quote(rng.choice(found['emails']))}" for _ in range(k)]
    kinds["external_id"] = [
        f"external_id={quote(rng.choice(found['externals']))}" for _ in range(k)
    ]
    kinds["channel_id (first page)"] = [f"channel_id={rng.choice(CHANNELS)[0]}" for _ in range(k)]
    kinds["no filter (first page)"] = ["" for _ in range(k)]
    return kinds


def _bare(text: str) -> str:
    from kernel.text import fold_name

    return fold_name(text)


class Known:
    """Values of one contact in ``every``, kept while filling: what the searches ask for."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.seen = 0
        self.values: dict[str, list[Any]] = {
            "names": [],
            "phones": [],
            "emails": [],
            "externals": [],
        }

    def see(self, p: dict[str, Any]) -> None:
        self.seen += 1
        if self.seen % self.every:
            return
        self.values["names"].append(p["name"])
        if p["phone"]:
            self.values["phones"].append(p["phone"])
        if p["email"]:
            self.values["emails"].append(p["email"])
        self.values["externals"].append(p["external_id"])


# =========================================================================================
# Plans: an index, not a scan
# =========================================================================================


def plan_queries() -> dict[str, Any]:
    from gateway.store.contact_search import ContactQuery

    return {
        "q: several words": ContactQuery(q="nguyen van an"),
        "q: one word prefix": ContactQuery(q="ng"),
        "phone": ContactQuery(phone="+84912345678"),
        "email": ContactQuery(email="khach1@example.vn"),
        "external_id": ContactQuery(external_id="123"),
        "channel_id": ContactQuery(channel_id="webchat"),
        "nothing": ContactQuery(),
        "q + channel_id": ContactQuery(q="tran thi", channel_id="mail"),
    }


def sqlite_plans(db: Path) -> dict[str, str]:
    from gateway.store.contact_search import plan

    conn = sqlite3.connect(db)
    out = {}
    for label, query in plan_queries().items():
        p = plan(query, None, 50)
        rows = conn.execute(f"EXPLAIN QUERY PLAN {p.sql}", p.args).fetchall()
        out[label] = "; ".join(str(r[-1]) for r in rows)
    conn.close()
    return out


async def postgres_plans(url: str) -> dict[str, str]:
    import asyncpg

    from gateway.store.contact_search import numbered, plan

    conn = await asyncpg.connect(url)
    out = {}
    try:
        for label, query in plan_queries().items():
            p = plan(query, None, 50, postgres=True)
            rows = await conn.fetch(f"EXPLAIN {numbered(p.sql)}", *p.args)
            out[label] = "; ".join(r[0].strip() for r in rows if "Scan" in r[0] or "Join" in r[0])
    finally:
        await conn.close()
    return out


def scans(plans: dict[str, str]) -> list[str]:
    """Kinds whose plan reads a whole table."""
    bad = []
    for label, text in plans.items():
        lowered = text.lower()
        if ("scan c" in lowered and "using" not in lowered) or "seq scan" in lowered:
            bad.append(label)
    return bad


# =========================================================================================
# Measuring
# =========================================================================================


async def measure(
    base: str, kinds: dict[str, list[str]], token: str | None, warmup: int
) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        for label, queries in kinds.items():
            for q in queries[:warmup]:
                async with session.get(f"{base}/v1/contacts?{q}") as resp:
                    await resp.read()
            samples_ns = []
            items = 0
            for q in queries:
                t0 = time.perf_counter_ns()
                async with session.get(f"{base}/v1/contacts?{q}") as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{label}: {resp.status} {body[:300]!r}")
                samples_ns.append(time.perf_counter_ns() - t0)
                if token:
                    items += len(json.loads(body)["items"])
            results[label] = {**percentiles(samples_ns, (50, 99)), "items": items / len(queries)}
        # a later page: the cursor of the first
        if token:
            later = []
            for word in ("nguyen", "ng", "van"):
                async with session.get(f"{base}/v1/contacts?q={word}") as resp:
                    cursor = (await resp.json())["next_cursor"]
                for _ in range(max(1, len(next(iter(kinds.values()))) // 3)):
                    t0 = time.perf_counter_ns()
                    async with session.get(f"{base}/v1/contacts?q={word}&cursor={cursor}") as resp:
                        page = await resp.json()
                    later.append(time.perf_counter_ns() - t0)
                    cursor = page["next_cursor"] or cursor
            results["q: one word, pages after the first"] = percentiles(later, (50, 99))
    return results


def bare_main(body_path: str) -> int:
    from aiohttp import web

    body = Path(body_path).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/contacts", handler)
    serve_until_signalled(app, "127.0.0.1", "bare aiohttp")
    return 0


def gateway_config(path: Path, store_url: str) -> None:
    path.write_text(
        f"""\
[server]
demo_page = false

[store]
url = "{store_url}"

[[channels]]
id = "webchat"
type = "webchat"
""",
        encoding="utf-8",
    )


def serve(python: str, work: Path, label: str, store_url: str) -> ServerProcess:
    config = work / f"omnigw-{label}.toml"
    gateway_config(config, store_url)
    data_dir = work / f"data-{label}"
    data_dir.mkdir(exist_ok=True)
    server = gateway_server(
        f"gateway ({label})",
        python,
        config,
        data_dir,
        ADMIN_TOKEN,
        work / f"gateway-{label}.stderr.log",
    )
    server.start(timeout=120)
    return server


# =========================================================================================
# Orchestration
# =========================================================================================


async def open_and_close(url: str) -> None:
    """Create the schema with the gateway's own migrations."""
    from gateway.store import open_store

    store = await open_store(url)
    await store.close()


def run_backend(args: argparse.Namespace, work: Path, backend: str) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "contacts": args.contacts}
    known = Known(args.contacts // 20_000)
    pg = None
    if backend == "sqlite":
        db = work / "contacts.db"
        url = f"sqlite:///{db}"
        asyncio.run(open_and_close(url))
        out["fill_seconds"] = round(fill_sqlite(db, args.contacts, args.seed, known), 1)
        out["plans"] = sqlite_plans(db)
        out["db_bytes"] = db.stat().st_size
    else:
        pg_url = args.pg_url
        if not pg_url:
            from tests.servers import _started

            pg = _started("pg", "DATABASE_URL")
            _, pg_url = pg.__enter__()
        url = asyncio.run(_new_database(pg_url))
        asyncio.run(open_and_close(url))
        filled = fill_postgres(url, args.contacts, args.seed, known)
        out["fill_seconds"] = round(asyncio.run(filled), 1)
        out["plans"] = asyncio.run(postgres_plans(url))
    out["scans"] = scans(out["plans"])
    print(f"[{backend}] filled {args.contacts:,} contacts in {out['fill_seconds']} s", flush=True)
    for label, text in out["plans"].items():
        print(f"[{backend}]   plan {label}: {text}", flush=True)
    try:
        rng = random.Random(args.seed + 1)
        kinds = samples(rng, known.values, args.requests)
        server = serve(args.python, work, backend, url)
        try:
            base = f"http://127.0.0.1:{server.port}"
            out["gateway"] = asyncio.run(measure(base, kinds, ADMIN_TOKEN, args.warmup))
            body = asyncio.run(_one_page(base))
        finally:
            server.stop()
        page_file = work / "page.json"
        page_file.write_bytes(body)
        bare = ServerProcess(
            "bare aiohttp",
            [args.python, str(Path(__file__).resolve()), "--role", "bare", str(page_file)],
            port_pattern=r"listening on http://[^:]+:(\d+)",
            stderr_path=work / "bare.stderr.log",
        )
        bare.start()
        try:
            floor = asyncio.run(
                measure(
                    f"http://127.0.0.1:{bare.port}",
                    {"bare": ["q=x"] * args.requests},
                    None,
                    args.warmup,
                )
            )["bare"]
        finally:
            bare.stop()
        out["bare"] = floor
        out["page_bytes"] = len(body)
    finally:
        if pg is not None:
            pg.__exit__(None, None, None)
    return out


async def _new_database(admin_url: str) -> str:
    import asyncpg

    name = f"bench_contacts_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _one_page(base: str) -> bytes:
    import aiohttp

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.get(f"{base}/v1/contacts?q=nguyen") as resp,
    ):
        return await resp.read()


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        floor = r["bare"]
        print(
            f"\n{r['backend']}: {r['contacts']:,} contacts, filled in {r['fill_seconds']} s; "
            f"bare aiohttp p50 {floor['p50']} ms / p99 {floor['p99']} ms "
            f"(a page of {r['page_bytes']:,} bytes)"
        )
        print(
            f"  {'search':40} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'items':>6}"
            f" {'p50 ratio':>9}"
        )
        for label, m in r["gateway"].items():
            ratio = m["p50"] / floor["p50"] if floor["p50"] else float("nan")
            items = m.get("items")
            shown = f"{items:6.1f}" if items is not None else "     -"
            print(
                f"  {label:40} {m['p50']:8.2f} {m['p99']:8.2f} {m['max']:8.2f} {shown} {ratio:9.1f}"
            )
        print(f"  plans reading a whole table: {r['scans'] or 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--pg-url",
        default="",
        help="a PostgreSQL server to create the database on (default: a throw-away one)",
    )
    parser.add_argument("--work-dir", default="", help="keep the databases and logs here")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--role", default="", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.role == "bare":
        return bare_main(rest[0])
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    with tempfile.TemporaryDirectory(prefix="omnigw-bench-contacts-") as tmp:
        for backend in backends:
            work = Path(args.work_dir or tmp) / backend
            work.mkdir(parents=True, exist_ok=True)
            results.append(run_backend(args, work, backend))
    report(results)
    print(json.dumps({"machine": machine_facts(), "results": results}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
