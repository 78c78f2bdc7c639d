"""Small builders shared by tests; they write real rows through the real services."""

from __future__ import annotations

import base64
import hashlib
import uuid

from core.crypto import hash_password
from core.db import transaction
from core.models import Counsellor, Team
from counsellor_console.auth import _seal
from counsellor_console.deps import second_factor_keys
from lotse.runtime import Services


def totp_secret_for(login: str) -> str:
    """A fixed TOTP secret per test login, so a test can compute its codes."""
    return base64.b32encode(hashlib.sha1(login.encode()).digest()).decode()


def seal_totp(services: Services, counsellor_id: uuid.UUID, secret: str) -> bytes:
    return _seal(second_factor_keys(services), counsellor_id, secret)


async def add_team(
    services: Services, *, slug: str, states: list[str], keys: bool = True
) -> uuid.UUID:
    """`keys`: with epoch 1 made by a stand-in lead (tests/keyring.py); without, the team
    cannot take conversations until a lead makes its keys."""
    team_id = await _add_team(services, slug=slug, states=states)
    if keys:
        from tests.keyring import give_team_keys

        await give_team_keys(services, team_id)
    return team_id


async def _add_team(services: Services, *, slug: str, states: list[str]) -> uuid.UUID:
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
    online: bool = False,
) -> Counsellor:
    """`online`: as if logged in with the console open, so the bot counts them as there."""
    from sqlalchemy import select

    async with transaction(services.sessions) as session:
        team = await session.scalar(select(Team).where(Team.slug == team_slug))
        counsellor_id = uuid.uuid4()
        counsellor = Counsellor(
            id=counsellor_id,
            # Enrolled already, with a secret the tests can compute (tests/console/conftest.py).
            totp_secret_sealed=seal_totp(services, counsellor_id, totp_secret_for(login)),
            login=login,
            display_name=login.title(),
            password_hash=hash_password(password),
            role="counsellor",
            team_id=team.id if team else None,
            availability="online" if online else "offline",
            seen_at=services.clock.now() if online else None,
            created_at=services.clock.now(),
        )
        session.add(counsellor)
    return counsellor
