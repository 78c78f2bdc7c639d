"""First-run set-up: migrations, seed directory, the national team and a development account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.conversations import NATIONAL
from core.crypto import hash_password
from core.db import transaction
from core.models import Counsellor, Team
from directory.service import load_seed

ROLES = ("counsellor", "team_lead", "directory_editor", "admin")


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class DevAccount:
    login: str
    password: str


async def ensure_national_team(session: AsyncSession, *, clock: Clock) -> Team:
    team = await session.scalar(select(Team).where(Team.slug == NATIONAL))
    if team is None:
        team = Team(
            slug=NATIONAL,
            name="Bundesweites Team",
            federal_states=[],
            languages=["de", "en"],
            created_at=clock.now(),
        )
        session.add(team)
        await session.flush()
    return team


# login, display name, role: a counsellor, and a directory editor to try curation with.
DEV_ACCOUNTS = (
    ("dev", "Entwicklung", "counsellor"),
    ("dev-editor", "Redaktion (Entwicklung)", "directory_editor"),
)


async def bootstrap(
    sessions: async_sessionmaker[AsyncSession], *, clock: Clock, create_dev_account: bool
) -> list[DevAccount]:
    """Idempotent. Returns the development accounts created just now (`dev` first).

    They are created only while the database holds no other account, so an installation with
    real accounts never gets one; a development database from before `dev-editor` existed
    gets it on its next start."""
    async with transaction(sessions) as session:
        team = await ensure_national_team(session, clock=clock)
        await load_seed(session, clock=clock)
        logins = [login for login, _, _ in DEV_ACCOUNTS]
        others = select(func.count(Counsellor.id)).where(Counsellor.login.not_in(logins))
        if not create_dev_account or await session.scalar(others):
            return []
        existing = set(
            await session.scalars(select(Counsellor.login).where(Counsellor.login.in_(logins)))
        )
        created = []
        for login, display_name, role in DEV_ACCOUNTS:
            if login in existing:
                continue
            password = secrets.token_urlsafe(12)
            session.add(
                Counsellor(
                    login=login,
                    display_name=display_name,
                    password_hash=hash_password(password),
                    role=role,
                    team_id=team.id,
                    created_at=clock.now(),
                )
            )
            created.append(DevAccount(login, password))
        return created


async def create_account(
    sessions: async_sessionmaker[AsyncSession],
    *,
    clock: Clock,
    login: str,
    display_name: str,
    role: str,
    team_slug: str,
) -> str:
    """Creates a console account with a random password and returns that password."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}")
    async with transaction(sessions) as session:
        await ensure_national_team(session, clock=clock)
        team = await session.scalar(select(Team).where(Team.slug == team_slug))
        if team is None:
            raise AccountError(f"no team {team_slug!r}")
        if await session.scalar(select(Counsellor.id).where(Counsellor.login == login)):
            raise AccountError(f"login {login!r} is taken")
        password = secrets.token_urlsafe(12)
        session.add(
            Counsellor(
                login=login,
                display_name=display_name,
                password_hash=hash_password(password),
                role=role,
                team_id=team.id,
                created_at=clock.now(),
            )
        )
        return password
