"""Several `omnigw serve` processes (replicas) on one PostgreSQL database and one Redis,
each with a data directory of its own (as on separate machines), for multi-replica tests.

    async with Cluster.started(tmp_path, pg_url, redis_url, replicas=3) as cluster:
        cluster[0].url("/readyz"); cluster.kill(1); await cluster.restart(1)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from tests.e2e.server import GatewayProcess, start_gateway

SECRET_KEY = "replica-test-secret-key-0123456789abcdef"
READY_TIMEOUT = 20.0


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def write_config(
    path: Path,
    *,
    store_url: str,
    redis_url: str | None,
    channels: Sequence[dict[str, Any]] = ({"id": "webchat", "type": "webchat"},),
    agents: Sequence[dict[str, Any]] = (),
    webhooks: Sequence[dict[str, Any]] = (),
    sections: dict[str, dict[str, Any]] | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"[store]\nurl = {toml_value(store_url)}\nlease_seconds = 4"]
    if redis_url:
        lines.append(f"[redis]\nurl = {toml_value(redis_url)}")
    # As behind deploy/nginx.conf: test customers name their own address in
    # X-Forwarded-For, as nginx does for each visitor.
    sections = dict(sections or {})
    sections["server"] = {"trusted_proxies": ["127.0.0.1"], **sections.get("server", {})}
    for name, values in sections.items():
        lines.append(f"[{name}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in values.items()))
    for table, items in (("channels", channels), ("agents", agents), ("webhooks", webhooks)):
        for item in items:
            body = "\n".join(f"{k} = {toml_value(v)}" for k, v in item.items())
            lines.append(f"[[{table}]]\n{body}")
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return path


class Cluster:
    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config
        self.replicas: list[GatewayProcess] = []

    def __getitem__(self, index: int) -> GatewayProcess:
        return self.replicas[index]

    def __len__(self) -> int:
        return len(self.replicas)

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls,
        root: Path,
        store_url: str,
        redis_url: str | None,
        *,
        replicas: int,
        **config: Any,
    ) -> AsyncIterator[Cluster]:
        path = write_config(
            root / "omnigw.toml", store_url=store_url, redis_url=redis_url, **config
        )
        cluster = cls(root, path)
        try:
            # One first (it migrates the schema), then the others together.
            await cluster.start(0)
            await asyncio.gather(*(cluster.start(i) for i in range(1, replicas)))
            yield cluster
        finally:
            cluster.close()

    async def start(self, index: int) -> GatewayProcess:
        gw = await asyncio.to_thread(
            start_gateway,
            self.root / f"data-{index}",
            self.root / f"logs-{index}",
            config=self.config,
            extra_env={"OMNIGW_SECRET_KEY": SECRET_KEY},
            timeout=READY_TIMEOUT,
        )
        while len(self.replicas) <= index:
            self.replicas.append(gw)
        self.replicas[index] = gw
        return gw

    def kill(self, index: int) -> None:
        """kill -9: no shutdown code runs; its leases lapse."""
        self.replicas[index].kill()

    async def restart(self, index: int) -> GatewayProcess:
        self.replicas[index].kill()
        return await self.start(index)

    def close(self) -> None:
        for gw in self.replicas:
            with contextlib.suppress(Exception):
                gw.terminate(timeout=5)

    def logs(self) -> str:
        return "\n".join(
            f"--- replica {i} ---\n{gw.stderr_text()[-4000:]}" for i, gw in enumerate(self.replicas)
        )
