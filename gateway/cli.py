"""The `omnigw` command line: serve, migrate, migrate-store, rotate-secrets, check-config,
simulate."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from config import ConfigError, load_settings
from config.schema import Settings
from gateway import __version__
from kernel.secrets import ENV_VAR, KEY_FILE, SecretKeyError, read_keys, url_without_password

log = logging.getLogger("omnigw")


class AccessLogger(AbstractAccessLogger):
    """Method, path and status only: query strings can carry visitor tokens."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnigw", description="omnichannel-gateway")
    parser.add_argument("--version", action="version", version=f"omnigw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, help="omnigw.toml (default: embedded default)")
    serve.add_argument("--host", help="listen address (server.host)")
    serve.add_argument("--port", type=int, help="listen port (server.port)")
    serve.add_argument(
        "--data-dir", type=Path, help="SQLite file and attachments (server.data_dir)"
    )
    serve.add_argument(
        "--log-level",
        default=os.environ.get("OMNIGW_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    migrate = sub.add_parser(
        "migrate", help="bring the store's schema to this version's, then exit"
    )
    migrate.add_argument("--config", type=Path, help="omnigw.toml (default: embedded default)")
    copy = sub.add_parser(
        "migrate-store",
        help="copy an embedded SQLite installation into an empty PostgreSQL database",
        description="Copies everything of a SQLite installation (it may be running: a "
        "consistent snapshot is read) into an empty PostgreSQL database, in one "
        "transaction, after running its migrations. Replicas started on the database with "
        "the same OMNIGW_SECRET_KEY then serve the same data; event ids continue.",
    )
    copy.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SQLITE_URL",
        help="sqlite:///path/omnigw.db",
    )
    copy.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="POSTGRES_URL",
        help="postgresql://user:password@host/database (empty)",
    )
    copy.add_argument(
        "--data-dir",
        type=Path,
        help="the installation's data directory, where its attachments are "
        "(default: the SQLite file's folder)",
    )
    rotate = sub.add_parser(
        "rotate-secrets",
        help="seal every stored secret again with the newest secret key",
        description=f"Seals again, with the newest key of {ENV_VAR} (or of the key file), "
        "everything the store keeps sealed under an older one: channels added through the "
        "API, webhook endpoints' secrets, Zalo token pairs. Keys are listed newest first, "
        "separated by commas. The gateway may be running meanwhile (with the same keys). "
        "Once it reports nothing left under an older key, that key can be removed; visitor "
        "tokens and e-mail threading ids it signed stop being accepted then.",
    )
    rotate.add_argument("--config", type=Path, help="omnigw.toml (default: embedded default)")
    check = sub.add_parser("check-config", help="validate a config file; list every problem")
    check.add_argument("file", type=Path)
    sim = sub.add_parser("simulate", help="discrete-event simulation of the routing engine")
    sim.add_argument("scenario", choices=["erlang-c", "multi-skill"])
    sim.add_argument("--agents", type=int, default=10, help="erlang-c: agents (c)")
    sim.add_argument("--load", type=float, default=0.85, help="erlang-c: occupancy A/c")
    sim.add_argument("--arrivals", type=int, help="arrivals to simulate (default per scenario)")
    sim.add_argument("--seed", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "migrate":
        return migrate(args.config)
    if args.command == "migrate-store":
        return migrate_store(args.source, args.target, args.data_dir)
    if args.command == "rotate-secrets":
        return rotate_secrets(args.config)
    if args.command == "simulate":
        from routing.simulation_report import run_command

        text, status = run_command(
            args.scenario,
            agents=args.agents,
            load=args.load,
            arrivals=args.arrivals,
            seed=args.seed,
        )
        print(text)
        return status
    return serve(args)


def check_config(path: Path) -> int:
    problems: list[str] = []
    settings = None
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        problems.extend(str(p) for p in exc.problems)
    if ENV_VAR in os.environ:
        try:
            read_keys(Path(), os.environ[ENV_VAR])
        except SecretKeyError as exc:
            problems.append(str(exc))
    if problems or settings is None:
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(settings.channels)} channel(s), {len(settings.agents)} agent(s))")
    return 0


def migrate(path: Path | None) -> int:
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return _config_problems(exc)
    from gateway.store import open_store

    async def run() -> None:
        store = await open_store(settings.store_url)  # opening migrates
        await store.close()

    shown = url_without_password(settings.store_url)
    try:
        asyncio.run(run())
    except Exception as exc:
        print(f"omnigw: migrating {shown} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{shown}: schema up to date")
    return 0


def migrate_store(source: str, target: str, data_dir: Path | None) -> int:
    from gateway.store.copying import CopyError, copy_sqlite_to_postgres, default_data_dir
    from gateway.store.postgres.store import is_postgres_url
    from gateway.store.sqlite.store import parse_url
    from kernel.errors import StoreUnavailable

    try:
        parse_url(source)
    except ValueError as exc:
        print(f"omnigw: --from: {exc} (expected sqlite:///path/to/omnigw.db)", file=sys.stderr)
        return 2
    shown = url_without_password(target)
    if not is_postgres_url(target):
        print(f"omnigw: --to: not a PostgreSQL URL: {shown}", file=sys.stderr)
        return 2
    data_dir = data_dir if data_dir is not None else default_data_dir(source)
    try:
        report = asyncio.run(copy_sqlite_to_postgres(source, target, data_dir=data_dir))
    except StoreUnavailable as exc:
        print(f"omnigw: the target {shown} cannot be reached: {exc.message}", file=sys.stderr)
        return 1
    except CopyError as exc:
        print(f"omnigw: nothing copied: {_hidden(str(exc), target)}", file=sys.stderr)
        return 1
    except Exception as exc:
        problem = _hidden(f"{type(exc).__name__}: {exc}", target)
        print(f"omnigw: copying to {shown} failed, nothing copied: {problem}", file=sys.stderr)
        return 1
    for problem in report.problems:
        print(f"omnigw: warning: {problem}", file=sys.stderr)
    print(f"copied {source} into {shown} in {report.seconds:.1f} s")
    print(f"  attachments from {report.attachments_root}")
    print("  rows copied:")
    for table, n in report.rows.items():
        print(f"    {table:<20} {n:>9}")
    print(f"  last event id: {report.last_event_id} (new events continue after it)")
    print(
        "  start the replicas with the secret key this installation used: its "
        f"OMNIGW_SECRET_KEY, or the content of {data_dir / KEY_FILE} if it ran without one"
    )
    return 0


