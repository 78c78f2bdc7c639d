"""The conversation service: contacts, handover into a team's queue, messages, claim and reply.

Each public method is one transaction; events are published only after the commit, so a console
never shows something that was rolled back.
"""

from __future__ import annotations

import logging
import math
import statistics
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core import audit, crypto, keyring
from core.clock import Clock
from core.db import UTCDateTime, transaction
from core.events import EventBus, team_channel
from core.hours import InvalidHours, OpeningHours
from core.models import (
    CaseKey,
    CaseNote,
    Contact,
    Conversation,
    Counsellor,
    Followup,
    Message,
    Referral,
    Team,
    TeamEpoch,
    new_id,
)
from core.outcomes import check_outcomes
from core.schemas import (
    CRISIS_LEVELS,
    ContactRoute,
    ConversationDetail,
    ConversationSummary,
    Handover,
    MessagePublic,
    WorkloadPublic,
    crisis_rank,
)
from core.statistics import record_ended
from core.team_keys import current_epoch, teams_with_keys
from core.teams import ANSWERING_ROLES, NotAllowed, online_count

log = logging.getLogger(__name__)
OPEN_STATUSES = ("waiting", "active")
NATIONAL = "bundesweit"
# The expected wait is the median of the team's recent waits, shown only with enough of them.
WAIT_SAMPLE_DAYS = 7
WAIT_SAMPLE_SIZE = 50
WAIT_SAMPLE_MIN = 3
# The relay sends a queued reply within seconds; even a full backlog at Telegram's 30 messages
# a second drains in a few minutes. A reply queued longer than this was lost with its process.
LOST_REPLY_AFTER = timedelta(minutes=10)


class ConversationNotFound(LookupError):
    """Also raised for another team's conversation: the answer must not reveal that it exists."""


class ConversationClosed(RuntimeError):
    pass


class NoTeamKeys(LookupError):
    """No team that could take the conversation has keys yet: nothing can be stored, because
    a message is never kept in plain (docs/key-protocol.md)."""


class TransferRefused(ValueError):
    """The target of a transfer does not exist or is not allowed; the message says which."""


class NotYourConversation(PermissionError):
    """Writing in a colleague's conversation: only its counsellor, or a team lead joining."""


SUPERVISOR_ROLES = ("team_lead", "admin")


def _check_writer(conversation: Conversation, counsellor: Counsellor) -> None:
    if conversation.counsellor_id != counsellor.id and counsellor.role not in SUPERVISOR_ROLES:
        raise NotYourConversation()


class OverCapacity(RuntimeError):
    """The counsellor already has as many conversations as their capacity allows."""


def _route(contact: Contact) -> ContactRoute:
    return ContactRoute(
        contact_id=contact.id,
        channel=contact.channel,
        pseudonym=contact.pseudonym,
        chat_ref=contact.chat_ref,
    )


@dataclass(frozen=True)
class Profile:
    """What the guided conversation learnt; only coarse metadata, never free text."""

    language: str = "de"
    role: str | None = None
    federal_state: str | None = None
    topics: tuple[str, ...] = ()


def summarize(conversation: Conversation) -> ConversationSummary:
    contact = conversation.contact
    rank = conversation.crisis_rank or 0
    return ConversationSummary.model_validate(
        {
            **{
                k: getattr(conversation, k)
                for k in ConversationSummary.model_fields
                if hasattr(conversation, k)
            },
            "role": contact.role,
            "language": contact.language,
            "federal_state": contact.federal_state,
            "crisis_level": CRISIS_LEVELS[rank - 1] if rank else None,
        }
    )


async def route_team(session: AsyncSession, *, federal_state: str | None, language: str) -> Team:
    """The team for the user's state and language, else the national team. Only teams with
    keys take conversations: without a transcript key nothing could be stored."""
    ready = await teams_with_keys(session)
    teams = [
        team
        for team in (await session.scalars(select(Team).order_by(Team.created_at))).all()
        if team.id in ready
    ]
    for team in teams:
        if federal_state and federal_state in team.federal_states and language in team.languages:
            return team
    for team in teams:
        if team.slug == NATIONAL or not team.federal_states:
            return team
    raise NoTeamKeys()


async def _take_seq(session: AsyncSession, conversation_id: uuid.UUID, now: datetime) -> int:
    """Atomically reserve the next message number (a row lock on PostgreSQL, the write lock
    on SQLite) and touch the conversation in the same statement."""
    seq = await session.scalar(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(message_count=Conversation.message_count + 1, last_message_at=now)
        .returning(Conversation.message_count)
    )
    if seq is None:
        raise ConversationNotFound()
    return int(seq)


