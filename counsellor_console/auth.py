"""Counsellor accounts, server-side sessions, the mandatory second factor (TOTP with recovery
codes) and invitations (data functions with keyword-only arguments).

A session starts after the password with `mfa_passed` false; only the second-factor pages accept
it. The TOTP secret is sealed under a key derived from the routing key and bound to the account
id; recovery codes are kept as keyed digests; invitation tokens as SHA-256 digests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import crypto
from core.clock import Clock
from core.crypto import hash_password, new_token, token_digest, verify_password
from core.models import ConsoleSession, Counsellor, Invitation, Team

RECOVERY_CODES = 10
MIN_PASSWORD = 12
INVITATION_TTL = timedelta(days=7)
SEEN_PRECISION = timedelta(seconds=60)
ROLES = ("counsellor", "team_lead", "directory_editor", "admin")
# What a team lead may invite into their own team; admins invite anyone anywhere.
LEAD_INVITES = ("counsellor", "team_lead")

# Verifying against a fixed hash when the login is unknown keeps the timing the same either way.
_DUMMY_HASH = hash_password("lotse-timing-equaliser")


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


async def authenticate(session: AsyncSession, *, login: str, password: str) -> Counsellor | None:
    counsellor = await session.scalar(select(Counsellor).where(Counsellor.login == login))
    if counsellor is None or not counsellor.is_active:
        verify_password(_DUMMY_HASH, password)
        return None
    return counsellor if verify_password(counsellor.password_hash, password) else None


async def start_session(
    session: AsyncSession, *, counsellor: Counsellor, clock: Clock
) -> tuple[str, str]:
    """Returns the cookie token and the CSRF token; only the token's digest is stored."""
    token, csrf = new_token(), new_token()
    now = clock.now()
    session.add(
        ConsoleSession(
            token_hash=token_digest(token),
            counsellor_id=counsellor.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
        )
    )
    # Logging in to answer is saying "I am here"; the console can switch to away.
    counsellor.availability, counsellor.seen_at = "online", now
    return token, csrf


async def resolve_session(
    session: AsyncSession,
    *,
    token: str,
    clock: Clock,
    policy: SessionPolicy,
    require_mfa: bool = True,
) -> tuple[Counsellor, ConsoleSession] | None:
    """The session's account, or None; one still waiting for its second factor counts as
    none unless `require_mfa` is false (the second-factor pages themselves)."""
    row = await session.get(ConsoleSession, token_digest(token))
    if row is None:
        return None
    now = clock.now()
    if now - row.last_seen_at > policy.idle or now - row.created_at > policy.absolute:
        await session.delete(row)
        return None
    if require_mfa and not row.mfa_passed:
        return None
    counsellor = await session.get(Counsellor, row.counsellor_id)
    if counsellor is None or not counsellor.is_active:
        return None
    # A write per request queued every reader behind SQLite's write lock; a minute's
    # precision is plenty for an idle timeout of half an hour.
    if now - row.last_seen_at >= SEEN_PRECISION:
        row.last_seen_at = now
    return counsellor, row


async def session_alive(
    session: AsyncSession, *, token: str, clock: Clock, policy: SessionPolicy
) -> bool:
    """Read-only: is the session still one the API would accept? For long-lived streams,
    which must end with it but should not count as activity."""
    row = await session.get(ConsoleSession, token_digest(token))
    if row is None or not row.mfa_passed:
        return False
    now = clock.now()
    if now - row.last_seen_at > policy.idle or now - row.created_at > policy.absolute:
        return False
    counsellor = await session.get(Counsellor, row.counsellor_id)
    return counsellor is not None and counsellor.is_active


async def end_session(session: AsyncSession, *, token: str) -> None:
    row = await session.get(ConsoleSession, token_digest(token))
    if row is None:
        return
    await session.execute(
        update(Counsellor).where(Counsellor.id == row.counsellor_id).values(availability="offline")
    )
    await session.delete(row)


