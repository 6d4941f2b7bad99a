"""Shared pieces of the Zalo tests: config, fixtures in Zalo's format, signing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from connectors.zalo.parse import SIGNATURE_HEADER, sign
from tests.providers import Fixtures, toml_options

FIXTURES = Fixtures(Path(__file__).parent / "fixtures")
fixture_names = FIXTURES.names
# A fixture as recorded, its timestamp included (for parsing).
recorded = FIXTURES.load


def zalo_time(at: float | None = None) -> str:
    """A Zalo timestamp: milliseconds since the epoch, as text (now by default)."""
    return str(int((time.time() if at is None else at) * 1000))


def load(name: str) -> dict[str, Any]:
    """A fixture as Zalo would send it now: stamped with the time it is sent."""
    data = recorded(name)
    if "timestamp" in data:
        data["timestamp"] = zalo_time()
    return data


CHANNEL = "zalo-shop"
APP_ID = "1847265093412765431"
OA_ID = "579745863508352884"
USER = "6540812354921385103"
APP_SECRET = "zalo-app-secret-for-tests"
OA_SECRET = "zalo-oa-secret-key-for-tests"
ACCESS = "zalo-access-token-ONE-0123456789"
REFRESH = "zalo-refresh-token-ONE-0123456789"
API = "https://openapi.zalo.test"
OAUTH = "https://oauth.zalo.test"

CONFIG = f"""
[[channels]]
id = "{CHANNEL}"
type = "zalo"
oa_id = "{OA_ID}"
app_id = "{APP_ID}"
app_secret = "{APP_SECRET}"
oa_secret_key = "{OA_SECRET}"
access_token = "{{access}}"
refresh_token = "{{refresh}}"
api_base = "{API}"
oauth_base = "{OAUTH}"
credentials_recheck_seconds = 0.1
{{extra}}

[[agents]]
id = "lan"
name = "Lan"
presence = "online"
capacity = {{ zalo = 5, total = 8 }}
"""


def config(access: str = ACCESS, refresh: str = REFRESH, **options: Any) -> str:
    """The test config; keyword options are added to the channel (TOML values)."""
    return (
        CONFIG.replace("{access}", access)
        .replace("{refresh}", refresh)
        .replace("{extra}", toml_options(options))
    )


def dump(payload: dict[str, Any]) -> bytes:
    """As Zalo sends it: compact JSON, non-ASCII as UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signed(body: bytes, secret: str = OA_SECRET, *, first: str | None = None) -> dict[str, str]:
    """X-ZEvent-Signature for a body, from the app_id and timestamp inside it."""
    data = json.loads(body)
    mac = sign(first or str(data["app_id"]), body, str(data["timestamp"]), secret)
    return {SIGNATURE_HEADER: mac, "Content-Type": "application/json"}
