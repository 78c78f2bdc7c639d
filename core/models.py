"""Tables of the conversation domain: teams, counsellors, contacts, conversations, messages.

No name, username, phone number or plain Telegram id appears in any column: contacts are known by
a keyed pseudonym, and the chat id needed to answer is encrypted (see core/crypto.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, UTCDateTime


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Two-letter codes of the federal states this team serves; empty means the national team.
    federal_states: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["de"])
    # {"mon": ["09:00-17:00"], ...} in German local time (core/hours.py); NULL: none set.
    opening_hours: Mapped[dict[str, list[str]] | None] = mapped_column(JSON, nullable=True)
    # {"de": "...", "en": "..."}: what the bot adds when nobody of the team is there.
    out_of_office: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    # Set when a member left: the next lead console that is unlocked starts a new epoch
    # without them (docs/key-protocol.md).
    rotation_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Counsellor(Base):
    __tablename__ = "counsellors"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="counsellor")
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # How many conversations this counsellor takes at once; claiming one more is refused.
    capacity: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    # online | away | offline, as the counsellor sets it; "online" counts for the bot only while
    # the console's heartbeat keeps `seen_at` fresh (core/teams.py).
    availability: Mapped[str] = mapped_column(
        String(10), default="offline", server_default="offline"
    )
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The second factor: the TOTP secret AES-GCM-sealed under a key derived from the server's
    # routing key (bound to the account id); the last step used, so a code works once; and the
    # recovery codes as keyed digests, each struck out when used.
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recovery_codes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """Server-side login sessions: logout and disabling an account end them at once."""

    __tablename__ = "console_sessions"

    # SHA-256 of the cookie value, so a database copy cannot be replayed as a login.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    counsellor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("counsellors.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # False after the password alone: such a session reaches only the second-factor pages.
    mfa_passed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A TOTP secret being set up, sealed like the account's, until the first code confirms it.
    pending_totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Invitation(Base):
    """A one-time link to create an account; only the token's digest is kept."""

    __tablename__ = "invitations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=True
    )
    display_name: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Contact(Base):
    """One anonymous user of one channel, known only by a pseudonym."""

    __tablename__ = "contacts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(20))
    pseudonym: Mapped[str] = mapped_column(String(80), unique=True)
    # AES-GCM(routing key, chat id) with the pseudonym as associated data; empty for web chat.
    chat_ref: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="de")
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    federal_state: Mapped[str | None] = mapped_column(String(2), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)

    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", passive_deletes=True
    )


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_queue", "status", "crisis_rank", "waiting_since"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    # waiting -> active -> closed
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    crisis: Mapped[bool] = mapped_column(Boolean, default=False)
    # 0 none, 1 concern, 2 high, 3 imminent (core.schemas.crisis_rank): the queue's first key.
    crisis_rank: Mapped[int] = mapped_column(SmallInteger, default=0)
    # The kind (core.schemas.CRISIS_CATEGORIES), for the counsellor and the statistics; never
    # the words that raised it.
    crisis_category: Mapped[str | None] = mapped_column(String(20), nullable=True)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Codes set at closing (core/outcomes.py): metadata for statistics, never free text.
    outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)
    counsellor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Incremented in the same UPDATE that hands out a message's seq, so concurrent writers
    # (the user and a counsellor) can never get the same number.
    message_count: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[Contact] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.seq",
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    # user | counsellor | system
    sender: Mapped[str] = mapped_column(String(20))
    counsellor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    # Sealed at ingress to the team's transcript public key (docs/key-protocol.md): the server
    # writes it and cannot read it back. NULL only for messages stored before sealing existed,
    # whose plain bodies migration 0006 removed.
    envelope: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # queued | sent | failed: a reply the user could not get is shown as such, never dropped.
    delivery: Mapped[str] = mapped_column(String(20), default="sent")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class AuditEntry(Base):
    """Who opened or changed which conversation, when; never content. The conversation id is
    not a foreign key: the entry outlives an erased conversation and then points nowhere."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_team_at", "team_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    counsellor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class CannedResponse(Base):
    """A reply text a team keeps ready, per language; {counsellor} and {team} are filled in
    for whoever uses it."""

    __tablename__ = "canned_responses"
    __table_args__ = (Index("ix_canned_responses_team_language", "team_id", "language"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8), default="de")
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Referral(Base):
    """An offer a counsellor sent as a card: for statistics (which kinds of offers families get)
    and follow-ups. No text, only which service, in which conversation, when."""

    __tablename__ = "referrals"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[str] = mapped_column(String(64))
    # The need the offer was sent for (core/statistics.py), counted when the conversation ends.
    category: Mapped[str | None] = mapped_column(String(20), nullable=True)
    counsellor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberKeys(Base):
    """A counsellor's public keys and their private keys wrapped in the browser under the
    unlock passphrase (counsellor_console/static/keys.js). The server cannot unwrap them; it
    keeps them so the counsellor can unlock in any browser."""

    __tablename__ = "member_keys"

    counsellor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("counsellors.id", ondelete="CASCADE"), primary_key=True
    )
    x25519_public: Mapped[str] = mapped_column(String(64))
    ed25519_public: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TeamEpoch(Base):
    """One epoch of a team's keys, made in a lead's browser: the transcript public key the
    server seals to, and the rest only as envelopes the server cannot open."""

    __tablename__ = "team_epochs"
    __table_args__ = (UniqueConstraint("team_id", "epoch"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    kid: Mapped[str] = mapped_column(String(64))
    transcript_public: Mapped[str] = mapped_column(String(64))
    transcript_kid: Mapped[str] = mapped_column(String(64))
    wrapped_transcript_key: Mapped[dict[str, object]] = mapped_column(JSON)
    # The previous epoch's team key under this one's, so holders of the newest key reach all.
    previous_key: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    recovery_wrap: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TeamRoster(Base):
    """A signed roster version of an epoch; versions chain by digest (core/keyring.py)."""

    __tablename__ = "team_rosters"
    __table_args__ = (UniqueConstraint("team_id", "epoch", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    roster: Mapped[dict[str, object]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TeamKeyWrap(Base):
    """An epoch's team key sealed to one member's X25519 key; deleted when the member leaves."""

    __tablename__ = "team_key_wraps"

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    counsellor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("counsellors.id", ondelete="CASCADE"), primary_key=True
    )
    envelope: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseKey(Base):
    """A conversation's case key for one epoch, under that epoch's team key."""

    __tablename__ = "case_keys"

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseNote(Base):
    """A counsellor's note, encrypted in the browser under the case key; the id is the
    browser's, because it is bound into the ciphertext."""

    __tablename__ = "case_notes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), nullable=True
    )
    epoch: Mapped[int] = mapped_column(Integer)
    envelope: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Followup(Base):
    """A check-in the user asked for after seeing offers. Only what sending it needs (the
    pseudonym, the sealed chat reference, the language) and coarse statistics metadata: never an
    offer name or free text. Deleted when answered, cancelled or erased, or 30 days after it
    was due (core/followups.py)."""

    __tablename__ = "followups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # One pending check-in per user: opting in again moves it.
    pseudonym: Mapped[str] = mapped_column(String(80), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    # AES-GCM(routing key, chat id) with the pseudonym as associated data, as on Contact.
    chat_ref: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8), default="de")
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    federal_state: Mapped[str | None] = mapped_column(String(2), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatEvent(Base):
    """One anonymous fact for the monitoring statistics (core/statistics.py): a conversation
    that ended, a search the bot answered, a referral a counsellor gave, a follow-up answer.

    Codes only, and the month instead of a time: no pseudonym, no conversation or contact id,
    no free text, so a row cannot be tied back to a user, and erasure has nothing to find
    here. Published only as protected tables (small cells suppressed)."""

    __tablename__ = "stat_events"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    unit: Mapped[str] = mapped_column(String(20))
    month: Mapped[str] = mapped_column(String(7), index=True)  # "2026-12"
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    federal_state: Mapped[str | None] = mapped_column(String(2), nullable=True)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)
    crisis: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    crisis_category: Mapped[str | None] = mapped_column(String(20), nullable=True)
    found: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    category: Mapped[str | None] = mapped_column(String(20), nullable=True)
    answer: Mapped[str | None] = mapped_column(String(20), nullable=True)


class StatReport(Base):
    """A published statistics report: the protected tables of one completed period, stored
    the first time they are asked for. A period's figures never change once shown, so two
    views of one period can never be subtracted to undo the suppression."""

    __tablename__ = "stat_reports"

    period: Mapped[str] = mapped_column(String(10), primary_key=True)  # "2026-Q3"
    granularity: Mapped[str] = mapped_column(String(10))
    starts: Mapped[str] = mapped_column(String(7))  # first month
    ends: Mapped[str] = mapped_column(String(7))  # last month
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
