"""Ingest benchmark: customer messages through the whole gateway pipeline.

webchat socket in -> stored durably in SQLite -> routed -> `message.received` on the SSE
stream, measured by a load generator running in its own process against the real gateway
(`python -m gateway serve`) started as a subprocess. The same load client also drives a
bare aiohttp server (a WebSocket echo and a trivial HTTP handler, in a third process) to
measure the ceiling this machine and client allow; the gateway is reported as a fraction
of it.

Runs, in order:
  reference  bare WebSocket echo, bare HTTP POST handler: max throughput
  gateway    for each SQLite `synchronous` variant (default: full, then normal):
             (a) max throughput: one message in flight per socket, next sent on ack;
             (b) fixed rate (open loop): messages sent on schedule, regardless of acks.

Usage:
  .venv/bin/python bench/ingest.py                 # defaults, about 75 s
  .venv/bin/python bench/ingest.py --duration 20 --sockets 128 --rate 800 --sync full

Internal roles (started by the benchmark itself):
  ingest.py --role load --spec JSON    the load generator; prints one JSON result line
  ingest.py --role bare                the bare aiohttp reference server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    ServerProcess,
    clean_env,
    fmt_ms,
    fs_type,
    machine_cpu_seconds,
    machine_facts,
    open_work_dir,
    percentiles,
    process_cpu_seconds,
    process_tree_cpu_seconds,
    run_role,
    serve_until_signalled,
    verdict,
    vi_text,
)

GOAL_THROUGHPUT = 1500.0  # messages/s end to end, one gateway process
GOAL_P99_MS = 50.0  # p99 end-to-end latency at GOAL_RATE
GOAL_RATE = 500.0
ADMIN_TOKEN = "ogw_admin_bench_" + uuid.uuid4().hex
# Replicas seal and sign with the same key; a fixed one keeps every run alike.
SECRET_KEY = "bench-secret-key-" + uuid.uuid4().hex
CHANNEL = "webchat"
ACK_TIMEOUT = 30.0
TEXT_POOL = 4000

# =========================================================================================
# Load generator (its own process)
# =========================================================================================


@dataclass
class Stats:
    """What the load generator observes. Latency samples are kept for messages *sent*
    inside the measurement window; rates count *arrivals* inside it."""

    t_measure: int = 0
    t_end: int = 0
    awaiting_sse: dict[str, int] = field(default_factory=dict)  # key -> send time
    acked_unseen: set[str] = field(default_factory=set)  # acked, event not seen yet
    first_keys: set[str] = field(default_factory=set)
    first_conv: dict[str, int] = field(default_factory=dict)  # conversation -> first send
    ack_ns: list[int] = field(default_factory=list)
    e2e_ns: list[int] = field(default_factory=list)
    route_ns: list[int] = field(default_factory=list)
    lag_ns: list[int] = field(default_factory=list)
    sent_total: int = 0
    sent_window: int = 0
    acked_total: int = 0
    acked_window: int = 0
    e2e_window: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    unknown_events: int = 0
    events: Counter[str] = field(default_factory=Counter)
    visitors: int = 0
    all_seen: asyncio.Event = field(default_factory=asyncio.Event)
    per_second: Counter[int] = field(default_factory=Counter)  # completions per 1 s bucket
    per_second_acks: bool = False  # bucket acks (reference runs) instead of SSE arrivals

    def forget(self, key: str) -> int | None:
        self.acked_unseen.discard(key)
        sent_at = self.awaiting_sse.pop(key, None)
        if not self.awaiting_sse:
            self.all_seen.set()
        return sent_at

    def in_window(self, t: int) -> bool:
        return self.t_measure <= t < self.t_end

    def on_sent(self, key: str, t: int, first: bool, track_sse: bool) -> None:
        self.sent_total += 1
        if self.in_window(t):
            self.sent_window += 1
        if track_sse:
            self.awaiting_sse[key] = t
            if first:
                self.first_keys.add(key)

    def on_ack(self, sent_at: int, t: int, key: str = "") -> None:
        self.acked_total += 1
        if key in self.awaiting_sse:
            self.acked_unseen.add(key)
        if self.in_window(t):
            self.acked_window += 1
            if self.per_second_acks:
                self.per_second[(t - self.t_measure) // 1_000_000_000] += 1
        if self.in_window(sent_at):
            self.ack_ns.append(t - sent_at)

    def on_received(self, key: str, conversation_id: str, t: int) -> None:
        sent_at = self.forget(key)
        if sent_at is None:
            self.unknown_events += 1
            return
        if self.in_window(t):
            self.e2e_window += 1
            if not self.per_second_acks:
                self.per_second[(t - self.t_measure) // 1_000_000_000] += 1
        if self.in_window(sent_at):
            self.e2e_ns.append(t - sent_at)
        if key in self.first_keys:
            self.first_keys.discard(key)
            self.first_conv[conversation_id] = sent_at

    def on_assigned(self, conversation_id: str, t: int) -> None:
        sent_at = self.first_conv.pop(conversation_id, None)
        if sent_at is not None and self.in_window(sent_at):
            self.route_ns.append(t - sent_at)


class Visitor:
    """One webchat socket = one visitor. A reader task matches acks to sent frames."""

    def __init__(self, ws: Any, visitor_id: str, stats: Stats, echo: bool) -> None:
        self.ws = ws
        self.visitor_id = visitor_id
        self.stats = stats
        self.echo = echo  # the bare server echoes the frame instead of sending an ack
        self.sent = 0
        self.budget = 0  # messages this visitor sends before leaving (0: no limit)
        self.inflight: dict[str, tuple[int, asyncio.Future[None] | None]] = {}
        self.idle = asyncio.Event()
        self.idle.set()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from aiohttp import WSMsgType

        stats = self.stats
        async for msg in self.ws:
            t = time.perf_counter_ns()
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "ack" or (self.echo and kind == "message"):
                pending = self.inflight.pop(frame.get("client_id"), None)
                if pending is not None:
                    stats.on_ack(pending[0], t, f"{self.visitor_id}:{frame['client_id']}")
                    self._done(pending[1])
            elif kind == "error":
                stats.errors[frame.get("code", "?")] += 1
                pending = self.inflight.pop(frame.get("client_id"), None)
                if pending is not None:
                    stats.forget(f"{self.visitor_id}:{frame['client_id']}")
                    self._done(pending[1])

    def _done(self, future: asyncio.Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)
        if not self.inflight:
            self.idle.set()

    async def send(self, client_id: str, frame: str, future: asyncio.Future[None] | None) -> None:
        t = time.perf_counter_ns()
        self.inflight[client_id] = (t, future)
        self.idle.clear()
        self.stats.on_sent(
            f"{self.visitor_id}:{client_id}", t, first=self.sent == 0, track_sse=not self.echo
        )
        self.sent += 1
        await self.ws.send_str(frame)

    async def close(self, wait: float = ACK_TIMEOUT) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.idle.wait()
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.stats = Stats()
        self.echo = spec["target"] == "bare-ws"
        self.stats.per_second_acks = spec["target"] != "gateway"
        rng = random.Random(spec["seed"])
        # Texts are JSON-encoded once; a frame is then one f-string.
        self.texts = [
            json.dumps(vi_text(rng, spec["min_len"], spec["max_len"]), ensure_ascii=False)
            for _ in range(TEXT_POOL)
        ]
        self.text_bytes = sum(len(t.encode()) for t in self.texts) / len(self.texts)
        self.counter = 0
        self.connections = 0
        self.t_start = 0
        self.closing: set[asyncio.Task[None]] = set()

    def frame(self, slot: int) -> tuple[str, str]:
        self.counter += 1
        client_id = f"c{slot}.{self.counter}"
        text = self.texts[self.counter % TEXT_POOL]
        return client_id, f'{{"type":"message","client_id":"{client_id}","text":{text}}}'

    async def connect(self, session: Any) -> Visitor:
        # Sockets go round the servers' URLs (one per replica) in turn.
        urls = self.spec["ws_urls"]
        url = urls[self.connections % len(urls)]
        self.connections += 1
        ws = await session.ws_connect(url, autoping=True, max_msg_size=0)
        first = await ws.receive_json(timeout=30)
        if first.get("type") != "session":
            raise RuntimeError(f"expected a session frame, got {first!r}")
        self.stats.visitors += 1
        visitor = Visitor(ws, first["visitor_id"], self.stats, self.echo)
        visitor.budget = self.spec["messages_per_visitor"]
        return visitor

    def retire(self, visitor: Visitor) -> None:
        task = asyncio.create_task(visitor.close())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def rotate(
        self, session: Any, visitor: Visitor, spare: asyncio.Task[Visitor] | None
    ) -> tuple[Visitor, asyncio.Task[Visitor] | None]:
        """After messages_per_visitor messages the visitor leaves and a new one (connected
        ahead of time, so pacing holds) starts a new conversation."""
        if spare is None or visitor.sent < visitor.budget:
            return visitor, spare
        self.retire(visitor)
        fresh = await spare
        return fresh, asyncio.create_task(self.connect(session))

    # --- workers ---------------------------------------------------------------------

    async def closed_slot(self, session: Any, slot: int, visitor: Visitor) -> None:
        loop = asyncio.get_running_loop()
        spare = self._spare(session)
        try:
            while time.perf_counter_ns() < self.stats.t_end:
                visitor, spare = await self.rotate(session, visitor, spare)
                client_id, frame = self.frame(slot)
                future: asyncio.Future[None] = loop.create_future()
                await visitor.send(client_id, frame, future)
                try:
                    async with asyncio.timeout(ACK_TIMEOUT):
                        await future
                except TimeoutError:
                    self.stats.timeouts += 1
                    break
        finally:
            self.retire(visitor)
            await self._drop_spare(spare)

    async def open_slot(self, session: Any, slot: int, visitor: Visitor) -> None:
        """Slot k sends at t_start + (k + j*C)/rate: together the slots send at `rate`."""
        rate, sockets = self.spec["rate"], self.spec["sockets"]
        period = int(sockets * 1e9 / rate)
        due = self.t_start + int(slot * 1e9 / rate)
        spare = self._spare(session)
        try:
            while due < self.stats.t_end:
                delay = due - time.perf_counter_ns()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                visitor, spare = await self.rotate(session, visitor, spare)
                now = time.perf_counter_ns()
                if self.stats.in_window(due):
                    self.stats.lag_ns.append(max(0, now - due))
                client_id, frame = self.frame(slot)
                await visitor.send(client_id, frame, None)
                due += period
        finally:
            self.retire(visitor)
            await self._drop_spare(spare)

    def _spare(self, session: Any) -> asyncio.Task[Visitor] | None:
        if self.spec["messages_per_visitor"] <= 0:
            return None
        return asyncio.create_task(self.connect(session))

    async def _drop_spare(self, spare: asyncio.Task[Visitor] | None) -> None:
        if spare is None:
            return
        with contextlib.suppress(Exception):
            visitor = await spare
            await visitor.close(wait=0)

    async def http_worker(self, session: Any, slot: int) -> None:
        url = self.spec["http_url"]
        headers = {"Content-Type": "application/json"}
        while time.perf_counter_ns() < self.stats.t_end:
            _, frame = self.frame(slot)
            t = time.perf_counter_ns()
            self.stats.on_sent("", t, first=False, track_sse=False)
            async with session.post(url, data=frame.encode(), headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    self.stats.errors[f"http_{resp.status}"] += 1
                    continue
            self.stats.on_ack(t, time.perf_counter_ns())

    # --- SSE ---------------------------------------------------------------------------

    async def sse_reader(self, resp: Any, ready: asyncio.Event) -> None:
        stats = self.stats
        buf = b""
        async for chunk in resp.content.iter_any():
            t = time.perf_counter_ns()
            buf += chunk
            *blocks, buf = buf.split(b"\n\n")
            for block in blocks:
                etype = data = None
                for line in block.split(b"\n"):
                    if line.startswith(b"event: "):
                        etype = line[7:]
                    elif line.startswith(b"data: "):
                        data = line[6:]
                    elif line == b": connected":
                        ready.set()
                if etype is None or data is None:
                    continue
                stats.events[etype.decode()] += 1
                if etype == b"message.received":
                    msg = json.loads(data)["data"]["message"]
                    stats.on_received(msg["external_id"], msg["conversation_id"], t)
                elif etype == b"conversation.assigned":
                    conv = json.loads(data)["data"]["conversation"]
                    stats.on_assigned(conv["id"], t)

    # --- the run -----------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        import aiohttp

        spec, stats = self.spec, self.stats
        sockets = spec["sockets"]
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            sse = None
            sse_task = None
            if spec["target"] == "gateway":
                sse = await session.get(
                    spec["sse_url"], headers={"Authorization": f"Bearer {spec['token']}"}
                )
                if sse.status != 200:
                    raise RuntimeError(f"SSE: HTTP {sse.status}: {await sse.text()}")
                ready = asyncio.Event()
                sse_task = asyncio.create_task(self.sse_reader(sse, ready))
                async with asyncio.timeout(10):
                    await ready.wait()  # subscribed before the first message is sent

            visitors: list[Visitor] = []
            http = None
            if spec["target"] == "bare-http":
                # Keep-alive HTTP over the same number of connections.
                http = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=sockets), timeout=timeout
                )
            else:
                visitors = list(
                    await asyncio.gather(*(self.connect(session) for _ in range(sockets)))
                )
                # Stagger the first visitors' lengths so that visitors come and go
                # steadily rather than all at once.
                per = spec["messages_per_visitor"]
                for k, visitor in enumerate(visitors):
                    visitor.budget = per - (k * per) // sockets

            self.t_start = time.perf_counter_ns()
            stats.t_measure = self.t_start + int(spec["warmup"] * 1e9)
            stats.t_end = stats.t_measure + int(spec["duration"] * 1e9)
            cpu = asyncio.create_task(self.cpu_sampler(spec.get("watch", {})))

            if http is not None:
                try:
                    await asyncio.gather(*(self.http_worker(http, k) for k in range(sockets)))
                finally:
                    await http.close()
            elif spec["mode"] == "closed":
                await asyncio.gather(
                    *(self.closed_slot(session, k, v) for k, v in enumerate(visitors))
                )
            else:
                await asyncio.gather(
                    *(self.open_slot(session, k, v) for k, v in enumerate(visitors))
                )
            cpu_used = await cpu

            # Drain: every sent message's ack and SSE event, or give up after drain_s.
            drain_start = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(spec["drain"]):
                    await asyncio.gather(*list(self.closing), return_exceptions=True)
                    if stats.awaiting_sse:
                        stats.all_seen.clear()
                        await stats.all_seen.wait()
            drain_s = time.perf_counter() - drain_start
            lost = len(stats.awaiting_sse)
            lost_acked = len(stats.acked_unseen)
            for task in list(self.closing):
                task.cancel()
            if sse_task is not None and sse is not None:
                sse_task.cancel()
                with contextlib.suppress(BaseException):
                    await sse_task
                sse.close()

        window = spec["duration"]
        gw = spec["target"] == "gateway"
        return {
            "target": spec["target"],
            "mode": spec["mode"],
            "sockets": sockets,
            "rate": spec.get("rate"),
            "warmup_s": spec["warmup"],
            "window_s": window,
            "messages_per_visitor": spec["messages_per_visitor"],
            "avg_frame_text_bytes": round(self.text_bytes, 1),
            "sent_total": stats.sent_total,
            "acked_total": stats.acked_total,
            "send_rate": round(stats.sent_window / window, 1),
            "ack_rate": round(stats.acked_window / window, 1),
            "e2e_rate": round(stats.e2e_window / window, 1) if gw else None,
            "ack_ms": percentiles(stats.ack_ns),
            "e2e_ms": percentiles(stats.e2e_ns) if gw else None,
            "route_ms": percentiles(stats.route_ns) if gw else None,
            "send_lag_ms": percentiles(stats.lag_ns) if spec["mode"] == "open" else None,
            "errors": dict(stats.errors),
            "ack_timeouts": stats.timeouts,
            "lost": lost,  # sent, event not seen (a message never acked may not be stored)
            "lost_acked": lost_acked,  # acked, event not seen: lost for a helpdesk
            "unknown_events": stats.unknown_events,
            "events": dict(stats.events),
            "visitors": stats.visitors,
            "drain_s": round(drain_s, 2),
            "per_second": [stats.per_second[i] for i in range(int(window))],
            **cpu_used,
        }

    async def cpu_sampler(self, watch: dict[str, list[Any]]) -> dict[str, Any]:
        """CPU used during the measurement window by this process and by each watched one:
        ``watch`` maps a name to ``[pid, tree]`` (tree: with all its descendants)."""
        stats = self.stats

        def read(pid: int, tree: bool) -> float | None:
            return process_tree_cpu_seconds(pid) if tree else process_cpu_seconds(pid)

        async def until(t: int) -> tuple[int, float, dict[str, float | None]]:
            delay = t - time.perf_counter_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            now = time.perf_counter_ns()
            watched = {name: read(pid, tree) for name, (pid, tree) in watch.items()}
            watched["machine"] = machine_cpu_seconds()
            return now, time.process_time(), watched

        t0, load0, watched0 = await until(stats.t_measure)
        t1, load1, watched1 = await until(stats.t_end)
        wall = (t1 - t0) / 1e9
        cpu_s: dict[str, float] = {}
        for name, before in watched0.items():
            after = watched1.get(name)
            if before is not None and after is not None:
                cpu_s[name] = round(after - before, 3)
        out: dict[str, Any] = {
            "load_cpu": round((load1 - load0) / wall, 2),
            "load_cpu_s": round(load1 - load0, 3),
            "cpu_wall_s": round(wall, 3),
            "cpu_s": cpu_s,  # with "machine": every process on it, this one included
        }
        if "server" in cpu_s:
            out["server_cpu"] = round(cpu_s["server"] / wall, 2)
        return out


def load_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    result = asyncio.run(Load(spec).run())
    print(json.dumps(result), flush=True)
    return 0


# =========================================================================================
# Bare aiohttp reference server (its own process)
# =========================================================================================


def bare_main(host: str) -> int:
    from aiohttp import WSMsgType, web

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1024 * 1024)
        await ws.prepare(request)
        session = {
            "type": "session",
            "token": "-",
            "visitor_id": "v_" + uuid.uuid4().hex,
            "conversation_id": None,
        }
        await ws.send_str(json.dumps(session))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def http_handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text='{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/echo", http_handler)
    serve_until_signalled(app, host, "bare aiohttp")
    return 0


# =========================================================================================
# Orchestration (the benchmark's own process)
# =========================================================================================


def sqlite_url(data_dir: Path, sync: str) -> str:
    return f"sqlite:///{(data_dir / 'omnigw.db').resolve()}?synchronous={sync}"


def gateway_config(path: Path, store_url: str, redis_url: str | None = None) -> None:
    """The benchmark's gateway: one webchat channel with limits above the load (every
    visitor comes from this machine's one address) and one agent, `demo`, who takes every
    conversation. Replicas share one such file."""
    redis = f'\n[redis]\nurl = "{redis_url}"\n' if redis_url else ""
    path.write_text(
        f"""\
