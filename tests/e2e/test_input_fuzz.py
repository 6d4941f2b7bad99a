"""Generated input, well-formed or not, against the real gateway (`omnigw serve` as a child
process): every write operation of the API gets JSON bodies built from its fields with
awkward values (lone surrogates, NUL, deep nesting, long text, `javascript:` URLs) and
bytes that are not JSON at all; the webchat socket gets generated frames. No answer is a
server error, no frame is an internal error, the socket stays open, and the gateway's log
holds no traceback (issue 17: "a fuzz run over the API bodies and socket frames with no
500 and no traceback").

Unlike test_api_fuzz.py (schemathesis: input as the OpenAPI document describes it), the
input here is mostly what the document does not allow."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.server import AUTH, GatewayProcess, start_gateway

CONFIG = """
[server]
api_rate_per_second = 0

[[channels]]
id = "webchat"
type = "webchat"
identity_secret = "fuzz-identity-secret"
rate_per_second = 10000
rate_burst = 100000
frames_per_second = 10000
frames_burst = 100000
address_frames_per_second = 10000
address_frames_burst = 100000
address_conversations = 100000

[[agents]]
id = "lan"
presence = "online"
capacity = { total = 1000 }
"""
EXAMPLES = 40  # per operation; the suite must stay fast
WRITE = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Target:
    gateway: GatewayProcess
    http: httpx.Client
    ids: dict[str, str]  # path segment before {id} -> an id that exists
    fields: list[str]  # every property name of the OpenAPI document


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("input-fuzz")
    config = root / "omnigw.toml"
    config.write_text(CONFIG, encoding="utf-8")
    proc = start_gateway(root / "data", root, config=config)
    try:
        with httpx.Client(base_url=proc.base_url, headers=AUTH, timeout=30) as http:
            yield Target(proc, http, _existing_ids(proc, http), _field_names(http))
    finally:
        proc.terminate()


def _existing_ids(proc: GatewayProcess, http: httpx.Client) -> dict[str, str]:
    async def customer_writes() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(proc.ws_url) as ws,
        ):
            await ws.receive_json(timeout=10)
            await ws.send_json({"type": "message", "client_id": "c1", "text": "Xin chào"})
            assert (await ws.receive_json(timeout=10))["type"] == "ack"

    asyncio.run(customer_writes())
    conversation = http.get("/v1/conversations").json()["items"][0]
    token = http.post("/v1/tokens", json={"name": "fuzz", "scopes": ["integration"]}).json()
    hook = http.post(
        "/v1/webhooks",
        json={"url": "https://[2606:4700:4700::1111]/hook", "events": ["sla.breached"]},
    ).json()
    template = http.post("/v1/templates", json={"name": "chào", "text": "Chào {{x}}"}).json()
    return {
        "templates": template["id"],
        "conversations": conversation["id"],
        "contacts": conversation["contact_id"],
        "agents": "lan",
        "channels": "webchat",
        "tokens": token["id"],
        "webhooks": hook["id"],
    }


def _field_names(http: httpx.Client) -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    found.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(http.get("/v1/openapi.json").json()["components"])
    return sorted(found)


def _write_operations() -> list[tuple[str, str]]:
    from gateway.api import PARTS
    from gateway.api.spec import Operations

    ops = Operations.joined(*PARTS).operations
    return [(op.method, op.path) for op in ops if op.method in WRITE]


def _pages() -> set[tuple[str, str]]:
    """Operations that answer HTML pages (the survey page), errors included."""
    from gateway.api import PARTS
    from gateway.api.spec import Operations

    ops = Operations.joined(*PARTS).operations
    return {(op.method, op.path) for op in ops if op.raw and op.content_type == "text/html"}


# --- what is sent ----------------------------------------------------------------------

AWKWARD_TEXT = [
    "",
    " ",
    "Tiếng Việt có dấu",
    "Tie\u0302\u0301ng Vie\u0323\u0302t",  # decomposed: becomes NFC
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ud83d\ude00",
    "😀",
    "\u202e\u200b",
    "a" * 20_001,
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "//evil.example/x",
    "http://127.0.0.1:9/x",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]:9/x",
    "https://[2606:4700:4700::1111]/x",
    "/v1/attachments/att_00000000000000000000000000",
    "<script>alert(1)</script>",
    "text",
    "link",
    "image",
    "message",
    "history",
    "identify",
    "typing",
    "admin",
    "agent",
    "integration",
    "online",
    "humans",
    "on",
    "lan",
    "webchat",
    "*",
    "message.*",
    "9" * 400,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(AWKWARD_TEXT),
    st.text(max_size=40),
)


def values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=12,
    )


def raw_bodies(keys: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """What a client might send: JSON objects of known and unknown fields, anything else
    that is JSON, JSON too deep, NaN, bytes that are not UTF-8, truncated JSON."""
    objects = st.dictionaries(keys, values(keys), max_size=6)
    deep = st.tuples(keys, st.integers(min_value=60, max_value=60_000)).map(
        lambda kn: ('{"%s": ' % kn[0] + "[" * kn[1] + "]" * kn[1] + "}").encode()  # noqa: UP031
    )
    return st.one_of(
        objects.map(lambda o: json.dumps(o).encode()),
        objects.map(lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        values(keys).map(lambda v: json.dumps(v).encode()),
        deep,
        st.just(b'{"text": NaN}'),
        st.binary(max_size=200),
        objects.map(lambda o: json.dumps(o).encode()[:-1]),
    )


def path_ids(target: Target, path: str) -> st.SearchStrategy[str]:
    """The path with its parameters: an id that exists (mostly), or anything."""
    names = re.findall(r"\{(\w+)\}", path)
    if not names:
        return st.just(path)
    before = path.split("/{")[0].rsplit("/", 1)[-1]
    known = target.ids.get(before, "webchat")
    choice = st.one_of(
        st.just(known),
        st.just(known),
        st.sampled_from(["nope", "cv_0", "..", "%00"]),
        st.text(min_size=1, max_size=30),
    )
    return choice.map(lambda value: re.sub(r"\{\w+\}", quote(value, safe=""), path))


def log_size(gateway: GatewayProcess) -> int:
    return Path(gateway.stderr_path).stat().st_size


def no_traceback(gateway: GatewayProcess, since: int) -> None:
    """Nothing the gateway logged since ``since`` (a size of its log) is a traceback."""
    with Path(gateway.stderr_path).open("rb") as f:
        f.seek(since)
        log = f.read().decode("utf-8", "replace")
    assert "Traceback" not in log, log[-5000:]
    assert "unhandled error" not in log, log[-5000:]
    assert "ERROR" not in log, log[-5000:]


# --- the API ---------------------------------------------------------------------------


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("method", "path"), _write_operations())
def test_api_write_operations(target: Target, method: str, path: str) -> None:
    since = log_size(target.gateway)
    keys = st.one_of(st.sampled_from(target.fields), st.text(max_size=12))

    @given(url=path_ids(target, path), body=raw_bodies(keys))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(url: str, body: bytes) -> None:
        resp = target.http.request(
            method, url, content=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code < 500, (method, url, body[:300], resp.text[:500])
        if resp.status_code >= 400 and resp.status_code != 405:
            if page and resp.headers["Content-Type"].startswith("text/html"):
                assert resp.text.startswith("<!doctype html>"), resp.text[:500]
            else:
                assert "code" in resp.json()["error"], resp.text[:500]

    page = (method, path) in _pages()
    run()
    assert target.gateway.proc.poll() is None, target.gateway.stderr_text()
    no_traceback(target.gateway, since)


# --- the webchat socket ----------------------------------------------------------------

FRAME_KEYS = [
    "type",
    "client_id",
    "text",
    "before",
    "after",
    "limit",
    "state",
    "name",
    "email",
    "phone",
    "user_id",
    "hmac",
    "choice_id",
    "attachment_ids",
]
frame_types = st.sampled_from(["message", "history", "typing", "identify"]) | scalars


def frames() -> st.SearchStrategy[str | bytes]:
    keys = st.sampled_from(FRAME_KEYS) | st.text(max_size=8)
    objects = st.builds(
        lambda kind, rest: {**rest, "type": kind},
        frame_types,
        st.dictionaries(keys, values(keys), max_size=6),
    )
    deep = st.integers(min_value=60, max_value=30_000).map(
        lambda n: '{"type": "message", "client_id": "d", "text": ' + "[" * n + "]" * n + "}"
    )
    return st.one_of(
        objects.map(json.dumps),
        # Text frames are UTF-8: a lone surrogate travels escaped (above) or not at all.
        objects.map(
            lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8", "replace").decode()
        ),
        deep,
        st.text(max_size=100),
        st.binary(max_size=100),
        st.just('{"type": "history", "limit": NaN}'),
    )


@pytest.mark.timeout(600)
def test_webchat_frames(target: Target) -> None:
    since = log_size(target.gateway)
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session())
    state: dict[str, Any] = {"probes": 0}

    async def connect() -> None:
        state["ws"] = await session.ws_connect(target.gateway.ws_url)
        assert (await state["ws"].receive_json(timeout=10))["type"] == "session"

    async def exchange(frame: str | bytes) -> list[dict[str, Any]]:
        ws = state["ws"]
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        # A frame of a type of its own is always answered (an error naming it): what was
        # sent before it has been handled by then.
        state["probes"] += 1
        probe = f"probe-{state['probes']}"
        await ws.send_str(json.dumps({"type": probe}))
        answers = []
        while True:
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.TEXT, (frame[:200], msg)
            answer = json.loads(msg.data)
            if answer.get("code") == "unknown_type" and probe in answer["message"]:
                return answers
            answers.append(answer)

    @given(frame=frames())
    @settings(
        max_examples=EXAMPLES * 8,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(frame: str | bytes) -> None:
        answers = loop.run_until_complete(exchange(frame))
        for answer in answers:
            assert answer.get("code") != "internal", (frame[:200], answer)
        assert not state["ws"].closed

    try:
        loop.run_until_complete(connect())
        run()
    finally:
        loop.run_until_complete(session.close())
        loop.close()
    assert target.gateway.proc.poll() is None, target.gateway.stderr_text()
    no_traceback(target.gateway, since)


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()
