"""Live fan-out of committed events, and ephemeral signals that are never stored.

The durable event log is the store's outbox. This bus keeps the newest events in memory
so live readers (SSE) need not query the store for each one; a reader that falls behind
the ring reads the store instead. Events enter the ring in commit order, so reading
"everything after seq N" from the ring or from the store gives the same answer.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kernel.events import Event

Ephemeral = dict[str, Any]

# Events announcing that earlier events' data was rewritten in the log.
REWRITING = frozenset({"contact.erased"})


def seq_of(event: Event) -> int:
    return event.seq


class EventBus:
    def __init__(self, ring_size: int = 10_000) -> None:
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._floor = 0  # the ring holds every event with floor < seq <= last_seq
        self.last_seq = 0
        self._changed = asyncio.Event()
        self._ephemeral: set[Callable[[Ephemeral], None]] = set()

    def start_at(self, seq: int) -> None:
        """Start with the store's newest event: the ring covers what comes after."""
        self._floor = self.last_seq = seq

    def publish(self, events: list[Event]) -> None:
        """Events committed after the last one published, in seq order. One already
        published is skipped; after a gap (nothing of this process should make one), the
        ring starts again above it, so readers behind it read the store."""
        for event in events:
            seq = seq_of(event)
            if seq <= self.last_seq:
                continue
            if event.type in REWRITING:
                # Events before it may have been rewritten in the store (whoever erased):
                # readers behind it read the store's version.
                self._ring.clear()
                self._floor = self.last_seq
            if seq != self.last_seq + 1:
                self._ring.clear()
                self._floor = seq - 1
            elif len(self._ring) == self._ring.maxlen:
                self._floor = seq_of(self._ring[0])
            self._ring.append(event)
            self.last_seq = seq
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def forget(self, seqs: Iterable[int]) -> None:
        """These events were rewritten in the store: readers who want them read it."""
        wanted = set(seqs)
        if wanted and any(seq_of(e) in wanted for e in self._ring):
            self._ring.clear()
            self._floor = self.last_seq

    def from_ring(self, after: int, limit: int) -> list[Event] | None:
        """Events after ``after`` from memory, or None when the ring no longer covers it."""
        if after < self._floor:
            return None
        if after >= self.last_seq:
            return []
        out: list[Event] = []
        # The wanted events are at the end of the ring; walk back only as far as needed.
        skip = self.last_seq - after
        start = max(len(self._ring) - skip, 0)
        for i in range(start, len(self._ring)):
            event = self._ring[i]
            if seq_of(event) > after:
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    async def wait(self, after: int) -> None:
        """Wait until an event after ``after`` exists (bound it with asyncio.timeout)."""
        while self.last_seq <= after:
            await self._changed.wait()

    # --- ephemeral signals (typing), never stored --------------------------------------

    def subscribe_ephemeral(self, fn: Callable[[Ephemeral], None]) -> Callable[[], None]:
        self._ephemeral.add(fn)
        return lambda: self._ephemeral.discard(fn)

    def signal(self, payload: Ephemeral) -> None:
        for fn in list(self._ephemeral):
            fn(payload)


def type_matcher(patterns: Sequence[str] | None) -> Callable[[str], bool]:
    """``message.*`` style filters; no patterns means everything."""
    if not patterns:
        return lambda _t: True
    exact = {p for p in patterns if "*" not in p}
    wild = [p for p in patterns if "*" in p]
    return lambda t: t in exact or any(fnmatch.fnmatchcase(t, p) for p in wild)


def filter_events(
    events: Iterable[Event], match: Callable[[str], bool], conversation_id: str | None
) -> list[Event]:
    return [
        e
        for e in events
        if match(e.type) and (conversation_id is None or e.conversation_id == conversation_id)
    ]
