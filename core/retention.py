"""Retention: Lotse keeps as little as it can for as short as it can (docs/privacy.md).

One idempotent pass, run by the scheduler: conversations nobody wrote in for a while are
closed; closed conversations go entirely after their period (messages, case notes, the case
keys that protected them, referrals: the foreign keys cascade, and they are deleted explicitly
too so SQLite without cascades behaves the same); contacts left without any conversation are
deleted once they have been quiet as long; old audit entries, spent invitations and old raw
statistics events go (published statistics reports stay). Every pass logs counts only."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.clock import Clock
from core.db import transaction
from core.hours import local_month
from core.models import (
    AuditEntry,
    CaseKey,
    CaseNote,
    Contact,
    Conversation,
    Invitation,
    Message,
    Referral,
    StatEvent,
)
from core.settings import Settings
from core.statistics import months_before, record_ended

log = logging.getLogger(__name__)
OPEN_STATUSES = ("waiting", "active")


@dataclass(frozen=True)
class RetentionPolicy:
    """Periods in days; the defaults are documented in docs/operations.md."""

    close_inactive_days: int = 7
    delete_closed_days: int = 90
    audit_days: int = 365
    invitation_days: int = 30
    statistics_months: int = 24


@dataclass(frozen=True)
class RetentionResult:
    closed: int = 0
    conversations_deleted: int = 0
    messages_deleted: int = 0
    notes_deleted: int = 0
    case_keys_deleted: int = 0
    contacts_deleted: int = 0
    audit_deleted: int = 0
    invitations_deleted: int = 0
    stat_events_deleted: int = 0


def policy_from(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        close_inactive_days=settings.retention_close_inactive_days,
        delete_closed_days=settings.retention_delete_closed_days,
        audit_days=settings.retention_audit_days,
        statistics_months=settings.retention_statistics_months,
    )


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def run_retention(
    *, sessions: async_sessionmaker[AsyncSession], clock: Clock, policy: RetentionPolicy
) -> RetentionResult:
    now = clock.now()
    inactive_before = now - timedelta(days=policy.close_inactive_days)
    closed_before = now - timedelta(days=policy.delete_closed_days)
    async with transaction(sessions) as session:
        inactive = (
            await session.scalars(
                select(Conversation)
                .where(
                    Conversation.status.in_(OPEN_STATUSES),
                    Conversation.last_message_at <= inactive_before,
                )
                .options(selectinload(Conversation.contact))
                .with_for_update(of=Conversation)
            )
        ).all()
        # Counted as ended (core/statistics.py) in the transaction that ends them.
        await record_ended(session, conversations=inactive, at=now, inactive=True)
        closed = await session.execute(
            update(Conversation)
            .where(Conversation.id.in_([c.id for c in inactive]))
            .values(status="closed", closed_at=now)
        )
        # A conversation is due when it has been closed for the whole period: at day 90 it
        # goes, at day 89 it stays.
        due = select(Conversation.id).where(
            Conversation.status == "closed", Conversation.closed_at <= closed_before
        )
        counts = {}
        for name, table in (
            ("messages_deleted", Message),
            ("notes_deleted", CaseNote),
            ("case_keys_deleted", CaseKey),
            ("referrals", Referral),
        ):
            counts[name] = _count(
                await session.execute(delete(table).where(table.conversation_id.in_(due)))
            )
        gone = await session.execute(delete(Conversation).where(Conversation.id.in_(due)))
        # Without any conversation left, a quiet contact is only a pseudonym and an encrypted
        # chat id nobody needs: it goes too. One with a conversation keeps its row until then.
        contacts = await session.execute(
            delete(Contact).where(
                Contact.last_seen_at <= closed_before,
                ~exists().where(Conversation.contact_id == Contact.id),
            )
        )
        audit = await session.execute(
            delete(AuditEntry).where(AuditEntry.at <= now - timedelta(days=policy.audit_days))
        )
        spent = now - timedelta(days=policy.invitation_days)
        invitations = await session.execute(
            delete(Invitation).where(
                or_(
                    Invitation.expires_at <= spent,
                    and_(Invitation.used_at.is_not(None), Invitation.used_at <= spent),
                )
            )
        )
        stat_events = await session.execute(
            delete(StatEvent).where(
                StatEvent.month < months_before(local_month(now), policy.statistics_months)
            )
        )
    result = RetentionResult(
        closed=_count(closed),
        conversations_deleted=_count(gone),
        messages_deleted=counts["messages_deleted"],
        notes_deleted=counts["notes_deleted"],
        case_keys_deleted=counts["case_keys_deleted"],
        contacts_deleted=_count(contacts),
        audit_deleted=_count(audit),
        invitations_deleted=_count(invitations),
        stat_events_deleted=_count(stat_events),
    )
    log.info("job retention", extra=asdict(result))
    return result
