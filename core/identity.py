"""Pseudonyms for channel identities and the sealed chat reference needed to answer them."""

from __future__ import annotations

from core import crypto
from core.settings import Settings


class Identities:
    def __init__(self, settings: Settings) -> None:
        self._pepper = settings.secret_bytes("pseudonym_pepper")
        self._version = settings.pseudonym_pepper_version
        self._routing_key = settings.secret_bytes("routing_key")

    def pseudonym(self, *, channel: str, identifier: str) -> str:
        return crypto.pseudonym(
            pepper=self._pepper, version=self._version, channel=channel, identifier=identifier
        )

    def seal_chat(self, *, pseudonym: str, chat_id: int) -> bytes:
        return crypto.seal_routing(key=self._routing_key, pseudonym=pseudonym, chat_id=chat_id)

    def open_chat(self, *, pseudonym: str, sealed: bytes) -> int:
        return crypto.open_routing(key=self._routing_key, pseudonym=pseudonym, sealed=sealed)
