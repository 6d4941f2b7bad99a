"""Shared pieces of the Messenger tests: config, fixtures in Meta's format, signing."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from connectors.facebook.parse import sign

FIXTURES = Path(__file__).parent / "fixtures"

CHANNEL = "fb-shop"
PAGE = "104000000000001"
PAGE2 = "104000000000002"
PSID = "7012345678901234"
PSID2 = "7012345678905678"
APP_ID = "555000000000001"
APP_SECRET = "fb-app-secret-for-tests"
VERIFY_TOKEN = "fb-verify-token-for-tests"
TOKEN = "EAAGpageONEtokenFORtests0123456789"
TOKEN2 = "EAAGpageTWOtokenFORtests9876543210"
API = "https://graph.test/v25.0"
T = 1767225600000  # the fixtures' base timestamp (ms)

CONFIG = f"""
[[channels]]
id = "{CHANNEL}"
type = "facebook"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
app_id = "{APP_ID}"
pages = [
  {{ id = "{PAGE}", access_token = "{TOKEN}" }},
  {{ id = "{PAGE2}", access_token = "{TOKEN2}" }},
]
api_base = "{API}"
typing_throttle_seconds = 30
credentials_recheck_seconds = 0.1
{{extra}}

[[agents]]
id = "lan"
name = "Lan"
presence = "online"
capacity = {{ facebook = 5, total = 8 }}
"""


def config(**options: Any) -> str:
    """The test config; keyword options are added to the channel (TOML values)."""
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    return CONFIG.replace("{extra}", extra)


# Fixtures are written around 2026-01-01T00:00:00Z; they are replayed as if sent just now,
# because the gateway counts Messenger's reply window from the customer's own timestamp.
FIXTURE_EPOCH_MS = 1767225600000
_FIXTURE_TIME = re.compile(rb'("(?:timestamp|watermark|time)"\s*:\s*)(17672\d{8})\b')


_SHIFT_MS = int(time.time() * 1000) - 60_000 - FIXTURE_EPOCH_MS  # one shift per session


def raw(name: str, *, as_stored: bool = False) -> bytes:
    """A fixture's bytes (non-ASCII escaped, as Meta sends it); unless ``as_stored``, its
    times moved so that it reads as sent a minute before this test session began."""
    data = (FIXTURES / f"{name}.json").read_bytes()
    if as_stored:
        return data
    return _FIXTURE_TIME.sub(lambda m: m.group(1) + str(int(m.group(2)) + _SHIFT_MS).encode(), data)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw(name))
    return data


def dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(secret.encode(), body), "Content-Type": "application/json"}


def item(payload: dict[str, Any], index: int = 0, entry: int = 0) -> dict[str, Any]:
    """One messaging[] (or standby[]) item of a batch, for editing in place."""
    e = payload["entry"][entry]
    items: list[dict[str, Any]] = e.get("messaging") or e["standby"]
    return items[index]


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def db_counts(data_dir: Path) -> dict[str, int]:
    """Rows per table, read from the SQLite file (to prove nothing was half-stored)."""
    conn = sqlite3.connect(f"file:{data_dir / 'omnigw.db'}?mode=ro", uri=True)
    try:
        tables = ["messages", "conversations", "contacts", "identities", "raw_events", "events"]
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def raw_events(data_dir: Path) -> list[tuple[str, str, str]]:
    """(kind, reason, payload) of every event kept raw."""
    conn = sqlite3.connect(f"file:{data_dir / 'omnigw.db'}?mode=ro", uri=True)
    try:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute("SELECT kind, reason, payload FROM raw_events ORDER BY rowid")
        ]
    finally:
        conn.close()
