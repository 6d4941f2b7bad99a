"""Webhook fan-out benchmark: deliveries per second from the gateway's durable event log
to one local receiver, 64 requests in flight, set against a raw aiohttp client loop that
sends the same bodies to the same receiver in the same run.

Three kinds of process, so that no side's CPU is counted against another:

  receiver   (`fanout.py --role receiver`) a real aiohttp server on loopback: it answers
             every POST with 204, notes each webhook-id's first arrival, and tells the
             benchmark (long-polled `GET /wait`) when it has seen every one it expects;
             after a run it verifies every delivery with the `standardwebhooks` library.
  gateway    `python -m gateway serve` on a copy of a prepared database whose endpoint
             holds a backlog of N events; enabling the endpoint (`PATCH /v1/webhooks/{id}`)
             starts the clock, the receiver's last first-arrival stops it.
  raw client (`fanout.py --role raw`) the physical limit for this machine and receiver: a
             bare loop of 64 aiohttp workers that posts the same N envelopes with the same
             headers, signed per request with the same code (HMAC included), no bookkeeping.

Optionally (`--live`) the gateway also delivers while events are being produced: a process
ingests customer messages at a fixed rate (`--live-rate`) through the real pipeline with
the endpoint enabled, and the receiver's first-arrival times give event-creation-to-receipt
latency.

Usage:
  .venv/bin/python bench/fanout.py                    # under a minute with the defaults
  .venv/bin/python bench/fanout.py --events 50000 --repeat 3 --live
  .venv/bin/python bench/fanout.py --help

Internal roles (started by the benchmark itself):
  fanout.py --role receiver            the receiving aiohttp server
  fanout.py --role raw --spec JSON     the raw aiohttp client loop; prints one JSON line
  fanout.py --role live --spec JSON    the gateway in process, producing while delivering
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/routing.py has the name of the package `routing`: the repository must come first
# on the path, and this directory (for _common) last.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

from _common import (  # noqa: E402
    REPO,
    ServerProcess,
    clean_env,
    fs_type,
    machine_facts,
    open_work_dir,
    percentiles,
    process_cpu_seconds,
    serve_until_signalled,
    vi_text,
)

GOAL_DELIVERIES = 5000.0  # deliveries/s, one gateway process, 64 in flight
GOAL_RATIO = 0.60  # of the raw aiohttp client loop in the same run
ADMIN_TOKEN = "ogw_admin_bench_" + uuid.uuid4().hex
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, fixed: the receiver verifies
EVENT_TYPES = ["message.*", "conversation.*", "contact.*"]
CHANNEL = "webchat"
TEXT_POOL = 4000


# =========================================================================================
# Receiver (its own process)
# =========================================================================================


class Received:
    """What the receiver has seen since the last reset."""

    def __init__(self, expect: int = 0) -> None:
        self.expect = expect
        self.ids: set[str] = set()
        self.requests = 0
        self.first_mono: list[float] = []  # first arrival of each webhook-id (monotonic)
        self.first_wall: list[float] = []  # ... and the same instant as Unix time
        self.kept: list[tuple[str, str, str, bytes]] = []  # id, timestamp, signature, body
        self.done_at: float | None = None
        self.done = asyncio.Event()
        if expect <= 0:
            self.done.set()


def receiver_main(host: str) -> int:
    from aiohttp import web
    from standardwebhooks import Webhook

    rx = Received()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        mono = time.monotonic()
        rx.requests += 1
        headers = request.headers
        hid = headers.get("webhook-id", "")
        if hid not in rx.ids:
            rx.ids.add(hid)
            rx.first_mono.append(mono)
            rx.first_wall.append(time.time())
            rx.kept.append(
                (
                    hid,
                    headers.get("webhook-timestamp", ""),
                    headers.get("webhook-signature", ""),
                    body,
                )
            )
            if rx.done_at is None and len(rx.ids) >= rx.expect:
                rx.done_at = mono
                rx.done.set()
        return web.Response(status=204)

    async def reset(request: web.Request) -> web.Response:
        nonlocal rx
        spec = await request.json()
        rx = Received(int(spec["expect"]))
        return web.json_response({"ok": True})

    async def wait(request: web.Request) -> web.Response:
        """Until `expect` webhook-ids (or `n` of them) have arrived; done_at is when."""
        timeout = float(request.query.get("timeout", "120"))
        n = int(request.query.get("n", "0"))
        if n and len(rx.ids) < n:
            rx.expect, rx.done_at = n, None
            rx.done.clear()
        if not n or len(rx.ids) < n:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await rx.done.wait()
        done_at = rx.done_at
        if n:
            done_at = rx.first_mono[n - 1] if len(rx.first_mono) >= n else None
        return web.json_response(
            {
                "distinct": len(rx.ids),
                "requests": rx.requests,
                "done_at": done_at,
                "first_at": rx.first_mono[0] if rx.first_mono else None,
            }
        )

    async def report(request: web.Request) -> web.Response:
        """Arrival times, and every delivery checked (outside any timed part)."""
        spec = await request.json()
        out: dict[str, Any] = {
            "distinct": len(rx.ids),
            "requests": rx.requests,
            "arrivals": rx.first_mono,
        }
        if spec.get("verify"):
            hook_ = Webhook(spec["secret"])
            failures = 0
            created_to_receipt_us: list[int] = []
            created_at: list[float] = []
            body_bytes = 0
            for (hid, ts, sig, body), wall in zip(rx.kept, rx.first_wall, strict=True):
                body_bytes += len(body)
                try:
                    payload = hook_.verify(
                        body,
                        {"webhook-id": hid, "webhook-timestamp": ts, "webhook-signature": sig},
                    )
                except Exception:
                    failures += 1
                    continue
                created = payload.get("created_at")
                if created:
                    from datetime import datetime

                    at = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
                    created_to_receipt_us.append(int((wall - at) * 1e6))
                    created_at.append(at)
            out.update(
                verified=len(rx.kept) - failures,
                verify_failures=failures,
                created_to_receipt_us=created_to_receipt_us,
                created_at=created_at,
                avg_body_bytes=round(body_bytes / max(1, len(rx.kept)), 1),
            )
        return web.json_response(out)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/hook", hook)
    app.router.add_post("/reset", reset)
    app.router.add_get("/wait", wait)
    app.router.add_post("/report", report)
    serve_until_signalled(app, host, "receiver")
    return 0


# =========================================================================================
# Raw aiohttp client loop (its own process)
# =========================================================================================


def load_bodies(path: str) -> list[tuple[str, bytes]]:
    bodies: list[tuple[str, bytes]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            bodies.append((item["id"], item["body"].encode()))
    return bodies


async def raw_run(spec: dict[str, Any], bodies: list[tuple[str, bytes]]) -> dict[str, Any]:
    import aiohttp
    from yarl import URL

    from gateway import __version__
    from kernel import webhook_signing as signing

    keys = [signing.secret_key(SECRET)]
    url = URL(spec["url"])
    latencies: list[int] = []
    errors: dict[str, int] = {}
    it = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        for hid, body in it:
            headers = signing.headers(hid, int(time.time()), body, keys)
            t = time.perf_counter_ns()
            try:
                async with session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    await resp.content.read(1024)
                    status = resp.status
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter_ns() - t)
            if not 200 <= status < 300:
                errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1

    # The client exactly as the gateway's webhook delivery sets it up (minus its SSRF resolver,
    # which only runs when a connection is opened).
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=60)
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=15),
        headers={"User-Agent": f"omnichannel-gateway/{__version__} (webhooks)"},
        auto_decompress=False,
    ) as session:
        cpu0 = time.process_time()
        t_start = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(spec["concurrency"])))
        t_end = time.monotonic()
        cpu1 = time.process_time()
    return {
        "t_start": t_start,
        "t_end": t_end,
        "sent": len(latencies),
        "errors": errors,
        "cpu_seconds": round(cpu1 - cpu0, 3),
        "latency_ms": percentiles(latencies),
    }


def raw_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    result = asyncio.run(raw_run(spec, load_bodies(spec["bodies"])))
    print(json.dumps(result), flush=True)
    return 0


# =========================================================================================
# Live: the gateway in process, producing while it delivers (its own process)
# =========================================================================================


async def live_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Customer messages ingested at a fixed rate through the real pipeline while the
    endpoint (enabled at the start, its cursor at the end of the log) delivers them."""
    import aiohttp

    from config import load_settings
    from gateway.app import Gateway
    from gateway.cli import tune_gc
    from gateway.events import type_matcher

    settings = load_settings(
        Path(spec["config"]), env={}, overrides={"server.data_dir": spec["data_dir"]}
    )
    gw = Gateway(settings, admin_token=ADMIN_TOKEN)
    await gw.start()
    tune_gc()
    endpoint = spec["endpoint"]
    start = await gw.store.events.last_seq()
    # The backlog's customers go on writing (their conversations exist; new ones arrive at
    # the same turnover as in the backlog), numbered on from where the backlog stopped.
    producer = Producer(gw, spec["visitors"], spec["per_visitor"], spec["seed"], "v")
    producer.sent = spec["first_message"]
    first = producer.sent
    rate, duration = spec["rate"], spec["duration"]
    tick = 0.01
    lag: list[int] = []
    try:
        await gw.webhooks.update(endpoint, url=None, events=None, description=None, enabled=True)
        cpu0 = time.process_time()
        t0 = time.monotonic()
        wall0 = time.time()
        pending: set[asyncio.Task[None]] = set()
        while (now := time.monotonic()) < t0 + duration:
            due = int((now - t0) * rate) - (producer.sent - first)
            if due > 0:
                lag.append(int(max(0.0, now - (t0 + (producer.sent - first) / rate)) * 1e9))
                task = asyncio.create_task(producer.send(due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(tick)
        await asyncio.gather(*pending)
        t_produced = time.monotonic()
        await gw.queue.settle()
        match = type_matcher(EVENT_TYPES)
        expected = sum(1 for e in await gw.store.events.after(start, 10**9) if match(e.type))
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{spec['receiver']}/wait", params={"n": str(expected), "timeout": "120"}
            ) as resp,
        ):
            done = await resp.json()
        cpu1 = time.process_time()
    finally:
        await gw.close_connections()
        await gw.stop()
    end = done["done_at"] or time.monotonic()
    return {
        "messages": producer.sent - first,
        "expected": expected,
        "wall_start": wall0,
        "received": done["distinct"],
        "requests": done["requests"],
        "t_start": t0,
        "produce_seconds": round(t_produced - t0, 3),
        "seconds": round(end - t0, 3),
        "drain_after_produce_s": round(end - t_produced, 3),
        "cpu_cores": round((cpu1 - cpu0) / max(1e-9, end - t0), 2),
        "send_lag_ms": percentiles(lag),
    }


