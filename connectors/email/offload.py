"""Parsing received mail off the event loop, in a separate process.

Parsing is pure Python: in a thread it still holds the GIL, and the loop only gets it back
every switch interval. Measured on 2 loaded cores with a crafted 2 MB mail of 8,000 parts
(about 6 s of parsing): in a thread the loop's longest stall was 0.13 s (median tick 17 ms
late), in a worker process 0.025 s (median 0.7 ms); on the loop it stalled for the whole
parse. So mail is parsed in one worker process (started with ``spawn``: a fork of a
process running threads can inherit a held lock; it ends with the gateway), and the part
count is bounded before that (in the worker too: reading 30 MB takes a while) by
:func:`connectors.email.parse.count_parts`, since the standard library's parser spends
its time building every part.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from connectors.email.parse import ParsedMail, ParseError, parse_message

WORKERS = 1
log = logging.getLogger(__name__)
_warned = False

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


async def parse_off_loop(
    raw: bytes, *, max_attachment_bytes: int, max_parts: int | None
) -> ParsedMail:
    """:func:`parse_message` in the worker process; raises what it raises (ParseError)."""
    job = functools.partial(
        parse_message, raw, max_attachment_bytes=max_attachment_bytes, max_parts=max_parts
    )
    loop = asyncio.get_running_loop()
    try:
        pool = _executor()
        future = loop.run_in_executor(pool, job)
    except (OSError, ImportError, NotImplementedError) as exc:
        # No processes here (no /dev/shm for the pool's semaphores, a sandbox): a thread
        # still keeps the loop turning, only less smoothly (see above).
        global _warned
        if not _warned:
            _warned = True
            log.warning("mail is parsed in a thread: no worker process (%s)", exc)
        return await asyncio.to_thread(job)
    try:
        return await future
    except BrokenProcessPool:
        # The worker died (killed, out of memory, or this very mail): a new one for the
        # next mail, and this one is kept raw with the reason rather than tried here.
        _discard(pool)
        raise ParseError("the parsing process stopped while reading this message") from None
