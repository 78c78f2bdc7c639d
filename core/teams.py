"""Teams as the console and the bot see them: names for transfers, who is there (presence),
and the settings a team lead keeps (opening hours, out-of-office text)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.db import transaction
from core.hours import OpeningHours
from core.models import Counsellor, Team
from core.schemas import ColleaguePublic, MemberPublic, TeamPublic, TeamSettings
from core.team_keys import member_leaves
from referral.records import STATE_NAMES

AVAILABILITY = ("online", "away", "offline")
# The console beats every minute; three missed beats and the counsellor no longer counts as
# there, whatever they last chose (a closed laptop says nothing).
PRESENCE_WINDOW = timedelta(minutes=3)
LEAD_ROLES = ("team_lead", "admin")


class NotAllowed(PermissionError):
    pass


async def list_teams(*, sessions: async_sessionmaker[AsyncSession]) -> list[TeamPublic]:
    async with sessions() as session:
        teams = await session.scalars(select(Team).order_by(Team.name))
        return [TeamPublic.model_validate(team) for team in teams]


class TeamError(ValueError):
    """A team definition refused: `code` for the console's catalogue (`console.team.error.*`),
    the message for the command line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def _checked_states(states: Sequence[str]) -> list[str]:
    unknown = sorted(set(states) - set(STATE_NAMES))
    if unknown:
        raise TeamError(
            "state", f"unknown federal state {', '.join(unknown)}: use {', '.join(STATE_NAMES)}"
        )
    return sorted(set(states), key=list(STATE_NAMES).index)


def _checked_languages(languages: Sequence[str]) -> list[str]:
    if not languages:
        raise TeamError("language", "a team needs at least one language")
    bad = [code for code in languages if not re.fullmatch(r"[a-z]{2}", code)]
    if bad:
        raise TeamError(
            "language", f"languages are two-letter codes (ISO 639-1), not {', '.join(bad)}"
        )
    return list(dict.fromkeys(languages))


async def create_team(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    slug: str,
    name: str,
    federal_states: Sequence[str],
    languages: Sequence[str],
) -> TeamPublic:
    """A team for some federal states (or, with none, another national one). It takes
    conversations once its first lead has made its keys (docs/operations.md)."""
    if not SLUG.fullmatch(slug):
        raise TeamError(
            "slug", "a team slug is 2-63 lowercase letters, digits and '-', e.g. 'bayern'"
        )
    if not name.strip():
        raise TeamError("name", "a team needs a name")
    async with transaction(sessions) as session:
        if await session.scalar(select(Team.id).where(Team.slug == slug)):
            raise TeamError("taken", f"team {slug!r} exists already")
        team = Team(
            slug=slug,
            name=name.strip()[:200],
            federal_states=_checked_states(federal_states),
            languages=_checked_languages(languages),
            created_at=clock.now(),
        )
        session.add(team)
        await session.flush()
        return TeamPublic.model_validate(team)


async def change_team(
    *,
    sessions: async_sessionmaker[AsyncSession],
    slug: str,
    name: str | None = None,
    federal_states: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
) -> TeamPublic:
    """New conversations are routed by the new states and languages; open ones stay."""
    async with transaction(sessions) as session:
        team = await session.scalar(select(Team).where(Team.slug == slug))
        if team is None:
            raise TeamError("unknown", f"no team {slug!r}")
        if name is not None:
            if not name.strip():
                raise TeamError("name", "a team needs a name")
            team.name = name.strip()[:200]
        if federal_states is not None:
            team.federal_states = _checked_states(federal_states)
        if languages is not None:
            team.languages = _checked_languages(languages)
        return TeamPublic.model_validate(team)


async def list_colleagues(
    *, sessions: async_sessionmaker[AsyncSession], counsellor: Counsellor
) -> list[ColleaguePublic]:
    """Active members of the counsellor's own team, the counsellor left out."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Counsellor)
            .where(
                Counsellor.team_id == counsellor.team_id,
                Counsellor.is_active.is_(True),
                Counsellor.id != counsellor.id,
            )
            .order_by(Counsellor.display_name)
        )
        return [ColleaguePublic.model_validate(row) for row in rows]


async def list_members(
    *, sessions: async_sessionmaker[AsyncSession], lead: Counsellor
) -> list[MemberPublic]:
    """Everyone of the lead's team, the disabled accounts last, for the team page."""
    _check_lead(lead)
    async with sessions() as session:
        rows = await session.scalars(
            select(Counsellor)
            .where(Counsellor.team_id == lead.team_id)
            .order_by(Counsellor.is_active.desc(), Counsellor.display_name, Counsellor.login)
        )
        return [MemberPublic.model_validate(row) for row in rows]


