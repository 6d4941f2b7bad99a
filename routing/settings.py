"""The [routing] section of the configuration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel.durations import Duration
from routing.rules import EscalationStep, Rule, _check_ladder

DEFAULT_QUEUE_TEXTS = {
    "vi": "Cảm ơn bạn đã liên hệ. Bạn đang ở vị trí số {position} trong hàng chờ, "
    "thời gian chờ dự kiến khoảng {minutes} phút.",
    "en": "Thanks for reaching out. You are number {position} in the queue, "
    "about {minutes} minutes to wait.",
}


class QueueMessage(BaseModel):
    """Tell a customer who has to wait where they stand (sent once, when queued)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # Per language; {position} and {minutes} are filled in.
    texts: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_QUEUE_TEXTS))
    # Don't send when the wait is estimated shorter than this.
    min_wait: Duration = 60.0


class RoutingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A returning customer goes back to the agent who served them last, if that agent is
    # eligible and it was within this time. 0 turns stickiness off.
    sticky_window: Duration = 7 * 86400.0
    # Per channel type or channel id: an assigned conversation whose customer has waited
    # this long for the agent's reply is requeued without that agent (sla.breached).
    reassign_after: dict[str, Duration] = Field(default_factory=dict)
    # What happens to an agent's open conversations when they go away / offline.
    on_away: Literal["keep", "requeue"] = "keep"
    on_offline: Literal["keep", "requeue"] = "requeue"
    # Default escalation ladder (rules may have their own).
    escalation: list[EscalationStep] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    # Used for wait estimates until the gateway has seen conversations resolved.
    average_handle_time: Duration = 600.0
    queue_message: QueueMessage = QueueMessage()
    # Language of customer-facing texts when a conversation's language is unknown.
    default_language: Annotated[str, Field(min_length=2, max_length=16)] = "vi"
    # The queue is re-examined at least this often even when nothing changed.
    dispatch_interval: Duration = 30.0

    @model_validator(mode="after")
    def _consistent(self) -> RoutingSettings:
        _check_ladder(self.escalation)
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule names: {', '.join(duplicates)}")
        if self.dispatch_interval <= 0:
            raise ValueError("dispatch_interval must be positive")
        return self

    def reassign_after_for(self, channel_id: str, channel_type: str) -> float | None:
        if channel_id in self.reassign_after:
            return self.reassign_after[channel_id]
        return self.reassign_after.get(channel_type)