class _TranscriptKey(Protocol):
    epoch: int
    transcript_kid: str
    transcript_public: str


def _seal(
    epoch: _TranscriptKey | None,
    *,
    team_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    sender: str,
    text: str,
) -> dict[str, object]:
    """The only way a message body reaches the database: sealed to the team's transcript key
    of the current epoch. Without one it is not stored at all."""
    if epoch is None:
        raise NoTeamKeys()
    return keyring.seal_message(
        transcript_public=epoch.transcript_public,
        kid=epoch.transcript_kid,
        epoch=epoch.epoch,
        team=str(team_id),
        conversation=str(conversation_id),
        message=str(message_id),
        sender=sender,
        text=text,
    )


async def _new_message(
    session: AsyncSession,
    conversation: Conversation,
    *,
    sender: str,
    text: str,
    delivery: str,
    now: datetime,
    counsellor_id: uuid.UUID | None = None,
    epoch: TeamEpoch | None = None,
) -> Message:
    """A sealed message of a counsellor or the system, added to the session. `epoch`: the
    team's current one when the caller has it already (several messages at once)."""
    message_id = new_id()
    epoch = epoch or await current_epoch(session, conversation.team_id)
    message = Message(
        id=message_id,
        conversation_id=conversation.id,
        seq=await _take_seq(session, conversation.id, now),
        sender=sender,
        counsellor_id=counsellor_id,
        envelope=_seal(
            epoch,
            team_id=conversation.team_id,
            conversation_id=conversation.id,
            message_id=message_id,
            sender=sender,
            text=text,
        ),
        delivery=delivery,
        created_at=now,
    )
    session.add(message)
    return message


# The relay path (every message a user sends) runs on Core statements built once at import:
# building a statement anew and the ORM's unit of work cost more CPU than the SQL itself.
_conversations = cast(Table, Conversation.__table__)
_messages = cast(Table, Message.__table__)
_contacts = cast(Table, Contact.__table__)
_open = _conversations.alias("open_conversation")
_now = bindparam("now", type_=UTCDateTime())
# Plain parameters: `in_(OPEN_STATUSES)` would be an "expanding" one, which SQLAlchemy renders
# into the SQL string anew at every execution (about a tenth of a message's cost).
_open_statuses = [literal(status) for status in OPEN_STATUSES]
_epochs = cast(Table, TeamEpoch.__table__)
# The user's open conversation and its team's current transcript key, in one round trip.
_FIND_OPEN = (
    select(
        _conversations.c.id,
        _conversations.c.team_id,
        _epochs.c.epoch,
        _epochs.c.transcript_kid,
        _epochs.c.transcript_public,
    )
    .select_from(
        _conversations.join(_contacts, _contacts.c.id == _conversations.c.contact_id).outerjoin(
            _epochs,
            and_(
                _epochs.c.team_id == _conversations.c.team_id,
                _epochs.c.epoch
                == select(func.max(_epochs.c.epoch))
                .where(_epochs.c.team_id == _conversations.c.team_id)
                .correlate(_conversations)
                .scalar_subquery(),
            ),
        )
    )
    .where(
        _contacts.c.pseudonym == bindparam("pseudonym"),
        _conversations.c.status.in_(_open_statuses),
    )
    .limit(1)
)
# Reserves the next seq of that conversation, as `_take_seq` does. Status and team are checked
# again on the row itself, because PostgreSQL re-reads a row that changed while the UPDATE
# waited for its lock: a conversation closed or transferred meanwhile takes no message (it was
# sealed for the team it left), and the caller looks again.
_TAKE_USER_SEQ = (
    update(_conversations)
    .where(
        _conversations.c.id == bindparam("open_conversation", type_=Uuid()),
        _conversations.c.team_id == bindparam("expected_team", type_=Uuid()),
        _conversations.c.status.in_(_open_statuses),
    )
    .values(message_count=_conversations.c.message_count + 1, last_message_at=_now)
    .returning(_conversations.c.id, _conversations.c.team_id, _conversations.c.message_count)
)
_INSERT_MESSAGE = insert(_messages)
_taken = _TAKE_USER_SEQ.cte("taken")
_inserted = (
    insert(_messages)
    .from_select(
        ["id", "conversation_id", "seq", "sender", "envelope", "delivery", "created_at"],
        select(
            bindparam("message_id", type_=Uuid()),
            _taken.c.id,
            _taken.c.message_count,
            literal("user", String()),
            bindparam("envelope", type_=JSON()),
            literal("sent", String()),
            _now,
        ),
    )
    .returning(_messages.c.conversation_id)
    .cte("inserted")
)
# PostgreSQL: the seq-taking UPDATE and the INSERT in one statement, hence one round trip; a
# statement is atomic, and the row lock is held until COMMIT exactly as with two statements.
_RECORD_USER_MESSAGE = select(_taken.c.id, _taken.c.team_id, _taken.c.message_count).join_from(
    _inserted, _taken, _inserted.c.conversation_id == _taken.c.id
)


