"""The console's pages under load: what the inbox costs against the API and a bare handler.

A fresh `python -m gateway serve` (embedded SQLite, its own temporary data directory) gets
`--conversations` (200) webchat visitors, each identified with a name and a phone and
writing one message, so each is a contact with a conversation; the one agent takes
`--conversations / 2` of them and the rest stay queued. Then, at each concurrency of
`--concurrency` (1,4,16), one load process at a time drives, for `--duration` seconds after
`--warmup`:

  bare          a bare aiohttp handler answering the inbox page's own HTML (captured from
                the gateway): the floor of an HTML page of that size on this machine
  inbox         GET /console/inbox with the session cookie of one sign-in (the form's
                flow, done once by the benchmark)
  inbox/list    GET /console/inbox/list, the fragment htmx fetches when an event says the
                lists changed (with the HX-Request header a browser's htmx sends)
  API list      GET /v1/conversations?status=assigned&limit=100 with the bearer token:
                what an API client pays for a list of the same length

Each load process keeps `c` keep-alive connections, one request in flight on each (closed
loop), and times every request. The inbox shows 50 queued and 50 assigned conversations (the
page's 50 rows per list) and reads each row's contact, so with the defaults the page and the
fragment show as many conversations (100) as the API list answers.

Afterwards the gateway is stopped and the same data directory is opened by a gateway in the
benchmark's own process, whose `Operations.invoke` (how console pages run API operations)
is wrapped to count the operations one inbox render and one fragment run.

    .venv/bin/python bench/console.py            # about 100 s with the defaults
    .venv/bin/python bench/console.py --quick    # a few seconds: does everything still run
    .venv/bin/python bench/console.py --help

The last line of the output is a JSON summary. Figures: bench/README.md.

Internal roles (started by the benchmark itself):
  console.py --role load --spec JSON    one load run; prints one JSON result line
  console.py --role bare --body PATH    the bare aiohttp server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    ServerProcess,
    clean_env,
    fmt_ms,
    fs_type,
    gateway_server,
    machine_facts,
    open_work_dir,
    percentiles,
    process_cpu_seconds,
    run_role,
    serve_until_signalled,
    vi_text,
)

ADMIN_TOKEN = "ogw_admin_bench_" + uuid.uuid4().hex
CHANNEL = "webchat"
AGENT = "demo"
ROW = re.compile(rb"<tr data-conversation=")
API_LIST = "/v1/conversations?status=assigned&limit=100"

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng")
MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Thu", "Bảo")
GIVEN = ("An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hùng", "Lan", "Linh", "Minh", "Nam")


# =========================================================================================
# Load generator (its own process)
# =========================================================================================


async def load_run(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec['concurrency']`` connections, each sending its next GET when the last one is
    answered; latencies of requests sent inside the window, completions counted in it."""
    import aiohttp

    concurrency = spec["concurrency"]
    url = spec["url"]
    headers = spec["headers"]
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    samples: list[int] = []
    done = 0
    errors: Counter[str] = Counter()
    sizes: list[int] = []
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        t0 = time.perf_counter_ns()
        t_measure = t0 + int(spec["warmup"] * 1e9)
        t_end = t_measure + int(spec["duration"] * 1e9)
        watch = spec.get("server_pid")
        cpu: dict[str, float | None] = {}

        async def worker() -> None:
            nonlocal done
            while True:
                t = time.perf_counter_ns()
                if t >= t_end:
                    return
                async with session.get(url, headers=headers, allow_redirects=False) as resp:
                    body = await resp.read()
                    status = resp.status
                t2 = time.perf_counter_ns()
                if status != 200:
                    errors[f"http_{status}"] += 1
                    continue
                if len(sizes) < 50:
                    sizes.append(len(body))
                if t_measure <= t and t2 <= t_end:
                    samples.append(t2 - t)
                if t_measure <= t2 < t_end:
                    done += 1

        async def cpu_sampler() -> None:
            await asyncio.sleep(max(0.0, (t_measure - time.perf_counter_ns()) / 1e9))
            cpu["server0"] = process_cpu_seconds(watch) if watch else None
            cpu["load0"] = process_cpu_seconds_self()
            await asyncio.sleep(max(0.0, (t_end - time.perf_counter_ns()) / 1e9))
            cpu["server1"] = process_cpu_seconds(watch) if watch else None
            cpu["load1"] = process_cpu_seconds_self()

        await asyncio.gather(cpu_sampler(), *(worker() for _ in range(concurrency)))

    window = spec["duration"]

    def cores(key: str) -> float | None:
        a, b = cpu.get(f"{key}0"), cpu.get(f"{key}1")
        return None if a is None or b is None else round((b - a) / window, 3)

    return {
        "concurrency": concurrency,
        "window_s": window,
        "rate": round(done / window, 1),
        "latency_ms": percentiles(samples, (50, 90, 99)),
        "errors": dict(errors),
        "body_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
        "server_cpu": cores("server"),
        "load_cpu": cores("load"),
    }


