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
from redis.exceptions import RedisError

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
    """Fans events out across app processes, over one pub/sub connection per process.

    A channel is subscribed in Redis while anyone in this process listens to it; each event
    is read and decoded once and offered to every local queue. (With one connection per
    console, the server read and parsed the same message 500 times for 500 consoles:
    bench/README.md.) A publish therefore counts processes, not consoles. If the connection
    breaks, redis-py connects again and subscribes every channel again; the local
    subscribers then get a `queue.updated`, so that consoles catch up on what they missed.

    Subscribers use a client of their own, so long-lived streams never starve the pool.
    """

    prefix = "lotse:events:"
    # How long a new subscription may take to be confirmed by Redis.
    CONFIRM_SECONDS = 10.0
    # A broken connection is tried again after this long, and up to 30 s.
    RETRY_SECONDS = 0.5

    def __init__(self, redis: Redis, subscriber_redis: Redis) -> None:
        self._redis = redis
        self._subscriber_redis = subscriber_redis
        self._local: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        # Subscribing and unsubscribing in Redis, one change at a time.
        self._changes = asyncio.Lock()
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}

    async def publish(self, channel: str, event: Event) -> int:
        return int(await self._redis.publish(self.prefix + channel, json.dumps(event)))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(1000)
        async with self._changes:
            first = not self._local.get(channel)
            self._local[channel].add(queue)
            if first:
                try:
                    await self._subscribe_in_redis(channel)
                except BaseException:
                    self._leave(channel, queue)
                    raise
        try:
            yield queue
        finally:
            async with self._changes:
                if self._leave(channel, queue) and self._pubsub is not None:
                    try:
                        await self._pubsub.unsubscribe(self.prefix + channel)
                    except (RedisError, OSError):
                        log.warning("event channel not unsubscribed", exc_info=True)

    def _leave(self, channel: str, queue: asyncio.Queue[Event]) -> bool:
        """Drops the queue; True when it was the channel's last one here."""
        queues = self._local.get(channel, set())
        queues.discard(queue)
        if queues:
            return False
        self._local.pop(channel, None)
        return True

    async def _subscribe_in_redis(self, channel: str) -> None:
        key = (self.prefix + channel).encode()
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmed[key] = confirmed
        try:
            if self._pubsub is None:
                self._pubsub = self._subscriber_redis.pubsub()
            await self._pubsub.subscribe(key)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="event-bus-reader")
            # Redis confirms on the same connection: from then on no publish is missed.
            await asyncio.wait_for(confirmed, timeout=self.CONFIRM_SECONDS)
        finally:
            self._confirmed.pop(key, None)

    async def _read(self) -> None:
        wait = self.RETRY_SECONDS
        broken = False
        while True:
            try:
                item = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                if not broken:
                    log.warning("event bus lost its Redis connection; connecting again")
                broken = True
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)
                continue
            if broken:
                broken, wait = False, self.RETRY_SECONDS
                log.info("event bus connected again")
                for queues in list(self._local.values()):
                    for queue in list(queues):
                        _offer(queue, {"type": "queue.updated"})
            if item is None:
                continue
            channel = item.get("channel")
            if item.get("type") == "subscribe":
                future = self._confirmed.get(channel)
                if future is not None and not future.done():
                    future.set_result(None)
            elif item.get("type") == "message" and isinstance(channel, bytes):
                listeners = self._local.get(channel.decode().removeprefix(self.prefix))
                if listeners:
                    event = json.loads(item["data"])
                    for queue in list(listeners):
                        _offer(queue, event)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._subscriber_redis.aclose()


def team_channel(team_id: object) -> str:
    return f"team:{team_id}"