def rotate_secrets(path: Path | None) -> int:
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return _config_problems(exc)
    key_file = settings.server.data_dir / KEY_FILE
    try:
        keys = read_keys(settings.server.data_dir, os.environ.get(ENV_VAR))
    except (SecretKeyError, OSError) as exc:
        print(f"omnigw: {exc}", file=sys.stderr)
        return 2
    if keys is None:
        print(
            f"omnigw: no secret key: set {ENV_VAR} to the new key followed by the old ones "
            f"(comma-separated), or list them so in {key_file}",
            file=sys.stderr,
        )
        return 2
    from gateway.keys import config_channel_types, rotate
    from gateway.store import open_store
    from kernel.errors import StoreUnavailable

    async def run() -> Any:
        store = await open_store(settings.store_url)
        try:
            return await rotate(store, keys, config_channel_types(settings.channels))
        finally:
            await store.close()

    shown = url_without_password(settings.store_url)
    try:
        done = asyncio.run(run())
    except StoreUnavailable as exc:
        print(f"omnigw: the store {shown} cannot be reached: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"omnigw: rotating the secrets of {shown} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{shown}: sealed again with the newest of {len(keys)} key(s):")
    for kind, n in done.resealed.items():
        print(f"  {kind:<24} {n:>6}")
    if not done.resealed:
        print("  nothing")
    print(f"  already under the newest key: {done.current}")
    if done.unreadable:
        print(
            "omnigw: no key given opens these (give the key that sealed them, or enter their "
            "credentials again):",
            file=sys.stderr,
        )
        for name in done.unreadable:
            print(f"  {name}", file=sys.stderr)
    if done.busy:
        print("omnigw: these kept changing while being read; run it again:", file=sys.stderr)
        for name in done.busy:
            print(f"  {name}", file=sys.stderr)
    if not done.complete:
        return 1
    if len(keys) > 1:
        print("  nothing is sealed under an older key any more: the older keys can be removed")
    return 0


def _hidden(text: str, url: str) -> str:
    """A message that may quote the URL, without its password."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["server.host"] = args.host
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.data_dir is not None:
        overrides["server.data_dir"] = str(args.data_dir)
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        return _config_problems(exc)
    try:  # a refused key stops the start before anything is opened
        read_keys(settings.server.data_dir, os.environ.get(ENV_VAR))
    except (SecretKeyError, OSError) as exc:
        print(f"omnigw: {exc}", file=sys.stderr)
        return 2
    from kernel.errors import StoreUnavailable

    try:
        asyncio.run(_serve(settings))
    except ConfigError as exc:  # what is checked at start (the admin token)
        return _config_problems(exc)
    except SecretKeyError as exc:
        print(f"omnigw: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"omnigw: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        shown = url_without_password(settings.store_url)
        print(f"omnigw: the store {shown} cannot be reached: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _config_problems(exc: ConfigError) -> int:
    print("omnigw: the configuration has problems:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return 2


async def _serve(settings: Settings) -> None:
    from gateway.app import Gateway

    gw = Gateway(settings)
    await gw.start()
    tune_gc()
    runner = web.AppRunner(
        gw.web_app(), access_log_class=AccessLogger, handle_signals=False, shutdown_timeout=3.0
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        await gw.stop()
        raise
    port = settings.server.port or _bound_port(site)
    host = settings.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
    url = f"http://{shown}:{port}"
    print(f"omnigw {__version__} listening on {url}", flush=True)
    if gw.channels.demo_channel() and settings.server.demo_page:
        print(f"  webchat demo page: {url}/", flush=True)
    print(f"  API: {url}/v1/openapi.json   events: {url}/v1/events", flush=True)
    print(f"  data: {url_without_password(settings.store_url)}", flush=True)
    if settings.redis.url:
        print(f"  redis: {url_without_password(settings.redis.url)}", flush=True)
    if gw.admin_token_generated:
        print(
            f"  admin token (generated for this run; set OMNIGW_ADMIN_TOKEN to choose one): "
            f"{gw.admin_token}",
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await gw.close_connections()
    await runner.cleanup()
    await gw.stop()


def tune_gc() -> None:
    """Fewer, shorter collections for a long-running server.

    Everything alive after start-up (modules, models, schemas) never becomes garbage:
    freezing it keeps full collections from rescanning it. The first generation is
    raised moderately: each closed WebSocket leaves aiohttp objects in reference cycles
    that only the collector frees, and a very large threshold lets thousands pile up
    into one collection that stalls the loop for tens of milliseconds (measured with
    bench/ingest.py: 5,000 beat both the default 700 and 50,000).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 10, 10)


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else 0
