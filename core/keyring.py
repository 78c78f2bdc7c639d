"""The key protocol of docs/key-protocol.md in Python: the contexts every envelope binds, the
roster rules, and what a lead's or member's browser does (counsellor_console/static/
team_keys.js), for the server's checks, the development seed, the offline recovery command
and the tests.

The server itself only ever uses the public halves here: `message_context`, `check_roster_chain`
and the shape checks. Making epochs, opening wraps and reading transcripts happen in browsers;
the Python versions exist so the formats are proven from both sides and so `lotse keys recover`
can work offline with the recovery key."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from core import crypto

ROSTER_VERSION = 1
LEAD_ROLE = "team_lead"
ROSTER_ROLES = ("counsellor", LEAD_ROLE)
RECOVERY_MEMBER = "recovery"


class RosterError(ValueError):
    """A roster chain that breaks a rule of docs/key-protocol.md: refused, never repaired."""


# --- contexts: the one place in Python that says what each envelope is bound to -------------


def team_key_context(*, team: str, member: str) -> dict[str, crypto.ContextValue]:
    return {"purpose": "team-key", "team": team, "member": member}


def transcript_key_context(*, team: str, epoch: int) -> dict[str, crypto.ContextValue]:
    return {"purpose": "transcript-key", "team": team, "epoch": epoch}


def previous_key_context(*, team: str, epoch: int) -> dict[str, crypto.ContextValue]:
    """`epoch` is the epoch of the key inside, one below the envelope's own."""
    return {"purpose": "previous-team-key", "team": team, "epoch": epoch}


def message_context(
    *, team: str, conversation: str, message: str, sender: str
) -> dict[str, crypto.ContextValue]:
    return {
        "purpose": "message",
        "team": team,
        "conversation": conversation,
        "message": message,
        "sender": sender,
    }


def case_key_context(*, team: str, conversation: str) -> dict[str, crypto.ContextValue]:
    return {"purpose": "case-key", "team": team, "conversation": conversation}


def note_context(
    *, team: str, conversation: str, note: str, author: str
) -> dict[str, crypto.ContextValue]:
    return {
        "purpose": "note",
        "team": team,
        "conversation": conversation,
        "note": note,
        "author": author,
    }


# --- rosters ---------------------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes both sides sign and hash (envelope.js
    `canonical`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def roster_digest(roster: Mapping[str, Any]) -> str:
    return crypto.b64url(hashlib.sha256(canonical(roster)).digest())


def fingerprint(ed25519_public: str) -> str:
    """What a team compares out of band: 16 bytes of SHA-256, hex in groups of four."""
    digest = hashlib.sha256(crypto.from_b64url(ed25519_public)).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


@dataclass(frozen=True)
class RosterMember:
    id: str
    role: str
    x25519: str
    ed25519: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "role": self.role, "x25519": self.x25519, "ed25519": self.ed25519}


EPOCH_KEY_FIELDS = ("kid", "transcript_kid", "transcript_public")


def epoch_keys(*, kid: str, transcript_kid: str, transcript_public: str) -> dict[str, str]:
    """What the lead's signature says about the epoch's keys: without it a server could pair a
    team key of its own making with the roster (docs/key-protocol.md)."""
    return {"kid": kid, "transcript_kid": transcript_kid, "transcript_public": transcript_public}


def build_roster(
    *,
    team: str,
    epoch: int,
    version: int,
    previous: str,
    signer: str,
    members: Sequence[RosterMember],
    keys: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "v": ROSTER_VERSION,
        "team": team,
        "epoch": epoch,
        "version": version,
        "previous": previous,
        "signer": signer,
        "keys": dict(keys),
        "members": [m.as_dict() for m in sorted(members, key=lambda m: m.id)],
    }


def sign_roster(private: Ed25519PrivateKey, roster: Mapping[str, Any]) -> str:
    return crypto.b64url(private.sign(canonical(roster)))


def _leads(roster: Mapping[str, Any]) -> dict[str, str]:
    return {m["id"]: m["ed25519"] for m in roster["members"] if m["role"] == LEAD_ROLE}


def _check_shape(roster: Mapping[str, Any]) -> None:
    try:
        members = roster["members"]
        ids = [m["id"] for m in members]
        roles = {m["role"] for m in members}
        for m in members:
            for kind in ("x25519", "ed25519"):
                if len(crypto.from_b64url(m[kind])) != 32:
                    raise RosterError("a member key is 32 bytes")
    except (KeyError, TypeError, ValueError) as error:
        raise RosterError(f"malformed roster: {error}") from error
    if roster.get("v") != ROSTER_VERSION:
        raise RosterError("unknown roster version")
    keys = roster.get("keys")
    if (
        not isinstance(keys, dict)
        or set(keys) != set(EPOCH_KEY_FIELDS)
        or not all(isinstance(keys[f], str) and keys[f] for f in EPOCH_KEY_FIELDS)
    ):
        raise RosterError("the roster names the epoch's keys")
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        raise RosterError("members must be sorted by id and unique")
    if not roles <= set(ROSTER_ROLES):
        # Admins manage accounts but never read: they are never on a roster.
        raise RosterError("only counsellors and team leads can be on a roster")


