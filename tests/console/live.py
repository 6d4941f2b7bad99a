"""A gateway running in this process on a real port, for Chromium to reach while respx
fakes the providers' HTTP APIs at the transport (a separate process could not be faked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from gateway.app import Gateway


@asynccontextmanager
async def serving(gw: Gateway) -> AsyncIterator[str]:
    """Serve ``gw`` on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(gw.web_app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await gw.close_connections()
        await runner.cleanup()
