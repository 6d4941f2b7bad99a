"""The OpenAPI document is generated from the models the handlers use, and is valid."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from gateway.api.schemas import SendMessage
from gateway.app import Gateway
from kernel.models import Conversation

Client = TestClient  # type: ignore[type-arg]


async def test_document_is_valid_openapi(client: Client) -> None:
    resp = await client.get("/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)


async def test_every_route_is_documented(client: Client, gw: Gateway) -> None:
    doc = await (await client.get("/v1/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for route in gw.web_app().router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        # The console's pages are pages, not API operations.
        if route.method != "HEAD" and path and not path.startswith("/console"):
            served.add((route.method, path))
    assert served == documented


async def test_schemas_are_the_handlers_models(client: Client) -> None:
    doc = await (await client.get("/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    send = doc["paths"]["/v1/conversations/{id}/messages"]["post"]
    ref = send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert set(schemas[name]["properties"]) == set(SendMessage.model_fields)
    conv_ref = doc["paths"]["/v1/conversations/{id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    assert set(schemas[conv_ref.rsplit("/", 1)[1]]["properties"]) == set(Conversation.model_fields)
    assert {"401", "403"} <= set(send["responses"])
    assert send["responses"]["202"]
    params = {p["name"] for p in send["parameters"]}
    assert {"id", "Idempotency-Key"} <= params
    for path in doc["paths"]:
        assert re.fullmatch(r"[/a-z0-9_{}.\-]*", path), path
