"""Flow state per pseudonym, kept in aiogram's FSM storage (memory, or Redis when configured)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal

from aiogram.fsm.storage.base import BaseStorage, KeyBuilder, StorageKey


class PseudonymousKeyBuilder(KeyBuilder):
    """Storage and lock keys without plain Telegram ids: Redis keys are data at rest too.

    Keyed with the pseudonym pepper, because a plain hash of a 52-bit id is brute-forceable.
    """

    def __init__(self, pepper: bytes, prefix: str = "lotse") -> None:
        self._pepper = pepper
        self.prefix = prefix

    def build(self, key: StorageKey, part: Literal["data", "state", "lock"] | None = None) -> str:
        raw = ":".join(
            str(part_value)
            for part_value in (
                key.bot_id,
                key.chat_id,
                key.user_id,
                key.thread_id,
                key.business_connection_id,
                key.destiny,
            )
        )
        digest = hmac.new(self._pepper, raw.encode(), hashlib.sha256).hexdigest()
        return f"{self.prefix}:{part or 'key'}:{digest}"


def flow_key(pseudonym: str) -> StorageKey:
    return StorageKey(bot_id=0, chat_id=0, user_id=0, destiny=f"flow:{pseudonym}")


class FlowStateStore:
    def __init__(self, storage: BaseStorage) -> None:
        self._storage = storage

    async def get(self, pseudonym: str) -> dict[str, Any]:
        return dict(await self._storage.get_data(flow_key(pseudonym)))

    async def set(self, pseudonym: str, data: dict[str, Any]) -> None:
        await self._storage.set_data(flow_key(pseudonym), data)
