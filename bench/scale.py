"""Scale benchmark: the ingest load end to end against one gateway process on SQLite and
against 1, 2 and 3 replicas on PostgreSQL + Redis, in one run on this machine.

What one message goes through is ingest.py's: webchat WebSocket frame in -> stored (ack
after the commit) -> routed to an agent -> `message.received` on the SSE stream. The load
generator is ingest.py's (`ingest.py --role load`, its own process); its sockets are spread
over the replicas in turn and the SSE stream is read from the first replica, so a message
taken by another replica reaches the stream through the store and Redis, as a helpdesk
would see it. The reference is ingest.py's bare aiohttp echo server (the physical limit of
this client on this machine).

PostgreSQL and Redis are throw-away servers started for the run on free ports
(tests/db/throwaway.py, as the tests start theirs), PostgreSQL with fsync on (durable, as
SQLite's synchronous=full). Each configuration gets a fresh database and a Redis database
number of its own. The CPU of every process (each replica, the PostgreSQL server with all
its backends, Redis, the load generator) is read from /proc over the measurement window
and given per 1,000 messages, which predicts what a machine with more cores would do.

Then the sustained routing figure on PostgreSQL: bench/routing.py's drain (a backlog served
by the QueueRunner as agents log in) with --store-url, beside the same on SQLite.

Usage:
  .venv/bin/python bench/scale.py            # about 6 minutes with the defaults
  .venv/bin/python bench/scale.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ingest
from _common import (
    REPO,
    ServerProcess,
    fmt_ms,
    fs_type,
    machine_facts,
    open_work_dir,
    verdict,
)

sys.path.append(str(REPO))  # tests/db/throwaway.py: the same servers the tests start

from tests.db import throwaway

GOAL_CPU_RATIO = 1.5  # gateway CPU per message on PostgreSQL vs SQLite, at most
GOAL_ASSIGNMENTS = 5000.0  # routing.py's sustained goal, on PostgreSQL
SQLITE = "sqlite x1"


def pg_name(replicas: int) -> str:
    return f"postgresql x{replicas}"


# --- the databases ---------------------------------------------------------------------------


async def _pg(url: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def pg_query(url: str, sql: str) -> list[Any]:
    return asyncio.run(_pg(url, sql))


COUNT_STORED = (
    "SELECT (SELECT COUNT(*) FROM messages WHERE direction = 'inbound'), "
    "(SELECT COUNT(DISTINCT external_id) FROM messages WHERE direction = 'inbound'), "
    "(SELECT COUNT(*) FROM events WHERE type = 'message.received')"
)
PG_STATS = (
    "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, "
    "blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"
)


def count_stored(store_url: str) -> tuple[int, int, int] | None:
    """Inbound messages stored, their distinct external ids (each message once), and the
    `message.received` events in the log (one per message)."""
    try:
        if store_url.startswith("sqlite:"):
            path = store_url.removeprefix("sqlite:///").split("?")[0]
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                row = db.execute(COUNT_STORED).fetchone()
        else:
            (row,) = pg_query(store_url, COUNT_STORED)
    except Exception as exc:
        print(f"counting the stored messages failed: {exc}", file=sys.stderr)
        return None
    return int(row[0]), int(row[1]), int(row[2])


# --- profiles ----------------------------------------------------------------------------------


# Counts that say how a process spends a message whatever the machine's speed: event-loop
# iterations (each wake-up, e.g. for a database or Redis answer) and socket writes.
PROFILE_COUNTS = {
    "loop iterations": "_run_once",
    "socket sends": "<method 'send' of '_socket.socket' objects>",
}


def profile_top(path: Path, messages: int, n: int = 12) -> list[str]:
    """What a cProfile file says per message, then the functions with the most own time
    (cProfile's clock is the wall's: idle waiting in epoll counts)."""
    if not path.exists():
        return []
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    counts = {label: 0 for label in PROFILE_COUNTS}
    for (_file, _line, func), (_cc, calls, *_rest) in entries.items():
        for label, name in PROFILE_COUNTS.items():
            if func == name:
                counts[label] += calls
    out = [
        ", ".join(
            f"{label} {count:,} ({count / max(1, messages):.1f} per message)"
            for label, count in counts.items()
        )
    ]
    for (file, line, func), (_cc, calls, tottime, cumtime, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        out.append(
            f"{tottime / total:6.1%} own {cumtime:7.2f}s cum {calls:>9,} calls  {func} ({where})"
        )
    return out


# --- the runs -------------------------------------------------------------------------------


class Scale:
    def __init__(self, args: argparse.Namespace, work: Path, servers: throwaway.Servers) -> None:
        self.args = args
        self.work = work
        self.servers = servers
        self.bench = ingest.Bench(args)
        self.configs: list[dict[str, Any]] = []

    def log(self, text: str) -> None:
        self.bench.log(text)

    def watch(self, replicas: list[ServerProcess]) -> dict[str, list[Any]]:
        """Every process whose CPU the load generator reads over the window."""
        out: dict[str, list[Any]] = {
            f"replica-{i}": [gw.pid, True] for i, gw in enumerate(replicas)
        }
        if (pid := self.servers.pg_pid()) is not None:
            out["postgres"] = [pid, True]  # the postmaster with every backend
        if (pid := self.servers.redis_pid()) is not None:
            out["redis"] = [pid, True]
        return out

    def run(self, name: str, store_url: str, redis_url: str | None, replicas: int) -> None:
        slug = name.replace(" ", "-")
        config = self.work / f"omnigw-{slug}.toml"
        ingest.gateway_config(config, store_url, redis_url)
        started: list[ServerProcess] = []
        ended: list[dict[str, Any]] = []
        acked = 0
        on_pg = store_url.startswith("postgresql")
        pg_before = pg_query(store_url, PG_STATS) if on_pg else None
        try:
            # The first one alone: it migrates the schema; then the others.
            for i in range(replicas):
                gw = self.bench.start_gateway(
                    f"{slug}-{i}", config, self.work / f"data-{slug}-{i}", self.work
                )
                started.append(gw)
                self.log(f"{name}: replica {i} pid {gw.pid}, port {gw.port}")
            acked = self.bench.gateway_load(name, started, self.watch(started))
        finally:
            ended = [self.bench.stop_gateway(gw) for gw in started]
        pg_after = pg_query(store_url, PG_STATS) if on_pg else None
        stored = count_stored(store_url)
        pg_stats = None
        if pg_before and pg_after:
            keys = ("commits", "rollbacks", "inserted", "updated", "fetched", "read", "hit")
            pg_stats = {
                k: int(b) - int(a) for k, a, b in zip(keys, pg_before[0], pg_after[0], strict=True)
            }
        profiles = {}
        if self.args.profile:
            for i in range(replicas):
                prof = self.work / f"gateway-{slug}-{i}.prof"
                # each replica took about its share of the messages
                profiles[f"replica-{i}"] = profile_top(prof, (stored or (0,))[0] // replicas)
        self.configs.append(
            {
                "name": name,
                "replicas": replicas,
                "acked": acked,
                "stored": stored[0] if stored else None,
                "distinct": stored[1] if stored else None,
                "received_events": stored[2] if stored else None,
                "exit_codes": [e["exit_code"] for e in ended],
                "stderr_lines": sum(e["stderr_lines"] for e in ended),
                "stderr_tail": [line for e in ended for line in e["stderr_tail"]][-5:],
                "pg_stats": pg_stats,
                "profiles": profiles,
            }
        )

    def sqlite(self) -> None:
        data = self.work / "sqlite"
        data.mkdir()
        self.run(SQLITE, ingest.sqlite_url(data, "full"), None, 1)

    def postgresql(self, replicas: int) -> None:
        assert self.servers.pg_url is not None and self.servers.redis_url is not None
        database = f"scale_{replicas}"
        pg_query(
            self.servers.pg_url,
            f"CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8'",
        )
        store_url = throwaway.with_path(self.servers.pg_url, database)
        redis_url = throwaway.with_path(self.servers.redis_url, str(replicas))
        self.run(pg_name(replicas), store_url, redis_url, replicas)

    def routing(self, store_url: str | None) -> dict[str, Any] | None:
        """bench/routing.py's sustained drain, on PostgreSQL when store_url is given."""
        argv = [
            self.args.python,
            str(Path(__file__).resolve().parent / "routing.py"),
            "--skip-decisions",
            "--skip-service",
            "--drain-agents",
            str(self.args.routing_agents),
            "--backlog",
            str(self.args.routing_backlog),
            "--seed",
            str(self.args.seed),
        ]
        if store_url:
            argv += ["--store-url", store_url]
        where = "PostgreSQL" if store_url else "SQLite"
        self.log(f"routing: sustained assignments on {where} ...")
        proc = subprocess.run(
            argv, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=1800, check=False
        )
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if not lines:
            self.log(f"routing.py on {where} failed (exit {proc.returncode})")
            return None
        drains: list[dict[str, Any]] = json.loads(lines[-1]).get("drain", [])
        if not drains:
            return None
        self.log(f"    {drains[0]['assignments_per_s']:,.0f} assignments/s")
        return drains[0]


