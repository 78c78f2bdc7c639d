"""Flow state per pseudonym, kept in aiogram's FSM storage (memory, or Redis when configured)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, KeyBuilder, StorageKey


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


class OrderedEventIsolation(BaseEventIsolation):
    """Per-chat isolation that keeps arrival order.

    Inside the process an asyncio.Lock per key queues waiters first-in, first-out; only the
    head of that queue then takes the cross-process lock (Redis), whose waiters poll and are not
    served in order. Locks are dropped as soon as nobody holds or waits for them.
    """

    def __init__(self, inner: BaseEventIsolation | None = None) -> None:
        self._inner = inner
        self._locks: dict[StorageKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                if self._inner is None:
                    yield
                else:
                    async with self._inner.lock(key):
                        yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @property
    def held_keys(self) -> int:
        return len(self._locks)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
