"""The one module that imports `cryptography`: pseudonyms, sealed routing data, password hashes,
second-factor secrets, and the envelope format shared with the browser (see `seal_to` below and
counsellor_console/static/envelope.js; docs/security.md describes it).

Telegram ids carry at most 52 significant bits, so a plain hash could be brute-forced; a keyed
HMAC with a pepper that never enters the database cannot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12
_ROUTING_VERSION = b"\x01"
_SECRET_VERSION = b"\x01"
TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
# One step either side: a phone clock a little off, or a code typed as it changes.
TOTP_WINDOW = 1
_hasher = PasswordHasher()  # argon2id with the library's current recommended cost


def pseudonym(*, pepper: bytes, version: int, channel: str, identifier: str) -> str:
    digest = hmac.new(pepper, f"{channel}:{identifier}".encode(), hashlib.sha256).hexdigest()
    return f"p{version}.{digest}"


def seal_routing(*, key: bytes, pseudonym: str, chat_id: int) -> bytes:
    """Encrypt a chat id; the pseudonym is bound as associated data so rows cannot be swapped."""
    nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonce: never reused under one key in practice
    ciphertext = AESGCM(key).encrypt(nonce, str(chat_id).encode(), pseudonym.encode())
    return _ROUTING_VERSION + nonce + ciphertext


def open_routing(*, key: bytes, pseudonym: str, sealed: bytes) -> int:
    """Raises cryptography's InvalidTag on tampering or a wrong pseudonym; never swallowed."""
    if sealed[:1] != _ROUTING_VERSION:
        raise ValueError("unknown routing envelope version")
    nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    return int(AESGCM(key).decrypt(nonce, ciphertext, pseudonym.encode()))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def derive_key(*, key: bytes, purpose: str) -> bytes:
    """A key of its own per purpose from one server secret (HKDF-SHA-256), so a key used for
    chat ids never also encrypts, say, second-factor secrets."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(key)


def seal_secret(*, key: bytes, secret: bytes, context: str) -> bytes:
    """AES-GCM with `context` (e.g. the account id) as associated data."""
    nonce = os.urandom(_NONCE_BYTES)
    return _SECRET_VERSION + nonce + AESGCM(key).encrypt(nonce, secret, context.encode())


def open_secret(*, key: bytes, sealed: bytes, context: str) -> bytes:
    if sealed[:1] != _SECRET_VERSION:
        raise ValueError("unknown secret envelope version")
    nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    return AESGCM(key).decrypt(nonce, ciphertext, context.encode())


def new_totp_secret() -> str:
    """160 random bits in base32, as authenticator apps take them (RFC 4226 recommends 160)."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def totp_step(at: datetime) -> int:
    return int(at.timestamp()) // TOTP_STEP_SECONDS


def totp_code(secret: str, step: int) -> str:
    """RFC 6238 with HMAC-SHA-1 and 6 digits: what every authenticator app computes."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def verify_totp(*, secret: str, code: str, at: datetime, last_step: int | None) -> int | None:
    """The step the code belongs to, if it is valid now and newer than the last one used (a
    code works once); None otherwise."""
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    now = totp_step(at)
    for step in range(now - TOTP_WINDOW, now + TOTP_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp_code(secret, step), code):
            return step
    return None


def otpauth_uri(*, secret: str, account: str, issuer: str = "Lotse") -> str:
    from urllib.parse import quote

    label = quote(f"{issuer}:{account}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}&digits={TOTP_DIGITS}"


def new_recovery_code() -> str:
    """Ten characters of base32 in two groups (about 50 bits): typed rarely, guessed never."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()[:10].lower()
    return f"{raw[:5]}-{raw[5:]}"


def recovery_digest(*, pepper: bytes, code: str) -> str:
    """Keyed, so a database copy alone cannot test guesses; codes are random enough that no
    slow hash is needed."""
    normal = code.replace("-", "").replace(" ", "").lower()
    return hmac.new(pepper, f"recovery:{normal}".encode(), hashlib.sha256).hexdigest()


# -- envelopes shared with the browser ----------------------------------------------------------
#
# {v, alg, kid, epoch, nonce, ct} (+ epk for sealing to a public key), every binary field in
# unpadded base64url. The associated data is the canonical JSON of the header fields and the
# caller's context (team, conversation, author, purpose, ...): flat, sorted keys, no spaces, so
# Python and JavaScript produce the same bytes. A wrong key, a changed header or context, or a
# flipped byte raises InvalidTag; nothing ever falls back to plaintext.

ENVELOPE_VERSION = 1
SEAL_ALG = "X25519-HKDF-SHA256-A256GCM"
SYM_ALG = "A256GCM"
_SEAL_INFO = b"lotse/v1/seal"
ContextValue = str | int