def live_main(spec_json: str) -> int:
    result = asyncio.run(live_run(json.loads(spec_json)))
    print(json.dumps(result), flush=True)
    return 0


# =========================================================================================
# Preparing the backlog (in the benchmark's own process, before anything is timed)
# =========================================================================================


def gateway_config(path: Path, concurrency: int) -> None:
    agents = "\n".join(
        f"""
[[agents]]
id = "agent-{i:02d}"
name = "Agent {i}"
languages = ["vi", "en"]
presence = "online"
capacity = {{ total = 100000 }}
"""
        for i in range(8)
    )
    path.write_text(
        f"""\
[server]
demo_page = false

[[channels]]
id = "{CHANNEL}"
type = "webchat"
rate_per_second = 100000.0
rate_burst = 100000
# Every bench visitor comes from this machine's one address.
frames_per_second = 100000.0
frames_burst = 100000
address_frames_per_second = 1000000.0
address_frames_burst = 1000000
address_conversations = 1000000
address_sockets = 100000
max_sockets = 100000
{agents}
[webhook_delivery]
allow_loopback = true
concurrency = {concurrency}
""",
        encoding="utf-8",
    )


class Producer:
    """Customers writing in, interleaved as they are on a busy day: `visitors` customers at
    a time each send one message in turn; after `per_visitor` messages a customer leaves
    and a new one (a new contact and conversation) takes the place. Customers are
    staggered so that they do not all leave at the same time."""

    def __init__(self, gw: Any, visitors: int, per_visitor: int, seed: int, prefix: str) -> None:
        self.gw = gw
        self.visitors = visitors
        self.per_visitor = per_visitor
        self.prefix = prefix
        rng = random.Random(seed)
        self.texts = [vi_text(rng) for _ in range(TEXT_POOL)]
        self.sent = 0

    def message(self) -> Any:
        from kernel.envelope import InboundMessage, Sender
        from kernel.ids import ChannelId
        from kernel.models import TextPart

        round_, slot = divmod(self.sent, self.visitors)
        generation, n = divmod(round_ + slot, self.per_visitor)
        visitor = f"{self.prefix}{slot}-{generation}"
        self.sent += 1
        return InboundMessage(
            channel_id=ChannelId(CHANNEL),
            external_id=f"{visitor}:{n}",
            sender=Sender(external_id=visitor, display_name=f"Khách {slot}"),
            parts=[TextPart(text=self.texts[self.sent % TEXT_POOL])],
        )

    async def send(self, count: int) -> None:
        """The next `count` messages, ingested concurrently."""
        await asyncio.gather(*(self.gw.pipeline.ingest(self.message()) for _ in range(count)))


