"""The figures behind GET /v1/stats, read from conversations and the event log (its
``created_at`` index bounds the events read to the window)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from gateway.store.postgres.reading import Reader
from gateway.store.records import ChannelSamples, ResolvedSample, SurveySample, to_us

US = 1_000_000


async def samples(
    conn: asyncpg.Connection,
    since_us: int,
    until_us: int,
    now_us: int,
    channel_ids: Iterable[str] | None,
    window_us: int = 72 * 3600 * US,
) -> dict[str, ChannelSamples]:
    """Per channel: every duration the figures are made of, in seconds."""
    wanted = None if channel_ids is None else set(channel_ids)
    out: dict[str, ChannelSamples] = {}

    def of(channel_id: str) -> ChannelSamples | None:
        if wanted is not None and channel_id not in wanted:
            return None
        found = out.get(channel_id)
        if found is None:
            found = out[channel_id] = ChannelSamples()
        return found

    # A conversation opened in the window was first assigned in it, if before its end.
    first_assigned: dict[str, int] = {
        row[0]: row[1]
        for row in await conn.fetch(
            "SELECT conversation_id, MIN(created_at) FROM events "
            "WHERE created_at >= $1 AND created_at < $2 AND type = 'conversation.assigned' "
            "GROUP BY conversation_id",
            since_us,
            until_us,
        )
    }

    # Conversations opened in the window: first response and wait for a first agent.
    for row in await conn.fetch(
        "SELECT id, channel_id, created_at, first_response_at FROM conversations "
        "WHERE created_at >= $1 AND created_at < $2",
        since_us,
        until_us,
    ):
        s = of(row["channel_id"])
        if s is None:
            continue
        s.created += 1
        answered = row["first_response_at"]
        if answered is not None and answered < until_us:
            s.first_response.append((answered - row["created_at"]) / US)
        else:
            s.unanswered += 1
        assigned = first_assigned.get(row["id"])
        if assigned is not None:
            s.queue_wait.append(max(0, assigned - row["created_at"]) / US)

    # Resolutions in the window (a conversation resolved twice counts once, at its last
    # resolution); first contact: never reopened, never transferred.
    for row in await conn.fetch(
        "SELECT c.channel_id, c.created_at, r.resolved_at, "
        "EXISTS (SELECT 1 FROM events x WHERE x.conversation_id = r.conversation_id "
        " AND x.type IN ('conversation.reopened', 'conversation.transferred') "
        " AND x.created_at < $2) AS touched_again, "
        "NOT EXISTS (SELECT 1 FROM messages m "
        " WHERE m.conversation_id = r.conversation_id AND m.author_type = 'agent') "
        "AND NOT EXISTS (SELECT 1 FROM events y WHERE y.conversation_id = r.conversation_id "
        " AND y.type = 'conversation.assigned') AS contained, "
        "EXISTS (SELECT 1 FROM conversations n "
        " WHERE n.contact_id IN (SELECT id FROM contacts WHERE id = k.root "
        "   UNION SELECT id FROM contacts WHERE merged_into = k.root) "
        " AND n.id <> c.id AND n.created_at > r.resolved_at "
        " AND n.created_at <= r.resolved_at + $3::bigint * interval '1 microsecond') AS came_back "
        "FROM (SELECT conversation_id, MAX(created_at) AS resolved_at FROM events "
        "      WHERE created_at >= $1 AND created_at < $2 AND type = 'conversation.resolved' "
        "      GROUP BY conversation_id) r "
        "JOIN conversations c ON c.id = r.conversation_id "
        "JOIN (SELECT id, COALESCE(merged_into, id) AS root FROM contacts) k "
        "ON k.id = c.contact_id",
        since_us,
        until_us,
        window_us,
    ):
        s = of(row["channel_id"])
        if s is None:
            continue
        s.resolution.append(max(0, row["resolved_at"] - row["created_at"]) / US)
        if not row["touched_again"]:
            s.first_contact += 1
        s.resolved.append(
            ResolvedSample(
                first_contact=not row["touched_again"],
                contained=bool(row["contained"]),
                came_back=bool(row["came_back"]),
                window_open=row["resolved_at"] + window_us > now_us,
            )
        )
    for row in await conn.fetch(
        "SELECT c.channel_id, COUNT(*) AS n, COUNT(DISTINCT e.conversation_id) AS convs "
        "FROM events e JOIN conversations c ON c.id = e.conversation_id "
        "WHERE e.created_at >= $1 AND e.created_at < $2 AND e.type = 'sla.breached' "
        "GROUP BY c.channel_id",
        since_us,
        until_us,
    ):
        s = of(row["channel_id"])
        if s is not None:
            s.sla_breaches += row["n"]
            s.sla_breached_conversations += row["convs"]

    # Surveys sent in the window, with what was answered.
    for row in await conn.fetch(
        "SELECT channel_id, agent_id, csat, nps, ces FROM surveys "
        "WHERE sent_at >= $1 AND sent_at < $2",
        since_us,
        until_us,
    ):
        s = of(row["channel_id"])
        if s is not None:
            s.surveys.append(SurveySample(row["agent_id"], row["csat"], row["nps"], row["ces"]))

    # SLA clocks of the conversations opened in the window.
    for row in await conn.fetch(
        "SELECT channel_id, sla FROM conversation_clocks "
        "WHERE created_at >= $1 AND created_at < $2 AND sla IS NOT NULL",
        since_us,
        until_us,
    ):
        s = of(row["channel_id"])
        if s is not None:
            s.sla_clocks.append(row["sla"])

    # The queue as it stands now.
    for channel_id, (length, oldest) in (await queue_now(conn, now_us)).items():
        s = of(channel_id)
        if s is not None:
            s.queue_length += length
            s.oldest_waiting = oldest
    return out


async def queue_now(conn: asyncpg.Connection, now_us: int) -> dict[str, tuple[int, float | None]]:
    """The queue as it stands: channel -> (conversations queued, seconds the oldest of
    them has waited)."""
    return {
        row["channel_id"]: (
            row["n"],
            None if row["oldest"] is None else max(0, now_us - row["oldest"]) / US,
        )
        for row in await conn.fetch(
            "SELECT channel_id, COUNT(*) AS n, MIN(queued_at) AS oldest FROM conversations "
            "WHERE status = 'queued' GROUP BY channel_id"
        )
    }


class StatsReads:
    def __init__(self, reader: Reader) -> None:
        self._read = reader

    async def samples(
        self,
        since: datetime,
        until: datetime,
        channel_ids: Sequence[str] | None,
        fcr_window: float = 72 * 3600,
    ) -> dict[str, ChannelSamples]:
        found: dict[str, ChannelSamples] = await self._read(
            samples,
            to_us(since),
            to_us(until),
            time.time_ns() // 1000,
            channel_ids,
            int(fcr_window * US),
        )
        return found

    async def queue(self) -> dict[str, tuple[int, float | None]]:
        found: dict[str, tuple[int, float | None]] = await self._read(
            queue_now, time.time_ns() // 1000
        )
        return found
