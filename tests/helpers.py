"""Small builders shared by tests; they write real rows through the real services."""

from __future__ import annotations

import uuid

from core.crypto import hash_password
from core.db import transaction
from core.models import Counsellor, Team
from lotse.runtime import Services


async def add_team(services: Services, *, slug: str, states: list[str]) -> uuid.UUID:
    async with transaction(services.sessions) as session:
        team = Team(
            slug=slug,
            name=slug,
            federal_states=states,
            languages=["de"],
            created_at=services.clock.now(),
        )
        session.add(team)
        await session.flush()
        return team.id


async def add_counsellor(
    services: Services,
    *,
    login: str,
    password: str = "pw-long-enough",
    team_slug: str = "bundesweit",
) -> Counsellor:
    from sqlalchemy import select

    async with transaction(services.sessions) as session:
        team = await session.scalar(select(Team).where(Team.slug == team_slug))
        counsellor = Counsellor(
            login=login,
            display_name=login.title(),
            password_hash=hash_password(password),
            role="counsellor",
            team_id=team.id if team else None,
            created_at=services.clock.now(),
        )
        session.add(counsellor)
    return counsellor
