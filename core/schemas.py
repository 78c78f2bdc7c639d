"""Schemas that leave the core: routes and adapters get these, never ORM rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CounsellorPublic(Schema):
    id: uuid.UUID
    login: str
    display_name: str
    role: str
    team_id: uuid.UUID | None


class MessagePublic(Schema):
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender: str
    body: str
    delivery: str
    created_at: datetime


class ConversationSummary(Schema):
    id: uuid.UUID
    team_id: uuid.UUID
    status: str
    crisis: bool
    topics: list[str]
    role: str | None = None
    language: str = "de"
    federal_state: str | None = None
    counsellor_id: uuid.UUID | None
    created_at: datetime
    waiting_since: datetime | None
    last_message_at: datetime


class ConversationDetail(ConversationSummary):
    messages: list[MessagePublic]


class ContactRoute(Schema):
    """What the relay needs to reach a user: never a plain chat id outside memory."""

    contact_id: uuid.UUID
    channel: str
    pseudonym: str
    chat_ref: bytes | None


class Handover(Schema):
    conversation: ConversationSummary
    waiting_ahead: int
