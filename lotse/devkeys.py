"""Team keys made by Python instead of a lead's browser: for development databases, benches and
tests only. Whoever runs this knows the team key, which in a real deployment nobody but the
team's members ever does; `bootstrap` calls it only for the development accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import keyring
from core.clock import Clock
from core.db import transaction
from core.models import MemberKeys, Team, TeamEpoch, TeamKeyWrap, TeamRoster


def stand_in_lead() -> keyring.MemberSecrets:
    """A signer that is nobody's account: for teams whose members do not matter (tests,
    benches). Browsers would show its fingerprint like any lead's."""
    secrets_, _ = keyring.make_member_keys(
        owner=str(uuid.uuid4()), role=keyring.LEAD_ROLE, passphrase="x" * 16, iterations=1
    )
    return secrets_


def store_member_keys(
    session: AsyncSession, *, counsellor_id: uuid.UUID, blob: dict[str, object], clock: Clock
) -> None:
    x25519, ed25519 = blob["x25519"], blob["ed25519"]
    assert isinstance(x25519, dict) and isinstance(ed25519, dict)
    session.add(
        MemberKeys(
            counsellor_id=counsellor_id,
            x25519_public=x25519["public_raw"],
            ed25519_public=ed25519["public_raw"],
            wrapped=blob,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )


async def provision_team(
    session: AsyncSession,
    *,
    team_id: uuid.UUID,
    clock: Clock,
    signer: keyring.MemberSecrets | None = None,
    members: Sequence[keyring.MemberSecrets] = (),
    recovery_public: str | None = None,
) -> keyring.EpochSecrets:
    """Epoch 1 of a team, written straight into the tables (the checks of core/team_keys.py
    are for browsers' requests). `signer` is a team lead among `members`, or a stand-in."""
    signer = signer or stand_in_lead()
    roster_members = {m.id: m.public for m in (signer, *members)}
    made = keyring.new_epoch(
        team=str(team_id),
        epoch=1,
        signer=signer,
        members=list(roster_members.values()),
        recovery_public=recovery_public,
    )
    data, now = made.payload, clock.now()
    session.add(
        TeamEpoch(
            team_id=team_id,
            epoch=1,
            kid=data["kid"],
            transcript_public=data["transcript_public"],
            transcript_kid=data["transcript_kid"],
            wrapped_transcript_key=data["wrapped_transcript_key"],
            previous_key=None,
            recovery_wrap=data["recovery_wrap"],
            created_at=now,
        )
    )
    session.add(
        TeamRoster(
            team_id=team_id,
            epoch=1,
            version=1,
            roster=data["roster"],
            signature=data["signature"],
            created_at=now,
        )
    )
    for member in members:  # the stand-in has no account, so no wrap row
        session.add(
            TeamKeyWrap(
                team_id=team_id,
                epoch=1,
                counsellor_id=uuid.UUID(member.id),
                envelope=data["wraps"][member.id],
                created_at=now,
            )
        )
    await session.flush()
    return made


async def give_national_team_keys(
    sessions: async_sessionmaker[AsyncSession], *, clock: Clock
) -> keyring.EpochSecrets | None:
    """For benches: the national team gets epoch 1 from a stand-in lead unless it has keys."""
    from core.conversations import NATIONAL
    from core.team_keys import current_epoch

    async with transaction(sessions) as session:
        team_id = await session.scalar(select(Team.id).where(Team.slug == NATIONAL))
        if team_id is None or await current_epoch(session, team_id) is not None:
            return None
        return await provision_team(session, team_id=team_id, clock=clock)
