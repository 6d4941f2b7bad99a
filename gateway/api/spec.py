"""Routes declared once, with their models: the same declaration parses requests,
checks scopes, serialises answers and generates the OpenAPI document."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

from gateway.api.auth import ANY_SCOPE, Principal
from gateway.api.errors import PayloadTooLarge, TooManyRequests, status_of
from kernel import jsontext
from kernel.errors import DomainError, Malformed
from kernel.jsontext import JsonRefused

if TYPE_CHECKING:
    from gateway.api.context import ApiContext


MAX_BODY = web.AppKey("max_body_bytes", int)
# Set by a handler whose answer repeats an earlier one (Idempotency-Key).
REPLAYED = web.RequestKey("idempotent_replay", bool)


@dataclass
class Req:
    """What a handler gets: the request, what the API works with, who asked, and the
    parsed inputs."""

    request: web.Request
    ctx: ApiContext
    principal: Principal | None
    body: Any = None
    query: Any = None
    # Path parameters and headers given directly (an operation invoked in process, by the
    # console).
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None

    def param(self, name: str) -> str:
        if self.params is not None:
            return self.params[name]
        return self.request.match_info[name]

    def header(self, name: str) -> str | None:
        if self.headers is not None:
            return self.headers.get(name)
        return self.request.headers.get(name)


Handler = Callable[[Req], Awaitable[Any]]


@dataclass
class Header:
    name: str
    description: str


@dataclass
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    scopes: frozenset[str] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    errors: tuple[int, ...]
    headers: tuple[Header, ...]
    raw: bool
    content_type: str
    description: str
    also: tuple[int, ...] = ()
    # `?ticket=` (POST /v1/events/tickets) may stand for the bearer token.
    tickets: bool = False
    _adapter: TypeAdapter[Any] | None = field(default=None, repr=False)

    def dump(self, value: Any) -> bytes:
        return self._typed().dump_json(value)

    def plain(self, value: Any) -> Any:
        """The answer as JSON-shaped Python values (what its JSON would decode to)."""
        return self._typed().dump_python(value, mode="json")

    def _typed(self) -> TypeAdapter[Any]:
        if self._adapter is None:
            self._adapter = TypeAdapter(self.response)
        return self._adapter


class Operations:
    """The operations of one part of the API, declared with their models."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self._document: str | None = None
        self._index: dict[tuple[str, str], Operation] | None = None

    def add(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        scopes: frozenset[str] | None = ANY_SCOPE,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        headers: tuple[Header, ...] = (),
        raw: bool = False,
        content_type: str = "application/json",
        description: str = "",
        also: tuple[int, ...] = (),
        tickets: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Declare an operation. ``also``: other success statuses with the same answer body;
        ``tickets``: a single-use ticket in the query may stand for the bearer token."""

        def register(fn: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method,
                    path,
                    fn,
                    summary,
                    tag,
                    scopes,
                    body,
                    query,
                    response,
                    status,
                    errors,
                    headers,
                    raw,
                    content_type,
                    description or (fn.__doc__ or "").strip(),
                    also,
                    tickets,
                )
            )
            return fn

        return register

    def install(self, app: web.Application, ctx: ApiContext) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, _wrap(op, ctx))

    def find(self, method: str, path: str) -> Operation:
        """The operation declared for ``method`` on the route template ``path``."""
        if self._index is None:
            self._index = {(op.method, op.path): op for op in self.operations}
        return self._index[(method, path)]

    async def invoke(
        self,
        ctx: ApiContext,
        request: web.Request,
        principal: Principal,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Run an operation in process for ``principal``, with the same scope checks,
        parsing and handler as over HTTP; the answer as the API would show it (JSON-shaped
        Python values), or None for an empty one. The caller takes the token's rate limit
        (`rate_limited`) once for the request it serves, however many operations that runs."""
        op = self.find(method, path)
        if op.scopes is not None:
            principal.require(op.scopes)
        req = Req(request, ctx, principal, params=params or {}, headers=headers or {})
        if op.query is not None:
            req.query = _parse_query(op.query, {k: v for k, v in (query or {}).items() if v})
        if op.body is not None:
            raw = json.dumps(body or {}, ensure_ascii=False).encode()
            req.body = _parse_body(raw, op.body)
        result = await op.handler(req)
        if isinstance(result, tuple):
            result = result[0]
        if result is None or isinstance(result, web.StreamResponse):
            return None
        return op.plain(result)

    def allows(self, principal: Principal, method: str, path: str) -> bool:
        """Whether ``principal``'s scopes let it run the operation."""
        scopes = self.find(method, path).scopes
        return scopes is None or bool(principal.scopes & scopes)

    @classmethod
    def joined(cls, *parts: Operations) -> Operations:
        whole = cls()
        for part in parts:
            whole.operations.extend(part.operations)
        return whole

    # --- OpenAPI -------------------------------------------------------------------------

    def document(self, version: str) -> str:
        """The OpenAPI document as JSON text (made once)."""
        if self._document is None:
            self._document = json.dumps(self.openapi(version), ensure_ascii=False)
        return self._document

    def openapi(self, version: str) -> dict[str, Any]:
        from gateway.api.schemas import ErrorBody

        models: list[tuple[Any, Any]] = [(ErrorBody, "serialization")]
        for op in self.operations:
            if op.body is not None:
                models.append((op.body, "validation"))
            if op.response is not None and isinstance(op.response, type):
                models.append((op.response, "serialization"))
        unique = list(dict.fromkeys(models))
        refs, schemas = models_json_schema(unique, ref_template="#/components/schemas/{model}")
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation_doc(op, refs)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "omnichannel-gateway",
                "version": version,
                "description": "Customer channels (email, Zalo OA, Facebook Messenger, "
                "webchat) for helpdesks: conversations, messages, routing, contacts and a "
                "durable event stream.",
            },
            "paths": paths,
            "components": {
                "schemas": schemas.get("$defs", {}),
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "ticket": {
                        "type": "apiKey",
                        "in": "query",
                        "name": "ticket",
                        "description": "A single-use ticket from POST /v1/events/tickets "
                        "(for EventSource, which cannot send headers).",
                    },
                },
            },
        }


