"""Live events for consoles and web chats: in memory for one process, Redis pub/sub for many.

Events are transient notifications; nothing published here is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from redis.asyncio import Redis

log = logging.getLogger(__name__)
Event = dict[str, Any]


class EventBus(Protocol):
    async def publish(self, channel: str, event: Event) -> int:
        """Returns how many subscribers (processes, for Redis) received the event."""
        ...

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an `asyncio.Queue` of events."""


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        # A stalled subscriber loses events, not the publisher; a page reloads on reconnect.
        log.warning("event subscriber too slow, event dropped")


class MemoryEventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._queue_size = queue_size

    async def publish(self, channel: str, event: Event) -> int:
        queues = list(self._subscribers.get(channel, ()))
        for queue in queues:
            _offer(queue, event)
        return len(queues)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers[channel].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]


class RedisEventBus:
    """Fans events out across app processes; each subscriber holds one pub/sub connection.

    Subscribers use their own client so that long-lived streams never starve the command pool.
    """

    prefix = "lotse:events:"

    def __init__(self, redis: Redis, subscriber_redis: Redis) -> None:
        self._redis = redis
        self._subscriber_redis = subscriber_redis

    async def publish(self, channel: str, event: Event) -> int:
        return int(await self._redis.publish(self.prefix + channel, json.dumps(event)))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(1000)
        pubsub = self._subscriber_redis.pubsub()
        await pubsub.subscribe(self.prefix + channel)
        reader = asyncio.create_task(self._pump(pubsub, queue))
        try:
            yield queue
        finally:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def close(self) -> None:
        await self._subscriber_redis.aclose()

    @staticmethod
    async def _pump(pubsub: Any, queue: asyncio.Queue[Event]) -> None:
        async for item in pubsub.listen():
            if item.get("type") == "message":
                _offer(queue, json.loads(item["data"]))


def team_channel(team_id: object) -> str:
    return f"team:{team_id}"
