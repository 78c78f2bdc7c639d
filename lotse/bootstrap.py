"""First-run set-up: migrations, seed directory, the national team and a development account."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import keyring
from core.clock import Clock
from core.conversations import NATIONAL
from core.crypto import hash_password
from core.db import transaction
from core.models import Counsellor, Team
from core.team_keys import current_epoch
from directory.service import load_seed
from lotse.devkeys import provision_team, store_member_keys

ROLES = ("counsellor", "team_lead", "directory_editor", "admin")


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class DevAccount:
    login: str
    password: str
    # The unlock passphrase of the member keys made for it (counsellor and lead only).
    passphrase: str | None = None


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


# login, display name, role: a counsellor, the team lead who signs the team's roster, and a
# directory editor to try curation with.
DEV_ACCOUNTS = (
    ("dev", "Entwicklung", "counsellor"),
    ("dev-lead", "Teamleitung (Entwicklung)", "team_lead"),
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
        holders: list[keyring.MemberSecrets] = []
        for login, display_name, role in DEV_ACCOUNTS:
            if login in existing:
                continue
            password = secrets.token_urlsafe(12)
            account = Counsellor(
                id=uuid.uuid4(),
                login=login,
                display_name=display_name,
                password_hash=hash_password(password),
                role=role,
                team_id=team.id,
                created_at=clock.now(),
            )
            session.add(account)
            passphrase = None
            if role in keyring.ROSTER_ROLES:
                passphrase = secrets.token_urlsafe(12)
                member, blob = keyring.make_member_keys(
                    owner=str(account.id), role=role, passphrase=passphrase
                )
                await session.flush()
                store_member_keys(session, counsellor_id=account.id, blob=blob, clock=clock)
                holders.append(member)
            created.append(DevAccount(login, password, passphrase))
        await _dev_team_keys(session, team_id=team.id, clock=clock, holders=holders)
        return created


async def _dev_team_keys(
    session: AsyncSession,
    *,
    team_id: uuid.UUID,
    clock: Clock,
    holders: list[keyring.MemberSecrets],
) -> None:
    """Epoch 1 of the national team for the development accounts, as the lead's browser would
    make it, so a fresh `./dev serve` can take conversations at once."""
    lead = next((m for m in holders if m.role == keyring.LEAD_ROLE), None)
    if lead is None or await current_epoch(session, team_id) is not None:
        return
    await provision_team(session, team_id=team_id, clock=clock, signer=lead, members=holders)


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


async def invite_account(
    sessions: async_sessionmaker[AsyncSession],
    *,
    clock: Clock,
    display_name: str,
    role: str,
    team_slug: str,
) -> str:
    """An invitation token for the operator's command line (no inviting account)."""
    from counsellor_console.auth import InvitationError, create_invitation

    async with transaction(sessions) as session:
        await ensure_national_team(session, clock=clock)
        team = await session.scalar(select(Team).where(Team.slug == team_slug))
        if team is None:
            raise AccountError(f"no team {team_slug!r}")
        try:
            token, _ = await create_invitation(
                session,
                creator=None,
                role=role,
                team_id=team.id,
                display_name=display_name,
                clock=clock,
            )
        except InvitationError as error:
            raise AccountError(error.key) from None
        return token