async def _append_user_message(
    session: AsyncSession, *, pseudonym: str, message_id: uuid.UUID, text: str, now: datetime
) -> tuple[uuid.UUID, uuid.UUID, int, dict[str, object]] | None:
    """Stores a user's message, sealed, in their open conversation: (conversation id, team id,
    seq, envelope), or None without an open conversation. SQLite has no UPDATE inside WITH:
    two statements there, in the same transaction (its write lock serialises them as well)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # Each statement is its own transaction: without BEGIN and COMMIT it saves two round
        # trips and keeps every property (atomic, row lock until it commits).
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    for _ in range(3):  # a transfer between finding and storing: seal for the new team
        found = (await session.execute(_FIND_OPEN, {"pseudonym": pseudonym})).first()
        if found is None:
            return None
        conversation_id, team_id = found.id, found.team_id
        envelope = _seal(
            found if found.epoch is not None else None,
            team_id=team_id,
            conversation_id=conversation_id,
            message_id=message_id,
            sender="user",
            text=text,
        )
        values = {
            "open_conversation": conversation_id,
            "expected_team": team_id,
            "now": now,
            "message_id": message_id,
            "envelope": envelope,
        }
        if postgres:
            row = (await session.execute(_RECORD_USER_MESSAGE, values)).first()
            if row is not None:
                return row[0], row[1], int(row[2]), envelope
            continue
        row = (await session.execute(_TAKE_USER_SEQ, values)).first()
        if row is None:
            continue
        await session.execute(
            _INSERT_MESSAGE,
            {
                "id": message_id,
                "conversation_id": conversation_id,
                "seq": row[2],
                "sender": "user",
                "envelope": envelope,
                "delivery": "sent",
                "created_at": now,
            },
        )
        return conversation_id, team_id, int(row[2]), envelope
    return None


def _ahead_in_queue(rank: int, waiting_since: datetime) -> ColumnElement[bool]:
    """Who is ahead in the order of `list_queue`: the more urgent first, then by waiting time."""
    return or_(
        Conversation.crisis_rank > rank,
        and_(Conversation.crisis_rank == rank, Conversation.waiting_since < waiting_since),
    )


@dataclass(frozen=True)
class _Availability:
    opens_at: datetime | None = None
    expected_wait_minutes: int | None = None
    nobody_online: bool = False
    out_of_office: str | None = None


async def _availability(
    session: AsyncSession, team_id: uuid.UUID, now: datetime, language: str
) -> _Availability:
    """When a closed team opens again; else whether anyone is there and how long people
    waited lately; with the team's out-of-office text when nobody is."""
    team = (
        await session.execute(
            select(Team.opening_hours, Team.out_of_office).where(Team.id == team_id)
        )
    ).one()
    texts = team.out_of_office or {}
    away_text = texts.get(language) or texts.get("de")
    try:
        hours = OpeningHours.parse(team.opening_hours)
    except InvalidHours:
        # Saved past the console's check (by hand in the database): a handover, above all a
        # crisis, must not fail for it. Treated as no hours set.
        log.error("team opening hours unreadable", extra={"team_id": str(team_id)})
        hours = None
    if hours is not None and not hours.is_open(now):
        return _Availability(opens_at=hours.next_opening(now), out_of_office=away_text)
    if await online_count(session, team_id=team_id, now=now) == 0:
        return _Availability(nobody_online=True, out_of_office=away_text)
    return _Availability(expected_wait_minutes=await _expected_wait(session, team_id, now))


async def _expected_wait(session: AsyncSession, team_id: uuid.UUID, now: datetime) -> int | None:
    rows = await session.execute(
        select(Conversation.waiting_since, Conversation.claimed_at)
        .where(
            Conversation.team_id == team_id,
            Conversation.claimed_at >= now - timedelta(days=WAIT_SAMPLE_DAYS),
            Conversation.waiting_since.is_not(None),
        )
        .order_by(Conversation.claimed_at.desc())
        .limit(WAIT_SAMPLE_SIZE)
    )
    waits = [
        max((claimed - since).total_seconds(), 0.0)
        for since, claimed in rows
        if claimed is not None and since is not None
    ]
    if len(waits) < WAIT_SAMPLE_MIN:
        return None
    # Rounded up to 5 minutes: a promise of "about 5" is kept more often than "about 3".
    return max(5, 5 * math.ceil(statistics.median(waits) / 300))