def process_cpu_seconds_self() -> float:
    """CPU time of this process, all its threads."""
    return time.process_time()


def load_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    result = asyncio.run(load_run(spec))
    print(json.dumps(result), flush=True)
    return 0


# =========================================================================================
# The bare handler (its own process)
# =========================================================================================


def bare_main(body_path: str) -> int:
    from aiohttp import web

    body = Path(body_path).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    serve_until_signalled(app, "127.0.0.1", "bare aiohttp")
    return 0


# =========================================================================================
# The gateway and its data
# =========================================================================================


def gateway_config(path: Path, agent_capacity: int) -> None:
    """One webchat channel with limits above what the seeding sends from this machine's one
    address, one agent who takes ``agent_capacity`` conversations, and no API rate limit
    (the load is one token's)."""
    path.write_text(
        f"""\
[server]
demo_page = false
api_rate_per_second = 0

[[channels]]
id = "{CHANNEL}"
type = "webchat"
rate_per_second = 1000.0
rate_burst = 1000
frames_per_second = 1000.0
frames_burst = 1000
address_frames_per_second = 1000000.0
address_frames_burst = 1000000
address_conversations = 1000000
address_sockets = 100000
max_sockets = 100000

[[agents]]
id = "{AGENT}"
name = "Bench Agent"
languages = ["vi"]
presence = "online"
capacity = {{ total = {agent_capacity} }}
""",
        encoding="utf-8",
    )


def start_gateway(python: str, config: Path, data_dir: Path, work: Path) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    server = gateway_server(
        "gateway", python, config, data_dir, ADMIN_TOKEN, work / "gateway.stderr.log"
    )
    server.start(timeout=60)
    return server


def person(rng: random.Random) -> tuple[str, str]:
    name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
    return name, f"09{rng.randrange(10**8):08d}"


async def seed(base: str, n: int, assigned: int, seed_value: int) -> dict[str, Any]:
    """``n`` webchat visitors, each identified (name, phone) and writing one message; then
    waits until the agent has ``assigned`` of them and the rest are queued."""
    import aiohttp

    rng = random.Random(seed_value)
    people = [person(rng) for _ in range(n)]
    texts = [vi_text(rng, 20, 200) for _ in range(n)]
    started = time.perf_counter()
    gate = asyncio.Semaphore(16)

    async def visitor(session: aiohttp.ClientSession, k: int) -> None:
        async with gate, session.ws_connect(f"{base}/webchat/{CHANNEL}/ws") as ws:
            first = await ws.receive_json(timeout=30)
            if first.get("type") != "session":
                raise RuntimeError(f"expected a session frame, got {first!r}")
            name, phone = people[k]
            await ws.send_json({"type": "identify", "name": name, "phone": phone})
            await ws.send_json({"type": "message", "client_id": "m1", "text": texts[k]})
            while True:
                frame = await ws.receive_json(timeout=30)
                if frame.get("type") == "error":
                    raise RuntimeError(f"visitor {k}: {frame}")
                if frame.get("type") == "ack":
                    return

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(visitor(session, k) for k in range(n)))
    counts = await wait_counts(base, {"assigned": assigned, "queued": n - assigned})
    return {"seconds": round(time.perf_counter() - started, 2), **counts}


