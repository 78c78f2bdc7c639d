"""Failure counters with backoff against password guessing (console login, later TOTP).

A key may fail a few times freely within a window; each further failure locks it for twice as
long as the one before, up to a cap. In memory for one process, in Redis when configured, so
that every process sees the same count. Keys are keyed hashes: a Redis dump shows neither login
names nor addresses.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from core.clock import Clock


@dataclass(frozen=True)
class Policy:
    free_failures: int = 5
    window_seconds: float = 15 * 60
    first_lock_seconds: float = 2.0
    max_lock_seconds: float = 15 * 60

    def lock_after(self, failures: int) -> float:
        over = failures - self.free_failures
        if over <= 0:
            return 0.0
        return min(self.first_lock_seconds * 2.0 ** (over - 1), self.max_lock_seconds)


class Attempts(Protocol):
    async def blocked_for(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""

    async def failed(self, key: str) -> float:
        """Count a failure; returns the lock it earned (0 while failures are still free)."""

    async def succeeded(self, key: str) -> None:
        """A success forgets the failures."""


def attempt_key(pepper: bytes, kind: str, value: str) -> str:
    digest = hmac.new(pepper, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{kind}:{digest}"


class MemoryAttempts:
    def __init__(self, *, clock: Clock, policy: Policy | None = None) -> None:
        self._clock = clock
        self._policy = policy or Policy()
        # key -> (failures, window start, locked until), seconds since the epoch
        self._entries: dict[str, tuple[int, float, float]] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def blocked_for(self, key: str) -> float:
        entry = self._entries.get(key)
        return max(0.0, entry[2] - self._now()) if entry else 0.0

    async def failed(self, key: str) -> float:
        now = self._now()
        failures, start, _ = self._entries.get(key, (0, now, 0.0))
        if now - start > self._policy.window_seconds:
            failures, start = 0, now
        failures += 1
        lock = self._policy.lock_after(failures)
        self._entries[key] = (failures, start, now + lock)
        if len(self._entries) > 100_000:  # bounded under a flood of made-up logins
            self._forget_old(now)
        return lock

    async def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)

    def _forget_old(self, now: float) -> None:
        horizon = self._policy.window_seconds + self._policy.max_lock_seconds
        for key in [k for k, (_, start, _) in self._entries.items() if now - start > horizon]:
            del self._entries[key]


class RedisAttempts:
    """The same rules in a Redis hash per key, expiring with its window (and lock)."""

    def __init__(
        self, *, redis: Redis, clock: Clock, policy: Policy | None = None, prefix: str = "lotse"
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._policy = policy or Policy()
        self._prefix = f"{prefix}:attempts:"

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def blocked_for(self, key: str) -> float:
        until = await self._redis.hget(self._prefix + key, "until")
        return max(0.0, float(until) - self._now()) if until else 0.0

    async def failed(self, key: str) -> float:
        name = self._prefix + key
        now = self._now()
        start = await self._redis.hget(name, "start")
        if start is None or now - float(start) > self._policy.window_seconds:
            await self._redis.delete(name)
            await self._redis.hset(name, mapping={"start": now, "failures": 0, "until": 0})
        failures = int(await self._redis.hincrby(name, "failures", 1))
        lock = self._policy.lock_after(failures)
        await self._redis.hset(name, "until", now + lock)
        ttl = self._policy.window_seconds + lock
        await self._redis.expire(name, int(ttl) + 1)
        return lock

    async def succeeded(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
