"""The conversation service: contacts, handover into a team's queue, messages, claim and reply.

Each public method is one transaction; events are published only after the commit, so a console
never shows something that was rolled back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.clock import Clock
from core.db import transaction
from core.events import EventBus, team_channel
from core.models import Contact, Conversation, Counsellor, Message, Team
from core.schemas import (
    ContactRoute,
    ConversationDetail,
    ConversationSummary,
    Handover,
    MessagePublic,
)

log = logging.getLogger(__name__)
OPEN_STATUSES = ("waiting", "active")
NATIONAL = "bundesweit"


class ConversationNotFound(LookupError):
    """Also raised for another team's conversation: the answer must not reveal that it exists."""


class ConversationClosed(RuntimeError):
    pass


@dataclass(frozen=True)
class Profile:
    """What the guided conversation learnt; only coarse metadata, never free text."""

    language: str = "de"
    role: str | None = None
    federal_state: str | None = None
    topics: tuple[str, ...] = ()


def summarize(conversation: Conversation) -> ConversationSummary:
    contact = conversation.contact
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
        }
    )


async def route_team(session: AsyncSession, *, federal_state: str | None, language: str) -> Team:
    """The team for the user's state and language, else the national team."""
    teams = (await session.scalars(select(Team).order_by(Team.created_at))).all()
    for team in teams:
        if federal_state and federal_state in team.federal_states and language in team.languages:
            return team
    for team in teams:
        if team.slug == NATIONAL or not team.federal_states:
            return team
    raise LookupError("no national team configured")


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


async def _open_conversation(session: AsyncSession, contact_id: uuid.UUID) -> Conversation | None:
    return await session.scalar(
        select(Conversation)
        .where(Conversation.contact_id == contact_id, Conversation.status.in_(OPEN_STATUSES))
        .options(selectinload(Conversation.contact))
    )


class ConversationService:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock, bus: EventBus
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._bus = bus

    async def request_handover(
        self, *, channel: str, pseudonym: str, chat_ref: bytes | None, profile: Profile
    ) -> Handover:
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            contact = await session.scalar(select(Contact).where(Contact.pseudonym == pseudonym))
            if contact is None:
                contact = Contact(channel=channel, pseudonym=pseudonym, created_at=now)
                session.add(contact)
            contact.chat_ref = chat_ref
            contact.language = profile.language
            contact.role = profile.role
            contact.federal_state = profile.federal_state
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
                    topics=list(profile.topics),
                    created_at=now,
                    waiting_since=now,
                    last_message_at=now,
                )
                session.add(conversation)
                await session.flush()
            summary = summarize(conversation)
            ahead = await session.scalar(
                select(func.count(Conversation.id)).where(
                    Conversation.team_id == conversation.team_id,
                    Conversation.status == "waiting",
                    Conversation.waiting_since < (conversation.waiting_since or now),
                )
            )
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "queue.updated", "conversation": summary.model_dump(mode="json")},
        )
        log.info("handover requested", extra={"conversation_id": str(summary.id)})
        return Handover(conversation=summary, waiting_ahead=ahead or 0)

    async def open_conversation_id(self, *, pseudonym: str) -> uuid.UUID | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Conversation.id)
                .join(Contact)
                .where(Contact.pseudonym == pseudonym, Conversation.status.in_(OPEN_STATUSES))
            )

    async def record_user_message(self, *, pseudonym: str, text: str) -> MessagePublic:
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            row = (
                await session.execute(
                    select(Conversation.id, Conversation.team_id)
                    .join(Contact)
                    .where(Contact.pseudonym == pseudonym, Conversation.status.in_(OPEN_STATUSES))
                )
            ).first()
            if row is None:
                raise ConversationClosed()
            conversation_id, team_id = row
            message = Message(
                conversation_id=conversation_id,
                seq=await _take_seq(session, conversation_id, now),
                sender="user",
                body=text,
                created_at=now,
            )
            session.add(message)
            await session.flush()
            public = MessagePublic.model_validate(message)
        await self._bus.publish(
            team_channel(team_id),
            {"type": "message.created", "message": public.model_dump(mode="json")},
        )
        return public

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
                    Conversation.crisis.desc(),
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
        async with self._sessions() as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
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
            conversation.status = "active"
            conversation.counsellor_id = counsellor.id
            conversation.claimed_at = conversation.claimed_at or now
            await session.flush()
            summary = summarize(conversation)
        await self._bus.publish(
            team_channel(summary.team_id),
            {"type": "queue.updated", "conversation": summary.model_dump(mode="json")},
        )
        return summary

    async def add_counsellor_reply(
        self, *, conversation_id: uuid.UUID, counsellor: Counsellor, text: str
    ) -> tuple[MessagePublic, ContactRoute]:
        now = self._clock.now()
        async with transaction(self._sessions) as session:
            conversation = await self._load_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            if conversation.status != "active":
                raise ConversationClosed()
            message = Message(
                conversation_id=conversation.id,
                seq=await _take_seq(session, conversation.id, now),
                sender="counsellor",
                counsellor_id=counsellor.id,
                body=text,
                delivery="queued",
                created_at=now,
            )
            session.add(message)
            await session.flush()
            public = MessagePublic.model_validate(message)
            contact = conversation.contact
            route = ContactRoute(
                contact_id=contact.id,
                channel=contact.channel,
                pseudonym=contact.pseudonym,
                chat_ref=contact.chat_ref,
            )
            team_id = conversation.team_id
        await self._bus.publish(
            team_channel(team_id),
            {"type": "message.created", "message": public.model_dump(mode="json")},
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

    async def fail_undelivered(self) -> int:
        """At start-up: replies a previous process queued but never sent are shown as failed.

        Resending them blindly could deliver twice; the counsellor sees it and can send again.
        """
        async with transaction(self._sessions) as session:
            result = await session.execute(
                update(Message).where(Message.delivery == "queued").values(delivery="failed")
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def publish(self, channel: str, event: dict[str, object]) -> int:
        return await self._bus.publish(channel, event)
