"""How long the event loop stalls while a crafted mail is parsed: on the loop, in a thread,
in the worker process the e-mail connector uses (connectors/email/offload.py).

    .venv/bin/python bench/mail_parse.py [--parts 8000]

A ticker sleeps 10 ms at a time on the loop and records how late each tick wakes; one JSON
line per mode: the parse time and the ticks' lateness (max, median, 99th percentile).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable

from connectors.email.offload import parse_off_loop
from connectors.email.parse import parse_message


def crafted(parts: int) -> bytes:
    head = (
        b"From: An <an@example.org>\r\nTo: support@shop.example\r\nSubject: many\r\n"
        b"Message-ID: <many@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    return head + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * parts + b"--b--\r\n"


async def measure(run: Callable[[], Awaitable[object]]) -> dict[str, float]:
    late: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            late.append(now - last - 0.01)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)  # ticking before the parse starts
    started = time.perf_counter()
    await run()
    took = time.perf_counter() - started
    await asyncio.sleep(0.05)  # a tick held up by the parse wakes now
    done.set()
    await ticker
    late.sort()
    return {
        "parse_s": round(took, 3),
        "max_late_s": round(late[-1], 4),
        "p50_late_s": round(late[len(late) // 2], 4),
        "p99_late_s": round(late[int(len(late) * 0.99)], 4),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=8000)
    args = ap.parse_args()
    raw = crafted(args.parts)
    job = functools.partial(parse_message, raw, max_attachment_bytes=10**7)

    async def inline() -> object:
        return job()

    async def in_process() -> object:
        return await parse_off_loop(raw, max_attachment_bytes=10**7, max_parts=None)

    await parse_off_loop(b"Subject: warm\r\n\r\nup\r\n", max_attachment_bytes=10, max_parts=None)
    runs = {"loop": inline, "thread": lambda: asyncio.to_thread(job), "process": in_process}
    for mode, run in runs.items():
        print(
            json.dumps({"mode": mode, "parts": args.parts, "bytes": len(raw), **await measure(run)})
        )


if __name__ == "__main__":  # the worker process imports this module again
    asyncio.run(main())