async def _check_capacity(session: AsyncSession, counsellor: Counsellor) -> None:
    active = await session.scalar(
        select(func.count(Conversation.id)).where(
            Conversation.counsellor_id == counsellor.id, Conversation.status == "active"
        )
    )
    if (active or 0) >= counsellor.capacity:
        raise OverCapacity()


async def _open_conversation(session: AsyncSession, contact_id: uuid.UUID) -> Conversation | None:
    return await session.scalar(
        select(Conversation)
        .where(Conversation.contact_id == contact_id, Conversation.status.in_(OPEN_STATUSES))
        .options(selectinload(Conversation.contact))
    )


class TranscriptChanged(RuntimeError):
    """The re-sealed transcript of a transfer does not match what is stored: reload, again."""


def _apply_resealed(
    conversation: Conversation,
    target: TeamEpoch,
    resealed: Mapping[uuid.UUID, dict[str, object]],
) -> None:
    stored = {m.id: m for m in conversation.messages if m.envelope is not None}
    if set(resealed) != set(stored):
        raise TranscriptChanged()
    for message_id, envelope in resealed.items():
        if not crypto.is_envelope_of(
            envelope, alg=crypto.SEAL_ALG, epoch=target.epoch, kid=target.transcript_kid
        ):
            raise TransferRefused("every message must be sealed to the team's transcript key")
        stored[message_id].envelope = dict(envelope)