[server]
demo_page = false

[store]
url = "{store_url}"
{redis}
[[channels]]
id = "{CHANNEL}"
type = "webchat"
rate_per_second = 1000.0
rate_burst = 1000
# Every bench visitor comes from this machine's one address.
frames_per_second = 1000.0
frames_burst = 1000
address_frames_per_second = 1000000.0
address_frames_burst = 1000000
address_conversations = 1000000
address_sockets = 100000
max_sockets = 100000

[[agents]]
id = "demo"
name = "Bench Agent"
languages = ["vi"]
presence = "online"
capacity = {{ total = 100000 }}
""",
        encoding="utf-8",
    )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.python = args.python
        self.results: list[dict[str, Any]] = []

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def spec(self, **over: Any) -> dict[str, Any]:
        a = self.args
        base = {
            "sockets": a.sockets,
            "warmup": a.warmup,
            "duration": a.duration,
            "messages_per_visitor": a.messages_per_visitor,
            "min_len": a.min_len,
            "max_len": a.max_len,
            "seed": a.seed,
            "drain": a.drain,
            "mode": "closed",
            "rate": None,
        }
        base.update(over)
        return base

    def run_load(self, label: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.log(f"  {label} ...")
        limit = spec["warmup"] + spec["duration"] + spec["drain"] + ACK_TIMEOUT + 60
        result = run_role(self.python, Path(__file__).resolve(), "load", spec, limit)
        result["label"] = label
        self.results.append(result)
        rate = result["e2e_rate"] if result["e2e_rate"] is not None else result["ack_rate"]
        self.log(f"    {rate:,.0f} msgs/s")
        return result

    # --- phases ------------------------------------------------------------------------

    def reference(self, work: Path) -> None:
        server = ServerProcess(
            "bare aiohttp",
            [self.python, str(Path(__file__).resolve()), "--role", "bare"],
            port_pattern=r"listening on http://[^:]+:(\d+)",
            env=clean_env(),
            stderr_path=work / "bare.stderr.log",
        )
        port = server.start()
        self.log(f"reference: bare aiohttp server, pid {server.pid}, port {port}")
        try:
            common = {"duration": self.args.ref_duration, "watch": {"server": [server.pid, False]}}
            self.run_load(
                "bare-ws echo, max",
                self.spec(target="bare-ws", ws_urls=[f"http://127.0.0.1:{port}/ws"], **common),
            )
            self.run_load(
                "bare-http, max",
                self.spec(target="bare-http", http_url=f"http://127.0.0.1:{port}/echo", **common),
            )
        finally:
            server.stop()

    def start_gateway(self, name: str, config: Path, data_dir: Path, work: Path) -> ServerProcess:
        """``python -m gateway serve`` on ``config`` with a data directory of its own (under
        cProfile with --profile: gateway-<name>.prof in the work dir)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [self.python]
        if self.args.profile:
            argv += ["-m", "cProfile", "-o", str(work / f"gateway-{name}.prof")]
        argv += [
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ]
        server = ServerProcess(
            f"gateway ({name})",
            argv,
            port_pattern=r"listening on http://[^:]+:(\d+)",
            env=clean_env(OMNIGW_ADMIN_TOKEN=ADMIN_TOKEN, OMNIGW_SECRET_KEY=SECRET_KEY),
            stderr_path=work / f"gateway-{name}.stderr.log",
        )
        server.start(timeout=60)
        return server

    def stop_gateway(self, server: ServerProcess) -> dict[str, Any]:
        """Stop it (SIGTERM); its exit code and what it wrote to stderr."""
        code = server.stop()
        if code not in (0, None):
            self.log(f"{server.name} exited with {code}; {server.diagnostics()}")
        assert server.stderr_path is not None
        text = server.stderr_path.read_text(errors="replace")
        warnings = [ln for ln in text.splitlines() if ln.strip()]
        return {"stderr_lines": len(warnings), "stderr_tail": warnings[-5:], "exit_code": code}

    def gateway_load(
        self, name: str, servers: list[ServerProcess], watch: dict[str, list[Any]]
    ) -> int:
        """The max run then the fixed-rate run against ``servers``: the sockets are spread
        over them, the SSE stream is read from the first. Returns the acks received."""
        base = [f"http://127.0.0.1:{server.port}" for server in servers]
        common = {
            "target": "gateway",
            "ws_urls": [f"{url}/webchat/{CHANNEL}/ws" for url in base],
            "sse_url": f"{base[0]}/v1/events",
            "token": ADMIN_TOKEN,
            "watch": watch,
        }
        r = self.run_load(f"gateway {name}, max", self.spec(**common))
        acked: int = r["acked_total"]
        r = self.run_load(
            f"gateway {name}, {self.args.rate:g}/s",
            self.spec(mode="open", rate=self.args.rate, **common),
        )
        return acked + int(r["acked_total"])

    def gateway(self, work: Path, sync: str) -> dict[str, Any]:
        data_dir = work / f"gw-{sync}"
        config = work / f"omnigw-{sync}.toml"
        gateway_config(config, sqlite_url(data_dir, sync))
        server = self.start_gateway(sync, config, data_dir, work)
        self.log(f"gateway synchronous={sync}: pid {server.pid}, port {server.port}")
        try:
            acked = self.gateway_load(sync, [server], {"server": [server.pid, False]})
        finally:
            ended = self.stop_gateway(server)
        stored = count_inbound(data_dir / "omnigw.db")
        return {"sync": sync, "stored": stored, "acked": acked, **ended}


