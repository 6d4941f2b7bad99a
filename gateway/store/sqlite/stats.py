"""The figures behind GET /v1/stats, read from conversations and the event log.

The event log is read only over the stretch of sequence numbers whose events were
written inside the window (found by a binary search on `seq`: events are written in
time order), so a window costs the same whether the log holds a day or a year.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from gateway.store.records import ChannelSamples, ResolvedSample, SurveySample, to_us
from gateway.store.sqlite.reading import Reader

US = 1_000_000


def seq_bounds(conn: sqlite3.Connection, since_us: int, until_us: int) -> tuple[int, int] | None:
    """An inclusive seq range holding exactly the events written in [since, until)
    (its end may fall in a gap of the log), or None when there are none."""
    lo = _first_seq_at(conn, since_us)
    hi = _first_seq_at(conn, until_us)
    if lo is None:
        return None
    if hi is None:
        row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return lo, int(row[0])
    return (lo, hi - 1) if hi > lo else None


def _first_seq_at(conn: sqlite3.Connection, at_us: int) -> int | None:
    """The smallest seq written at or after `at_us`: a binary search over seq (which may
    have gaps), each probe one step down the rowid's B-tree."""
    row = conn.execute("SELECT MIN(seq), MAX(seq) FROM events").fetchone()
    if row[0] is None:
        return None
    probe = "SELECT seq, created_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1"
    lo, hi = int(row[0]), int(row[1])
    if conn.execute(probe, (hi,)).fetchone()["created_at"] < at_us:
        return None
    while lo < hi:  # the first event from seq `hi` on was written at or after at_us
        mid = (lo + hi) // 2
        if conn.execute(probe, (mid,)).fetchone()["created_at"] >= at_us:
            hi = mid
        else:
            lo = mid + 1
    return int(conn.execute(probe, (lo,)).fetchone()["seq"])


def samples(
    conn: sqlite3.Connection,
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

    bounds = seq_bounds(conn, since_us, until_us)
    # A conversation opened in the window was first assigned in it, if before its end.
    first_assigned: dict[str, int] = {}
    if bounds is not None:
        first_assigned = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT conversation_id, MIN(created_at) FROM events "
                "WHERE seq BETWEEN ? AND ? AND type = 'conversation.assigned' "
                "AND created_at >= ? AND created_at < ? GROUP BY conversation_id",
                (*bounds, since_us, until_us),
            )
        }

    # Conversations opened in the window: first response and wait for a first agent.
    for row in conn.execute(
        "SELECT id, channel_id, created_at, first_response_at FROM conversations "
        "INDEXED BY conversations_created WHERE created_at >= ? AND created_at < ?",
        (since_us, until_us),
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

    if bounds is not None:
        lo, hi = bounds
        # Resolutions in the window (a conversation resolved twice counts once, at its
        # last resolution); first contact: never reopened, never transferred.
        for row in conn.execute(
            "SELECT c.channel_id, c.created_at, r.resolved_at, "
            "EXISTS (SELECT 1 FROM events x INDEXED BY events_conversation "
            " WHERE x.conversation_id = r.conversation_id "
            " AND x.type IN ('conversation.reopened', 'conversation.transferred') "
            " AND x.created_at < ?) AS touched_again, "
            "NOT EXISTS (SELECT 1 FROM messages m INDEXED BY messages_conversation "
            " WHERE m.conversation_id = r.conversation_id AND m.author_type = 'agent') "
            "AND NOT EXISTS (SELECT 1 FROM events y INDEXED BY events_conversation "
            " WHERE y.conversation_id = r.conversation_id "
            " AND y.type = 'conversation.assigned') AS contained, "
            "EXISTS (SELECT 1 FROM conversations n INDEXED BY conversations_contact_created "
            " WHERE n.contact_id IN (SELECT id FROM contacts WHERE id = k.root "
            "   UNION SELECT id FROM contacts WHERE merged_into = k.root) "
            " AND n.id <> c.id AND n.created_at > r.resolved_at "
            " AND n.created_at <= r.resolved_at + ?) AS came_back "
            "FROM (SELECT conversation_id, MAX(created_at) AS resolved_at FROM events "
            "      WHERE seq BETWEEN ? AND ? AND type = 'conversation.resolved' "
            "      AND created_at >= ? AND created_at < ? GROUP BY conversation_id) r "
            "JOIN conversations c ON c.id = r.conversation_id "
            "JOIN (SELECT id, COALESCE(merged_into, id) AS root FROM contacts) k "
            "ON k.id = c.contact_id",
            (until_us, window_us, lo, hi, since_us, until_us),
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
        for row in conn.execute(
            "SELECT c.channel_id, COUNT(*) AS n, COUNT(DISTINCT e.conversation_id) AS convs "
            "FROM events e JOIN conversations c ON c.id = e.conversation_id "
            "WHERE e.seq BETWEEN ? AND ? AND e.type = 'sla.breached' "
            "AND e.created_at >= ? AND e.created_at < ? GROUP BY c.channel_id",
            (lo, hi, since_us, until_us),
        ):
            s = of(row["channel_id"])
            if s is not None:
                s.sla_breaches += row["n"]
                s.sla_breached_conversations += row["convs"]

    # Surveys sent in the window, with what was answered.
    for row in conn.execute(
        "SELECT channel_id, agent_id, csat, nps, ces FROM surveys INDEXED BY surveys_sent "
        "WHERE sent_at >= ? AND sent_at < ?",
        (since_us, until_us),
    ):
        s = of(row["channel_id"])
        if s is not None:
            s.surveys.append(SurveySample(row["agent_id"], row["csat"], row["nps"], row["ces"]))

    # SLA clocks of the conversations opened in the window.
    for row in conn.execute(
        "SELECT channel_id, sla FROM conversation_clocks INDEXED BY conversation_clocks_created "
        "WHERE created_at >= ? AND created_at < ? AND sla IS NOT NULL",
        (since_us, until_us),
    ):
        s = of(row["channel_id"])
        if s is not None:
            s.sla_clocks.append(row["sla"])

    # The queue as it stands now.
    for channel_id, (length, oldest) in queue_now(conn, now_us).items():
        s = of(channel_id)
        if s is not None:
            s.queue_length += length
            s.oldest_waiting = oldest
    return out


def queue_now(conn: sqlite3.Connection, now_us: int) -> dict[str, tuple[int, float | None]]:
    """The queue as it stands: channel -> (conversations queued, seconds the oldest of
    them has waited)."""
    return {
        row["channel_id"]: (
            row["n"],
            None if row["oldest"] is None else max(0, now_us - row["oldest"]) / US,
        )
        for row in conn.execute(
            "SELECT channel_id, COUNT(*) AS n, MIN(queued_at) AS oldest FROM conversations "
            "INDEXED BY conversations_status WHERE status = 'queued' GROUP BY channel_id"
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
