"""The gateway's secret keys at start and in ``omnigw rotate-secrets``.

Where they come from (kernel.secrets: OMNIGW_SECRET_KEY, else the data directory's key
file), and what happens when there are none: a key file is generated only for a store
that holds nothing sealed and no key check. A store that does (the key file was lost, or
a replica was started without the replicas' key) gets no new key, which would only make
what is sealed unreadable for good: the gateway runs without a key instead. What needs
none keeps working (the API, the store, Facebook, webhook endpoints of the config file);
channels that need one (webchat visitor tokens, e-mail threading ids, Zalo's stored
tokens, every channel added through the API) show BAD_CREDENTIALS with the reason, and
API webhook endpoints show as disabled with the reason, until the key is given back.

The store keeps a check of every key that may have sealed something in it (a short
HMAC, never the key): a gateway started without one of them says so at start, and
``omnigw rotate-secrets``, once everything is sealed under the newest key, keeps only
that key's check, so the older key can then be removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.registry import sealed_state
from gateway.store.protocols import Store
from kernel.ids import ChannelId
from kernel.secrets import (
    ENV_VAR,
    KEY_FILE,
    KeyMissing,
    Keyring,
    SecretBox,
    Unsealable,
    derive,
    new_key_file,
    read_keys,
)

log = logging.getLogger(__name__)

# Where the store keeps the checks of its keys (never a key): a list, newest first.
KEY_CHECK = (ChannelId("_gateway"), "secret_key_check")
# A value sealed while rotate-secrets read it is read again, at most this many times.
RESEAL_TRIES = 5

NO_KEY = (
    "no secret key: {env} is not set and {file} does not exist, but the store holds "
    "secrets sealed with a key. No new key is generated (it could never open them): the "
    "gateway runs without one. Channels and webhook endpoints that need it are disabled "
    "and say why. Give the key back ({env}, or restore {file}); to give up what it "
    "sealed, set a new key and enter those credentials again."
)
NO_KEY_DETAIL = (
    f"the gateway has no secret key: set {ENV_VAR} or restore the data directory's {KEY_FILE}"
)
MISMATCH = (
    "this process's secret key is not the one the store's secrets were sealed with: "
    "sealed credentials and webhook secrets cannot be read here, and visitor tokens of "
    "other processes are refused. Give every replica the same {env} (or restore the "
    "data directory's key file); list an older key after the new one while secrets are "
    "sealed again (omnigw rotate-secrets)."
)


def key_check(key: bytes) -> str:
    """What the store keeps to recognise a key (never the key)."""
    return derive(key, "key-check").hex()[:32]


async def given_keys(data_dir: Path, env_value: str | None) -> Keyring | None:
    """The keys given (OMNIGW_SECRET_KEY) or found (the key file), if any. Raises
    SecretKeyError for a refused key: called before anything else is opened."""
    return await asyncio.to_thread(read_keys, data_dir, env_value)


async def load_keys(store: Store, data_dir: Path, given: Keyring | None) -> Keyring:
    """The gateway's keys: those given, else generated for a store that seals nothing
    yet, else none (see the module docstring)."""
    if given is not None:
        return given
    if await holds_sealed(store):
        log.error(NO_KEY.format(env=ENV_VAR, file=data_dir / KEY_FILE))
        return Keyring(())
    return await asyncio.to_thread(new_key_file, data_dir)


async def holds_sealed(store: Store) -> bool:
    """Whether the store holds a key check or anything sealed."""
    if await stored_checks(store):
        return True
    if await store.channels.all():
        return True
    return any(record.sealed_secrets for record in await store.webhooks.all())


async def stored_checks(store: Store) -> list[str]:
    value = await store.channel_state.load(*KEY_CHECK)
    if isinstance(value, str):  # one check, as kept before several keys were accepted
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


async def check_keys(store: Store, keys: Keyring) -> list[str]:
    """Compare the keys with the store's checks and say loudly when a key that may have
    sealed something is missing here; the newest key's check is kept from now on (it
    seals). Returns the checks of the missing keys."""
    if not keys:
        return []  # said already (NO_KEY)
    stored = await stored_checks(store)
    ours = [key_check(key) for key in keys]
    missing = [check for check in stored if check not in ours]
    if missing:
        log.error(MISMATCH.format(env=ENV_VAR))
    wanted = [ours[0], *[check for check in stored if check != ours[0]]]
    if wanted != stored:
        await store.channel_state.save(*KEY_CHECK, wanted)
    return missing


# --- omnigw rotate-secrets ------------------------------------------------------------


@dataclass
class Rotation:
    """What ``rotate`` found: values sealed again, already under the newest key, and
    those no key opens (named, never shown)."""

    resealed: dict[str, int] = field(default_factory=dict)  # by kind
    current: int = 0
    unreadable: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # kept changing while being read

    @property
    def complete(self) -> bool:
        return not self.unreadable and not self.busy


async def rotate(store: Store, keys: Keyring, channel_types: dict[str, str]) -> Rotation:
    """Seal everything sealed under an older key again with the newest: channels added
    through the API, webhook endpoints' secrets, and what connectors keep sealed in their
    channel state (``channel_types``: the config file's channels, id -> type; those of
    the API are read from the store). Each value is replaced only if it did not change
    while it was read, so a running gateway may go on meanwhile. When nothing is left
    under another key, the store's key check names the newest key alone."""
    if not keys:
        raise KeyMissing(NO_KEY_DETAIL)
    box = SecretBox(keys)
    done = Rotation()
    types = dict(channel_types)
    for record in await store.channels.all():
        types.setdefault(record.id, record.type)
        read, swap = _channel_row(store, record.id)
        await _reseal(done, "channels", f"channel {record.id}", box, read, swap)
    for hook in await store.webhooks.all():
        if not hook.sealed_secrets:
            continue  # a config endpoint stored while the gateway ran without a key
        read, swap = _webhook_row(store, hook.id)
        await _reseal(done, "webhook secrets", f"webhook {hook.id}", box, read, swap)
    for channel_id, type_ in sorted(types.items()):
        for state in sealed_state(type_):
            await _reseal_state(done, store, keys, ChannelId(channel_id), state.key, state.purpose)
    if done.complete:
        await store.channel_state.save(*KEY_CHECK, [key_check(keys.newest)])
    else:
        await check_keys(store, keys)  # the older keys' checks stay: something needs them
    return done