async def wait_counts(base: str, expected: dict[str, int], limit: float = 30.0) -> dict[str, int]:
    """The number of conversations of each status, once they are as expected."""
    deadline = time.monotonic() + limit
    counts: dict[str, int] = {}
    while True:
        counts = {status: await count(base, status) for status in expected}
        if counts == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if counts != expected:
        raise RuntimeError(f"conversations by status: {counts}, expected {expected}")
    return counts


async def count(base: str, status: str) -> int:
    import aiohttp

    total, cursor = 0, ""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            url = f"{base}/v1/conversations?status={status}&limit=100{cursor}"
            async with session.get(url) as resp:
                page = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"GET {url}: {resp.status} {page}")
            total += len(page["items"])
            if not page.get("next_cursor"):
                return total
            cursor = f"&cursor={page['next_cursor']}"


async def sign_in(base: str) -> str:
    """The console's sign-in form, as a browser fills it: GET the form (its CSRF nonce in
    a cookie and a hidden field), POST the token; the session cookie's value."""
    import aiohttp

    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base}/console/signin") as resp:
            form = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"GET /console/signin: {resp.status}")
        match = re.search(r'name="csrf" value="([^"]+)"', form)
        if match is None:
            raise RuntimeError("the sign-in form has no csrf field")
        data = {"csrf": match.group(1), "next": "/console/inbox", "token": ADMIN_TOKEN}
        async with session.post(f"{base}/console/signin", data=data, allow_redirects=False) as resp:
            if resp.status != 303 or resp.headers.get("Location") != "/console/inbox":
                raise RuntimeError(f"sign-in: {resp.status} {resp.headers.get('Location')}")
            cookie = resp.cookies.get("omnigw_console")
        if cookie is None:
            raise RuntimeError("sign-in set no session cookie")
        return cookie.value


async def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    import aiohttp

    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
        session.get(url, headers=headers, allow_redirects=False) as resp,
    ):
        return resp.status, await resp.read()


# =========================================================================================
# Counting the operations of one render (in this process)
# =========================================================================================


