"""Admin: webhook endpoints, their delivery log, secret rotation and replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, cast

from pydantic import BaseModel, Field, model_validator

from gateway.api.auth import ADMIN_ONLY
from gateway.api.schemas import In, Limit
from gateway.api.spec import Operations, Req
from gateway.store.records import WebhookRecord
from kernel.durations import Duration
from kernel.errors import Malformed
from kernel.events import format_event_id
from kernel.models import rfc3339
from kernel.pages import decode_cursor, encode_cursor

TAG = "webhooks"
operations = Operations()

EventPattern = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z_.*]+$")]


class WebhookBody(In):
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    events: Annotated[list[EventPattern], Field(min_length=1, max_length=50)] = Field(
        default_factory=lambda: ["*"],
        description="Event types; `*` wildcards (`message.*`). Default: everything.",
    )
    description: Annotated[str, Field(max_length=500)] | None = None
    secret: str | None = Field(None, description="Bring your own whsec_...; default: generated.")


class WebhookPatch(In):
    url: Annotated[str, Field(min_length=8, max_length=2000)] | None = None
    events: Annotated[list[EventPattern], Field(min_length=1, max_length=50)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    enabled: bool | None = None


class WebhookInfo(BaseModel):
    id: str
    url: str
    description: str | None
    events: list[str]
    source: str = Field(
        description="`api`, `config` for endpoints of the config file, or `bot` for a "
        "bot's endpoint (`[[bots]]`)."
    )
    enabled: bool
    created_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None


class WebhookCreated(WebhookInfo):
    secret: str = Field(description="Shown only here: verify deliveries with it.")


class WebhookList(BaseModel):
    items: list[WebhookInfo]


class RotateBody(In):
    overlap: Duration | None = Field(
        None, description="How long the previous secret keeps signing (default from config)."
    )


class Rotated(BaseModel):
    secret: str
    previous_valid_until: datetime


class ReplayBody(In):
    since_event_id: Annotated[str, Field(pattern=r"^\d{1,20}$")] | None = None
    since: datetime | None = None
    dead: bool = False

    @model_validator(mode="after")
    def _something(self) -> ReplayBody:
        if self.since_event_id is None and self.since is None and not self.dead:
            raise ValueError("give since_event_id, since, or dead = true")
        if self.since_event_id is not None and self.since is not None:
            raise ValueError("give since_event_id or since, not both")
        return self


class Replayed(BaseModel):
    replayed: int = Field(description="Deliveries put back in line (an upper bound).")


class Attempt(BaseModel):
    id: int
    event_id: str
    attempt: int
    at: str
    status_code: int | None
    latency_ms: float | None
    outcome: str = Field(description="succeeded | retry | dead | disabled")
    error: str | None
    response_excerpt: str | None


class AttemptPage(BaseModel):
    items: list[Attempt]
    next_cursor: str | None = None


class DeliveriesQuery(In):
    cursor: str | None = None
    limit: Limit = 50
    outcome: Annotated[str, Field(pattern=r"^(succeeded|retry|dead|disabled)$")] | None = None


def _info(record: WebhookRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "url": record.url,
        "description": record.description,
        "events": record.events,
        "source": record.source,
        "enabled": record.disabled_at is None,
        "created_at": record.created_at,
        "disabled_at": record.disabled_at,
        "disabled_reason": record.disabled_reason,
        "failing_since": record.failing_since,
        "last_success_at": record.last_success_at,
    }


@operations.add(
    "POST",
    "/v1/webhooks",
    summary="Subscribe an endpoint to events (its secret is shown once)",
    description="Deliveries follow the Standard Webhooks specification (webhook-id, "
    "webhook-timestamp, webhook-signature) and start with the events that happen after "
    "this call. URLs resolving to private, loopback or link-local addresses are refused "
    "unless the configuration allows them. 409 `secret_key_missing` while the gateway "
    "runs without its secret key (nothing can be sealed).",
    tag=TAG,
    scopes=ADMIN_ONLY,
    body=WebhookBody,
    response=WebhookCreated,
    status=201,
    errors=(409, 422),
)
async def create_webhook(req: Req) -> WebhookCreated:
    body = cast(WebhookBody, req.body)
    record, secret = await req.ctx.webhooks.create(
        body.url, body.events, body.description, body.secret
    )
    return WebhookCreated(**_info(record), secret=secret)


@operations.add(
    "GET",
    "/v1/webhooks",
    summary="Webhook endpoints",
    tag=TAG,
    scopes=ADMIN_ONLY,
    response=WebhookList,
)
async def list_webhooks(req: Req) -> WebhookList:
    records = await req.ctx.store.webhooks.all()
    shown = req.ctx.webhooks.shown
    return WebhookList(items=[WebhookInfo(**_info(shown(r))) for r in records])


@operations.add(
    "GET",
    "/v1/webhooks/{id}",
    summary="One webhook endpoint",
    tag=TAG,
    scopes=ADMIN_ONLY,
    response=WebhookInfo,
    errors=(404,),
)
async def get_webhook(req: Req) -> WebhookInfo:
    record = await req.ctx.webhooks.get(req.param("id"))
    return WebhookInfo(**_info(req.ctx.webhooks.shown(record)))


@operations.add(
    "PATCH",
    "/v1/webhooks/{id}",
    summary="Change an endpoint, or enable / disable it",
    tag=TAG,
    scopes=ADMIN_ONLY,
    body=WebhookPatch,
    response=WebhookInfo,
    errors=(404, 409, 422),
)
async def patch_webhook(req: Req) -> WebhookInfo:
    body = cast(WebhookPatch, req.body)
    record = await req.ctx.webhooks.update(
        req.param("id"),
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
    )
    return WebhookInfo(**_info(req.ctx.webhooks.shown(record)))


@operations.add(
    "DELETE",
    "/v1/webhooks/{id}",
    summary="Remove an endpoint",
    tag=TAG,
    scopes=ADMIN_ONLY,
    status=204,
    errors=(404, 409),
)
async def delete_webhook(req: Req) -> None:
    await req.ctx.webhooks.delete(req.param("id"))


@operations.add(
    "POST",
    "/v1/webhooks/{id}/rotate",
    summary="New secret; the previous one keeps signing beside it during the overlap",
    tag=TAG,
    scopes=ADMIN_ONLY,
    body=RotateBody,
    response=Rotated,
    errors=(404, 409),
)
async def rotate_webhook(req: Req) -> Rotated:
    body = cast(RotateBody, req.body)
    secret, until = await req.ctx.webhooks.rotate(req.param("id"), body.overlap)
    return Rotated(secret=secret, previous_valid_until=datetime.fromtimestamp(until, UTC))


@operations.add(
    "GET",
    "/v1/webhooks/{id}/deliveries",
    summary="The delivery log: every attempt, newest first",
    tag=TAG,
    scopes=ADMIN_ONLY,
    query=DeliveriesQuery,
    response=AttemptPage,
    errors=(404,),
)
async def webhook_deliveries(req: Req) -> AttemptPage:
    q = cast(DeliveriesQuery, req.query)
    await req.ctx.webhooks.get(req.param("id"))
    before = decode_cursor(q.cursor)
    if before is not None and not (before.isascii() and before.isdigit()):
        raise Malformed("invalid cursor", code="invalid_cursor")
    rows = await req.ctx.store.webhooks.attempts(
        req.param("id"), int(before) if before else None, q.limit + 1, q.outcome
    )
    items = [
        Attempt(
            id=r["id"],
            event_id=format_event_id(r["event_seq"]),
            attempt=r["attempt"],
            at=rfc3339(datetime.fromtimestamp(r["at"] / 1_000_000, UTC)),
            status_code=r["status_code"],
            latency_ms=r["latency_ms"],
            outcome=r["outcome"],
            error=r["error"],
            response_excerpt=r["response"],
        )
        for r in rows[: q.limit]
    ]
    cursor = encode_cursor(str(items[-1].id)) if len(rows) > q.limit else None
    return AttemptPage(items=items, next_cursor=cursor)


@operations.add(
    "POST",
    "/v1/webhooks/{id}/replay",
    summary="Send again: dead deliveries, or everything since an event id or a time",
    tag=TAG,
    scopes=ADMIN_ONLY,
    body=ReplayBody,
    response=Replayed,
    errors=(404,),
)
async def replay_webhook(req: Req) -> Replayed:
    body = cast(ReplayBody, req.body)
    since_seq: int | None = None
    if body.since_event_id is not None:
        since_seq = int(body.since_event_id)
    elif body.since is not None:
        first = await req.ctx.store.events.first_at(body.since)
        since_seq = (first - 1) if first is not None else await req.ctx.store.events.last_seq()
    count = await req.ctx.webhooks.replay(req.param("id"), since_seq=since_seq, dead=body.dead)
    return Replayed(replayed=count)
