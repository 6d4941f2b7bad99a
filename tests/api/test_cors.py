"""Browser pages of other origins: `[server] cors_origins`, preflights and the headers of
the API's answers (gateway.api.cors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import ConfigError, load_settings
from config.schema import normal_origin
from tests.api.sse import read_event
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

HELPDESK = "https://helpdesk.example"
LOCAL = "http://localhost:3000"
STRANGER = "https://evil.example"


@pytest.fixture
async def cors(make_gateway: GatewayFactory) -> AsyncIterator[Client]:
    gw = await make_gateway(
        **{"server.cors_origins": ["https://HelpDesk.example:443/", LOCAL]},
    )
    async with TestClient(TestServer(gw.web_app())) as c:
        yield c


def cors_headers(headers: object) -> dict[str, str]:
    return {k: v for k, v in dict(headers).items() if k.lower().startswith("access-control-")}  # type: ignore[call-overload]


def preflight(origin: str, method: str = "POST", headers: str = "authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


# --- configuration ------------------------------------------------------------------------


def _problems(tmp_path: Path, origins: str) -> str:
    path = tmp_path / "omnigw.toml"
    path.write_text(f"[server]\ncors_origins = {origins}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, env={})
    assert {p.key for p in exc.value.problems} == {"server.cors_origins"}
    return str(exc.value)


def test_origins_are_kept_as_browsers_send_them(tmp_path: Path) -> None:
    path = tmp_path / "omnigw.toml"
    path.write_text(
        "[server]\ncors_origins = ["
        '"HTTPS://Helpdesk.Example:443", "http://localhost:3000/", "http://a.example:80", '
        '"https://[::1]:8443", "https://helpdesk.example", "https://bücher.example"]\n',
        encoding="utf-8",
    )
    s = load_settings(path, env={})
    assert s.server.cors_origins == [
        "https://helpdesk.example",
        "http://localhost:3000",
        "http://a.example",
        "https://[::1]:8443",
        "https://xn--bcher-kva.example",
    ]
    assert load_settings(None, env={}).server.cors_origins == []


@pytest.mark.parametrize("wildcard", ['["*"]', '["https://*.helpdesk.example"]'])
def test_a_wildcard_is_refused_with_the_reason(tmp_path: Path, wildcard: str) -> None:
    message = _problems(tmp_path, wildcard)
    assert "wildcards are not allowed" in message
    assert "origins named exactly" in message


@pytest.mark.parametrize(
    ("origins", "said"),
    [
        ('["https://helpdesk.example/app"]', "no path, query or fragment"),
        ('["https://helpdesk.example?x=1"]', "no path, query or fragment"),
        ('["https://helpdesk.example#top"]', "no path, query or fragment"),
        ('["ftp://helpdesk.example"]', "is not an http or https origin"),
        ('["helpdesk.example"]', "is not an http or https origin"),
        ('["null"]', "is not an http or https origin"),
        ('["https://"]', "names no host"),
        ('["https://user@helpdesk.example"]', "may not name a user"),
        ('["https://helpdesk.example:99999"]', "port that is not a number"),
    ],
)
def test_what_is_not_an_origin_is_refused(tmp_path: Path, origins: str, said: str) -> None:
    message = _problems(tmp_path, origins)
    assert said in message
    with pytest.raises(ValueError, match=said.split(" ")[0]):
        normal_origin(origins[2:-2])


# --- preflights --------------------------------------------------------------------------


async def test_a_listed_origin_s_preflight_is_answered(cors: Client) -> None:
    for origin in (HELPDESK, LOCAL):
        resp = await cors.options(
            "/v1/conversations/x/messages",
            headers=preflight(origin, "POST", "authorization,content-type,idempotency-key"),
        )
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
        assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
        allowed = {
            h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert allowed == {
            "authorization",
            "content-type",
            "idempotency-key",
            "last-event-id",
            "x-request-id",
        }
        assert int(resp.headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in resp.headers["Vary"]
        # bearer tokens, not cookies: no credentials mode
        assert "Access-Control-Allow-Credentials" not in resp.headers
    resp = await cors.options("/v1/events", headers=preflight(HELPDESK, "GET", "last-event-id"))
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == HELPDESK


async def test_an_unlisted_origin_s_preflight_gets_403_and_no_cors(cors: Client) -> None:
    for origin in (STRANGER, "https://helpdesk.example:8443", "http://helpdesk.example", "null"):
        resp = await cors.options("/v1/conversations", headers=preflight(origin))
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "origin_not_allowed"
        assert cors_headers(resp.headers) == {}


async def test_no_origins_no_cors(client: Client) -> None:
    resp = await client.options("/v1/conversations", headers=preflight(HELPDESK))
    assert resp.status == 405
    assert cors_headers(resp.headers) == {}
    resp = await client.get("/v1/conversations", headers={**AUTH, "Origin": HELPDESK})
    assert resp.status == 200
    assert cors_headers(resp.headers) == {}
    assert "Vary" not in resp.headers


# --- answers -----------------------------------------------------------------------------


async def test_a_listed_origin_s_answers_carry_the_headers(cors: Client) -> None:
    resp = await cors.get("/v1/conversations", headers={**AUTH, "Origin": HELPDESK})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == HELPDESK
    assert "Origin" in resp.headers["Vary"]
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-Id", "Retry-After", "Idempotent-Replayed"} <= exposed
    assert "Access-Control-Allow-Credentials" not in resp.headers
    # errors too, so that the page can read why
    resp = await cors.get("/v1/conversations", headers={"Origin": LOCAL})
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == LOCAL
    assert (await resp.json())["error"]["code"] == "unauthorized"
    resp = await cors.get("/v1/nothing-here", headers={**AUTH, "Origin": HELPDESK})
    assert resp.status == 404
    assert resp.headers["Access-Control-Allow-Origin"] == HELPDESK
    resp = await cors.post("/v1/events/tickets", headers={**AUTH, "Origin": HELPDESK})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == HELPDESK


async def test_the_event_stream_carries_them(cors: Client) -> None:
    resp = await cors.get("/v1/events", headers={**AUTH, "Origin": HELPDESK})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == HELPDESK
    assert "Origin" in resp.headers["Vary"]
    assert await read_event(resp) == "connected"
    resp.close()


async def test_an_unlisted_origin_s_answers_carry_none(cors: Client) -> None:
    resp = await cors.get("/v1/conversations", headers={**AUTH, "Origin": STRANGER})
    assert resp.status == 200  # answered; the browser keeps it from the page
    assert cors_headers(resp.headers) == {}
    assert "Origin" in resp.headers["Vary"]  # cached apart from a listed origin's
    resp = await cors.get("/v1/conversations", headers=AUTH)  # no Origin: not a browser's
    assert resp.status == 200
    assert cors_headers(resp.headers) == {}


async def test_same_origin_requests_are_unaffected(cors: Client) -> None:
    own = str(cors.make_url("/")).rstrip("/")  # the gateway's own pages (demo, console)
    resp = await cors.post(
        "/v1/events/tickets", headers={**AUTH, "Origin": own, "Content-Type": "application/json"}
    )
    assert resp.status == 201
    assert cors_headers(resp.headers) == {}
    resp = await cors.get("/v1/conversations", headers={**AUTH, "Origin": own})
    assert resp.status == 200
    assert cors_headers(resp.headers) == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/webchat/widget.js"),
        ("GET", "/webhooks/webchat"),
        ("POST", "/webhooks/webchat"),
        ("GET", "/console"),
        ("GET", "/"),
        ("GET", "/surveys/x"),
    ],
)
async def test_only_the_api_gets_cors(cors: Client, method: str, path: str) -> None:
    resp = await cors.request(method, path, headers={"Origin": HELPDESK})
    assert cors_headers(resp.headers) == {}
    resp = await cors.options(path, headers=preflight(HELPDESK, method))
    assert resp.status != 204
    assert cors_headers(resp.headers) == {}