def count_inbound(db: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT COUNT(*) FROM messages WHERE direction = 'inbound'")
            return int(row.fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


# --- report ------------------------------------------------------------------------------


def _spread(per_second: list[int]) -> str:
    """Slowest and fastest whole second of the window."""
    return f"{min(per_second):,}..{max(per_second):,}" if per_second else "-"


def report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    data_fs: str,
    results: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    by_label = {r["label"]: r for r in results}
    ref = by_label.get("bare-ws echo, max")
    ref_http = by_label.get("bare-http, max")
    print()
    print("omnichannel-gateway ingest benchmark: webchat socket -> SQLite -> routing -> SSE")
    print(
        f"machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), "
        f"{facts['cpu_model']}; {facts['platform']}"
    )
    print(
        f"software: {facts['python_impl']} {facts['python']}, aiohttp {facts['aiohttp']}, "
        f"SQLite {facts['sqlite']}; data dir on {data_fs}; gateway at {facts['revision']}"
    )
    print(
        f"note: {facts['cpus_usable']} cores are shared by the gateway, the load generator "
        "and its SSE reader (separate processes); CPU columns show each side's use."
    )
    print(
        f"load: {args.sockets} sockets (one visitor each, replaced after "
        f"{args.messages_per_visitor or 'no'} messages), one message in flight per socket in "
        f"max mode; Vietnamese texts {args.min_len}-{args.max_len} chars; "
        f"warm-up {args.warmup:g}s, window {args.duration:g}s ({args.ref_duration:g}s reference)"
    )
    print()
    head = (
        f"{'run':<24} {'sent/s':>8} {'ack/s':>8} {'e2e/s':>8} {'errors':>6} {'lost':>5} "
        f"{'srv CPU':>7} {'load CPU':>8} {'1s min..max':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        errors = sum(r["errors"].values()) + r["ack_timeouts"]
        e2e = "-" if r["e2e_rate"] is None else f"{r['e2e_rate']:,.0f}"
        print(
            f"{r['label']:<24} {r['send_rate']:>8,.0f} {r['ack_rate']:>8,.0f} {e2e:>8} "
            f"{errors:>6} {r['lost']:>5} {r.get('server_cpu', 0):>7.2f} {r['load_cpu']:>8.2f} "
            f"{_spread(r['per_second']):>13}"
        )
    print()
    head = f"{'latency (ms)':<24} {'kind':<14} {'n':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"
    print(head)
    print("-" * len(head))
    for r in results:
        rows = [("frame->ack", r["ack_ms"])]
        if r["e2e_ms"] is not None:
            rows.append(("frame->SSE", r["e2e_ms"]))
            rows.append(("first->assigned", r["route_ms"]))
        if r["send_lag_ms"] is not None:
            rows.append(("send lag", r["send_lag_ms"]))
        for i, (kind, p) in enumerate(rows):
            label = r["label"] if i == 0 else ""
            print(
                f"{label:<24} {kind:<14} {p['n']:>7} {fmt_ms(p['p50']):>7} {fmt_ms(p['p90']):>7} "
                f"{fmt_ms(p['p99']):>7} {fmt_ms(p['max']):>7}"
            )
    print()
    print("integrity (messages stored in SQLite vs acked by the gateway, over both runs):")
    for c in checks:
        state = "OK" if c["stored"] == c["acked"] else "MISMATCH"
        print(
            f"  synchronous={c['sync']}: stored {c['stored']}, acked {c['acked']} {state}; "
            f"gateway stderr lines: {c['stderr_lines']}"
        )
        for line in c["stderr_tail"]:
            print(f"    | {line}")

    variants: dict[str, Any] = {}
    for c in checks:
        sync = c["sync"]
        mx = by_label.get(f"gateway {sync}, max")
        fx = by_label.get(f"gateway {sync}, {args.rate:g}/s")
        if mx is None or fx is None:
            continue
        tput = mx["e2e_rate"]
        p99 = fx["e2e_ms"]["p99"]
        variants[sync] = {
            "max_msgs_per_s": tput,
            "max_ack_per_s": mx["ack_rate"],
            "max_e2e_ms": {k: mx["e2e_ms"][k] for k in ("p50", "p90", "p99", "max")},
            "max_ack_ms": {k: mx["ack_ms"][k] for k in ("p50", "p90", "p99", "max")},
            "ratio_to_bare_ws": round(tput / ref["ack_rate"], 3) if ref else None,
            "ratio_to_bare_http": round(tput / ref_http["ack_rate"], 3) if ref_http else None,
            "fixed_rate": args.rate,
            "fixed_achieved_e2e_per_s": fx["e2e_rate"],
            "fixed_e2e_ms": {k: fx["e2e_ms"][k] for k in ("p50", "p90", "p99", "max")},
            "fixed_ack_ms": {k: fx["ack_ms"][k] for k in ("p50", "p90", "p99", "max")},
            "throughput_goal_pass": tput >= GOAL_THROUGHPUT,
            "p99_goal_pass": (
                p99 is not None and p99 < GOAL_P99_MS and abs(args.rate - GOAL_RATE) < 1e-9
            ),
            "server_cpu_max": mx.get("server_cpu"),
            "load_cpu_max": mx["load_cpu"],
            "lost": mx["lost"] + fx["lost"],
            "errors": sum(mx["errors"].values()) + sum(fx["errors"].values()),
            "stored_equals_acked": c["stored"] == c["acked"],
        }

    print()
    if ref:
        print(
            f"physical limit (same client, same {args.sockets} connections): bare WebSocket echo "
            f"{ref['ack_rate']:,.0f} msgs/s"
            + (f", bare HTTP handler {ref_http['ack_rate']:,.0f} req/s" if ref_http else "")
        )
    for sync, v in variants.items():
        default = " (default)" if sync == "full" else ""
        print(f"goals, SQLite synchronous={sync}{default}:")
        print(
            f"  throughput end to end   {v['max_msgs_per_s']:>8,.0f} msgs/s   "
            f"goal >= {GOAL_THROUGHPUT:,.0f}        {verdict(v['throughput_goal_pass'])}"
        )
        p99 = v["fixed_e2e_ms"]["p99"]
        note = "" if abs(args.rate - GOAL_RATE) < 1e-9 else f" (measured at {args.rate:g}/s)"
        print(
            f"  p99 e2e at {GOAL_RATE:g} msgs/s    {fmt_ms(p99):>8} ms       "
            f"goal < {GOAL_P99_MS:g} ms          {verdict(v['p99_goal_pass'])}{note}"
        )
        if v["ratio_to_bare_ws"] is not None:
            print(
                f"  ratio to bare ws echo   {v['ratio_to_bare_ws']:>8.3f}          "
                f"(gateway e2e msgs/s / bare echo msgs/s)"
            )
    print(f"total time {elapsed:.0f}s")

    summary = {
        "bench": "ingest",
        "cpu_count": facts["cpu_count"],
        "cpus_usable": facts["cpus_usable"],
        "python": facts["python"],
        "revision": facts["revision"],
        "sockets": args.sockets,
        "rate": args.rate,
        "duration_s": args.duration,
        "bare_ws_msgs_per_s": ref["ack_rate"] if ref else None,
        "bare_http_req_per_s": ref_http["ack_rate"] if ref_http else None,
        "variants": variants,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return summary


# --- entry ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="End-to-end ingest benchmark of omnichannel-gateway (webchat -> SSE)."
    )
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per gateway run")
    p.add_argument("--ref-duration", type=float, default=5.0, help="measured seconds, reference")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--sockets", type=int, default=64, help="concurrent webchat sockets")
    p.add_argument("--rate", type=float, default=GOAL_RATE, help="fixed-rate run, msgs/s")
    p.add_argument(
        "--messages-per-visitor",
        type=int,
        default=20,
        help="a visitor leaves after this many messages and a new one opens a conversation "
        "(0: the same visitors all along)",
    )
    p.add_argument(
        "--sync",
        default="full,normal",
        help="SQLite synchronous variants to run, comma-separated (full is the default)",
    )
    p.add_argument("--skip-reference", action="store_true", help="no bare aiohttp runs")
    p.add_argument("--min-len", type=int, default=20, help="shortest message, characters")
    p.add_argument("--max-len", type=int, default=300, help="longest message, characters")
    p.add_argument("--drain", type=float, default=10.0, help="max seconds to wait for stragglers")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work-dir", type=Path, help="keep config, logs and databases here")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the gateway under cProfile; .prof files go to the work dir (cProfile sees "
        "the event loop thread only, not the sqlite-writer thread: use py-spy for that)",
    )
    p.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    p.add_argument(
        "--role", choices=["bench", "load", "bare"], default="bench", help=argparse.SUPPRESS
    )
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "load":
        return load_main(args.spec)
    if args.role == "bare":
        return bare_main(args.host)

    started = time.perf_counter()
    facts = machine_facts()
    syncs = [s.strip() for s in args.sync.split(",") if s.strip()]
    keep = args.work_dir is not None
    opened = open_work_dir(args.work_dir, "omnigw-bench-", facts)
    if opened is None:
        return 2
    work = opened
    data_fs = fs_type(work)
    if args.profile:
        print("profiling: the gateway runs under cProfile; figures are not comparable", flush=True)
    bench = Bench(args)
    checks: list[dict[str, Any]] = []
    try:
        if not args.skip_reference:
            bench.reference(work)
        for sync in syncs:
            checks.append(bench.gateway(work, sync))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    report(args, facts, data_fs, bench.results, checks, time.perf_counter() - started)
    if keep:
        print(f"work dir kept: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
