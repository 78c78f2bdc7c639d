"""Canned responses: reply texts a team keeps ready per language. Leads write them; everyone
in the team uses them, with {counsellor} and {team} filled in for whoever sends."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.db import transaction
from core.models import CannedResponse, Counsellor, Team
from core.schemas import CannedCreate, CannedPublic

PLACEHOLDERS = ("{counsellor}", "{team}")
EDITOR_ROLES = ("team_lead", "admin")


class CannedNotAllowed(PermissionError):
    pass


class CannedNotFound(LookupError):
    pass


def fill(body: str, *, counsellor: str, team: str) -> str:
    """Only the known placeholders; any other brace in a text stays as written."""
    return body.replace("{counsellor}", counsellor).replace("{team}", team)


async def list_for(
    *,
    sessions: async_sessionmaker[AsyncSession],
    counsellor: Counsellor,
    language: str | None = None,
    filled: bool = True,
) -> list[CannedPublic]:
    async with sessions() as session:
        query = select(CannedResponse).where(CannedResponse.team_id == counsellor.team_id)
        if language:
            query = query.where(CannedResponse.language == language)
        rows = (await session.scalars(query.order_by(CannedResponse.title))).all()
        team = await session.get(Team, counsellor.team_id) if counsellor.team_id else None
    team_name = team.name if team else ""
    return [
        CannedPublic(
            id=row.id,
            language=row.language,
            title=row.title,
            body=fill(row.body, counsellor=counsellor.display_name, team=team_name)
            if filled
            else row.body,
        )
        for row in rows
    ]


def _check_editor(counsellor: Counsellor) -> None:
    if counsellor.role not in EDITOR_ROLES or counsellor.team_id is None:
        raise CannedNotAllowed("only team leads edit the team's canned responses")


async def save(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    data: CannedCreate,
    canned_id: uuid.UUID | None = None,
) -> CannedPublic:
    """Create (no id) or replace one of the own team's texts."""
    _check_editor(counsellor)
    async with transaction(sessions) as session:
        row: CannedResponse | None
        if canned_id is None:
            row = CannedResponse(team_id=counsellor.team_id)
            session.add(row)
        else:
            row = await session.get(CannedResponse, canned_id)
            if row is None or row.team_id != counsellor.team_id:
                raise CannedNotFound()
        row.language, row.title, row.body = data.language, data.title.strip(), data.body
        row.updated_at = clock.now()
        await session.flush()
        return CannedPublic(id=row.id, language=row.language, title=row.title, body=row.body)


async def remove(
    *, sessions: async_sessionmaker[AsyncSession], counsellor: Counsellor, canned_id: uuid.UUID
) -> None:
    _check_editor(counsellor)
    async with transaction(sessions) as session:
        result = await session.execute(
            delete(CannedResponse).where(
                CannedResponse.id == canned_id, CannedResponse.team_id == counsellor.team_id
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise CannedNotFound()