async def purge_expired_sessions(
    session: AsyncSession, *, clock: Clock, policy: SessionPolicy
) -> int:
    now = clock.now()
    result = await session.execute(
        delete(ConsoleSession).where(
            or_(
                ConsoleSession.last_seen_at < now - policy.idle,
                ConsoleSession.created_at < now - policy.absolute,
            )
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class SecondFactorError(ValueError):
    """The code did not match (or was used already); the message is safe to show."""


class InvitationError(ValueError):
    """The link is unknown, used or expired, or the chosen login or password is not accepted.
    The argument is the catalogue key of what to tell the person."""

    @property
    def key(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class SecondFactorKeys:
    sealing_key: bytes  # derived from the routing key, for TOTP secrets only
    pepper: bytes  # for recovery-code digests


def _seal(keys: SecondFactorKeys, counsellor_id: uuid.UUID, secret: str) -> bytes:
    return crypto.seal_secret(
        key=keys.sealing_key, secret=secret.encode(), context=f"totp:{counsellor_id}"
    )


def _open(keys: SecondFactorKeys, counsellor_id: uuid.UUID, sealed: bytes) -> str:
    return crypto.open_secret(
        key=keys.sealing_key, sealed=sealed, context=f"totp:{counsellor_id}"
    ).decode()


def pending_totp_secret(
    *, row: ConsoleSession, counsellor: Counsellor, keys: SecondFactorKeys
) -> str:
    """The secret being set up in this session, made on first call: shown to the user to put
    into an authenticator app, kept sealed until a first code confirms it."""
    if row.pending_totp_sealed is not None:
        return _open(keys, counsellor.id, row.pending_totp_sealed)
    secret = crypto.new_totp_secret()
    row.pending_totp_sealed = _seal(keys, counsellor.id, secret)
    return secret


def confirm_totp_setup(
    *,
    row: ConsoleSession,
    counsellor: Counsellor,
    keys: SecondFactorKeys,
    code: str,
    at: datetime,
) -> list[str]:
    """A first valid code makes the secret the account's; returns the recovery codes, which
    are shown once and kept only as digests."""
    if row.pending_totp_sealed is None:
        raise SecondFactorError("no second factor is being set up")
    secret = _open(keys, counsellor.id, row.pending_totp_sealed)
    step = crypto.verify_totp(secret=secret, code=code, at=at, last_step=None)
    if step is None:
        raise SecondFactorError("code does not match")
    codes = [crypto.new_recovery_code() for _ in range(RECOVERY_CODES)]
    counsellor.totp_secret_sealed = _seal(keys, counsellor.id, secret)
    counsellor.totp_last_step = step
    counsellor.recovery_codes = [crypto.recovery_digest(pepper=keys.pepper, code=c) for c in codes]
    row.pending_totp_sealed = None
    row.mfa_passed = True
    return codes


def verify_second_factor(
    *,
    row: ConsoleSession,
    counsellor: Counsellor,
    keys: SecondFactorKeys,
    code: str,
    at: datetime,
) -> str:
    """A current TOTP code (once only) or an unused recovery code (then struck out). Returns
    which of the two it was."""
    if counsellor.totp_secret_sealed is None:
        raise SecondFactorError("no second factor set up")
    secret = _open(keys, counsellor.id, counsellor.totp_secret_sealed)
    step = crypto.verify_totp(secret=secret, code=code, at=at, last_step=counsellor.totp_last_step)
    if step is not None:
        counsellor.totp_last_step = step
        row.mfa_passed = True
        return "totp"
    digest = crypto.recovery_digest(pepper=keys.pepper, code=code)
    remaining = list(counsellor.recovery_codes or [])
    if any(crypto.constant_time_equal(digest, known) for known in remaining):
        remaining.remove(digest)
        counsellor.recovery_codes = remaining  # a new list, so the JSON column is written
        row.mfa_passed = True
        return "recovery"
    raise SecondFactorError("code does not match")


class PasswordChangeError(ValueError):
    """A password change refused; the message is the catalogue key of the reason."""


async def change_password(
    session: AsyncSession,
    *,
    counsellor_id: uuid.UUID,
    current: str,
    new: str,
    repeat: str,
    keep_session: str,
) -> None:
    """The account's own password change. Every other session of the account ends, so a
    session opened with the old password (perhaps by someone else) does not outlive it."""
    counsellor = await session.get(Counsellor, counsellor_id)
    if counsellor is None or not verify_password(counsellor.password_hash, current):
        raise PasswordChangeError("console.account.error.current")
    if len(new) < MIN_PASSWORD:
        raise PasswordChangeError("console.account.error.short")
    if new != repeat:
        raise PasswordChangeError("console.account.error.repeat")
    if new == current:
        raise PasswordChangeError("console.account.error.same")
    counsellor.password_hash = hash_password(new)
    await session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.counsellor_id == counsellor_id,
            ConsoleSession.token_hash != keep_session,
        )
    )


async def reset_login(session: AsyncSession, *, login: str) -> str | None:
    """For a forgotten password or a lost second factor (phone and recovery codes gone): a
    new random password, returned once; the second factor is set up anew at the next login;
    every session ends. Keys and team stay: the unlock passphrase is another secret
    (`lotse account reset-keys`). None when there is no such account."""
    counsellor = await session.scalar(select(Counsellor).where(Counsellor.login == login))
    if counsellor is None:
        return None
    password = new_token(12)
    counsellor.password_hash = hash_password(password)
    counsellor.totp_secret_sealed = None
    counsellor.totp_last_step = None
    counsellor.recovery_codes = None
    await session.execute(
        delete(ConsoleSession).where(ConsoleSession.counsellor_id == counsellor.id)
    )
    return password


def invitation_url(base_url: str, token: str) -> str:
    """The one-time link to give the invitee (console API, team page, command line)."""
    return f"{base_url.rstrip('/')}/console/invite/{token}"


async def create_invitation(
    session: AsyncSession,
    *,
    creator: Counsellor | None,
    role: str,
    team_id: uuid.UUID | None,
    display_name: str,
    clock: Clock,
) -> tuple[str, datetime]:
    """A one-time link token and when it expires. `creator` None is the operator's command
    line. A team lead invites counsellors and leads into their own team only."""
    if role not in ROLES:
        raise InvitationError("console.invite.error.role")
    if creator is not None and creator.role != "admin":
        if creator.role != "team_lead" or role not in LEAD_INVITES or team_id != creator.team_id:
            raise InvitationError("console.invite.error.forbidden")
    if team_id is not None and await session.get(Team, team_id) is None:
        raise InvitationError("console.invite.error.team")
    token, now = new_token(), clock.now()
    session.add(
        Invitation(
            token_hash=token_digest(token),
            role=role,
            team_id=team_id,
            display_name=display_name.strip()[:100] or role,
            created_by=creator.id if creator else None,
            created_at=now,
            expires_at=now + INVITATION_TTL,
        )
    )
    return token, now + INVITATION_TTL


async def open_invitation(session: AsyncSession, *, token: str, clock: Clock) -> Invitation:
    invitation = await session.get(Invitation, token_digest(token))
    if invitation is None or invitation.used_at is not None:
        raise InvitationError("console.invite.error.invalid")
    if invitation.expires_at <= clock.now():
        raise InvitationError("console.invite.error.expired")
    return invitation


async def redeem_invitation(
    session: AsyncSession, *, token: str, login: str, password: str, clock: Clock
) -> Counsellor:
    """Creates the account the invitation describes; the link is then used up."""
    invitation = await open_invitation(session, token=token, clock=clock)
    login = login.strip()
    if not login or len(login) > 100 or any(c.isspace() for c in login):
        raise InvitationError("console.invite.error.login")
    if len(password) < MIN_PASSWORD:
        raise InvitationError("console.invite.error.password")
    if await session.scalar(select(Counsellor.id).where(Counsellor.login == login)):
        raise InvitationError("console.invite.error.taken")
    now = clock.now()
    counsellor = Counsellor(
        login=login,
        display_name=invitation.display_name,
        password_hash=hash_password(password),
        role=invitation.role,
        team_id=invitation.team_id,
        created_at=now,
    )
    session.add(counsellor)
    invitation.used_at = now
    await session.flush()
    return counsellor