class EnvelopeError(ValueError):
    """An envelope that is not one of ours (version, algorithm, fields); not a wrong key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_id() -> str:
    """Random, never derived from key material: a key id says nothing about the key."""
    return b64url(secrets.token_bytes(16))


def envelope_aad(header: Mapping[str, Any], context: Mapping[str, ContextValue]) -> bytes:
    for key, value in context.items():
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise EnvelopeError(f"context value for {key!r} must be a string or an integer")
    bound = {k: header[k] for k in ("v", "alg", "kid", "epoch") if k in header}
    if "epk" in header:
        bound["epk"] = header["epk"]
    bound["ctx"] = dict(context)
    return json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_x25519() -> tuple[X25519PrivateKey, bytes]:
    private = X25519PrivateKey.generate()
    return private, x25519_public_raw(private)


def x25519_public_raw(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def x25519_private_raw(private: X25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def x25519_from_raw(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)


def _seal_key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    # HKDF after the key agreement, salted with both public keys so the key belongs to this pair.
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=_SEAL_INFO
    ).derive(shared)


def seal_to(
    *,
    recipient: bytes,
    plaintext: bytes,
    kid: str,
    epoch: int,
    context: Mapping[str, ContextValue],
    _ephemeral: X25519PrivateKey | None = None,
    _nonce: bytes | None = None,
) -> dict[str, Any]:
    """Encrypt to a public key (raw X25519, 32 bytes): the server can write, only the holder of
    the private key can read. `_ephemeral` and `_nonce` exist for test vectors only."""
    ephemeral = _ephemeral or X25519PrivateKey.generate()
    epk = x25519_public_raw(ephemeral)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    nonce = _nonce or os.urandom(_NONCE_BYTES)  # fresh key per envelope, random nonce anyway
    header = {
        "v": ENVELOPE_VERSION,
        "alg": SEAL_ALG,
        "kid": kid,
        "epoch": epoch,
        "epk": b64url(epk),
    }
    ciphertext = AESGCM(_seal_key(shared, epk, recipient)).encrypt(
        nonce, plaintext, envelope_aad(header, context)
    )
    return {**header, "nonce": b64url(nonce), "ct": b64url(ciphertext)}


def open_sealed(
    *, private: X25519PrivateKey, envelope: Mapping[str, Any], context: Mapping[str, ContextValue]
) -> bytes:
    """For the offline recovery key and tests: the server itself holds no such private key."""
    _check(envelope, SEAL_ALG)
    epk = from_b64url(envelope["epk"])
    shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    key = _seal_key(shared, epk, x25519_public_raw(private))
    return AESGCM(key).decrypt(
        from_b64url(envelope["nonce"]),
        from_b64url(envelope["ct"]),
        envelope_aad(envelope, context),
    )


def encrypt_sym(
    *,
    key: bytes,
    plaintext: bytes,
    kid: str,
    epoch: int,
    context: Mapping[str, ContextValue],
    _nonce: bytes | None = None,
) -> dict[str, Any]:
    """AES-256-GCM under a symmetric key (a case key, a team key)."""
    nonce = _nonce or os.urandom(_NONCE_BYTES)
    header = {"v": ENVELOPE_VERSION, "alg": SYM_ALG, "kid": kid, "epoch": epoch}
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, envelope_aad(header, context))
    return {**header, "nonce": b64url(nonce), "ct": b64url(ciphertext)}


def decrypt_sym(
    *, key: bytes, envelope: Mapping[str, Any], context: Mapping[str, ContextValue]
) -> bytes:
    _check(envelope, SYM_ALG)
    return AESGCM(key).decrypt(
        from_b64url(envelope["nonce"]),
        from_b64url(envelope["ct"]),
        envelope_aad(envelope, context),
    )


_ENVELOPE_FIELDS = {"v", "alg", "kid", "epoch", "nonce", "ct"}
MAX_CIPHERTEXT_CHARS = 40_000  # a long note in base64url, with room to spare


def is_envelope_of(
    envelope: Mapping[str, Any], *, alg: str, epoch: int, kid: str | None = None
) -> bool:
    """Whether a client's envelope has our shape, algorithm, epoch and key id, and nothing
    else: what the server checks before it stores one it cannot open."""
    fields = _ENVELOPE_FIELDS | ({"epk"} if alg == SEAL_ALG else set())
    return (
        set(envelope) == fields
        and envelope.get("v") == ENVELOPE_VERSION
        and envelope.get("alg") == alg
        and envelope.get("epoch") == epoch
        and (kid is None or envelope.get("kid") == kid)
        and all(isinstance(envelope.get(f), str) for f in fields - {"v", "epoch"})
        and len(envelope["ct"]) <= MAX_CIPHERTEXT_CHARS
    )


def _check(envelope: Mapping[str, Any], alg: str) -> None:
    if envelope.get("v") != ENVELOPE_VERSION:
        raise EnvelopeError("unknown envelope version")
    if envelope.get("alg") != alg:
        raise EnvelopeError(f"expected {alg}, got {envelope.get('alg')!r}")
    missing = {"kid", "epoch", "nonce", "ct"} - set(envelope)
    if missing:
        raise EnvelopeError(f"envelope lacks {sorted(missing)}")


def private_key_pem(private: X25519PrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase when one is given (for the offline recovery
    key: cryptography's best available scheme)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key_pem(pem: bytes, passphrase: bytes | None) -> X25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=passphrase)
    if not isinstance(key, X25519PrivateKey):
        raise EnvelopeError("not an X25519 private key")
    return key


MEMBER_KEY_KDF = "PBKDF2-SHA256"
MEMBER_KEY_MIN_ITERATIONS = 600_000


def unwrap_member_key(
    *, owner: str, kind: str, passphrase: str, stored: Mapping[str, Any]
) -> bytes:
    """The PKCS#8 bytes of a member key wrapped in the browser (keys.js). The server never does
    this: it has no passphrase. It exists so tests can check the browser's format from Python."""
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    if stored["kdf"] != MEMBER_KEY_KDF or stored["iterations"] < MEMBER_KEY_MIN_ITERATIONS:
        raise EnvelopeError("weak key wrapping")
    key = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=32,
        salt=from_b64url(stored["salt"]),
        iterations=stored["iterations"],
    ).derive(passphrase.encode())
    context = {"owner": owner, "kind": kind, "purpose": "member-key"}
    return decrypt_sym(key=key, envelope=stored[kind]["wrapped"], context=context)