async def end_membership(
    *, sessions: async_sessionmaker[AsyncSession], lead: Counsellor, member_id: uuid.UUID
) -> None:
    """A lead ends a member's access from the team page, as `lotse account leave` does:
    disabled, sessions and key wraps gone, the team due a new key epoch. Not oneself (a team
    must not lose its last lead by a slip), and only in the lead's own team."""
    _check_lead(lead)
    if member_id == lead.id:
        raise NotAllowed("a lead cannot end their own access here")
    async with sessions() as session:
        member = await session.get(Counsellor, member_id)
        if member is None or member.team_id != lead.team_id:
            raise NotAllowed("no such member of your team")
    await member_leaves(sessions=sessions, counsellor_id=member_id)


def acting_in(admin: Counsellor, team_id: uuid.UUID) -> Counsellor:
    """An admin on another team's page: a transient copy of the account placed in that team,
    never added to a database session. Every function that checks "the lead's own team"
    then checks that one, so admins need no path of their own through them."""
    if admin.role != "admin":
        raise NotAllowed("only an admin acts in another team")
    copy = Counsellor(
        **{column: getattr(admin, column) for column in Counsellor.__table__.columns.keys()}
    )
    copy.team_id = team_id
    return copy


def _check_lead(counsellor: Counsellor) -> None:
    if counsellor.role not in LEAD_ROLES or counsellor.team_id is None:
        raise NotAllowed("only a team lead of this team")


async def set_availability(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    availability: str,
) -> None:
    if availability not in AVAILABILITY:
        raise ValueError(f"availability is one of {', '.join(AVAILABILITY)}")
    async with transaction(sessions) as session:
        await session.execute(
            update(Counsellor)
            .where(Counsellor.id == counsellor.id)
            .values(availability=availability, seen_at=clock.now())
        )


async def heartbeat(
    *, sessions: async_sessionmaker[AsyncSession], clock: Clock, counsellor: Counsellor
) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.id == counsellor.id).values(seen_at=clock.now())
        )


# Who answers users: a directory editor or an admin at the console is no one to talk to.
ANSWERING_ROLES = ("counsellor", "team_lead")


async def online_count(session: AsyncSession, *, team_id: uuid.UUID, now: datetime) -> int:
    """Counsellors of the team who said "online" and whose console beat lately."""
    count = await session.scalar(
        select(func.count(Counsellor.id)).where(
            Counsellor.team_id == team_id,
            Counsellor.is_active.is_(True),
            Counsellor.role.in_(ANSWERING_ROLES),
            Counsellor.availability == "online",
            Counsellor.seen_at >= now - PRESENCE_WINDOW,
        )
    )
    return int(count or 0)


async def get_settings(
    *, sessions: async_sessionmaker[AsyncSession], counsellor: Counsellor
) -> TeamSettings:
    async with sessions() as session:
        team = await session.get(Team, counsellor.team_id)
        if team is None:
            raise NotAllowed("no team")
        return TeamSettings(
            opening_hours=team.opening_hours, out_of_office=team.out_of_office or {}
        )


async def update_settings(
    *,
    sessions: async_sessionmaker[AsyncSession],
    counsellor: Counsellor,
    settings: TeamSettings,
) -> TeamSettings:
    """Team leads (and admins) set their own team's hours and out-of-office text."""
    if counsellor.role not in LEAD_ROLES:
        raise NotAllowed("only a team lead changes the team's settings")
    OpeningHours.parse(settings.opening_hours)  # InvalidHours says what is wrong
    # No day at all would read as "closed for ever"; it means no hours are set.
    hours = settings.opening_hours or None
    texts = {lang: text.strip() for lang, text in settings.out_of_office.items() if text.strip()}
    async with transaction(sessions) as session:
        team = await session.get(Team, counsellor.team_id)
        if team is None:
            raise NotAllowed("no team")
        team.opening_hours = hours
        team.out_of_office = texts or None
    return TeamSettings(opening_hours=hours, out_of_office=texts)
