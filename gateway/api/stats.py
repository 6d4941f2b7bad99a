"""Support figures per channel: GET /v1/stats."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pydantic import AwareDatetime, Field, field_validator

from gateway.api.schemas import Id, In
from gateway.api.spec import Operations, Req
from gateway.stats import ChannelFigures, Stats, figures, per_agent
from gateway.store.records import ChannelSamples
from kernel.errors import Invalid, NotFound
from kernel.models import rfc3339

DEFAULT_WINDOW = timedelta(days=1)
operations = Operations()
# An offset's "+" arrives as a space when a client leaves it unencoded in the query.
_SPACED_OFFSET = re.compile(r" (\d\d(:?\d\d)?)$")


class StatsQuery(In):
    since: AwareDatetime | None = Field(
        None, description="Start of the window (RFC 3339); default: 24 hours before until."
    )
    until: AwareDatetime | None = Field(None, description="End of the window; default: now.")
    channel_id: Id | None = Field(None, description="Only this channel.")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _plus_sign(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _SPACED_OFFSET.sub(r"+\1", value.strip())
        return value


@operations.add(
    "GET",
    "/v1/stats",
    summary="FRT, ART, FCR, SLA breaches, queue length and wait, per channel",
    tag="stats",
    query=StatsQuery,
    response=Stats,
    errors=(404, 422),
    description=(
        "Over the window [since, until). FRT: opening to first agent reply, for "
        "conversations opened in the window (those unanswered by its end are counted, "
        "not timed). ART: opening to resolution, for conversations resolved in the "
        "window. FCR: the share of those resolved that were never reopened nor "
        "transferred; FCR across channels also needs the contact to open no new "
        "conversation on any channel within [stats] fcr_window of the resolution, and "
        "bot-contained conversations (no person handled them) are reported apart. "
        "Surveys: those sent in the window, CSAT (share of 4 and 5, average), NPS, CES "
        "and response rate, per channel and per agent. SLA breaches: sla.breached "
        "events in the window. Queue wait: "
        "opening to first assignment; queue length and the longest wait are as of now. "
        "Percentiles are nearest-rank."
    ),
)
async def get_stats(req: Req) -> Stats:
    q = cast(StatsQuery, req.query)
    until = (q.until or datetime.now(UTC)).astimezone(UTC)
    since = (q.since or until - DEFAULT_WINDOW).astimezone(UTC)
    if since >= until:
        raise Invalid(
            "since must be before until",
            code="invalid_window",
            details={"since": rfc3339(since), "until": rfc3339(until)},
        )
    types = {status.id: status.type for status in req.ctx.channels.statuses()}
    if q.channel_id is not None and q.channel_id not in types:
        raise NotFound(f"channel {q.channel_id} not found", code="channel_not_found")
    wanted = None if q.channel_id is None else [q.channel_id]
    window = req.ctx.settings.stats.fcr_window
    found = await req.ctx.store.stats.samples(since, until, wanted, window)
    # Every configured channel answers, with zeros when quiet; a channel that is no longer
    # configured appears while its conversations are in the window.
    ids = wanted or sorted(set(types) | set(found))
    total = ChannelSamples()
    channels = []
    for cid in ids:
        samples = found.get(cid, ChannelSamples())
        total.add(samples)
        channels.append(
            ChannelFigures(
                channel_id=cid,
                channel_type=types.get(cid),
                **figures(samples).model_dump(),
            )
        )
    return Stats(
        since=rfc3339(since),
        until=rfc3339(until),
        fcr_window_seconds=window,
        channels=channels,
        total=figures(total),
        agents=per_agent(total.surveys),
    )
