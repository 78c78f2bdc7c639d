"""Counsellor accounts and server-side sessions (data functions with keyword-only arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.crypto import hash_password, new_token, token_digest, verify_password
from core.models import ConsoleSession, Counsellor

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
    return token, csrf


async def resolve_session(
    session: AsyncSession, *, token: str, clock: Clock, policy: SessionPolicy
) -> tuple[Counsellor, ConsoleSession] | None:
    row = await session.get(ConsoleSession, token_digest(token))
    if row is None:
        return None
    now = clock.now()
    if now - row.last_seen_at > policy.idle or now - row.created_at > policy.absolute:
        await session.delete(row)
        return None
    counsellor = await session.get(Counsellor, row.counsellor_id)
    if counsellor is None or not counsellor.is_active:
        return None
    row.last_seen_at = now
    return counsellor, row


async def end_session(session: AsyncSession, *, token: str) -> None:
    await session.execute(
        delete(ConsoleSession).where(ConsoleSession.token_hash == token_digest(token))
    )


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
