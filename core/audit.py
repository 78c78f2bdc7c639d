"""The audit log: who opened or changed which conversation, and when. Never content, never a
pseudonym; team leads read their team's entries (supervision)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import AuditEntry, Counsellor
from core.schemas import AuditEntryPublic

ACTIONS = (
    "open",
    "claim",
    "release",
    "crisis_on",
    "crisis_off",
    "transfer",
    "close",
    "notes_open",
    "note_add",
    "erase",
)
LEAD_ROLES = ("team_lead", "admin")


class AuditNotAllowed(PermissionError):
    pass


def record(
    session: AsyncSession,
    *,
    at: datetime,
    counsellor: Counsellor,
    action: str,
    conversation_id: uuid.UUID,
    team_id: uuid.UUID,
) -> None:
    """Added to the caller's transaction: the entry is kept exactly when the action is."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    session.add(
        AuditEntry(
            at=at,
            counsellor_id=counsellor.id,
            team_id=team_id,
            action=action,
            conversation_id=conversation_id,
        )
    )


async def list_entries(
    *,
    sessions: async_sessionmaker[AsyncSession],
    counsellor: Counsellor,
    conversation_id: uuid.UUID | None = None,
    limit: int = 200,
) -> list[AuditEntryPublic]:
    """The newest entries of the lead's own team, optionally for one conversation."""
    if counsellor.role not in LEAD_ROLES:
        raise AuditNotAllowed("only team leads read the audit log")
    query = (
        select(AuditEntry, Counsellor.display_name)
        .outerjoin(Counsellor, Counsellor.id == AuditEntry.counsellor_id)
        .where(AuditEntry.team_id == counsellor.team_id)
        .order_by(AuditEntry.at.desc())
        .limit(limit)
    )
    if conversation_id is not None:
        query = query.where(AuditEntry.conversation_id == conversation_id)
    async with sessions() as session:
        rows = await session.execute(query)
        return [
            AuditEntryPublic(
                at=entry.at,
                counsellor=name,
                action=entry.action,
                conversation_id=entry.conversation_id,
            )
            for entry, name in rows
        ]