# --- report --------------------------------------------------------------------------------


def per_thousand(seconds: float | None, messages: float) -> float | None:
    if seconds is None or messages <= 0:
        return None
    return seconds / messages * 1000


def _f(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    data_fs: str,
    results: list[dict[str, Any]],
    configs: list[dict[str, Any]],
    routing: dict[str, dict[str, Any] | None],
    elapsed: float,
) -> dict[str, Any]:
    by_label = {r["label"]: r for r in results}
    ref = by_label.get("bare-ws echo, max")
    bare = ref["ack_rate"] if ref else None
    print()
    print(
        "omnichannel-gateway scale benchmark: webchat -> store -> routing -> SSE, "
        "SQLite vs replicas on PostgreSQL + Redis"
    )
    print(
        f"machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), "
        f"{facts['cpu_model']}; {facts['platform']}"
    )
    print(
        f"software: {facts['python_impl']} {facts['python']}, aiohttp {facts['aiohttp']}, "
        f"SQLite {facts['sqlite']} (synchronous=full), PostgreSQL fsync="
        f"{'on' if args.pg_fsync == 'on' else 'off'}; work dir on {data_fs}; "
        f"gateway at {facts['revision']}"
    )
    print(
        f"note: every process (replicas, PostgreSQL, Redis, the load generator) shares the "
        f"same {facts['cpus_usable']} cores, and the machine may be busy with other work: "
        "compare the ratios and the CPU per message, which are taken in the same run."
    )
    print(
        f"load: {args.sockets} sockets spread over the replicas (one visitor each, replaced "
        f"after {args.messages_per_visitor} messages), SSE read from replica 0; warm-up "
        f"{args.warmup:g}s, window {args.duration:g}s; fixed rate {args.rate:g} msgs/s"
    )

    rows: list[dict[str, Any]] = []
    for c in configs:
        mx = by_label.get(f"gateway {c['name']}, max")
        fx = by_label.get(f"gateway {c['name']}, {args.rate:g}/s")
        if mx is None or fx is None:
            continue
        messages = mx["e2e_rate"] * mx["window_s"]
        spent = dict(mx["cpu_s"])
        spent["load"] = mx["load_cpu_s"]
        machine = spent.pop("machine", None)
        cpu = {name: per_thousand(s, messages) for name, s in spent.items()}
        gateway = sum(v or 0 for k, v in cpu.items() if k.startswith("replica-"))
        total = sum(v or 0 for v in cpu.values())
        wall = mx["cpu_wall_s"]
        cores = {name: round(s / wall, 2) for name, s in spent.items()}
        # what else ran on the machine meanwhile (other work, the kernel's own)
        others = None if machine is None else round((machine - sum(spent.values())) / wall, 2)
        fixed_messages = fx["e2e_rate"] * fx["window_s"]
        fixed_gateway = sum(s for k, s in fx["cpu_s"].items() if k.startswith("replica-")) / max(
            1.0, fixed_messages
        )
        unseen = mx["lost"] + fx["lost"]
        lost = mx["lost_acked"] + fx["lost_acked"]
        errors = sum(mx["errors"].values()) + sum(fx["errors"].values())
        errors += mx["ack_timeouts"] + fx["ack_timeouts"]
        rows.append(
            {
                "name": c["name"],
                "replicas": c["replicas"],
                "msgs_per_s": mx["e2e_rate"],
                "ratio_to_bare": round(mx["e2e_rate"] / bare, 3) if bare else None,
                "per_second": mx["per_second"],
                "max_e2e_ms": mx["e2e_ms"],
                "fixed_rate": args.rate,
                "fixed_achieved": fx["e2e_rate"],
                "fixed_e2e_ms": fx["e2e_ms"],
                "fixed_send_lag_ms": fx["send_lag_ms"],
                "cpu_s_per_1000": {k: _round(v) for k, v in cpu.items()},
                "gateway_cpu_s_per_1000": round(gateway, 3),
                "gateway_cpu_s_per_1000_fixed": round(fixed_gateway * 1000, 3),
                "total_cpu_s_per_1000": round(total, 3),
                "cores": cores,
                "others_cores": others,
                "lost": lost,
                "unseen": unseen,
                "errors": errors,
                "acked": c["acked"],
                "stored": c["stored"],
                "distinct": c["distinct"],
                "received_events": c["received_events"],
                # Acked means stored (the ack follows the commit): every acked message is
                # in the database once, with its event, and was seen on SSE. A message sent
                # but never acked (the load gave up waiting) may or may not be stored.
                "nothing_lost": (
                    lost == 0
                    and errors == 0
                    and c["stored"] is not None
                    and c["stored"] >= c["acked"]
                    and c["distinct"] == c["stored"]
                    and c["received_events"] == c["stored"]
                ),
                "stderr_lines": c["stderr_lines"],
                "stderr_tail": c["stderr_tail"],
                "exit_codes": c["exit_codes"],
                "pg_stats": c["pg_stats"],
                "profiles": c["profiles"],
            }
        )

    print()
    head = (
        f"{'run':<16} {'e2e/s':>7} {'ratio':>6} {'1s min..max':>13} {'max p50/p99':>13} "
        f"{'rate':>6} {'p50/p99 ms':>12} {'lost':>5} {'errors':>6} {'stored/acked':>15}"
    )
    print(head)
    print("-" * len(head))
    if ref:
        print(f"{'bare ws echo':<16} {bare:>7,.0f} {1:>6.3f}   (physical limit of this client)")
    for r in rows:
        spread = f"{min(r['per_second']):,}..{max(r['per_second']):,}" if r["per_second"] else "-"
        mx_ms = f"{fmt_ms(r['max_e2e_ms']['p50'])}/{fmt_ms(r['max_e2e_ms']['p99'])}"
        fx_ms = f"{fmt_ms(r['fixed_e2e_ms']['p50'])}/{fmt_ms(r['fixed_e2e_ms']['p99'])}"
        counts = f"{r['stored']}/{r['acked']}"
        print(
            f"{r['name']:<16} {r['msgs_per_s']:>7,.0f} {_f(r['ratio_to_bare'], '.3f'):>6} "
            f"{spread:>13} {mx_ms:>13} {r['fixed_achieved']:>6,.0f} {fx_ms:>12} "
            f"{r['lost']:>5} {r['errors']:>6} {counts:>15}"
        )
    print(
        "(e2e/s: message.received events on SSE per second at max load; ratio: to the bare "
        "echo; max p50/p99: frame->SSE at max load; rate, p50/p99: the fixed-rate run; lost: "
        "acked but never seen on SSE)"
    )
    for r in rows:
        if r["msgs_per_s"] < args.rate:
            print(
                f"note: {r['name']} cannot keep {args.rate:g} msgs/s here (max "
                f"{r['msgs_per_s']:,.0f}): its fixed-rate latencies are queueing time"
            )

    names = sorted(
        {k for r in rows for k in r["cpu_s_per_1000"]},
        key=lambda k: (not k.startswith("replica-"), k),
    )
    print()
    print("CPU seconds per 1,000 messages (max run), by process; in brackets: cores used")
    head = (
        f"{'run':<16} "
        + " ".join(f"{n:>15}" for n in names)
        + f" {'gateway':>8} {'all':>7} {'others':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = []
        for n in names:
            v = r["cpu_s_per_1000"].get(n)
            cells.append(f"{'-':>15}" if v is None else f"{v:>7.3f} ({r['cores'].get(n, 0):>4.2f})")
        print(
            f"{r['name']:<16} "
            + " ".join(cells)
            + f" {r['gateway_cpu_s_per_1000']:>8.3f} {r['total_cpu_s_per_1000']:>7.3f}"
            + f" {_f(r['others_cores']):>7}"
        )
    print(
        "(gateway: the replicas together; all: every process of the run, PostgreSQL, Redis "
        "and the load generator included; others: cores used meanwhile by everything else on "
        "the machine. With C free cores a run's CPU-bound ceiling is about C x 1000 / all "
        "msgs/s, and no replica goes above 1000 / its own figure)"
    )
    for r in rows:
        if r["pg_stats"]:
            s = r["pg_stats"]
            n = max(1, r["stored"] or 0)
            print(
                f"{r['name']}: PostgreSQL per stored message: {s['commits'] / n:.2f} "
                f"commits, {s['inserted'] / n:.1f} rows inserted, "
                f"{s['updated'] / n:.1f} updated, {s['fetched'] / n:.1f} fetched "
                f"(pg_stat_database, both runs)"
            )

    print()
    print(
        "nothing lost (every acked message stored once with its message.received event and "
        "seen on SSE, no error frames):"
    )
    for r in rows:
        print(
            f"  {r['name']}: stored {r['stored']}, distinct {r['distinct']}, events "
            f"{r['received_events']}, acked {r['acked']}, acked but not seen on SSE {r['lost']} "
            f"(sent, not seen: {r['unseen']}), errors {r['errors']} -> "
            f"{'OK' if r['nothing_lost'] else 'FAILED'}; stderr lines {r['stderr_lines']}, "
            f"exit codes {r['exit_codes']}"
        )
        for line in r["stderr_tail"]:
            print(f"    | {line}")

    drains = {k: v for k, v in routing.items() if v is not None}
    if drains:
        print()
        print(
            f"routing (bench/routing.py's sustained drain: {args.routing_backlog:,} queued "
            f"conversations, {args.routing_agents:,} agents logging in):"
        )
        for where, d in drains.items():
            server = d.get("server_cpu_cores")
            print(
                f"  {where:<10} {d['assignments_per_s']:>7,.0f} assignments/s "
                f"(middle 80%: {d['middle_80_per_s']:,.0f}/s; logins {d['login_seconds']} s "
                f"of {d['seconds']} s); cores: benchmark {d['cpu_cores']}"
                + (f", PostgreSQL {server}" if server is not None else "")
                + (
                    f", whole machine {d['machine_cpu_cores']}"
                    if d.get("machine_cpu_cores") is not None
                    else ""
                )
                + f"; probe ack p50/p99 {d['probe_ack_ms']['p50']}/{d['probe_ack_ms']['p99']} ms"
                + f"; checks {'ok' if d['checks']['ok'] else 'FAILED'}"
            )

    # --- goals ---------------------------------------------------------------------------
    by_name = {r["name"]: r for r in rows}
    base = by_name.get(SQLITE)
    goals: dict[str, Any] = {}
    two = by_name.get(pg_name(2))
    if base and two:
        goals["two_replicas_match_sqlite"] = {
            "pass": two["msgs_per_s"] >= base["msgs_per_s"],
            "detail": f"{two['msgs_per_s']:,.0f} vs {base['msgs_per_s']:,.0f} msgs/s",
            "runs": [pg_name(2), SQLITE],
        }
    if base:
        for r in rows:
            if r["name"] == SQLITE:
                continue
            # At max load each side batches as much as its own speed allows; at the fixed
            # rate both get the same messages per second. Both are judged.
            for run, key in (("max load", ""), (f"{args.rate:g}/s", "_fixed")):
                field = f"gateway_cpu_s_per_1000{key}"
                kept = all(x["fixed_achieved"] >= 0.95 * args.rate for x in (r, base))
                if key and not kept:
                    continue  # above a configuration's capacity: not the same load
                ratio = r[field] / max(1e-9, base[field])
                goals[f"cpu_per_message_{r['replicas']}{key}"] = {
                    "pass": ratio <= GOAL_CPU_RATIO,
                    "detail": (
                        f"{r['name']} at {run}: gateway {r[field]:.3f} vs SQLite "
                        f"{base[field]:.3f} CPU s per 1,000 msgs = {ratio:.2f}x"
                    ),
                    "ratio": round(ratio, 3),
                    "runs": [r["name"]],
                }
    pg_drain = routing.get("postgresql")
    if pg_drain is not None:
        goals["routing_on_postgresql"] = {
            "pass": pg_drain["assignments_per_s"] >= GOAL_ASSIGNMENTS and pg_drain["checks"]["ok"],
            "detail": f"{pg_drain['assignments_per_s']:,.0f} assignments/s",
            "runs": [],
        }
    goals["nothing_lost"] = {
        "pass": bool(rows)
        and all(r["nothing_lost"] for r in rows)
        and all(d["checks"]["ok"] for d in drains.values()),
        "detail": "every run" if rows else "no run finished",
        "runs": [],
    }
    titles = {
        "two_replicas_match_sqlite": "2 replicas on PostgreSQL >= 1 process on SQLite",
        "routing_on_postgresql": f"routing >= {GOAL_ASSIGNMENTS:,.0f} assignments/s on PostgreSQL",
        "nothing_lost": "nothing lost in any run",
    }
    print()
    print("goals:")
    for key, g in goals.items():
        title = titles.get(key, f"gateway CPU per message <= {GOAL_CPU_RATIO:g}x SQLite's")
        print(f"  {verdict(g['pass'])}  {title}: {g['detail']}")
        if not g["pass"]:
            for name in g["runs"]:
                if name in by_name:
                    print("        " + limit_note(by_name[name], facts["cpus_usable"]))
            if key == "routing_on_postgresql" and pg_drain is not None:
                print("        " + routing_note(pg_drain, facts["cpus_usable"]))
    for r in rows:
        for proc, lines in r["profiles"].items():
            if lines:
                print(f"\nprofile of {r['name']} {proc} (cProfile, own time; shares, not times):")
                for line in lines:
                    print(f"  {line}")
    print(f"\ntotal time {elapsed:.0f}s")

    summary = {
        "bench": "scale",
        "cpus_usable": facts["cpus_usable"],
        "python": facts["python"],
        "revision": facts["revision"],
        "sockets": args.sockets,
        "rate": args.rate,
        "duration_s": args.duration,
        "bare_ws_msgs_per_s": bare,
        "runs": [
            {k: v for k, v in r.items() if k not in ("stderr_tail", "profiles")} for r in rows
        ],
        "routing": {
            k: (
                None
                if v is None
                else {
                    "assignments_per_s": v["assignments_per_s"],
                    "middle_80_per_s": v["middle_80_per_s"],
                    "cpu_cores": v["cpu_cores"],
                    "server_cpu_cores": v.get("server_cpu_cores"),
                    "machine_cpu_cores": v.get("machine_cpu_cores"),
                    "checks_ok": v["checks"]["ok"],
                }
            )
            for k, v in routing.items()
        },
        "goals": {k: {"pass": g["pass"], "detail": g["detail"]} for k, g in goals.items()},
    }
    print(json.dumps(summary, separators=(",", ":"), ensure_ascii=False))
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def limit_note(r: dict[str, Any], cores: int) -> str:
    """Which process limits a run, from the CPU each used in the max run's window: one
    Python process cannot use more than one core; the machine no more than all of them."""
    used = r["cores"]
    others = r["others_cores"] or 0.0
    total = sum(used.values()) + others
    busiest = max(used, key=lambda k: used[k])
    split = ", ".join(f"{k} {v:.2f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))
    if total >= 0.9 * cores:
        why = (
            f"the machine is saturated ({total:.2f} of {cores} cores, {others:.2f} of them "
            f"other work); of this run's processes the biggest share is {busiest}'s"
        )
    elif used[busiest] >= 0.9 and not busiest.startswith("postgres"):
        why = f"{busiest} uses a whole core (one Python event loop)"
    else:
        why = (
            f"no process is CPU-bound ({total:.2f} of {cores} cores): the limit is waiting "
            "(commits and round trips to the database)"
        )
    return f"limit in {r['name']}: {why}. Cores: {split}, other work {others:.2f}."


def routing_note(d: dict[str, Any], cores: int) -> str:
    server = d.get("server_cpu_cores")
    bench = d["cpu_cores"]
    machine = d.get("machine_cpu_cores")
    if machine is not None and machine >= 0.9 * cores:
        others = machine - bench - (server or 0)
        return (
            f"limit: the machine is saturated ({machine:.2f} of {cores} cores, {others:.2f} "
            f"of them other work); routing service {bench} cores, PostgreSQL {server}; logins "
            f"(a write each) took {d['login_seconds']} s of {d['seconds']} s"
        )
    if server is not None and bench < 0.9 and server < 0.9:
        return (
            f"limit: neither the routing service ({bench} cores) nor PostgreSQL ({server}) is "
            "CPU-bound: the drain waits on its transactions' round trips and commits; logins "
            f"(a write each) took {d['login_seconds']} s of {d['seconds']} s"
        )
    if server is None:
        return f"limit: the routing service uses {bench} cores (PostgreSQL's CPU not read)"
    busiest = "the routing service" if bench >= server else "PostgreSQL"
    return f"limit: {busiest} (routing service {bench} cores, PostgreSQL {server})"


# --- entry -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Scale benchmark: 1 SQLite process vs 1..N replicas on PostgreSQL + Redis."
    )
    p.add_argument("--replicas", default="1,2,3", help="replica counts on PostgreSQL")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--ref-duration", type=float, default=5.0, help="measured seconds, reference")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--sockets", type=int, default=64, help="concurrent webchat sockets")
    p.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="fixed-rate run, msgs/s (one every configuration sustains on a busy 2-core "
        "machine, so that its latencies are not queueing time)",
    )
    p.add_argument("--messages-per-visitor", type=int, default=20)
    p.add_argument("--min-len", type=int, default=20, help="shortest message, characters")
    p.add_argument("--max-len", type=int, default=300, help="longest message, characters")
    p.add_argument("--drain", type=float, default=30.0, help="max seconds to wait for stragglers")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--pg-fsync",
        choices=["on", "off"],
        default="on",
        help="PostgreSQL's fsync (on: durable, as SQLite's synchronous=full)",
    )
    p.add_argument("--routing-backlog", type=int, default=10_000, help="routing drain backlog")
    p.add_argument("--routing-agents", type=int, default=1000, help="routing drain agents")
    p.add_argument("--skip-routing", action="store_true")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--work-dir", type=Path, help="keep configs, logs and SQLite files here")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run every gateway under cProfile and print each replica's hotspots "
        "(slows them down: read shares, not rates)",
    )
    p.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    facts = machine_facts()
    replica_counts = [int(x) for x in args.replicas.split(",") if x.strip()]
    keep = args.work_dir is not None
    opened = open_work_dir(args.work_dir, "omnigw-bench-scale-", facts)
    if opened is None:
        return 2
    work = opened
    data_fs = fs_type(work)
    if args.profile:
        print("profiling: the gateways run under cProfile; figures are not comparable")
    routing: dict[str, dict[str, Any] | None] = {}
    try:
        with throwaway.started(pg=True, redis=True, pg_fsync=args.pg_fsync == "on") as servers:
            print(
                f"PostgreSQL pid {servers.pg_pid()}, Redis pid {servers.redis_pid()} "
                f"(in {servers.dir})",
                file=sys.stderr,
                flush=True,
            )
            scale = Scale(args, work, servers)
            if not args.skip_reference:
                scale.bench.reference(work)
            scale.sqlite()
            for n in replica_counts:
                scale.postgresql(n)
            if not args.skip_routing:
                routing["sqlite"] = scale.routing(None)
                routing["postgresql"] = scale.routing(servers.pg_url)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    report(
        args,
        facts,
        data_fs,
        scale.bench.results,
        scale.configs,
        routing,
        time.perf_counter() - started,
    )
    if keep:
        print(f"work dir kept: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