async def count_operations(config: Path, data_dir: Path) -> dict[str, Any]:
    """Open the measured data directory with a gateway in this process, wrap
    `Operations.invoke` (how console pages run API operations), render the inbox and its
    fragment once each and count what they ran."""
    from aiohttp import web

    from config import load_settings
    from gateway.api.spec import Operations
    from gateway.app import Gateway

    settings = load_settings(config, env={}, overrides={"server.data_dir": str(data_dir)})
    gw = Gateway(settings, admin_token=ADMIN_TOKEN)
    await gw.start()
    runner = web.AppRunner(gw.web_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    calls: Counter[str] = Counter()
    original = Operations.invoke

    async def counted(self: Operations, *args: Any, **kwargs: Any) -> Any:
        method, path = args[3], args[4]
        calls[f"{method} {path}"] += 1
        return await original(self, *args, **kwargs)

    out: dict[str, Any] = {}
    try:
        cookie = await sign_in(base)
        headers = {"Cookie": f"omnigw_console={cookie}"}
        Operations.invoke = counted  # type: ignore[method-assign]
        for label, path, extra in (
            ("inbox", "/console/inbox", {}),
            ("inbox/list", "/console/inbox/list", {"HX-Request": "true"}),
        ):
            calls.clear()
            status, body = await fetch(base + path, {**headers, **extra})
            if status != 200:
                raise RuntimeError(f"GET {path} in process: {status}")
            out[label] = {
                "operations": sum(calls.values()),
                "by_operation": dict(calls),
                "rows": len(ROW.findall(body)),
            }
    finally:
        Operations.invoke = original  # type: ignore[method-assign]
        await runner.cleanup()
        await gw.close_connections()
        await gw.stop()
    return out


# =========================================================================================
# Orchestration
# =========================================================================================


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: list[dict[str, Any]] = []

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def run_load(self, label: str, spec: dict[str, Any]) -> dict[str, Any]:
        limit = spec["warmup"] + spec["duration"] + 120
        result = run_role(self.args.python, Path(__file__).resolve(), "load", spec, limit)
        result["label"] = label
        self.results.append(result)
        lat = result["latency_ms"]
        self.log(
            f"  {label:<12} c={result['concurrency']:<3} {result['rate']:>8,.1f} req/s  "
            f"p50 {fmt_ms(lat['p50'])} ms  p99 {fmt_ms(lat['p99'])} ms"
        )
        return result

    def run(self, work: Path) -> dict[str, Any]:
        args = self.args
        assigned = args.conversations // 2
        config = work / "omnigw.toml"
        gateway_config(config, assigned)
        data_dir = work / "data"
        gw = start_gateway(args.python, config, data_dir, work)
        self.log(f"gateway: pid {gw.pid}, port {gw.port}")
        base = f"http://127.0.0.1:{gw.port}"
        out: dict[str, Any] = {}
        bare: ServerProcess | None = None
        try:
            out["seed"] = asyncio.run(seed(base, args.conversations, assigned, args.seed))
            self.log(f"seeded: {out['seed']}")
            cookie = asyncio.run(sign_in(base))
            session_headers = {"Cookie": f"omnigw_console={cookie}"}
            targets = {
                "inbox": (f"{base}/console/inbox", session_headers, gw.pid),
                "inbox/list": (
                    f"{base}/console/inbox/list",
                    {**session_headers, "HX-Request": "true"},
                    gw.pid,
                ),
                "API list": (
                    base + API_LIST,
                    {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    gw.pid,
                ),
            }
            bodies: dict[str, dict[str, Any]] = {}
            for label, (url, headers, _) in targets.items():
                status, body = asyncio.run(fetch(url, headers))
                if status != 200:
                    raise RuntimeError(f"{label}: HTTP {status}: {body[:300]!r}")
                rows = (
                    len(json.loads(body)["items"])
                    if label == "API list"
                    else len(ROW.findall(body))
                )
                bodies[label] = {"bytes": len(body), "rows": rows}
                if label == "inbox":
                    (work / "inbox.html").write_bytes(body)
            out["bodies"] = bodies
            self.log(f"bodies: {bodies}")
            bare = ServerProcess(
                "bare aiohttp",
                [
                    args.python,
                    str(Path(__file__).resolve()),
                    "--role",
                    "bare",
                    "--body",
                    str(work / "inbox.html"),
                ],
                port_pattern=r"listening on http://[^:]+:(\d+)",
                env=clean_env(),
                stderr_path=work / "bare.stderr.log",
            )
            bare.start()
            self.log(f"bare aiohttp: pid {bare.pid}, port {bare.port}")
            runs = {"bare": (f"http://127.0.0.1:{bare.port}/inbox", {}, bare.pid), **targets}
            # Each concurrency in turn over every target, so that a change in the machine's
            # load hits the targets compared alike.
            for c in args.concurrency:
                for label, (url, headers, pid) in runs.items():
                    spec = {
                        "url": url,
                        "headers": headers,
                        "concurrency": c,
                        "warmup": args.warmup,
                        "duration": args.duration,
                        "server_pid": pid,
                    }
                    self.run_load(label, spec)
            out["after"] = asyncio.run(
                wait_counts(base, {"assigned": assigned, "queued": args.conversations - assigned})
            )
        finally:
            if bare is not None:
                bare.stop()
            code = gw.stop()
            stderr = (work / "gateway.stderr.log").read_text(errors="replace").splitlines()
            out["gateway_exit"] = code
            out["gateway_stderr_lines"] = len([ln for ln in stderr if ln.strip()])
            out["gateway_stderr_tail"] = stderr[-5:]
        out["operations"] = asyncio.run(count_operations(config, data_dir))
        return out


# =========================================================================================
# Report
# =========================================================================================


def report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    fs: str,
    out: dict[str, Any],
    results: list[dict[str, Any]],
    uptime: tuple[str, str],
    elapsed: float,
) -> dict[str, Any]:
    print()
    print("omnichannel-gateway console benchmark: the inbox page, its fragment, the API list")
    print(
        f"machine: {facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), "
        f"{facts['cpu_model']}; {facts['platform']}"
    )
    print(
        f"software: {facts['python_impl']} {facts['python']}, aiohttp {facts['aiohttp']}, "
        f"SQLite {facts['sqlite']}; data dir on {fs}; gateway at {facts['revision']}"
    )
    print(f"load average before: {uptime[0]}")
    print(f"load average after:  {uptime[1]}")
    seeded = out["seed"]
    print(
        f"data: {args.conversations} webchat conversations with their contacts "
        f"({seeded['assigned']} assigned, {seeded['queued']} queued), seeded in "
        f"{seeded['seconds']} s; at the end {out['after']['assigned']} assigned, "
        f"{out['after']['queued']} queued"
    )
    b = out["bodies"]
    print(
        "bodies: "
        + "; ".join(f"{k} {v['bytes']:,} bytes, {v['rows']} conversations" for k, v in b.items())
        + f"; bare: the inbox page's {b['inbox']['bytes']:,} bytes"
    )
    print(
        f"load: one process per run, c keep-alive connections, one request in flight on "
        f"each; warm-up {args.warmup:g} s, window {args.duration:g} s"
    )
    print()
    head = (
        f"{'target':<12} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>6} {'srv CPU':>7} {'CPU ms/req':>10} {'load CPU':>8}"
    )
    print(head)
    print("-" * len(head))
    by: dict[tuple[str, int], dict[str, Any]] = {}
    for r in results:
        by[(r["label"], r["concurrency"])] = r
        lat = r["latency_ms"]
        srv = "-" if r["server_cpu"] is None else f"{r['server_cpu']:.2f}"
        r["cpu_ms_per_request"] = cpu_per_request(r)
        per = "-" if r["cpu_ms_per_request"] is None else f"{r['cpu_ms_per_request']:.2f}"
        print(
            f"{r['label']:<12} {r['concurrency']:>3} {r['rate']:>9,.1f} {fmt_ms(lat['p50']):>8} "
            f"{fmt_ms(lat['p90']):>8} {fmt_ms(lat['p99']):>8} {fmt_ms(lat['max']):>8} "
            f"{sum(r['errors'].values()):>6} {srv:>7} {per:>10} {r['load_cpu']:>8.2f}"
        )
    print()
    print("ratios (console / reference; CPU: the server's CPU time per request)")
    head = (
        f"{'c':>3} {'inbox/bare req/s':>17} {'list/API req/s':>15} {'inbox/bare p50':>15} "
        f"{'list/API p50':>13} {'inbox/bare CPU':>15} {'list/API CPU':>13}"
    )
    print(head)
    print("-" * len(head))
    ratios = []
    for c in args.concurrency:
        bare, inbox = by[("bare", c)], by[("inbox", c)]
        frag, api = by[("inbox/list", c)], by[("API list", c)]
        row = {
            "concurrency": c,
            "inbox_over_bare_rate": _ratio(inbox["rate"], bare["rate"]),
            "list_over_api_rate": _ratio(frag["rate"], api["rate"]),
            "inbox_over_bare_p50": _ratio(inbox["latency_ms"]["p50"], bare["latency_ms"]["p50"]),
            "list_over_api_p50": _ratio(frag["latency_ms"]["p50"], api["latency_ms"]["p50"]),
            "inbox_over_bare_cpu": _ratio(inbox["cpu_ms_per_request"], bare["cpu_ms_per_request"]),
            "list_over_api_cpu": _ratio(frag["cpu_ms_per_request"], api["cpu_ms_per_request"]),
        }
        ratios.append(row)
        print(
            f"{c:>3} {row['inbox_over_bare_rate']:>17.3f} {row['list_over_api_rate']:>15.3f} "
            f"{row['inbox_over_bare_p50']:>15.1f} {row['list_over_api_p50']:>13.1f} "
            f"{row['inbox_over_bare_cpu']:>15.1f} {row['list_over_api_cpu']:>13.1f}"
        )
    print()
    ops = out["operations"]
    for label in ("inbox", "inbox/list"):
        o = ops[label]
        parts = ", ".join(f"{v} x {k}" for k, v in sorted(o["by_operation"].items()))
        print(
            f"API operations per {label} render: {o['operations']} "
            f"({o['rows']} conversations shown): {parts}"
        )
    print(f"gateway stderr lines: {out['gateway_stderr_lines']}; exit code {out['gateway_exit']}")
    for line in out["gateway_stderr_tail"]:
        if line.strip():
            print(f"    | {line}")
    errors = sum(sum(r["errors"].values()) for r in results)
    print(f"errors (answers other than 200): {errors}")
    print(f"total time {elapsed:.0f}s")
    summary = {
        "bench": "console",
        "revision": facts["revision"],
        "cpus_usable": facts["cpus_usable"],
        "python": facts["python"],
        "conversations": args.conversations,
        "bodies": b,
        "results": [
            {
                "target": r["label"],
                "c": r["concurrency"],
                "rate": r["rate"],
                "p50": r["latency_ms"]["p50"],
                "p99": r["latency_ms"]["p99"],
                "errors": sum(r["errors"].values()),
                "server_cpu": r["server_cpu"],
                "cpu_ms_per_request": r["cpu_ms_per_request"],
            }
            for r in results
        ],
        "ratios": ratios,
        "operations": {k: v["operations"] for k, v in ops.items()},
        "load_average": uptime,
    }
    print(json.dumps(summary, separators=(",", ":"), ensure_ascii=False))
    return summary


def cpu_per_request(r: dict[str, Any]) -> float | None:
    """The server's CPU time per answered request in the window, in milliseconds (steadier
    than rates on a shared machine)."""
    if r["server_cpu"] is None or not r["rate"]:
        return None
    return round(r["server_cpu"] / r["rate"] * 1000, 3)


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or not b:
        return float("nan")
    return a / b


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# =========================================================================================
# Entry
# =========================================================================================


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="The console's inbox page and fragment under load, against the API's "
        "list and a bare aiohttp handler.",
    )
    p.add_argument(
        "--conversations",
        type=int,
        default=200,
        help="webchat conversations seeded (half assigned, half queued)",
    )
    p.add_argument(
        "--concurrency",
        default="1,4,16",
        help="connections with a request in flight, comma-separated",
    )
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of a few seconds: 20 conversations, c=1,4, 0.5 s windows",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work-dir", type=Path, help="keep the config, logs and database here")
    p.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    p.add_argument(
        "--role", choices=["bench", "load", "bare"], default="bench", help=argparse.SUPPRESS
    )
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--body", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.conversations, args.concurrency = 20, "1,4"
        args.duration, args.warmup = 0.5, 0.2
    try:
        args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    except ValueError:
        p.error("--concurrency: comma-separated whole numbers, e.g. 1,4,16")
    if not args.concurrency or min(args.concurrency) < 1:
        p.error("--concurrency: at least one, each 1 or more")
    if args.conversations < 2:
        p.error("--conversations: at least 2 (one assigned, one queued)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "load":
        return load_main(args.spec)
    if args.role == "bare":
        return bare_main(args.body)
    started = time.perf_counter()
    before = load_average()
    facts = machine_facts()
    keep = args.work_dir is not None
    work = open_work_dir(args.work_dir, "omnigw-bench-console-", facts)
    if work is None:
        return 2
    fs = fs_type(work)
    bench = Bench(args)
    try:
        out = bench.run(work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    after = load_average()
    elapsed = time.perf_counter() - started
    report(args, facts, fs, out, bench.results, (before, after), elapsed)
    if keep:
        print(f"work dir kept: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
