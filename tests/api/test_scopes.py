"""Every route's scopes, against one table: the routes the API declares, the README's
scope table, and what each kind of token actually gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.api import PARTS
from gateway.api.spec import Operations
from tests.api.helpers import post_json

Client = TestClient  # type: ignore[type-arg]

NONE = frozenset[str]()  # no token needed
ANY = frozenset({"admin", "agent", "integration"})
MANAGE = frozenset({"admin", "integration"})
ADMIN = frozenset({"admin"})
WITH_BOT = ANY | {"bot"}  # a bot's token: only the conversations its bot holds

# Who may call what: the README's scope table (the public contract), route by route.
SCOPES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): NONE,
    ("GET", "/readyz"): NONE,
    ("GET", "/metrics"): NONE,
    ("GET", "/v1/openapi.json"): NONE,
    ("GET", "/webhooks/{channel_id}"): NONE,
    ("POST", "/webhooks/{channel_id}"): NONE,
    ("GET", "/webchat/{channel_id}/ws"): NONE,
    ("GET", "/webchat/widget.js"): NONE,
    ("POST", "/webchat/{channel_id}/uploads"): NONE,  # the visitor's token
    ("OPTIONS", "/webchat/{channel_id}/uploads"): NONE,
    ("GET", "/webchat/{channel_id}/files/{id}"): NONE,  # a signed link
    ("GET", "/"): NONE,
    ("GET", "/v1/conversations"): ANY,
    ("POST", "/v1/conversations"): ANY,
    ("GET", "/v1/conversations/{id}"): WITH_BOT,
    ("GET", "/v1/conversations/{id}/messages"): WITH_BOT,
    ("POST", "/v1/conversations/{id}/messages"): WITH_BOT,
    ("POST", "/v1/conversations/{id}/handover"): WITH_BOT,
    ("POST", "/v1/conversations/{id}/assign"): ANY,
    ("POST", "/v1/conversations/{id}/transfer"): ANY,
    ("POST", "/v1/conversations/{id}/resolve"): ANY,
    ("POST", "/v1/conversations/{id}/reopen"): ANY,
    ("POST", "/v1/conversations/{id}/typing"): ANY,
    ("POST", "/v1/conversations/{id}/read"): ANY,
    ("GET", "/v1/conversations/{id}/routing"): MANAGE,
    ("GET", "/v1/queue"): ANY,
    ("GET", "/v1/messages/{id}"): ANY,
    ("GET", "/v1/stats"): ANY,
    ("GET", "/v1/attachments/{id}"): ANY,
    ("POST", "/v1/attachments"): ANY,
    ("GET", "/v1/contacts"): ANY,
    ("GET", "/v1/contacts/{id}/suggestions"): ANY,
    ("GET", "/v1/contacts/{id}"): ANY,
    ("GET", "/v1/contacts/{id}/timeline"): ANY,
    ("PATCH", "/v1/contacts/{id}"): ANY,
    ("DELETE", "/v1/contacts/{id}"): MANAGE,
    ("POST", "/v1/contacts/{id}/merge"): MANAGE,
    ("POST", "/v1/contacts/{id}/unmerge"): MANAGE,
    ("GET", "/v1/agents"): ANY,
    ("GET", "/v1/agents/{id}"): ANY,
    ("PUT", "/v1/agents/{id}"): MANAGE,
    ("PUT", "/v1/agents/{id}/presence"): ANY,
    ("GET", "/v1/events"): ANY,
    ("POST", "/v1/events/tickets"): ANY,
    ("GET", "/v1/channels"): ADMIN,
    ("GET", "/v1/channels/{id}"): ADMIN,
    ("POST", "/v1/channels"): ADMIN,
    ("PATCH", "/v1/channels/{id}"): ADMIN,
    ("DELETE", "/v1/channels/{id}"): ADMIN,
    ("POST", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens"): ADMIN,
    ("DELETE", "/v1/tokens/{id}"): ADMIN,
    ("POST", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks/{id}"): ADMIN,
    ("PATCH", "/v1/webhooks/{id}"): ADMIN,
    ("DELETE", "/v1/webhooks/{id}"): ADMIN,
    ("POST", "/v1/webhooks/{id}/rotate"): ADMIN,
    ("POST", "/v1/webhooks/{id}/replay"): ADMIN,
    ("GET", "/v1/webhooks/{id}/deliveries"): ADMIN,
    ("GET", "/v1/conversations/{id}/survey"): ANY,
    ("GET", "/surveys/{token}"): NONE,
    ("POST", "/surveys/{token}"): NONE,
    ("GET", "/v1/templates"): ANY,
    ("GET", "/v1/templates/{id}"): ANY,
    ("POST", "/v1/templates"): MANAGE,
    ("PUT", "/v1/templates/{id}"): MANAGE,
    ("DELETE", "/v1/templates/{id}"): MANAGE,
}

README = Path(__file__).resolve().parents[2] / "README.md"


def declared() -> dict[tuple[str, str], frozenset[str]]:
    """The scopes each installed operation checks."""
    return {
        (op.method, op.path): NONE if op.scopes is None else frozenset(op.scopes)
        for op in Operations.joined(*PARTS).operations
    }


def test_every_route_checks_the_scopes_of_the_table() -> None:
    routes = declared()
    assert set(routes) == set(SCOPES), "routes missing from the table, or gone from the API"
    wrong = {
        f"{method} {path}": (sorted(map(str, routes[(method, path)])), sorted(scopes))
        for (method, path), scopes in SCOPES.items()
        if routes[(method, path)] != scopes
    }
    assert not wrong, f"declared scopes differ from the table (declared, table): {wrong}"


def readme_scopes() -> dict[tuple[str, str], frozenset[str]]:
    """The README's scope table, one entry per method and route.

    A row names routes in backticks: ``GET|POST /path``, ``GET .../tail`` (the previous
    route's path, longer), ``/tail`` (the previous route's parent path and methods, another
    last segment); ``{...}`` alone is a body, and a query string is not part of the route.
    """
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Route | Scope |"))
    found: dict[tuple[str, str], frozenset[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        scope = cells[1]
        scopes = (
            NONE
            if scope == "none"
            else ANY
            if scope == "any"
            else frozenset(s.strip() for s in scope.split(","))
        )
        methods: list[str] = []
        path = ""
        for item in re.findall(r"`([^`]+)`", cells[0]):
            item = item.replace("\\|", "|").split("?", 1)[0].strip()
            if item.startswith("{"):
                continue  # a body
            head, _, rest = item.partition(" ")
            if rest:
                methods = head.split("|")
                item = rest
            if item.startswith(".../"):
                path = path + item[3:]
            elif item.startswith("/") and not rest and path:
                path = path.rsplit("/", 1)[0] + item
            else:
                path = item
            for method in methods:
                found[(method, path)] = scopes
    return found


def test_the_readme_gives_every_route_the_scopes_of_the_table() -> None:
    documented = readme_scopes()
    assert set(documented) == set(SCOPES), (
        sorted(set(documented) ^ set(SCOPES)),
        "routes missing from the README, or only there",
    )
    wrong = {f"{m} {p}": sorted(s) for (m, p), s in documented.items() if SCOPES[(m, p)] != s}
    assert not wrong, f"the README's scopes differ from the table: {wrong}"


# What each kind of token is told, route by route: a token without the scope gets 403
# insufficient_scope before anything else is looked at; one with it gets past the check
# (the dummy ids then make most routes 404).
KINDS = ("agent", "integration")


@pytest.fixture
async def tokens(client: Client) -> dict[str, dict[str, str]]:
    made = {}
    for kind in KINDS:
        body = {"name": kind, "scopes": [kind]}
        if kind == "agent":
            body["agent_id"] = "demo"
        token = await post_json(client, "/v1/tokens", body, 201)
        made[kind] = {"Authorization": f"Bearer {token['token']}"}
    return made


async def test_each_kind_of_token_gets_what_the_table_gives(
    client: Client, tokens: dict[str, dict[str, str]]
) -> None:
    outcomes = {}
    for (method, path), scopes in SCOPES.items():
        if not scopes or path.startswith("/webchat/"):
            continue
        url = path.replace("{id}", "demo").replace("{channel_id}", "webchat")
        for kind in KINDS:
            async with client.request(method, url, json={}, headers=tokens[kind]) as resp:
                status = resp.status
                code = (await resp.json())["error"]["code"] if status == 403 else None
            wrong = status in (401, 403) if kind in scopes else code != "insufficient_scope"
            if wrong:
                outcomes[f"{kind}: {method} {path}"] = status
    assert not outcomes, f"answers that do not follow the table: {outcomes}"
