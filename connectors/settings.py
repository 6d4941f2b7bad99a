"""What every channel's settings share: an id and a type, and unknown keys refused."""

from __future__ import annotations

from collections.abc import Hashable

from pydantic import BaseModel, ConfigDict

from kernel.models import ChannelIdStr

# Where credentials are sent: for each endpoint (a name), what tells it apart (host, port,
# base URL, ...) and the key paths of the credentials sent to it.
Endpoints = dict[str, tuple[Hashable, tuple[str, ...]]]


class ChannelSettings(BaseModel):
    """A channel as configured in [[channels]]; each type adds its own keys (and narrows
    ``type`` to its own name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ChannelIdStr
    type: str

    def credential_endpoints(self) -> Endpoints:
        """Where this channel sends its credentials. Changing one of these endpoints
        through the admin API needs the credentials sent to it given again: the stored
        ones never follow an endpoint they were not given for."""
        return {}