def check_roster_chain(
    chain: Sequence[Mapping[str, Any]], *, team: str, epoch: int
) -> dict[str, Any]:
    """`chain`: [{"roster": ..., "signature": ...}] from version 1 on. Returns the latest
    roster when every rule holds, else raises RosterError."""
    if not chain:
        raise RosterError("no roster")
    previous: Mapping[str, Any] | None = None
    for expected_version, entry in enumerate(chain, start=1):
        roster, signature = entry["roster"], entry["signature"]
        _check_shape(roster)
        if (roster.get("team"), roster.get("epoch")) != (team, epoch):
            raise RosterError("the roster is for another team or epoch")
        if roster.get("version") != expected_version:
            raise RosterError("roster versions must count up from 1")
        if previous is None:
            if roster.get("previous") != "":
                raise RosterError("version 1 names no previous version")
            signers = _leads(roster)
        else:
            if roster.get("previous") != roster_digest(previous):
                raise RosterError("the roster does not follow the version before it")
            if roster["keys"] != previous["keys"]:
                raise RosterError("an epoch's keys never change between roster versions")
            signers = _leads(previous)
        key = signers.get(roster.get("signer", ""))
        if key is None:
            raise RosterError("the roster is not signed by a team lead")
        try:
            Ed25519PublicKey.from_public_bytes(crypto.from_b64url(key)).verify(
                crypto.from_b64url(signature), canonical(roster)
            )
        except (InvalidSignature, ValueError) as error:
            raise RosterError("the roster signature does not verify") from error
        previous = roster
    assert previous is not None
    return dict(previous)


# --- what browsers do, in Python -------------------------------------------------------------


def _pkcs8(private: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _raw_public(private: X25519PrivateKey | Ed25519PrivateKey) -> str:
    return crypto.b64url(
        private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    )


@dataclass
class MemberSecrets:
    """A member's unlocked keys, as a browser holds them after the passphrase."""

    id: str
    role: str
    x25519: X25519PrivateKey
    ed25519: Ed25519PrivateKey

    @property
    def public(self) -> RosterMember:
        return RosterMember(
            id=self.id,
            role=self.role,
            x25519=_raw_public(self.x25519),
            ed25519=_raw_public(self.ed25519),
        )


def make_member_keys(
    *, owner: str, role: str, passphrase: str, iterations: int = crypto.MEMBER_KEY_MIN_ITERATIONS
) -> tuple[MemberSecrets, dict[str, Any]]:
    """New member key pairs and the blob keys.js would store (PKCS#8 under PBKDF2)."""
    secrets_ = MemberSecrets(
        owner, role, X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    )
    salt = secrets.token_bytes(16)
    wrap_key = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations
    ).derive(passphrase.encode())
    blob: dict[str, Any] = {
        "kdf": crypto.MEMBER_KEY_KDF,
        "iterations": iterations,
        "salt": crypto.b64url(salt),
    }
    for kind, private in (("x25519", secrets_.x25519), ("ed25519", secrets_.ed25519)):
        blob[kind] = {
            "public_raw": _raw_public(private),
            "wrapped": crypto.encrypt_sym(
                key=wrap_key,
                plaintext=_pkcs8(private),
                kid=f"{owner}:{kind}",
                epoch=0,
                context={"owner": owner, "kind": kind, "purpose": "member-key"},
            ),
        }
    return secrets_, blob


def wrap_team_key(
    *, team_key: bytes, recipient: str, team: str, member: str, kid: str, epoch: int
) -> dict[str, Any]:
    return crypto.seal_to(
        recipient=crypto.from_b64url(recipient),
        plaintext=team_key,
        kid=kid,
        epoch=epoch,
        context=team_key_context(team=team, member=member),
    )


def open_team_key(
    *, private: X25519PrivateKey, team: str, member: str, envelope: Mapping[str, Any]
) -> bytes:
    return crypto.open_sealed(
        private=private, envelope=envelope, context=team_key_context(team=team, member=member)
    )


@dataclass
class EpochSecrets:
    team: str
    epoch: int
    kid: str
    team_key: bytes
    transcript_kid: str
    transcript: X25519PrivateKey
    payload: dict[str, Any] = field(default_factory=dict)


