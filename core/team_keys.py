"""Team key epochs, signed rosters and wraps on the server (docs/key-protocol.md).

The server stores what leads' browsers make and hands it to members' browsers. It cannot open
any of it: it holds public keys and envelopes only. It still checks every rule a browser checks
(signatures, roster chain, who may be on a roster), so a broken or hostile client cannot store
nonsense; browsers never rely on these checks, they verify for themselves."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import crypto, keyring
from core.clock import Clock
from core.db import transaction
from core.models import (
    ConsoleSession,
    Counsellor,
    MemberKeys,
    Team,
    TeamEpoch,
    TeamKeyWrap,
    TeamRoster,
)
from core.schemas import (
    EpochCreate,
    EpochPublic,
    KeyMember,
    RosterEntry,
    RosterSigned,
    TeamKeys,
    TeamTranscriptKey,
)

log = logging.getLogger(__name__)


class TeamKeysRefused(ValueError):
    """What a browser sent breaks a rule of the protocol."""


class EpochConflict(RuntimeError):
    """Someone else started that epoch or roster version first: reload and try again."""


class NotALead(PermissionError):
    pass


async def current_epoch(session: AsyncSession, team_id: uuid.UUID) -> TeamEpoch | None:
    return await session.scalar(
        select(TeamEpoch)
        .where(TeamEpoch.team_id == team_id)
        .order_by(TeamEpoch.epoch.desc())
        .limit(1)
    )


async def teams_with_keys(session: AsyncSession) -> set[uuid.UUID]:
    return set(await session.scalars(select(TeamEpoch.team_id).distinct()))


def _require_envelope(envelope: Mapping[str, Any], *, alg: str, epoch: int, kid: str) -> None:
    if not crypto.is_envelope_of(envelope, alg=alg, epoch=epoch, kid=kid):
        raise TeamKeysRefused(f"expected an {alg} envelope of epoch {epoch} with key id {kid}")


def _require_public(value: str) -> None:
    try:
        ok = len(crypto.from_b64url(value)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise TeamKeysRefused("a public key is 32 bytes in base64url")


def _lead_of(counsellor: Counsellor) -> uuid.UUID:
    # Admins manage accounts but never hold team keys, so they never sign a roster.
    if counsellor.role != keyring.LEAD_ROLE or counsellor.team_id is None:
        raise NotALead()
    return counsellor.team_id


async def _check_members(
    session: AsyncSession, *, team_id: uuid.UUID, members: list[dict[str, Any]]
) -> None:
    """Every roster entry is an active account of this team with exactly these keys."""
    ids = [uuid.UUID(m["id"]) for m in members]
    rows = {
        counsellor.id: (counsellor, keys)
        for counsellor, keys in (
            await session.execute(
                select(Counsellor, MemberKeys)
                .join(MemberKeys, MemberKeys.counsellor_id == Counsellor.id)
                .where(Counsellor.id.in_(ids))
            )
        ).all()
    }
    for member, member_id in zip(members, ids, strict=True):
        found = rows.get(member_id)
        if found is None:
            raise TeamKeysRefused("a roster member has no account with member keys")
        counsellor, keys = found
        if counsellor.team_id != team_id or not counsellor.is_active:
            raise TeamKeysRefused("a roster member is not an active member of this team")
        if member["role"] != counsellor.role:
            raise TeamKeysRefused("a roster member's role is not their account's")
        if (member["x25519"], member["ed25519"]) != (keys.x25519_public, keys.ed25519_public):
            raise TeamKeysRefused("a roster member's keys are not their member keys")


def _check_wraps(
    wraps: Mapping[uuid.UUID, Mapping[str, Any]], *, members: set[str], epoch: int, kid: str
) -> None:
    if {str(member) for member in wraps} != members:
        raise TeamKeysRefused("the wraps must cover exactly the members added")
    for envelope in wraps.values():
        _require_envelope(envelope, alg=crypto.SEAL_ALG, epoch=epoch, kid=kid)


async def _rosters(session: AsyncSession, team_id: uuid.UUID, epoch: int) -> list[TeamRoster]:
    return list(
        await session.scalars(
            select(TeamRoster)
            .where(TeamRoster.team_id == team_id, TeamRoster.epoch == epoch)
            .order_by(TeamRoster.version)
        )
    )


def _verified(chain: list[dict[str, Any]], *, team_id: uuid.UUID, epoch: int) -> dict[str, Any]:
    try:
        return keyring.check_roster_chain(chain, team=str(team_id), epoch=epoch)
    except keyring.RosterError as error:
        raise TeamKeysRefused(str(error)) from error


async def _signer_is(session: AsyncSession, roster: Mapping[str, Any], lead: Counsellor) -> None:
    keys = await session.get(MemberKeys, lead.id)
    signer = next((m for m in roster["members"] if m["id"] == roster["signer"]), None)
    if (
        keys is None
        or roster["signer"] != str(lead.id)
        or signer is None
        or signer["ed25519"] != keys.ed25519_public
    ):
        raise TeamKeysRefused("a roster is signed by the lead who sends it, with their member key")


async def get_team_keys(
    *,
    sessions: async_sessionmaker[AsyncSession],
    counsellor: Counsellor,
    recovery_public: str | None,
) -> TeamKeys:
    if counsellor.team_id is None or counsellor.role not in keyring.ROSTER_ROLES:
        raise NotALead()  # admins and editors hold no team keys
    async with sessions() as session:
        return await _team_keys(session, counsellor, recovery_public)


async def _team_keys(
    session: AsyncSession, counsellor: Counsellor, recovery_public: str | None
) -> TeamKeys:
    team_id = counsellor.team_id
    assert team_id is not None
    team = await session.get(Team, team_id)
    assert team is not None
    epochs = (
        await session.execute(
            select(TeamEpoch, TeamKeyWrap.envelope)
            .outerjoin(
                TeamKeyWrap,
                (TeamKeyWrap.team_id == TeamEpoch.team_id)
                & (TeamKeyWrap.epoch == TeamEpoch.epoch)
                & (TeamKeyWrap.counsellor_id == counsellor.id),
            )
            .where(TeamEpoch.team_id == team_id)
            .order_by(TeamEpoch.epoch)
        )
    ).all()
    current = epochs[-1][0].epoch if epochs else 0
    rosters = await _rosters(session, team_id, current)
    wrapped = set(
        await session.scalars(
            select(TeamKeyWrap.counsellor_id).where(
                TeamKeyWrap.team_id == team_id, TeamKeyWrap.epoch == current
            )
        )
    )
    members = (
        await session.execute(
            select(Counsellor, MemberKeys)
            .join(MemberKeys, MemberKeys.counsellor_id == Counsellor.id)
            .where(
                Counsellor.team_id == team_id,
                Counsellor.is_active,
                Counsellor.role.in_(keyring.ROSTER_ROLES),
            )
            .order_by(Counsellor.display_name)
        )
    ).all()
    return TeamKeys(
        team_id=team_id,
        recovery_public=recovery_public,
        rotation_due=team.rotation_due,
        epochs=[
            EpochPublic.model_validate(epoch).model_copy(update={"wrap": wrap})
            for epoch, wrap in epochs
        ],
        rosters=[RosterEntry.model_validate(r) for r in rosters],
        members=[
            KeyMember(
                id=member.id,
                display_name=member.display_name,
                role=member.role,
                x25519_public=keys.x25519_public,
                ed25519_public=keys.ed25519_public,
                wrapped=member.id in wrapped,
            )
            for member, keys in members
        ],
    )


async def create_epoch(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    data: EpochCreate,
    recovery_public: str | None,
) -> TeamKeys:
    team_id = _lead_of(counsellor)
    _require_public(data.transcript_public)
    _require_envelope(
        data.wrapped_transcript_key, alg=crypto.SYM_ALG, epoch=data.epoch, kid=data.transcript_kid
    )
    if (data.previous_key is None) != (data.epoch == 1):
        raise TeamKeysRefused("every epoch after the first carries the previous team key")
    if data.previous_key is not None:
        _require_envelope(data.previous_key, alg=crypto.SYM_ALG, epoch=data.epoch, kid=data.kid)
    if recovery_public is not None:
        if data.recovery_wrap is None:
            raise TeamKeysRefused("the team key must also be wrapped for the recovery key")
        _require_envelope(data.recovery_wrap, alg=crypto.SEAL_ALG, epoch=data.epoch, kid=data.kid)
    roster = _verified(
        [{"roster": data.roster, "signature": data.signature}], team_id=team_id, epoch=data.epoch
    )
    signed = keyring.epoch_keys(
        kid=data.kid, transcript_kid=data.transcript_kid, transcript_public=data.transcript_public
    )
    if roster["keys"] != signed:
        raise TeamKeysRefused("the roster must name this epoch's keys")
    now = clock.now()
    async with transaction(sessions) as session:
        latest = await current_epoch(session, team_id)
        if data.epoch != (latest.epoch if latest else 0) + 1:
            raise EpochConflict("that epoch exists already: reload the team's keys")
        await _signer_is(session, roster, counsellor)
        await _check_members(session, team_id=team_id, members=roster["members"])
        _check_wraps(
            data.wraps,
            members={m["id"] for m in roster["members"]},
            epoch=data.epoch,
            kid=data.kid,
        )
        session.add(
            TeamEpoch(
                team_id=team_id,
                epoch=data.epoch,
                kid=data.kid,
                transcript_public=data.transcript_public,
                transcript_kid=data.transcript_kid,
                wrapped_transcript_key=data.wrapped_transcript_key,
                previous_key=data.previous_key,
                recovery_wrap=data.recovery_wrap,
                created_by=counsellor.id,
                created_at=now,
            )
        )
        session.add(
            TeamRoster(
                team_id=team_id,
                epoch=data.epoch,
                version=1,
                roster=roster,
                signature=data.signature,
                created_at=now,
            )
        )
        _add_wraps(session, team_id=team_id, epoch=data.epoch, wraps=data.wraps, now=now)
        await session.execute(update(Team).where(Team.id == team_id).values(rotation_due=False))
        await session.flush()
        keys = await _team_keys(session, counsellor, recovery_public)
    log.info("team epoch started", extra={"epoch": data.epoch, "members": len(data.wraps)})
    return keys


def _add_wraps(
    session: AsyncSession,
    *,
    team_id: uuid.UUID,
    epoch: int,
    wraps: Mapping[uuid.UUID, dict[str, Any]],
    now: Any,
) -> None:
    for member_id, envelope in wraps.items():
        session.add(
            TeamKeyWrap(
                team_id=team_id,
                epoch=epoch,
                counsellor_id=member_id,
                envelope=envelope,
                created_at=now,
            )
        )


async def add_members(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    epoch: int,
    data: RosterSigned,
    recovery_public: str | None,
) -> TeamKeys:
    """The next roster version of the current epoch, with wraps for the members it adds.
    Nobody is removed this way: leaving takes a new epoch."""
    team_id = _lead_of(counsellor)
    now = clock.now()
    async with transaction(sessions) as session:
        latest = await current_epoch(session, team_id)
        if latest is None or latest.epoch != epoch:
            raise EpochConflict("not the team's current epoch: reload the team's keys")
        chain: list[dict[str, Any]] = [
            {"roster": r.roster, "signature": r.signature}
            for r in await _rosters(session, team_id, epoch)
        ]
        if data.roster.get("version") != len(chain) + 1:
            raise EpochConflict("that roster version exists already: reload the team's keys")
        roster = _verified(
            [*chain, {"roster": data.roster, "signature": data.signature}],
            team_id=team_id,
            epoch=epoch,
        )
        await _signer_is(session, roster, counsellor)
        before = {m["id"]: m for m in chain[-1]["roster"]["members"]}
        after = {m["id"]: m for m in roster["members"]}
        if any(after.get(member_id) != entry for member_id, entry in before.items()):
            raise TeamKeysRefused("members leave through a new epoch, not a roster version")
        added = [entry for member_id, entry in after.items() if member_id not in before]
        if not added:
            raise TeamKeysRefused("the roster version adds nobody")
        await _check_members(session, team_id=team_id, members=added)
        _check_wraps(data.wraps, members={m["id"] for m in added}, epoch=epoch, kid=latest.kid)
        session.add(
            TeamRoster(
                team_id=team_id,
                epoch=epoch,
                version=int(roster["version"]),
                roster=roster,
                signature=data.signature,
                created_at=now,
            )
        )
        _add_wraps(session, team_id=team_id, epoch=epoch, wraps=data.wraps, now=now)
        await session.flush()
        keys = await _team_keys(session, counsellor, recovery_public)
    log.info("team members wrapped", extra={"epoch": epoch, "members": len(added)})
    return keys


async def member_leaves(
    *, sessions: async_sessionmaker[AsyncSession], counsellor_id: uuid.UUID
) -> uuid.UUID | None:
    """The account is disabled, its sessions end, its wraps go, and its team is due a new
    epoch. Returns the team id (None when there is no such account). What the leaver has
    already read cannot be taken back (docs/security.md)."""
    async with transaction(sessions) as session:
        counsellor = await session.get(Counsellor, counsellor_id)
        if counsellor is None:
            return None
        counsellor.is_active = False
        await session.execute(
            delete(ConsoleSession).where(ConsoleSession.counsellor_id == counsellor_id)
        )
        wraps = await session.execute(
            delete(TeamKeyWrap).where(TeamKeyWrap.counsellor_id == counsellor_id)
        )
        if counsellor.team_id is not None and wraps.rowcount:  # type: ignore[attr-defined]
            await session.execute(
                update(Team).where(Team.id == counsellor.team_id).values(rotation_due=True)
            )
        team_id = counsellor.team_id
    log.info("team member left")
    return team_id


async def recover_for(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    team_id: uuid.UUID,
    recovery_private: Any,
    counsellor_id: uuid.UUID,
) -> int:
    """With the offline recovery key: the current epoch's team key, wrapped for a member's
    (new) key pair. Returns the epoch."""
    async with transaction(sessions) as session:
        epoch = await current_epoch(session, team_id)
        if epoch is None or epoch.recovery_wrap is None:
            raise TeamKeysRefused("the team's current epoch has no recovery wrap")
        keys = await session.get(MemberKeys, counsellor_id)
        counsellor = await session.get(Counsellor, counsellor_id)
        if keys is None or counsellor is None or counsellor.team_id != team_id:
            raise TeamKeysRefused("that account has no member keys in this team")
        team_key = keyring.open_team_key(
            private=recovery_private,
            team=str(team_id),
            member=keyring.RECOVERY_MEMBER,
            envelope=epoch.recovery_wrap,
        )
        await session.execute(
            delete(TeamKeyWrap).where(
                TeamKeyWrap.team_id == team_id,
                TeamKeyWrap.epoch == epoch.epoch,
                TeamKeyWrap.counsellor_id == counsellor_id,
            )
        )
        session.add(
            TeamKeyWrap(
                team_id=team_id,
                epoch=epoch.epoch,
                counsellor_id=counsellor_id,
                envelope=keyring.wrap_team_key(
                    team_key=team_key,
                    recipient=keys.x25519_public,
                    team=str(team_id),
                    member=str(counsellor_id),
                    kid=epoch.kid,
                    epoch=epoch.epoch,
                ),
                created_at=clock.now(),
            )
        )
        return epoch.epoch


async def reset_member_keys(
    *, sessions: async_sessionmaker[AsyncSession], counsellor_id: uuid.UUID
) -> bool:
    """For a member who lost their passphrase: their keys and wraps go, they set up new keys,
    and a lead (or the recovery key) wraps the team key for them again."""
    async with transaction(sessions) as session:
        await session.execute(
            delete(TeamKeyWrap).where(TeamKeyWrap.counsellor_id == counsellor_id)
        )
        gone = await session.execute(
            delete(MemberKeys).where(MemberKeys.counsellor_id == counsellor_id)
        )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


class NoSuchTeamKey(LookupError):
    pass


async def transcript_key_of(
    *, sessions: async_sessionmaker[AsyncSession], team_id: uuid.UUID
) -> TeamTranscriptKey:
    async with sessions() as session:
        epoch = await current_epoch(session, team_id)
        if epoch is None:
            raise NoSuchTeamKey()
        rosters = await _rosters(session, team_id, epoch.epoch)
    return TeamTranscriptKey(
        team_id=team_id,
        epoch=epoch.epoch,
        rosters=[RosterEntry.model_validate(r) for r in rosters],
    )
