"""The HTTP API (design.md section 5) and the provider-facing routes."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

# Importing the handler modules registers their routes on `api`.
from gateway.api import (  # noqa: F401
    agents,
    contacts,
    conversations,
    events,
    providers,
    stats,
    system,
    webhooks,
)
from gateway.api.errors import ApiError, PayloadTooLarge
from gateway.api.spec import MAX_BODY, REPLAYED, api, error_response
from kernel.errors import DomainError, NotFound

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(gw: Gateway) -> web.Application:
    app = web.Application(
        client_max_size=gw.settings.server.max_body_bytes,
        middlewares=[_errors(gw)],
    )
    app[MAX_BODY] = gw.settings.server.max_body_bytes
    api.install(app, gw)
    return app


def _errors(gw: Gateway) -> Any:
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
        gw.metrics.inc("omnigw_http_requests_total", code=f"{response.status // 100}xx")
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s in %.1f ms",
                request.method,
                request.path,
                response.status,
                (time.perf_counter() - started) * 1000,
            )
        return response

    return middleware
