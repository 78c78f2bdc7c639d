"""Schemas that leave the core: routes and adapters get these, never ORM rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text columns (a 500 otherwise); no person types one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Text a person typed that is stored in a text column as it is.
PlainText = Annotated[str, AfterValidator(_no_nul)]


class CounsellorPublic(Schema):
    id: uuid.UUID
    login: str
    display_name: str
    role: str
    team_id: uuid.UUID | None
    availability: str = "offline"


class TeamPublic(Schema):
    id: uuid.UUID
    slug: str
    name: str
    federal_states: list[str]
    languages: list[str]


class TeamSettings(Schema):
    # {"mon": ["09:00-17:00"], ...} in German local time (core/hours.py); None: no hours set.
    opening_hours: dict[str, list[str]] | None = None
    # Per language: what the bot adds when nobody is there.
    out_of_office: dict[str, Annotated[str, Field(max_length=1000)]] = {}


class ColleaguePublic(Schema):
    id: uuid.UUID
    display_name: str
    role: str


class MemberPublic(Schema):
    """A member of the lead's team as the team page lists them."""

    id: uuid.UUID
    login: str
    display_name: str
    role: str
    availability: str
    is_active: bool


class MessagePublic(Schema):
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender: str
    # Sealed to the team's transcript key: the console opens it in the browser. None only for
    # messages from before sealing (their plain bodies were removed, migration 0006).
    envelope: dict[str, Any] | None
    delivery: str
    created_at: datetime


# How urgent a crisis is, lowest first; the queue takes the highest first (docs/crisis.md).
CRISIS_LEVELS = ("concern", "high", "imminent")
# What kind of crisis, most urgent first; a message of several kinds reports the first.
CRISIS_CATEGORIES = (
    "acute_danger",
    "suicide",
    "self_harm",
    "threat",
    "abuse",
    "violence",
    "eating_disorder",
    "runaway",
)


def crisis_rank(level: str | None) -> int:
    """0 for no crisis, then 1, 2, 3 from concern to imminent: what the queue sorts by."""
    return CRISIS_LEVELS.index(level) + 1 if level in CRISIS_LEVELS else 0


class ConversationSummary(Schema):
    id: uuid.UUID
    team_id: uuid.UUID
    status: str
    crisis: bool
    crisis_level: str | None = None
    crisis_category: str | None = None
    topics: list[str]
    outcomes: list[str] = []
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
    # Outside the team's opening hours: when the next window starts (German local time).
    opens_at: datetime | None = None
    # From recent waits in the team; None while there are too few to say anything honest.
    expected_wait_minutes: int | None = None
    # Within opening hours (or with none set) but nobody of the team online right now.
    nobody_online: bool = False
    # The team's out-of-office text in the user's language, when there is one.
    out_of_office: str | None = None


class AuditEntryPublic(Schema):
    at: datetime
    counsellor: str | None  # display name; None once the account is gone
    action: str
    conversation_id: uuid.UUID | None


class CannedCreate(Schema):
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")] = "de"
    title: Annotated[PlainText, Field(min_length=1, max_length=100)]
    body: Annotated[PlainText, Field(min_length=1, max_length=4096)]


class CannedPublic(Schema):
    id: uuid.UUID
    language: str
    title: str
    body: str


class WorkloadPublic(Schema):
    counsellor_id: uuid.UUID
    display_name: str
    availability: str
    capacity: int
    active: int  # open conversations they have now
    crises: int  # of which flagged as crisis


class MemberKeysPublic(Schema):
    x25519_public: Annotated[str, Field(min_length=40, max_length=64)]
    ed25519_public: Annotated[str, Field(min_length=40, max_length=64)]
    # {kdf, iterations, salt, x25519: {public_raw, wrapped}, ed25519: {...}} from keys.js
    wrapped: dict[str, Any]


Envelope = dict[str, Any]


class EpochPublic(Schema):
    epoch: int
    kid: str
    transcript_public: str
    transcript_kid: str
    wrapped_transcript_key: Envelope
    previous_key: Envelope | None
    # The caller's own wrap of this epoch's team key; None when they have none.
    wrap: Envelope | None = None


class RosterEntry(Schema):
    epoch: int
    version: int
    roster: dict[str, Any]
    signature: str


class KeyMember(Schema):
    id: uuid.UUID
    display_name: str
    role: str
    x25519_public: str
    ed25519_public: str
    # Has a wrap of the current epoch's team key.
    wrapped: bool


class TeamKeys(Schema):
    """Everything a console needs to unlock the team's keys, and a lead's to add members or
    start an epoch (docs/key-protocol.md)."""

    team_id: uuid.UUID
    recovery_public: str | None
    rotation_due: bool
    epochs: list[EpochPublic]
    rosters: list[RosterEntry]
    members: list[KeyMember]


class RosterSigned(Schema):
    roster: dict[str, Any]
    signature: Annotated[str, Field(max_length=128)]
    wraps: dict[uuid.UUID, Envelope]


class EpochCreate(RosterSigned):
    epoch: Annotated[int, Field(ge=1)]
    kid: Annotated[str, Field(min_length=8, max_length=64)]
    transcript_public: Annotated[str, Field(min_length=40, max_length=64)]
    transcript_kid: Annotated[str, Field(min_length=8, max_length=64)]
    wrapped_transcript_key: Envelope
    previous_key: Envelope | None = None
    recovery_wrap: Envelope | None = None


class CaseKeyPublic(Schema):
    epoch: int
    kid: Annotated[str, Field(min_length=8, max_length=64)]
    envelope: Envelope


class NotePublic(Schema):
    id: uuid.UUID
    author_id: uuid.UUID | None
    epoch: int
    envelope: Envelope
    created_at: datetime


class NotesPublic(Schema):
    case_keys: list[CaseKeyPublic]
    notes: list[NotePublic]


class NoteCreate(Schema):
    """No field for plain text, on purpose: a note reaches the server only encrypted."""

    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    envelope: Envelope
    case_key: CaseKeyPublic | None = None


class TeamTranscriptKey(Schema):
    """Another team's current epoch and its roster chain; the signed roster names the
    transcript public key to seal to."""

    team_id: uuid.UUID
    epoch: int
    rosters: list[RosterEntry]