Reader = Callable[[], Awaitable[str | None]]
Swap = Callable[[str, str], Awaitable[bool]]


def _channel_row(store: Store, channel_id: str) -> tuple[Reader, Swap]:
    async def read() -> str | None:
        for record in await store.channels.all():
            if record.id == channel_id:
                return record.sealed
        return None

    async def swap(old: str, new: str) -> bool:
        return await store.channels.reseal(channel_id, old, new)

    return read, swap


def _webhook_row(store: Store, endpoint_id: str) -> tuple[Reader, Swap]:
    async def read() -> str | None:
        record = await store.webhooks.get(endpoint_id)
        return None if record is None else record.sealed_secrets

    async def swap(old: str, new: str) -> bool:
        return await store.webhooks.reseal(endpoint_id, old, new)

    return read, swap


async def _reseal(
    done: Rotation, kind: str, name: str, box: SecretBox, read: Reader, swap: Swap
) -> None:
    for _ in range(RESEAL_TRIES):
        sealed = await read()
        if sealed is None:
            return  # removed meanwhile
        try:
            new = box.reseal(sealed)
        except Unsealable:
            done.unreadable.append(name)
            return
        if new is None:
            done.current += 1
            return
        if await swap(sealed, new):
            done.resealed[kind] = done.resealed.get(kind, 0) + 1
            return
    done.busy.append(name)


async def _reseal_state(
    done: Rotation, store: Store, keys: Keyring, channel_id: ChannelId, key: str, purpose: str
) -> None:
    box = SecretBox(keys.derive(f"{purpose}:{channel_id}"))
    value: Any = None

    async def read() -> str | None:
        nonlocal value
        value = await store.channel_state.load(channel_id, key)
        sealed = value.get("sealed") if isinstance(value, dict) else None
        return sealed if isinstance(sealed, str) else None

    async def swap(_old: str, new: str) -> bool:
        return await store.channel_state.replace(channel_id, key, value, {**value, "sealed": new})

    await _reseal(done, f"{key} of channels", f"{key} of channel {channel_id}", box, read, swap)


def config_channel_types(channels: Sequence[Any]) -> dict[str, str]:
    """The config file's channels, id -> type (their settings as loaded)."""
    return {str(c.id): str(c.type) for c in channels}
