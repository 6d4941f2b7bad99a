"""Messenger webhooks carrying photos: the acknowledgement does not wait for the files.

One gateway in this process (SQLite, default settings) with a Messenger channel; Meta's
Graph API and its CDN are faked with respx at httpx's transport, the CDN answering each
photo after ``--cdn-delay`` seconds. Webhook batches are posted one at a time over HTTP
(aiohttp's client to the gateway's real server): first ``--messages`` text messages, then
as many messages with ``--photos`` photos each. The figures: the time to each 200 (p50,
p99, max) for both kinds, and how long the gateway took to keep every photo.

    .venv/bin/python bench/media.py [--messages 200] [--photos 2] [--cdn-delay 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import respx
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine_facts, percentiles
from config import load_settings
from connectors.facebook.parse import SIGNATURE_HEADER, sign
from gateway.app import Gateway

SECRET = "bench-app-secret"
PAGE = "104000000000001"
CONFIG = f"""
[[channels]]
id = "fb"
type = "facebook"
app_secret = "{SECRET}"
verify_token = "bench"
pages = [{{ id = "{PAGE}", access_token = "EAAGbenchTOKEN0123456789" }}]
api_base = "https://graph.bench/v25.0"

[[agents]]
id = "lan"
presence = "online"
capacity = {{ total = 100000 }}
"""
PHOTO = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)


def event(n: int, photos: int) -> bytes:
    message: dict[str, Any] = {"mid": f"m_bench-{photos}-{n:06d}"}
    if photos:
        message["attachments"] = [
            {"type": "image", "payload": {"url": f"https://cdn.bench/p/{n}-{i}.png?oe=1"}}
            for i in range(photos)
        ]
    else:
        message["text"] = f"Shop ơi, đơn DH{n} đến đâu rồi ạ?"
    body = {
        "object": "page",
        "entry": [
            {
                "id": PAGE,
                "time": int(time.time() * 1000),
                "messaging": [
                    {
                        "sender": {"id": f"70{n % 50:014d}"},
                        "recipient": {"id": PAGE},
                        "timestamp": int(time.time() * 1000),
                        "message": message,
                    }
                ],
            }
        ],
    }
    return json.dumps(body).encode()


async def post_all(base: str, count: int, photos: int) -> list[int]:
    samples = []
    async with aiohttp.ClientSession() as http:
        for n in range(count):
            body = event(n, photos)
            headers = {
                SIGNATURE_HEADER: sign(SECRET.encode(), body),
                "Content-Type": "application/json",
            }
            started = time.perf_counter_ns()
            async with http.post(f"{base}/webhooks/fb", data=body, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            samples.append(time.perf_counter_ns() - started)
    return samples


def kept(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM attachments").fetchone()[0])
    finally:
        conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="omnigw-bench-media-"))
    (work / "omnigw.toml").write_text(CONFIG, encoding="utf-8")
    settings = load_settings(
        work / "omnigw.toml", env={}, overrides={"server.data_dir": str(work / "data")}
    )

    async def cdn(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(args.cdn_delay)
        return httpx.Response(200, content=PHOTO, headers={"Content-Type": "image/png"})

    with respx.mock(assert_all_called=False) as router:
        router.route(host="graph.bench").respond(json={"id": PAGE})
        router.get(host="cdn.bench").mock(side_effect=cdn)
        gw = Gateway(settings, admin_token="bench-admin-token-0123456789abcdefghij")
        await gw.start()
        runner = web.AppRunner(gw.web_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        try:
            text = await post_all(base, args.messages, 0)
            began = time.perf_counter()
            with_photos = await post_all(base, args.messages, args.photos)
            posted = time.perf_counter() - began
            wanted = args.messages * args.photos
            while kept(work / "data" / "omnigw.db") < wanted:  # noqa: ASYNC110 (read from the file)
                await asyncio.sleep(0.05)
            all_kept = time.perf_counter() - began
        finally:
            await runner.cleanup()
            await gw.stop()
    return {
        "machine": machine_facts(),
        "messages": args.messages,
        "photos_per_message": args.photos,
        "cdn_delay_s": args.cdn_delay,
        "ack_ms_text": percentiles(text),
        "ack_ms_with_photos": percentiles(with_photos),
        "posting_s": round(posted, 2),
        "every_photo_kept_after_s": round(all_kept, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument("--cdn-delay", type=float, default=1.0)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
