"""What every channel's settings share: an id and a type, and unknown keys refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kernel.models import ChannelIdStr


class ChannelSettings(BaseModel):
    """A channel as configured in [[channels]]; each type adds its own keys (and narrows
    ``type`` to its own name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ChannelIdStr
    type: str
