"""Storing a counsellor's member keys: public halves and the private halves as wrapped in the
browser. Only the shape is checked here; the server holds no passphrase and unwraps nothing.
Replacing the key pairs themselves is refused (that needs a new team epoch); re-wrapping the
same pairs under a new passphrase is allowed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import crypto
from core.clock import Clock
from core.db import transaction
from core.models import Counsellor, MemberKeys
from core.schemas import MemberKeysPublic

KINDS = ("x25519", "ed25519")


class KeysRefused(ValueError):
    """The keys are malformed, too weakly wrapped, or would replace existing key pairs."""


class NoKeys(LookupError):
    pass


def _check(keys: MemberKeysPublic) -> None:
    for public in (keys.x25519_public, keys.ed25519_public):
        try:
            size = len(crypto.from_b64url(public))
        except ValueError:
            size = -1
        if size != 32:
            raise KeysRefused("a public key is 32 bytes in base64url")
    wrapped = keys.wrapped
    if wrapped.get("kdf") != crypto.MEMBER_KEY_KDF:
        raise KeysRefused(f"keys are wrapped with {crypto.MEMBER_KEY_KDF}")
    iterations = wrapped.get("iterations")
    if not isinstance(iterations, int) or iterations < crypto.MEMBER_KEY_MIN_ITERATIONS:
        raise KeysRefused(f"at least {crypto.MEMBER_KEY_MIN_ITERATIONS} iterations")
    for kind, public in zip(KINDS, (keys.x25519_public, keys.ed25519_public), strict=True):
        part = wrapped.get(kind)
        if not isinstance(part, dict) or part.get("public_raw") != public:
            raise KeysRefused(f"the wrapped {kind} key does not belong to its public key")
        envelope = part.get("wrapped")
        if not isinstance(envelope, dict) or envelope.get("alg") != crypto.SYM_ALG:
            raise KeysRefused(f"the {kind} key is not in an {crypto.SYM_ALG} envelope")


async def get_keys(
    *, sessions: async_sessionmaker[AsyncSession], counsellor: Counsellor
) -> MemberKeysPublic:
    async with sessions() as session:
        row = await session.get(MemberKeys, counsellor.id)
        if row is None:
            raise NoKeys()
        return MemberKeysPublic.model_validate(row)


async def put_keys(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    keys: MemberKeysPublic,
) -> MemberKeysPublic:
    _check(keys)
    now = clock.now()
    async with transaction(sessions) as session:
        row = await session.get(MemberKeys, counsellor.id)
        if row is None:
            session.add(
                MemberKeys(
                    counsellor_id=counsellor.id,
                    x25519_public=keys.x25519_public,
                    ed25519_public=keys.ed25519_public,
                    wrapped=keys.wrapped,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif (row.x25519_public, row.ed25519_public) != (keys.x25519_public, keys.ed25519_public):
            raise KeysRefused("new key pairs need a new team epoch; re-wrap the existing ones")
        else:
            row.wrapped, row.updated_at = keys.wrapped, now  # a new passphrase
    return keys