def new_epoch(
    *,
    team: str,
    epoch: int,
    signer: MemberSecrets,
    members: Sequence[RosterMember],
    previous_team_key: bytes | None = None,
    recovery_public: str | None = None,
) -> EpochSecrets:
    """What a lead's browser makes for epoch `epoch`; `payload` is the body of
    POST /team/epochs."""
    team_key, kid = secrets.token_bytes(32), crypto.new_key_id()
    transcript, transcript_kid = X25519PrivateKey.generate(), crypto.new_key_id()
    roster = build_roster(
        team=team,
        epoch=epoch,
        version=1,
        previous="",
        signer=signer.id,
        members=members,
        keys=epoch_keys(
            kid=kid, transcript_kid=transcript_kid, transcript_public=_raw_public(transcript)
        ),
    )
    wraps = {
        m.id: wrap_team_key(
            team_key=team_key, recipient=m.x25519, team=team, member=m.id, kid=kid, epoch=epoch
        )
        for m in members
    }
    payload: dict[str, Any] = {
        "epoch": epoch,
        "kid": kid,
        "transcript_public": _raw_public(transcript),
        "transcript_kid": transcript_kid,
        "wrapped_transcript_key": crypto.encrypt_sym(
            key=team_key,
            plaintext=_pkcs8(transcript),
            kid=transcript_kid,
            epoch=epoch,
            context=transcript_key_context(team=team, epoch=epoch),
        ),
        "previous_key": None
        if previous_team_key is None
        else crypto.encrypt_sym(
            key=team_key,
            plaintext=previous_team_key,
            kid=kid,
            epoch=epoch,
            context=previous_key_context(team=team, epoch=epoch - 1),
        ),
        "recovery_wrap": None
        if recovery_public is None
        else wrap_team_key(
            team_key=team_key,
            recipient=recovery_public,
            team=team,
            member=RECOVERY_MEMBER,
            kid=kid,
            epoch=epoch,
        ),
        "roster": roster,
        "signature": sign_roster(signer.ed25519, roster),
        "wraps": wraps,
    }
    return EpochSecrets(team, epoch, kid, team_key, transcript_kid, transcript, payload)


def add_members(
    *,
    secrets_: EpochSecrets,
    signer: MemberSecrets,
    latest: Mapping[str, Any],
    newcomers: Sequence[RosterMember],
) -> dict[str, Any]:
    """The next roster version with `newcomers` and their wraps: the body of
    POST /team/epochs/{n}/members."""
    members = [RosterMember(**m) for m in latest["members"]] + list(newcomers)
    roster = build_roster(
        team=secrets_.team,
        epoch=secrets_.epoch,
        version=int(latest["version"]) + 1,
        previous=roster_digest(latest),
        signer=signer.id,
        members=members,
        keys=latest["keys"],
    )
    wraps = {
        m.id: wrap_team_key(
            team_key=secrets_.team_key,
            recipient=m.x25519,
            team=secrets_.team,
            member=m.id,
            kid=secrets_.kid,
            epoch=secrets_.epoch,
        )
        for m in newcomers
    }
    return {"roster": roster, "signature": sign_roster(signer.ed25519, roster), "wraps": wraps}


def matches_public(private: X25519PrivateKey, public: str) -> bool:
    """The browser checks this with a seal-and-open round trip (its keys are not extractable):
    a transcript key that opens under the team key and belongs to the signed public key proves
    the team key is the lead's."""
    return _raw_public(private) == public


def open_transcript_key(
    *, team_key: bytes, team: str, epoch: int, envelope: Mapping[str, Any]
) -> X25519PrivateKey:
    der = crypto.decrypt_sym(
        key=team_key, envelope=envelope, context=transcript_key_context(team=team, epoch=epoch)
    )
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, X25519PrivateKey):
        raise crypto.EnvelopeError("not an X25519 transcript key")
    return private


def seal_message(
    *,
    transcript_public: str,
    kid: str,
    epoch: int,
    team: str,
    conversation: str,
    message: str,
    sender: str,
    text: str,
) -> dict[str, Any]:
    """What the server does with every message before it is stored."""
    return crypto.seal_to(
        recipient=crypto.from_b64url(transcript_public),
        plaintext=text.encode(),
        kid=kid,
        epoch=epoch,
        context=message_context(
            team=team, conversation=conversation, message=message, sender=sender
        ),
    )


def open_message(
    *,
    transcript: X25519PrivateKey,
    team: str,
    conversation: str,
    message: str,
    sender: str,
    envelope: Mapping[str, Any],
) -> str:
    return crypto.open_sealed(
        private=transcript,
        envelope=envelope,
        context=message_context(
            team=team, conversation=conversation, message=message, sender=sender
        ),
    ).decode()
