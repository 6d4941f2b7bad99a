"""Shared pieces of the Messenger tests: config, fixtures in Meta's format, signing."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from connectors.facebook.parse import SIGNATURE_HEADER, sign
from tests.providers import Fixtures, toml_options

FIXTURES = Fixtures(Path(__file__).parent / "fixtures")
fixture_names = FIXTURES.names

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
    return CONFIG.replace("{extra}", toml_options(options))


# Fixtures are written around 2026-01-01T00:00:00Z; they are replayed as if sent just now,
# because the gateway counts Messenger's reply window from the customer's own timestamp.
FIXTURE_EPOCH_MS = 1767225600000
_FIXTURE_TIME = re.compile(rb'("(?:timestamp|watermark|time)"\s*:\s*)(17672\d{8})\b')


_SHIFT_MS = int(time.time() * 1000) - 60_000 - FIXTURE_EPOCH_MS  # one shift per session


def raw(name: str, *, as_stored: bool = False) -> bytes:
    """A fixture's bytes (non-ASCII escaped, as Meta sends it); unless ``as_stored``, its
    times moved so that it reads as sent a minute before this test session began."""
    data = FIXTURES.read(name)
    if as_stored:
        return data
    return _FIXTURE_TIME.sub(lambda m: m.group(1) + str(int(m.group(2)) + _SHIFT_MS).encode(), data)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw(name))
    return data


def dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret.encode(), body), "Content-Type": "application/json"}


def item(payload: dict[str, Any], index: int = 0, entry: int = 0) -> dict[str, Any]:
    """One messaging[] (or standby[]) item of a batch, for editing in place."""
    e = payload["entry"][entry]
    items: list[dict[str, Any]] = e.get("messaging") or e["standby"]
    return items[index]
