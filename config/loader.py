"""Load settings from TOML, `${ENV}` references and `OMNIGW_...` overrides, and report
every problem with the key that has it."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from config.schema import CHANNEL_TYPES_AVAILABLE, Settings, embedded_default
from kernel.netguard import ip_literal

ENV_PREFIX = "OMNIGW_"
# Environment variables that are not config keys.
RESERVED_ENV = {"OMNIGW_ADMIN_TOKEN", "OMNIGW_SECRET_KEY", "OMNIGW_LOG_LEVEL"}
SECTIONS = (
    "server",
    "store",
    "redis",
    "events",
    "routing",
    "webhook_delivery",
    "retention",
    "attachments",
)
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def load_settings(
    path: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from ``path`` (or the embedded default), env, then explicit overrides
    (command-line flags, as ``{"server.port": 9000}``)."""
    env = os.environ if env is None else env
    problems: list[Problem] = []
    if path is None:
        raw: dict[str, Any] = embedded_default()
    else:
        raw = _read_toml(path, problems)
    raw = _resolve_refs(raw, env, "", problems)
    _apply_env(raw, env, problems)
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted.split("."), value)
    problems.extend(_duplicate_ids(raw))
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems.extend(p for p in _problems_from(exc, raw) if p not in problems)
    else:
        problems.extend(_webhooks_out_of_reach(settings, raw))
    if problems:
        raise ConfigError(problems)
    return settings


def _duplicate_ids(raw: dict[str, Any]) -> list[Problem]:
    problems = []
    for section in ("channels", "agents", "webhooks", "business_hours", "sla_policies", "bots"):
        items = raw.get(section)
        if not isinstance(items, list):
            continue
        seen: set[str] = set()
        for item in items:
            ident = item.get("id") if isinstance(item, dict) else None
            if isinstance(ident, str):
                if ident in seen:
                    problems.append(Problem(f"{section}[{ident}].id", "duplicate id"))
                seen.add(ident)
    return problems


def _webhooks_out_of_reach(settings: Settings, raw: dict[str, Any]) -> list[Problem]:
    """Endpoints of the file that name an address deliveries may not call. (A name is
    checked when it is connected to, as it resolves then.)"""
    guard = settings.webhook_delivery.guard()
    problems = []
    for i, hook in enumerate(settings.webhooks):
        address = ip_literal(urlsplit(hook.url).hostname or "")
        why = None if address is None else guard.why_not(address)
        if why is not None:
            problems.append(
                Problem(
                    _index("webhooks", raw["webhooks"], i) + ".url",
                    f"{address} may not be called ({why}); see [webhook_delivery] "
                    "allow_loopback and allow_private_networks",
                )
            )
    return problems


def _read_toml(path: Path, problems: list[Problem]) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(str(path), f"cannot read the file: {exc.strerror}"))
        return {}
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        problems.append(Problem(str(path), "the file is not UTF-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), f"not valid TOML: {exc}"))
    return {}


def _resolve_refs(value: Any, env: Mapping[str, str], key: str, problems: list[Problem]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(Problem(key, f"environment variable {name} is not set"))
            return ""

        return _REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _resolve_refs(v, env, _join(key, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, env, _index(key, value, i), problems) for i, v in enumerate(value)]
    return value


def _join(key: str, part: str) -> str:
    return f"{key}.{part}" if key else part


def _index(key: str, items: list[Any], i: int) -> str:
    item = items[i]
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return f"{key}[{item['id']}]"
    return f"{key}[{i}]"


def _parse_env_value(text: str) -> Any:
    """Values are read as TOML when they parse (numbers, booleans, arrays), else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], problems: list[Problem]) -> None:
    """``OMNIGW_SERVER_PORT``, ``OMNIGW_SERVER__PORT``, ``OMNIGW_CHANNELS__<ID>__<KEY>``,
    ``OMNIGW_AGENTS__<ID>__<KEY>`` (ids match case-insensitively, ``-`` as ``_``)."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        value = _parse_env_value(env[name])
        if "__" in rest:
            parts = rest.split("__")
        else:
            # OMNIGW_<SECTION>_<KEY>; section names may hold "_" themselves
            section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
            if section is None:
                problems.append(Problem(name, "not a known setting"))
                continue
            parts = [section, rest[len(section) + 1 :]]
        if parts[0] in ("channels", "agents", "bots"):
            if len(parts) < 3:
                problems.append(Problem(name, f"use {ENV_PREFIX}{parts[0].upper()}__<ID>__<KEY>"))
                continue
            items = raw.setdefault(parts[0], [])
            wanted = parts[1].replace("-", "_")
            match = [
                i
                for i in items
                if isinstance(i, dict) and str(i.get("id", "")).lower().replace("-", "_") == wanted
            ]
            if not match:
                problems.append(Problem(name, f"no {parts[0][:-1]} with id {parts[1]!r}"))
                continue
            _set_path(match[0], parts[2:], value)
        elif parts[0] in SECTIONS:
            _set_path(raw, parts, value)
        else:
            problems.append(Problem(name, "not a known setting"))


def _set_path(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[parts[-1]] = value


def _problems_from(exc: ValidationError, raw: dict[str, Any]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        key = _key_for(loc, raw)
        if err["type"] == "union_tag_invalid":
            tag = (err.get("ctx") or {}).get("tag")
            message = (
                f"channel type {tag!r} is not available (available: "
                + ", ".join(CHANNEL_TYPES_AVAILABLE)
                + ")"
            )
            key = _key_for([*loc, "type"], raw)
        elif err["type"] == "union_tag_not_found":
            message = "missing 'type'"
            key = _key_for([*loc, "type"], raw)
        elif err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif err["type"] == "missing":
            message = "required"
        else:
            message = err["msg"].removeprefix("Value error, ")
        problems.append(Problem(key or "(top level)", message))
    return problems


def _key_for(loc: list[Any], raw: Any) -> str:
    """A readable key such as ``channels[webchat].allowed_origins[0]``."""
    key = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                key += f"[{item['id']}]"
            else:
                key += f"[{part}]"
            node = item
        else:
            tag = isinstance(node, dict) and node.get("type") == part
            if tag and part in CHANNEL_TYPES_AVAILABLE:
                continue  # the discriminated-union tag pydantic adds to the location
            key = f"{key}.{part}" if key else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return key