async def build_backlog(args: argparse.Namespace, work: Path, receiver_url: str) -> dict[str, Any]:
    """A database whose endpoint, subscribed through the API and then disabled, has at
    least `--events` events to deliver; plus the bodies for the raw client."""
    import aiohttp
    from aiohttp import web

    from config import load_settings
    from gateway.app import Gateway
    from gateway.events import type_matcher

    config = work / "omnigw.toml"
    gateway_config(config, args.concurrency)
    data = work / "template"
    settings = load_settings(config, env={}, overrides={"server.data_dir": str(data)})
    gw = Gateway(settings, admin_token=ADMIN_TOKEN)
    await gw.start()
    runner = web.AppRunner(gw.web_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    t0 = time.perf_counter()
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            body = {"url": receiver_url, "events": EVENT_TYPES, "secret": SECRET}
            async with http.post(f"{api}/v1/webhooks", json=body) as resp:
                created = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"POST /v1/webhooks: {resp.status} {created}")
            endpoint = created["id"]
            async with http.patch(f"{api}/v1/webhooks/{endpoint}", json={"enabled": False}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"PATCH /v1/webhooks: {resp.status} {await resp.text()}")
        record = await gw.store.webhooks.get(endpoint)
        assert record is not None
        cursor = record.cursor
        match = type_matcher(EVENT_TYPES)
        producer = Producer(gw, args.visitors, args.messages_per_visitor, args.seed, "v")
        while True:
            await producer.send(args.visitors)
            if gw.bus.last_seq - cursor >= args.events:
                break
        await gw.queue.settle()
        events = [e for e in await gw.store.events.after(cursor, 10**9) if match(e.type)]
    finally:
        await runner.cleanup()
        await gw.close_connections()
        await gw.stop()
    with (work / "bodies.jsonl").open("w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps({"id": e.id, "body": e.envelope()}, ensure_ascii=False) + "\n")
    kinds: dict[str, int] = {}
    convs: set[str] = set()
    for e in events:
        kinds[e.type] = kinds.get(e.type, 0) + 1
        if e.conversation_id:
            convs.add(e.conversation_id)
    return {
        "endpoint": endpoint,
        "config": str(config),
        "template": str(data),
        "cursor": cursor,
        "last_seq": events[-1].seq,
        "events": len(events),
        "messages": producer.sent,
        "conversations": len(convs),
        "types": kinds,
        "avg_body_bytes": round(statistics.mean(len(e.envelope().encode()) for e in events), 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }


# =========================================================================================
# Orchestration (the benchmark's own process)
# =========================================================================================


def http_json(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 300
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.python = args.python
        self.receiver: ServerProcess | None = None
        self.rx = ""
        self.backlog: dict[str, Any] = {}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def start_receiver(self) -> None:
        self.receiver = ServerProcess(
            "receiver",
            [self.python, str(Path(__file__).resolve()), "--role", "receiver"],
            port_pattern=r"receiver listening on http://[^:]+:(\d+)",
            env=clean_env(),
            stderr_path=self.work / "receiver.stderr.log",
        )
        port = self.receiver.start()
        self.rx = f"http://127.0.0.1:{port}"
        self.log(f"receiver: pid {self.receiver.pid}, port {port}")

    def stop_receiver(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()

    def receiver_cpu(self) -> float | None:
        assert self.receiver is not None
        return process_cpu_seconds(self.receiver.pid)

    def arrivals(self, t0: float, verify: bool, created_after: float = 0.0) -> dict[str, Any]:
        rep = http_json("POST", f"{self.rx}/report", {"verify": verify, "secret": SECRET})
        times = sorted(rep.pop("arrivals"))
        n = len(times)
        out: dict[str, Any] = dict(rep)
        if n >= 10:
            # the middle 80% of arrivals: the steady rate, without start-up and tail
            lo, hi = times[n // 10], times[n - 1 - n // 10]
            out["steady_rate"] = round((n - 1 - 2 * (n // 10)) / (hi - lo), 1) if hi > lo else None
            span = times[-1] - t0
            out["per_second"] = [
                sum(1 for t in times if s <= t - t0 < s + 1) for s in range(int(span) + 1)
            ]
        if "created_to_receipt_us" in out:
            lat, created = out.pop("created_to_receipt_us"), out.pop("created_at")
            kept = [x * 1000 for x, c in zip(lat, created, strict=True) if c >= created_after]
            out["created_to_receipt_ms"] = percentiles(kept)
            if created:
                # p50 by second of creation: shows whether latency settles or grows
                base = min(created)
                by_second: dict[int, list[int]] = {}
                for x, c in zip(lat, created, strict=True):
                    by_second.setdefault(int(c - base), []).append(x)
                out["p50_ms_by_second"] = [
                    round(sorted(v)[len(v) // 2] / 1000, 1) for _, v in sorted(by_second.items())
                ]
        return out

    # --- the raw client ------------------------------------------------------------------

    def raw(self, label: str) -> dict[str, Any]:
        n = self.backlog["events"]
        self.log(f"  {label}: raw aiohttp client, {n:,} requests ...")
        http_json("POST", f"{self.rx}/reset", {"expect": n})
        spec = {
            "url": f"{self.rx}/hook",
            "bodies": str(self.work / "bodies.jsonl"),
            "concurrency": self.args.concurrency,
        }
        rcpu0 = self.receiver_cpu()
        r = self.run_role("raw", spec, timeout=600, what="raw client")
        rcpu1 = self.receiver_cpu()
        done = http_json("GET", f"{self.rx}/wait?timeout=30")
        end = done["done_at"] or r["t_end"]
        span = end - r["t_start"]
        arr = self.arrivals(r["t_start"], verify=False)
        result = {
            "label": label,
            "kind": "raw",
            "requests": r["sent"],
            "received": done["distinct"],
            "seconds": round(span, 3),
            "rate": round(done["distinct"] / span, 1),
            "steady_rate": arr.get("steady_rate"),
            "per_second": arr.get("per_second", []),
            "errors": r["errors"],
            "latency_ms": r["latency_ms"],
            "sender_cpu": round(r["cpu_seconds"] / span, 2),
            "cpu_us_per_request": round(r["cpu_seconds"] / max(1, r["sent"]) * 1e6, 1),
            "receiver_cpu": round((rcpu1 - rcpu0) / span, 2) if rcpu0 and rcpu1 else None,
        }
        self.log(f"    {result['rate']:,.0f} requests/s")
        return result

    def run_role(self, role: str, spec: dict[str, Any], *, timeout: float, what: str) -> Any:
        """This script in another process in one of its roles; its last JSON line."""
        script = str(Path(__file__).resolve())
        proc = subprocess.run(
            [self.python, script, "--role", role, "--spec", json.dumps(spec)],
            cwd=REPO,
            env=clean_env(),
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{what} failed (exit {proc.returncode})")
        return json.loads(lines[-1])

    # --- the gateway ---------------------------------------------------------------------

    def gateway(self, label: str) -> dict[str, Any]:
        n = self.backlog["events"]
        slug = label.replace(" #", "-")
        run = self.work / f"run-{slug}"
        shutil.copytree(self.backlog["template"], run)
        argv = [self.python]
        if self.args.profile:
            argv += ["-m", "cProfile", "-o", str(self.work / f"{slug}.prof")]
        argv += [
            "-m",
            "gateway",
            "serve",
            "--config",
            self.backlog["config"],
            "--data-dir",
            str(run),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
        ]
        stderr_log = self.work / f"{slug}.stderr.log"
        server = ServerProcess(
            f"gateway {label}",
            argv,
            port_pattern=r"listening on http://[^:]+:(\d+)",
            env=clean_env(OMNIGW_ADMIN_TOKEN=ADMIN_TOKEN),
            stderr_path=stderr_log,
        )
        port = server.start()
        api = f"http://127.0.0.1:{port}"
        self.log(f"  {label}: gateway pid {server.pid}, backlog of {n:,} events ...")
        endpoint = self.backlog["endpoint"]
        try:
            http_json("POST", f"{self.rx}/reset", {"expect": n})
            spy = self.pyspy(server.pid, slug) if self.args.pyspy else None
            gcpu0, rcpu0 = process_cpu_seconds(server.pid), self.receiver_cpu()
            t0 = time.monotonic()
            http_json("PATCH", f"{api}/v1/webhooks/{endpoint}", {"enabled": True}, ADMIN_TOKEN)
            done = http_json("GET", f"{self.rx}/wait?timeout={self.args.timeout:g}")
            t1 = time.monotonic()
            gcpu1, rcpu1 = process_cpu_seconds(server.pid), self.receiver_cpu()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            end = done["done_at"] or t1
            span = end - t0
            wall = t1 - t0
            arr = self.arrivals(t0, verify=True)
        finally:
            code = server.stop()
        if code not in (0, None):
            self.log(f"gateway exited with {code}; {server.diagnostics()}")
        db = self.db_facts(run / "omnigw.db", endpoint)
        warnings = [ln for ln in stderr_log.read_text(errors="replace").splitlines() if ln.strip()]
        result = {
            "label": label,
            "kind": "gateway",
            "expected": n,
            "received": done["distinct"],
            "requests": done["requests"],
            "duplicates": done["requests"] - done["distinct"],
            "seconds": round(span, 3),
            "rate": round(done["distinct"] / span, 1),
            "steady_rate": arr.get("steady_rate"),
            "per_second": arr.get("per_second", []),
            "verified": arr.get("verified"),
            "verify_failures": arr.get("verify_failures"),
            "avg_body_bytes": arr.get("avg_body_bytes"),
            "gateway_cpu": round((gcpu1 - gcpu0) / wall, 2)
            if gcpu0 is not None and gcpu1
            else None,
            "cpu_us_per_request": round((gcpu1 - gcpu0) / max(1, done["distinct"]) * 1e6, 1)
            if gcpu0 is not None and gcpu1
            else None,
            "receiver_cpu": round((rcpu1 - rcpu0) / wall, 2) if rcpu0 and rcpu1 else None,
            "stderr_lines": len(warnings),
            "stderr_tail": warnings[-5:],
            "exit_code": code,
            **db,
        }
        self.log(f"    {result['rate']:,.0f} deliveries/s")
        if not self.args.keep:
            shutil.rmtree(run, ignore_errors=True)
        return result

    def pyspy(self, pid: int, label: str) -> subprocess.Popen[bytes]:
        """A sampling profile of the gateway (every thread) until the run ends."""
        out = self.work / f"{label}.pyspy.txt"
        proc = subprocess.Popen(
            [
                self.args.pyspy,
                "record",
                "-p",
                str(pid),
                "-r",
                "250",
                "--threads",
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached before the clock starts
        return proc

    def db_facts(self, db: Path, endpoint: str) -> dict[str, Any]:
        """After the gateway stopped: its attempt log, rows left, cursor."""
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            lat = [
                int(r[0] * 1e6)
                for r in conn.execute(
                    "SELECT latency_ms FROM webhook_attempts WHERE endpoint_id = ?", (endpoint,)
                )
            ]
            outcomes = dict(
                conn.execute(
                    "SELECT outcome, COUNT(*) FROM webhook_attempts WHERE endpoint_id = ? "
                    "GROUP BY outcome",
                    (endpoint,),
                ).fetchall()
            )
            left = dict(
                conn.execute(
                    "SELECT status, COUNT(*) FROM webhook_deliveries WHERE endpoint_id = ? "
                    "GROUP BY status",
                    (endpoint,),
                ).fetchall()
            )
            (cursor,) = conn.execute(
                "SELECT cursor FROM webhook_endpoints WHERE id = ?", (endpoint,)
            ).fetchone()
        finally:
            conn.close()
        return {
            "attempts": outcomes,
            "rows_left": left,
            "cursor_reached": cursor >= self.backlog["last_seq"],
            "request_ms": percentiles(lat),
        }

    def live(self, label: str) -> dict[str, Any]:
        """Delivery while producing: a fresh copy of the prepared database, its endpoint's
        cursor moved to the end of the log (the backlog is not part of this run)."""
        run = self.work / f"run-{label}"
        shutil.copytree(self.backlog["template"], run)
        conn = sqlite3.connect(run / "omnigw.db")
        try:
            with conn:
                conn.execute("UPDATE webhook_endpoints SET cursor = (SELECT MAX(seq) FROM events)")
        finally:
            conn.close()
        a = self.args
        self.log(
            f"  {label}: {a.live_rate:g} messages/s for {a.live_duration:g}s while delivering ..."
        )
        http_json("POST", f"{self.rx}/reset", {"expect": 10**9})
        spec = {
            "config": self.backlog["config"],
            "data_dir": str(run),
            "endpoint": self.backlog["endpoint"],
            "receiver": self.rx,
            "rate": a.live_rate,
            "duration": a.live_duration,
            "visitors": a.visitors,
            "per_visitor": a.messages_per_visitor,
            "seed": a.seed + 1,
            "first_message": self.backlog["messages"],
        }
        rcpu0 = self.receiver_cpu()
        r = self.run_role("live", spec, timeout=a.live_duration + 300, what="live run")
        rcpu1 = self.receiver_cpu()
        arr = self.arrivals(
            r["t_start"], verify=True, created_after=r["wall_start"] + a.live_warmup
        )
        if not self.args.keep:
            shutil.rmtree(run, ignore_errors=True)
        result = {
            "label": label,
            **r,
            "rate": round(r["received"] / r["seconds"], 1),
            "verified": arr.get("verified"),
            "verify_failures": arr.get("verify_failures"),
            "created_to_receipt_ms": arr.get("created_to_receipt_ms"),
            "p50_ms_by_second": arr.get("p50_ms_by_second"),
            "per_second": arr.get("per_second", []),
            "receiver_cpu": round((rcpu1 - rcpu0) / r["seconds"], 2) if rcpu0 and rcpu1 else None,
        }
        p = result["created_to_receipt_ms"] or {}
        self.log(
            f"    {result['rate']:,.0f} deliveries/s, event created -> received p50 "
            f"{p.get('p50')} ms, p99 {p.get('p99')} ms"
        )
        return result


# --- report ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    best = max(values)
    return f"{min(values):,.0f}..{best:,.0f} ({(best - min(values)) / best:.0%})"


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    data_fs: str,
    backlog: dict[str, Any],
    results: list[dict[str, Any]],
    lives: list[dict[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    raws = [r for r in results if r["kind"] == "raw"]
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(backlog["types"].items()))
    gws = [r for r in results if r["kind"] == "gateway"]
    print()
    print("omnichannel-gateway fan-out benchmark: webhook deliveries from the event log")
    print(
        f"machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), "
        f"{facts['cpu_model']}; {facts['platform']}"
    )
    print(
        f"software: {facts['python_impl']} {facts['python']}, aiohttp {facts['aiohttp']}, "
        f"SQLite {facts['sqlite']}; data dir on {data_fs}; gateway at {facts['revision']}"
    )
    print(
        f"note: the gateway (or the raw client) and the receiver are separate processes "
        f"sharing {facts['cpus_usable']} cores; CPU columns show each side's use in cores."
    )
    print(
        f"backlog: {backlog['events']:,} events ({kinds}) "
        f"from {backlog['messages']:,} customer messages in {backlog['conversations']:,} "
        f"conversations, {args.visitors} customers writing at a time; envelope "
        f"{backlog['avg_body_bytes']:.0f} bytes on average; endpoint concurrency "
        f"{args.concurrency}; SQLite synchronous=full"
    )
    print(
        "raw client: one process, "
        f"{args.concurrency} aiohttp workers posting the same envelopes with the same headers "
        "(webhook-id/-timestamp/-signature, signed per request: HMAC included), one "
        "ClientSession, no log, no bookkeeping"
    )
    print()
    head = (
        f"{'run':<12} {'recv/s':>8} {'steady/s':>9} {'seconds':>8} {'dup':>5} {'err':>4} "
        f"{'sender CPU':>10} {'µs/req':>7} {'recv CPU':>8} {'req p50':>8} {'req p99':>8} "
        f"{'1s min..max':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        per = r["per_second"][:-1] if len(r["per_second"]) > 1 else r["per_second"]
        spread = f"{min(per):,}..{max(per):,}" if per else "-"
        lat = r["request_ms"] if r["kind"] == "gateway" else r["latency_ms"]
        cpu = r["gateway_cpu"] if r["kind"] == "gateway" else r["sender_cpu"]
        errors = (
            sum(v for k, v in r["attempts"].items() if k != "succeeded")
            if r["kind"] == "gateway"
            else sum(r["errors"].values())
        )
        steady = "-" if r.get("steady_rate") is None else f"{r['steady_rate']:,.0f}"
        print(
            f"{r['label']:<12} {r['rate']:>8,.0f} {steady:>9} {r['seconds']:>8.2f} "
            f"{r.get('duplicates', 0):>5} {errors:>4} {cpu if cpu is not None else '-':>10} "
            f"{r['cpu_us_per_request'] if r['cpu_us_per_request'] is not None else '-':>7} "
            f"{r['receiver_cpu'] if r['receiver_cpu'] is not None else '-':>8} "
            f"{_ms(lat['p50']):>8} {_ms(lat['p99']):>8} {spread:>13}"
        )
    print(
        "recv/s: webhook-ids first received by the receiver / seconds from the start (raw: "
        "first request; gateway: the PATCH enabling the endpoint) to the last first arrival. "
        "steady/s: the middle 80% of arrivals. req p50/p99: one request, sent to answered "
        "(gateway: latency_ms of its attempt log)."
    )
    print()
    print("integrity (gateway runs):")
    for r in gws:
        ok = (
            r["received"] == r["expected"]
            and r["verify_failures"] == 0
            and r["cursor_reached"]
            and not r["rows_left"]
        )
        print(
            f"  {r['label']}: received {r['received']:,} of {r['expected']:,}, verified with "
            f"standardwebhooks {r['verified']:,}, failures {r['verify_failures']}, duplicates "
            f"{r['duplicates']}, attempts {r['attempts']}, delivery rows left "
            f"{r['rows_left'] or 0}, cursor at the end {'yes' if r['cursor_reached'] else 'NO'}: "
            f"{'OK' if ok else 'PROBLEM'}; gateway stderr lines {r['stderr_lines']}"
        )
        for line in r["stderr_tail"]:
            print(f"    | {line}")

    gw_rates = [r["rate"] for r in gws]
    raw_rates = [r["rate"] for r in raws]
    best_gw = max(gw_rates) if gw_rates else 0.0
    best_raw = max(raw_rates) if raw_rates else 0.0
    ratio = best_gw / best_raw if best_raw else None
    pairs = [round(g["rate"] / r["rate"], 3) for g, r in zip(gws, raws, strict=False) if r["rate"]]
    print()
    print(
        f"raw aiohttp client (physical limit, {args.concurrency} in flight): best "
        f"{best_raw:,.0f} requests/s; runs {_spread(raw_rates)}"
    )
    print(
        f"gateway: best {best_gw:,.0f} deliveries/s; runs {_spread(gw_rates)}; "
        f"ratio best/best {ratio:.3f}" + (f", per pair {pairs}" if pairs else "")
        if ratio is not None
        else f"gateway: best {best_gw:,.0f} deliveries/s"
    )
    rate_ok = best_gw >= GOAL_DELIVERIES
    ratio_ok = ratio is not None and ratio >= GOAL_RATIO
    print(
        f"goal: >= {GOAL_DELIVERIES:,.0f} deliveries/s          {best_gw:>8,.0f}   {_pass(rate_ok)}"
    )
    print(
        f"goal: >= {GOAL_RATIO:.0%} of the raw client           "
        f"{(ratio or 0):>8.1%}   {_pass(ratio_ok)}"
    )
    if lives:
        print()
        print(
            f"live: {args.live_rate:g} customer messages/s ingested through the pipeline for "
            f"{args.live_duration:g}s in the gateway's process while it delivers (cursor at the "
            "end of the log when enabled); event created (outbox commit) -> first receipt:"
        )
        head = (
            f"{'run':<8} {'messages':>8} {'events':>7} {'deliv/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
            f"{'p99 ms':>7} {'max ms':>7} {'drain s':>7} {'gw CPU':>6} {'verified':>9}"
        )
        print(head)
        print("-" * len(head))
        for lv in lives:
            p = lv["created_to_receipt_ms"] or {}
            ok = lv["received"] == lv["expected"] and lv["verify_failures"] == 0
            print(
                f"{lv['label']:<8} {lv['messages']:>8,} {lv['expected']:>7,} {lv['rate']:>8,.0f} "
                f"{_ms(p.get('p50')):>7} {_ms(p.get('p90')):>7} {_ms(p.get('p99')):>7} "
                f"{_ms(p.get('max')):>7} {lv['drain_after_produce_s']:>7.2f} {lv['cpu_cores']:>6} "
                f"{'all' if ok else 'MISSING':>9}"
            )
        print(
            "deliv/s: distinct deliveries / seconds from the first message to the last receipt; "
            "drain: last receipt after the last message was produced; gw CPU includes ingest "
            "and routing."
        )
    print(f"total time {elapsed:.0f}s")
    summary = {
        "bench": "fanout",
        "cpu_count": facts["cpu_count"],
        "cpus_usable": facts["cpus_usable"],
        "python": facts["python"],
        "revision": facts["revision"],
        "events": backlog["events"],
        "concurrency": args.concurrency,
        "gateway_deliveries_per_s": gw_rates,
        "raw_requests_per_s": raw_rates,
        "best_gateway": best_gw,
        "best_raw": best_raw,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "request_ms_p50": [r["request_ms"]["p50"] for r in gws],
        "request_ms_p99": [r["request_ms"]["p99"] for r in gws],
        "raw_request_ms_p50": [r["latency_ms"]["p50"] for r in raws],
        "raw_request_ms_p99": [r["latency_ms"]["p99"] for r in raws],
        "rate_goal_pass": rate_ok,
        "ratio_goal_pass": ratio_ok,
        "live": [
            {
                "messages_per_s": args.live_rate,
                "deliveries_per_s": lv["rate"],
                "created_to_receipt_ms": lv["created_to_receipt_ms"],
            }
            for lv in lives
        ],
    }
    print(json.dumps(summary, separators=(",", ":")))
    return summary


# --- entry ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=20_000, help="backlog: events to deliver")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    p.add_argument("--repeat", type=int, default=3, help="raw and gateway runs, alternating")
    p.add_argument("--visitors", type=int, default=500, help="customers writing at a time")
    p.add_argument(
        "--messages-per-visitor", type=int, default=10, help="messages before a customer leaves"
    )
    p.add_argument("--timeout", type=float, default=300.0, help="max seconds for one run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--live",
        action="store_true",
        help="also runs of delivery while producing (after the backlog runs)",
    )
    p.add_argument("--live-rate", type=float, default=1000.0, help="live: customer messages/s")
    p.add_argument("--live-duration", type=float, default=10.0, help="live: seconds producing")
    p.add_argument(
        "--live-warmup",
        type=float,
        default=2.0,
        help="live: latency counts events created after this many seconds",
    )
    p.add_argument("--work-dir", type=Path, help="keep config, logs and databases here")
    p.add_argument("--profile", action="store_true", help="gateway under cProfile (work dir)")
    p.add_argument(
        "--pyspy",
        metavar="PY_SPY",
        help="path of a py-spy executable: a sampling profile of each gateway run (all "
        "threads, collapsed stacks) is left in the work dir",
    )
    p.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    p.add_argument(
        "--role",
        choices=["bench", "receiver", "raw", "live"],
        default="bench",
        help=argparse.SUPPRESS,
    )
    p.add_argument("--spec", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "receiver":
        return receiver_main("127.0.0.1")
    if args.role == "raw":
        return raw_main(args.spec)
    if args.role == "live":
        return live_main(args.spec)

    for key in [k for k in os.environ if k.startswith("OMNIGW_")]:
        del os.environ[key]  # the prepared database and the served gateway must agree
    started = time.perf_counter()
    facts = machine_facts()
    args.keep = args.work_dir is not None
    opened = open_work_dir(args.work_dir, "omnigw-bench-fanout-", facts)
    if opened is None:
        return 2
    work = opened
    data_fs = fs_type(work)
    if args.profile:
        print("profiling: the gateway runs under cProfile; figures are not comparable", flush=True)
    bench = Bench(args, work)
    results: list[dict[str, Any]] = []
    lives: list[dict[str, Any]] = []
    try:
        bench.start_receiver()
        bench.log(f"preparing a backlog of {args.events:,} events ...")
        bench.backlog = asyncio.run(build_backlog(args, work, f"{bench.rx}/hook"))
        bench.log(
            f"  {bench.backlog['events']:,} events from {bench.backlog['messages']:,} messages "
            f"in {bench.backlog['seconds']}s"
        )
        for i in range(1, args.repeat + 1):
            results.append(bench.raw(f"raw #{i}"))
            results.append(bench.gateway(f"gateway #{i}"))
        if args.live:
            for i in range(1, args.repeat + 1):
                lives.append(bench.live(f"live-{i}"))
    finally:
        bench.stop_receiver()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(args, facts, data_fs, bench.backlog, results, lives, time.perf_counter() - started)
    if args.keep:
        print(f"work dir kept: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