# The whole API, as installed (the OpenAPI document is made from it).
API = web.AppKey("api", Operations)

_PATH_PARAM = re.compile(r"\{(\w+)\}")
_STATUS_TEXT = {
    400: "Malformed input",
    401: "Missing or invalid bearer token",
    403: "The token lacks the needed scope",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Semantically invalid",
    503: "Not ready",
}


def _operation_doc(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method.lower()}_{op.handler.__name__}",
    }
    if op.description:
        doc["description"] = op.description
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        for name, info in op.query.model_fields.items():
            schema = TypeAdapter(cast(Any, info.annotation)).json_schema()
            param: dict[str, Any] = {"name": name, "in": "query", "required": info.is_required()}
            param["schema"] = schema
            if info.description:
                param["description"] = info.description
            params.append(param)
    for header in op.headers:
        params.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": header.description,
            }
        )
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    responses: dict[str, Any] = {}
    if op.response is not None and isinstance(op.response, type):
        content = {op.content_type: {"schema": refs[(op.response, "serialization")]}}
        for status in (op.status, *op.also):
            responses[str(status)] = {"description": "Success", "content": content}
    else:
        responses[str(op.status)] = {
            "description": "Success",
            **({"content": {op.content_type: {}}} if op.raw else {}),
        }
    codes = set(op.errors)
    if op.scopes is not None:
        codes |= {401, 403}
        doc["security"] = [{"bearer": []}, *([{"ticket": []}] if op.tickets else [])]
    if op.body is not None or op.query is not None or "{" in op.path:
        codes.add(400)
    if op.body is not None:
        codes.add(413)
    error_ref = refs[(_error_model(), "serialization")]
    for code in sorted(codes):
        answers: dict[str, Any] = {"application/json": {"schema": error_ref}}
        if op.raw and op.content_type == "text/html":
            answers["text/html"] = {}  # a page answers its errors as a page (the survey's)
        responses[str(code)] = {
            "description": _STATUS_TEXT.get(code, "Error"),
            "content": answers,
        }
    doc["responses"] = responses
    return doc


def _error_model() -> type[BaseModel]:
    from gateway.api.schemas import ErrorBody

    return ErrorBody


# --- request handling ----------------------------------------------------------------------


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


async def _read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the body is larger than {request.app[MAX_BODY]} bytes",
        ) from None
    return _parse_body(raw, model)


def _parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    if not raw.strip():
        raise Malformed("a JSON body is required", code="body_required")
    try:
        data = jsontext.loads(raw)
    except JsonRefused as exc:
        raise Malformed(f"the body is not valid JSON: {exc.reason}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise Malformed("the body must be a JSON object", code="invalid_json")
    if (refused := jsontext.refused_text(raw, data)) is not None:
        where, problem = refused
        raise Malformed(f"{where or 'body'}: {problem}", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Malformed(
            "the body does not match the schema",
            code="validation_error",
            details=validation_details(exc),
        ) from None


def _query_of(op: Operation, request: web.Request) -> BaseModel | None:
    if op.query is None:
        return None
    # `?status=&assignee_id=` means "no filter": empty values are absent.
    return _parse_query(op.query, {k: v for k, v in request.query.items() if v})


def _wrap(op: Operation, ctx: ApiContext) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if "\x00" in request.path or any("\x00" in v for v in request.query.values()):
            raise Malformed("the URL may not contain U+0000 (NUL)", code="bad_request")
        principal = None
        query = None
        if op.scopes is not None:
            if op.tickets and "ticket" in request.query:
                if "Authorization" in request.headers:
                    raise Malformed(
                        "give either a ticket or an Authorization header, not both",
                        code="ticket_and_token",
                    )
                # Checked first: a ticket is not used up by a request refused anyway.
                query = _query_of(op, request)
                principal = await ctx.logins.redeem(request, request.query["ticket"])
            else:
                principal = await ctx.logins.authenticate(request)
            await rate_limited(ctx, principal)
            principal.require(op.scopes)
        req = Req(request, ctx, principal)
        req.query = query if query is not None else _query_of(op, request)
        if op.body is not None:
            req.body = await _read_body(request, op.body)
        result = await op.handler(req)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=op.status if op.status != 200 else 204)
        status = op.status
        if isinstance(result, tuple):
            result, status = result
        return web.Response(body=op.dump(result), status=status, content_type="application/json")

    handle.__name__ = op.handler.__name__
    return handle


async def rate_limited(ctx: ApiContext, principal: Principal) -> None:
    """Refuse a request beyond its token's rate (429 with how long to wait)."""
    wait = await ctx.limits.wait(principal.token_id)
    if wait:
        limits = ctx.limits
        raise TooManyRequests(
            f"too many requests with this token: {limits.burst} at once, then "
            f"{limits.rate:g} per second",
            retry_after=wait,
            details={"retry_after_seconds": round(wait, 3)},
        )


def _parse_query(model: type[BaseModel], given: dict[str, str]) -> BaseModel:
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise Malformed(
            "invalid query parameters", code="validation_error", details=validation_details(exc)
        ) from None


def error_response(exc: DomainError) -> web.Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
    status = status_of(exc)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="omnigw"'
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )
