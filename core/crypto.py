"""The one module that imports `cryptography`: pseudonyms, sealed routing data, password hashes.

Telegram ids carry at most 52 significant bits, so a plain hash could be brute-forced; a keyed
HMAC with a pepper that never enters the database cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_ROUTING_VERSION = b"\x01"
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
