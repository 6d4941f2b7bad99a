"""The HTTP API (design.md section 5) and the provider-facing routes."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.api import (
    agents,
    attachments,
    contacts,
    conversations,
    cors,
    events,
    forwarded,
    intake,
    stats,
    surveys,
    system,
    templates,
    webhooks,
)
from gateway.api.context import ApiContext
from gateway.api.errors import ApiError, PayloadTooLarge
from gateway.api.spec import API, MAX_BODY, REPLAYED, Operations, error_response
from gateway.metrics import METHODS, UNMATCHED
from kernel.errors import DomainError, NotFound

log = logging.getLogger("gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Every part of the API, in the order the OpenAPI document lists them.
PARTS = (
    agents.operations,
    attachments.operations,
    contacts.operations,
    conversations.operations,
    events.operations,
    intake.operations,
    stats.operations,
    surveys.operations,
    system.operations,
    templates.operations,
    webhooks.operations,
)


def build_app(ctx: ApiContext) -> web.Application:
    middlewares = [_errors(ctx)]
    if ctx.settings.server.trusted_proxies:
        middlewares.insert(0, forwarded.middleware(ctx.settings.server.trusted_proxies))
    app = web.Application(
        client_max_size=ctx.settings.server.max_body_bytes,
        middlewares=middlewares,
    )
    app[MAX_BODY] = ctx.settings.server.max_body_bytes
    api = Operations.joined(*PARTS)
    app[API] = api
    api.install(app, ctx)
    cors.Cors(ctx.settings.server.cors_origins).install(app)
    return app


def _errors(ctx: ApiContext) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        started = time.perf_counter()
        try:
            response = await handler(request)
        except DomainError as exc:
            response = error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            response = error_response(
                PayloadTooLarge(f"the body is larger than {request.app[MAX_BODY]} bytes")
            )
        except web.HTTPNotFound:
            response = error_response(NotFound(f"no route for {request.path}", code="no_route"))
        except web.HTTPMethodNotAllowed as exc:
            err = ApiError(
                f"{request.method} is not allowed here",
                code="method_not_allowed",
                details={"allowed": sorted(exc.allowed_methods)},
            )
            err.status = 405
            response = error_response(err)
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        except web.HTTPException as exc:
            err = ApiError(exc.reason, code=exc.reason.lower().replace(" ", "_"))
            err.status = exc.status
            response = error_response(err)
        except Exception:
            # Never echo internals (they may hold secrets); the id ties the log line to it.
            log.exception(
                "unhandled error in %s %s (request %s)", request.method, request.path, request_id
            )
            response = error_response(
                ApiError(
                    "internal error", code="internal_error", details={"request_id": request_id}
                )
            )
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
            if request.get(REPLAYED):
                response.headers["Idempotent-Replayed"] = "true"
        elapsed = time.perf_counter() - started
        # Event streams and sockets (prepared: answered long ago) are counted, not timed.
        route = None if response.prepared else _route_labels(request)
        ctx.metrics.answered(response.status, route, elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s in %.1f ms",
                request.method,
                request.path,
                response.status,
                elapsed * 1000,
            )
        return response

    return middleware


def _route_labels(request: web.Request) -> tuple[str, str]:
    """A request's method and route template (`/v1/conversations/{id}`): bounded, whatever
    the client sends."""
    method = request.method if request.method in METHODS else "other"
    resource = request.match_info.route.resource
    return method, UNMATCHED if resource is None else resource.canonical
