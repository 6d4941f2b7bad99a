"""The event log's window bounds for /v1/stats: the seq range a binary search finds (over
seqs with gaps and equal timestamps) must hold exactly the events a full scan finds."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.sqlite.schema import migrate
from gateway.store.sqlite.stats import seq_bounds

# events in writing order: (gap before this seq, time step since the previous event)
log_st = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 3)), max_size=60)


def _log(conn: sqlite3.Connection, steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    seq, at, written = 0, 1_000, []
    for gap, step in steps:
        seq += gap
        at += step
        conn.execute(
            "INSERT INTO events (seq, type, created_at, data) VALUES (?, 'x', ?, '{}')",
            (seq, at),
        )
        written.append((seq, at))
    return written


@settings(max_examples=300, deadline=None)
@given(log_st, st.integers(990, 1_200), st.integers(0, 60))
def test_bounds_equal_a_full_scan(steps: list[tuple[int, int]], since: int, span: int) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    written = _log(conn, steps)
    until = since + span
    inside = [seq for seq, at in written if since <= at < until]
    found = seq_bounds(conn, since, until)
    if found is None:
        assert inside == []
    else:
        lo, hi = found
        assert [seq for seq, _ in written if lo <= seq <= hi] == inside
        assert inside[0] == lo  # the range starts at a written event