class ConversationService:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock, bus: EventBus
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._bus = bus

    async def request_handover(
        self,
        *,
        channel: str,
        pseudonym: str,
        chat_ref: bytes | None,
        profile: Profile,
        crisis: bool = False,
        crisis_level: str = "high",
        crisis_category: str | None = None,
    ) -> Handover:
        """Into the team's queue, or back to the open conversation. With `crisis`, the
        conversation is flagged at `crisis_level` (the queue takes the most urgent first) and
        the team is alerted; again whenever the level rises, so an imminent danger is never
        one banner among old ones. The category only ever rises with the level."""
        now = self._clock.now()
        alert = False
        rank = crisis_rank(crisis_level) if crisis else 0
        async with transaction(self._sessions) as session:
            contact = await session.scalar(select(Contact).where(Contact.pseudonym == pseudonym))
            if contact is None:
                contact = Contact(channel=channel, pseudonym=pseudonym, created_at=now)
                session.add(contact)
            contact.chat_ref = chat_ref
            contact.language = profile.language
            # A flow that lost its state (a restart, a crisis right after /start) knows less
            # than the contact row: what it does not know does not overwrite what is known.
            contact.role = profile.role or contact.role
            contact.federal_state = profile.federal_state or contact.federal_state
            contact.last_seen_at = now
            await session.flush()
            conversation = await _open_conversation(session, contact.id)
            if conversation is None:
                team = await route_team(
                    session, federal_state=profile.federal_state, language=profile.language
                )
                conversation = Conversation(
                    contact=contact,
                    team_id=team.id,
                    status="waiting",
                    crisis=crisis,
                    crisis_rank=rank,
                    crisis_category=crisis_category if crisis else None,
                    topics=list(profile.topics),
                    created_at=now,
                    waiting_since=now,
                    last_message_at=now,
                )
                session.add(conversation)
                await session.flush()
                alert = crisis
            elif crisis and rank > (conversation.crisis_rank or 0):
                conversation.crisis = alert = True
                conversation.crisis_rank = rank
                conversation.crisis_category = crisis_category or conversation.crisis_category
                await session.flush()
            elif crisis and not conversation.crisis_category:
                conversation.crisis_category = crisis_category
            summary = summarize(conversation)
            ahead = await session.scalar(
                select(func.count(Conversation.id)).where(
                    Conversation.team_id == conversation.team_id,
                    Conversation.status == "waiting",
                    _ahead_in_queue(
                        conversation.crisis_rank or 0, conversation.waiting_since or now
                    ),
                )
            )
            available = await _availability(session, conversation.team_id, now, profile.language)
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "queue.updated", "conversation": summary.model_dump(mode="json")},
        )
        log.info("handover requested", extra={"conversation_id": str(summary.id)})
        if alert:
            await self._alert_crisis(summary)
        return Handover(
            conversation=summary,
            waiting_ahead=ahead or 0,
            opens_at=available.opens_at,
            expected_wait_minutes=available.expected_wait_minutes,
            nobody_online=available.nobody_online,
            out_of_office=available.out_of_office,
        )

    async def _alert_crisis(self, summary: ConversationSummary) -> None:
        """One event per conversation that becomes a crisis; consoles show a banner for it."""
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "conversation.crisis", "conversation": summary.model_dump(mode="json")},
        )
        log.info("conversation flagged as crisis", extra={"conversation_id": str(summary.id)})

    async def end_by_user(self, *, pseudonym: str) -> ConversationSummary | None:
        """The user ends the talk (/stopp): the open conversation closes and the team's consoles
        see it at once. None when there was nothing open."""
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            conversation = await session.scalar(
                select(Conversation)
                .join(Contact)
                .where(Contact.pseudonym == pseudonym, Conversation.status.in_(OPEN_STATUSES))
                .options(selectinload(Conversation.contact))
            )
            if conversation is None:
                return None
            conversation.status = "closed"
            conversation.closed_at = now
            await session.flush()
            summary = summarize(conversation)
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "queue.updated", "conversation": summary.model_dump(mode="json")},
        )
        log.info("conversation ended by the user", extra={"conversation_id": str(summary.id)})
        return summary

    async def erase_contact(self, *, pseudonym: str) -> int:
        """Everything stored about one user goes: the contact, its conversations, their
        messages (foreign keys cascade). Returns how many conversations went; 0 the second time.

        Consoles are told by conversation id, so an open view closes instead of showing a ghost;
        the log keeps the count only, never the pseudonym.
        """
        async with transaction(self._sessions) as session:
            # Follow-ups are kept by pseudonym and may exist without a contact row.
            await session.execute(delete(Followup).where(Followup.pseudonym == pseudonym))
            contact = await session.scalar(select(Contact).where(Contact.pseudonym == pseudonym))
            if contact is None:
                return 0
            gone = (
                await session.execute(
                    select(Conversation.id, Conversation.team_id).where(
                        Conversation.contact_id == contact.id
                    )
                )
            ).all()
            theirs = select(Conversation.id).where(Conversation.contact_id == contact.id)
            for table in (Message, CaseNote, CaseKey, Referral):
                await session.execute(delete(table).where(table.conversation_id.in_(theirs)))
            await session.execute(
                delete(Conversation).where(Conversation.contact_id == contact.id)
            )
            await session.execute(delete(Contact).where(Contact.id == contact.id))
        for conversation_id, team_id in gone:
            await self._bus.publish(
                team_channel(team_id),
                {"type": "conversation.erased", "conversation_id": str(conversation_id)},
            )
        log.info("contact erased", extra={"conversations": len(gone)})
        return len(gone)

    async def erase_by_counsellor(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor
    ) -> str:
        """A counsellor erases everything of the user behind a conversation of their team (the
        user asked for it another way, or must be protected). The audit entry names the
        conversation id, which then points nowhere, and never the pseudonym."""
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            pseudonym = conversation.contact.pseudonym
            self._audit(session, counsellor, "erase", conversation)
        await self.erase_contact(pseudonym=pseudonym)
        return pseudonym  # for the bot's flow state, which is not in the database

    async def open_conversation_id(self, *, pseudonym: str) -> uuid.UUID | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Conversation.id)
                .join(Contact)
                .where(Contact.pseudonym == pseudonym, Conversation.status.in_(OPEN_STATUSES))
            )

    async def record_user_message(self, *, pseudonym: str, text: str) -> MessagePublic:
        now = self._clock.now()
        message_id = new_id()
        async with transaction(self._sessions) as session:
            stored = await _append_user_message(
                session, pseudonym=pseudonym, message_id=message_id, text=text, now=now
            )
            if stored is None:
                raise ConversationClosed()
        conversation_id, team_id, seq, envelope = stored
        public = MessagePublic(
            id=message_id,
            conversation_id=conversation_id,
            seq=seq,
            sender="user",
            envelope=envelope,
            delivery="sent",
            created_at=now,
        )
        await self._bus.publish(
            team_channel(team_id),
            {"type": "message.created", "message": public.model_dump(mode="json")},
        )
        return public

    async def unattended(self, *, pseudonym: str) -> bool:
        """Whether the user's open conversation still waits with nobody of its team there (the
        team closed, or nobody online): then each message of theirs is acknowledged."""
        now = self._clock.now()
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(Conversation.status, Conversation.team_id, Contact.language)
                    .join(Contact)
                    .where(
                        Contact.pseudonym == pseudonym,
                        Conversation.status.in_(OPEN_STATUSES),
                    )
                )
            ).first()
            if found is None or found.status != "waiting":
                return False
            available = await _availability(session, found.team_id, now, found.language)
        return available.opens_at is not None or available.nobody_online

    async def workload(self, *, counsellor: Counsellor) -> list[WorkloadPublic]:
        """For team leads: each active member's open conversations, capacity and availability."""
        if counsellor.role not in SUPERVISOR_ROLES:
            raise NotAllowed("only team leads see the team's workload")
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    Counsellor.id,
                    Counsellor.display_name,
                    Counsellor.availability,
                    Counsellor.capacity,
                    func.count(Conversation.id),
                    func.sum(case((Conversation.crisis.is_(True), 1), else_=0)),
                )
                .outerjoin(
                    Conversation,
                    and_(
                        Conversation.counsellor_id == Counsellor.id,
                        Conversation.status == "active",
                    ),
                )
                .where(
                    Counsellor.team_id == counsellor.team_id,
                    Counsellor.is_active.is_(True),
                    Counsellor.role.in_(ANSWERING_ROLES),
                )
                .group_by(Counsellor.id)
                .order_by(Counsellor.display_name)
            )
            return [
                WorkloadPublic(
                    counsellor_id=cid,
                    display_name=name,
                    availability=availability,
                    capacity=capacity,
                    active=int(active or 0),
                    crises=int(crises or 0),
                )
                for cid, name, availability, capacity, active, crises in rows
            ]

    async def list_queue(self, *, counsellor: Counsellor) -> list[ConversationSummary]:
        """Open conversations of the counsellor's team: waiting ones first, crises on top."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Conversation)
                .where(
                    Conversation.team_id == counsellor.team_id,
                    Conversation.status.in_(OPEN_STATUSES),
                )
                .options(selectinload(Conversation.contact))
                .order_by(
                    (Conversation.status == "waiting").desc(),
                    Conversation.crisis_rank.desc(),
                    Conversation.waiting_since,
                )
            )
            return [summarize(row) for row in rows]

    async def _load_for(
        self, session: AsyncSession, *, conversation_id: uuid.UUID, counsellor: Counsellor
    ) -> Conversation:
        conversation = await session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .options(selectinload(Conversation.contact), selectinload(Conversation.messages))
        )
        if conversation is None or conversation.team_id != counsellor.team_id:
            raise ConversationNotFound()
        return conversation

    async def get_conversation(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor
    ) -> ConversationDetail:
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            self._audit(session, counsellor, "open", conversation)
            return ConversationDetail(
                **summarize(conversation).model_dump(),
                messages=[MessagePublic.model_validate(m) for m in conversation.messages],
            )

    async def claim(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor
    ) -> ConversationSummary:
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            if conversation.status == "closed":
                raise ConversationClosed()
            # A crisis can always be taken: nobody in crisis waits for a free slot.
            if conversation.counsellor_id != counsellor.id and not conversation.crisis:
                await _check_capacity(session, counsellor)
            conversation.status = "active"
            conversation.counsellor_id = counsellor.id
            conversation.claimed_at = conversation.claimed_at or now
            self._audit(session, counsellor, "claim", conversation)
            await session.flush()
            summary = summarize(conversation)
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "queue.updated", "conversation": summary.model_dump(mode="json")},
        )
        return summary

    async def release(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor
    ) -> ConversationSummary:
        """Back into the team's queue, keeping its place: the user has waited already."""
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            if conversation.status != "active":
                raise ConversationClosed()
            conversation.status = "waiting"
            conversation.counsellor_id = None
            self._audit(session, counsellor, "release", conversation)
            await session.flush()
            summary = summarize(conversation)
        await self._publish_queue(summary)
        return summary

    async def set_crisis(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor, crisis: bool
    ) -> ConversationSummary:
        """A counsellor's judgement overrides the lexicon's, both ways."""
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            conversation.crisis = crisis
            # A flag set by hand counts as "high" unless the detector already said more.
            if not crisis:
                conversation.crisis_rank, conversation.crisis_category = 0, None
            elif not conversation.crisis_rank:
                conversation.crisis_rank = crisis_rank("high")
            self._audit(session, counsellor, "crisis_on" if crisis else "crisis_off", conversation)
            await session.flush()
            summary = summarize(conversation)
        await self._publish_queue(summary)
        return summary

    async def close(
        self,
        *,
        conversation_id: uuid.UUID,
        counsellor: Counsellor,
        outcomes: list[str],
        farewell: dict[str, str],
    ) -> tuple[ConversationSummary, MessagePublic, ContactRoute, str]:
        """Closed with outcome codes; the user gets `farewell` in their language (a system
        message, stored sealed and relayed like a reply; its text is returned for the relay)
        and can start again at any time."""
        codes = check_outcomes(outcomes)
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            # One close wins when two arrive at once (a double click, two tabs): the
            # conditional update decides on both databases, so the farewell goes once and
            # the statistics count it once.
            ended = await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation.id, Conversation.status != "closed")
                .values(status="closed", closed_at=now)
            )
            if not ended.rowcount:  # type: ignore[attr-defined]
                raise ConversationClosed()
            text = farewell.get(conversation.contact.language) or farewell["de"]
            message = await _new_message(
                session, conversation, sender="system", text=text, delivery="queued", now=now
            )
            conversation.status = "closed"
            conversation.closed_at = now
            conversation.outcomes = codes
            await record_ended(session, conversations=[conversation], at=now, inactive=False)
            self._audit(session, counsellor, "close", conversation)
            await session.flush()
            summary = summarize(conversation)
            public = MessagePublic.model_validate(message)
            route = _route(conversation.contact)
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "message.created", "message": public.model_dump(mode="json")},
        )
        await self._publish_queue(summary)
        log.info("conversation closed", extra={"conversation_id": str(summary.id)})
        return summary, public, route, text

    async def transfer(
        self,
        *,
        conversation_id: uuid.UUID,
        counsellor: Counsellor,
        to_team_id: uuid.UUID | None = None,
        to_counsellor_id: uuid.UUID | None = None,
        note: str = "",
        resealed: Mapping[uuid.UUID, dict[str, object]] | None = None,
    ) -> ConversationSummary:
        """To a colleague of the same team (who then has it) or to another team's queue. The
        handover note is a transcript entry for counsellors only; it never reaches the user.

        To another team, `resealed` holds every stored message sealed again in the sending
        browser to that team's transcript key: the server cannot do it, it cannot read them."""
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            # The row lock first: no user message can slip in, sealed for the old team,
            # between the check of the re-sealed transcript and the move.
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(last_message_at=Conversation.last_message_at)
            )
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            if conversation.status == "closed":
                raise ConversationClosed()
            source_team = conversation.team_id
            # Recorded for the team it leaves; the receiving team sees it arrive in its queue.
            self._audit(session, counsellor, "transfer", conversation)
            if to_counsellor_id is not None:
                colleague = await session.get(Counsellor, to_counsellor_id)
                if (
                    colleague is None
                    or colleague.team_id != source_team
                    or not colleague.is_active
                ):
                    raise TransferRefused("no such colleague in this team")
                conversation.status, conversation.counsellor_id = "active", colleague.id
            elif to_team_id is not None and to_team_id != source_team:
                if await session.get(Team, to_team_id) is None:
                    raise TransferRefused("no such team")
                target = await current_epoch(session, to_team_id)
                if target is None:
                    raise TransferRefused("that team has no keys yet")
                _apply_resealed(conversation, target, resealed or {})
                conversation.team_id = to_team_id
                conversation.status, conversation.counsellor_id = "waiting", None
            else:
                raise TransferRefused("name a colleague or another team")
            if note.strip():
                # Sealed for the team that takes it over: they are the ones to read it.
                await _new_message(
                    session,
                    conversation,
                    sender="handover",
                    counsellor_id=counsellor.id,
                    text=note.strip(),
                    delivery="internal",
                    now=now,
                )
            await session.flush()
            summary = summarize(conversation)
        if summary.team_id != source_team:
            # The old team's consoles drop it; the new team's see it arrive.
            await self._bus.publish(
                team_channel(source_team),
                {"type": "conversation.transferred", "conversation_id": str(summary.id)},
            )
        await self._publish_queue(summary)
        log.info("conversation transferred", extra={"conversation_id": str(summary.id)})
        return summary

    def _audit(
        self,
        session: AsyncSession,
        counsellor: Counsellor,
        action: str,
        conversation: Conversation,
    ) -> None:
        audit.record(
            session,
            at=self._clock.now(),
            counsellor=counsellor,
            action=action,
            conversation_id=conversation.id,
            team_id=conversation.team_id,
        )

    async def _publish_queue(self, summary: ConversationSummary) -> None:
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "queue.updated", "conversation": summary.model_dump(mode="json")},
        )

    async def add_counsellor_reply(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor, text: str
    ) -> tuple[MessagePublic, ContactRoute]:
        messages, route = await self._write_counsellor_messages(
            conversation_id=conversation_id, counsellor=counsellor, items=[(None, text)]
        )
        return messages[0], route

    async def contact_language(self, *, conversation_id: uuid.UUID, counsellor: Counsellor) -> str:
        """The language the user reads, for text the console composes (referral cards)."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Contact.language, Conversation.team_id)
                    .join(Conversation, Conversation.contact_id == Contact.id)
                    .where(Conversation.id == conversation_id)
                )
            ).first()
        if row is None or row.team_id != counsellor.team_id:
            raise ConversationNotFound()
        return str(row.language)

    async def add_referral_cards(
        self,
        *,
        conversation_id: uuid.UUID,
        counsellor: Counsellor,
        cards: list[tuple[str, str]],
        categories: Mapping[str, str] | None = None,
    ) -> tuple[list[MessagePublic], ContactRoute]:
        """Each (service id, card text) becomes a counsellor message, delivered like a reply,
        and a referral row (which service, the need it was sent for (`categories`), when: for
        statistics and follow-ups)."""
        return await self._write_counsellor_messages(
            conversation_id=conversation_id,
            counsellor=counsellor,
            items=list(cards),
            categories=categories or {},
        )

    async def _write_counsellor_messages(
        self,
        *,
        conversation_id: uuid.UUID,
        counsellor: Counsellor,
        items: list[tuple[str | None, str]],
        categories: Mapping[str, str] | None = None,
    ) -> tuple[list[MessagePublic], ContactRoute]:
        """Messages from the conversation's counsellor (or a lead who joins), queued for the
        relay, in one transaction; an item with a service id also records that referral."""
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            if conversation.status != "active":
                raise ConversationClosed()
            _check_writer(conversation, counsellor)
            messages: list[Message] = []
            epoch = await current_epoch(session, conversation.team_id)
            for service_id, text in items:
                message = await _new_message(
                    session,
                    conversation,
                    sender="counsellor",
                    counsellor_id=counsellor.id,
                    text=text,
                    delivery="queued",
                    now=now,
                    epoch=epoch,
                )
                if service_id is not None:
                    session.add(
                        Referral(
                            conversation_id=conversation.id,
                            service_id=service_id,
                            category=(categories or {}).get(service_id),
                            counsellor_id=counsellor.id,
                            created_at=now,
                        )
                    )
                messages.append(message)
            await session.flush()
            public = [MessagePublic.model_validate(m) for m in messages]
            route = _route(conversation.contact)
            team_id = conversation.team_id
        for message_public in public:
            await self._bus.publish(
                team_channel(team_id),
                {"type": "message.created", "message": message_public.model_dump(mode="json")},
            )
        return public, route

    async def mark_delivery(self, *, message_id: uuid.UUID, delivery: str) -> None:
        async with transaction(self._sessions) as session:
            message = await session.get(
                Message, message_id, options=[selectinload(Message.conversation)]
            )
            if message is None:
                return  # erased meanwhile: nothing left to mark
            message.delivery = delivery
            team_id = message.conversation.team_id
            event = {
                "type": "message.delivery",
                "message_id": str(message.id),
                "conversation_id": str(message.conversation_id),
                "delivery": delivery,
            }
        await self._bus.publish(team_channel(team_id), event)

    async def fail_lost_replies(self, *, older_than: timedelta = LOST_REPLY_AFTER) -> int:
        """Replies queued longer ago than `older_than` and still not sent were lost with the
        process that queued them (the outbound queue is in its memory): they are shown as
        failed, live in every console.

        Only old ones: with several processes, the younger ones may be sent right now by
        another process. Resending blindly could deliver twice; the counsellor sees the
        failure and can send again."""
        cutoff = self._clock.now() - older_than
        async with transaction(self._sessions) as session:
            lost = (
                await session.execute(
                    update(Message)
                    .where(Message.delivery == "queued", Message.created_at < cutoff)
                    .values(delivery="failed")
                    .returning(Message.id, Message.conversation_id)
                )
            ).all()
            teams = dict(
                (
                    await session.execute(
                        select(Conversation.id, Conversation.team_id).where(
                            Conversation.id.in_({row.conversation_id for row in lost})
                        )
                    )
                ).all()
            )
        for message_id, conversation_id in lost:
            event = {
                "type": "message.delivery",
                "message_id": str(message_id),
                "conversation_id": str(conversation_id),
                "delivery": "failed",
            }
            await self._bus.publish(team_channel(teams[conversation_id]), event)
        return len(lost)

    async def publish(self, channel: str, event: dict[str, object]) -> int:
        return await self._bus.publish(channel, event)
