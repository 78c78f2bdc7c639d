"""Operator commands around team keys: a member leaves, a member's keys are reset, and the
offline recovery key wraps a team's key for a member again (docs/security.md, Recovery)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import team_keys
from core.clock import Clock
from core.models import Counsellor, Team
from lotse.bootstrap import AccountError


async def _account(sessions: async_sessionmaker[AsyncSession], login: str) -> Counsellor:
    async with sessions() as session:
        counsellor = await session.scalar(select(Counsellor).where(Counsellor.login == login))
    if counsellor is None:
        raise AccountError(f"no account {login!r}")
    return counsellor


async def leave(sessions: async_sessionmaker[AsyncSession], *, login: str) -> None:
    counsellor = await _account(sessions, login)
    await team_keys.member_leaves(sessions=sessions, counsellor_id=counsellor.id)


async def reset_keys(sessions: async_sessionmaker[AsyncSession], *, login: str) -> bool:
    counsellor = await _account(sessions, login)
    return await team_keys.reset_member_keys(sessions=sessions, counsellor_id=counsellor.id)


async def recover(
    sessions: async_sessionmaker[AsyncSession],
    *,
    clock: Clock,
    team_slug: str,
    login: str,
    recovery_private: Any,
) -> int:
    counsellor = await _account(sessions, login)
    async with sessions() as session:
        team_id = await session.scalar(select(Team.id).where(Team.slug == team_slug))
    if team_id is None:
        raise AccountError(f"no team {team_slug!r}")
    try:
        return await team_keys.recover_for(
            sessions=sessions,
            clock=clock,
            team_id=team_id,
            recovery_private=recovery_private,
            counsellor_id=counsellor.id,
        )
    except team_keys.TeamKeysRefused as error:
        raise AccountError(str(error)) from error
