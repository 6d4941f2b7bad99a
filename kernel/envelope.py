"""The envelope between channels and the gateway: what a connector reports (an inbound
message, delivery news) and what it is asked to send, in the normalised model's terms."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, JsonValue

from kernel.ids import ChannelId, ContactId, ConversationId
from kernel.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Frozen,
    Identity,
    Message,
    MessageError,
    MessageStatus,
    Part,
    Text,
)

# --- what a channel hands to the gateway ---------------------------------------------


class Sender(Frozen):
    """Who sent an inbound message, as the channel knows them."""

    external_id: str = Field(min_length=1, max_length=512)
    display_name: Text | None = None
    avatar_url: str | None = None
    email: str | None = None
    phone: str | None = None
    # True when the channel itself vouches for email/phone (HMAC identity, mail sender):
    # only verified values link contacts together.
    verified: bool = False


class InboundMessage(Frozen):
    """A message seen on the channel. ``sender`` is always the customer's side: for a
    message sent to the customer outside the gateway, it names the recipient."""

    kind: Literal["message"] = "message"
    channel_id: ChannelId
    external_id: str = Field(min_length=1, max_length=998)
    sender: Sender
    parts: list[Part] = Field(min_length=1)
    # Outbound messages seen on the channel but sent outside the gateway (e.g. a human in
    # the provider's own inbox) arrive with direction OUTBOUND.
    direction: Direction = Direction.INBOUND
    reply_to_external_id: str | None = None
    # External ids of earlier messages this one follows (e-mail References): a match joins
    # that message's conversation.
    thread_refs: list[str] = Field(default_factory=list)
    # A conversation the channel itself names (e.g. a verified threading token in an
    # e-mail address): joined if it exists on this channel, reopened if resolved.
    conversation_hint: ConversationId | None = None
    subject: Text | None = None
    sent_at: datetime | None = None
    language: str | None = None
    # Structured data beside the text (kernel.models.Message.metadata).
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    # The channel says another app owns the customer's thread (Messenger's standby
    # channel): the message is kept in the history, and a new conversation is held by
    # that app (status bot) instead of being routed.
    standby: bool = False


class StatusUpdate(Frozen):
    """Delivery news about outbound messages, by their external ids or by a watermark."""

    kind: Literal["status"] = "status"
    channel_id: ChannelId
    status: MessageStatus
    external_ids: list[str] = Field(default_factory=list)
    # Every outbound message to this channel identity created up to the watermark.
    recipient_external_id: str | None = None
    watermark: datetime | None = None
    error: MessageError | None = None


class IngestResult(Frozen):
    message: Message
    conversation_id: ConversationId
    conversation_status: ConversationStatus
    contact_id: ContactId
    duplicate: bool = False
    # Messages the gateway wrote to the customer in reply (an off-hours notice).
    notices: int = 0


# --- what the gateway hands to a channel ---------------------------------------------


class OutboundMessage(Frozen):
    message: Message
    conversation: Conversation
    recipient: Identity
    reply_to_external_id: str | None = None
    # External ids of the conversation's earlier messages, oldest first (e-mail References).
    thread_external_ids: list[str] = Field(default_factory=list)
    # When the customer last wrote in this conversation (reply windows, e.g. Messenger's 24 h).
    last_inbound_at: datetime | None = None
    # The contact's phone (E.164), where a channel sends to it (Zalo ZNS templates).
    phone: str | None = None
    # The metadata of the customer's latest message before this one (e.g. an e-mail's Cc,
    # which the reply keeps).
    last_inbound_metadata: dict[str, JsonValue] = Field(default_factory=dict)


class SendReceipt(Frozen):
    external_id: str | None = None
    status: MessageStatus = MessageStatus.SENT
