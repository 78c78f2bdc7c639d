"""Scheduler leadership: which one of several app processes runs the scheduled jobs.

With Redis: a lock key with a random token and a TTL, renewed by its holder. Without Redis but on
PostgreSQL: a session-level advisory lock held on a connection of its own. On SQLite (and with
state in process memory) there is one process by definition, so it leads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.settings import Settings

log = logging.getLogger(__name__)

LOCK_NAME = "lotse:scheduler:leader"
# A dead holder's lock lapses after this long. Housekeeping jobs run every few minutes, so half a
# minute of takeover costs nothing, and a renewal every 10 s is no load on Redis or PostgreSQL.
LOCK_SECONDS = 30.0
# Redlock's allowance for the holder's clock running slower than the lock server's.
_CLOCK_DRIFT = 0.01

# Compare-and-extend / compare-and-delete: only the holder of the token may renew or release,
# so a process whose lock had lapsed can never extend or delete its successor's.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leader(Protocol):
    backend: str

    @property
    def is_leader(self) -> bool:
        """What this process last knew; cheap, for logs and status."""
        ...

    async def confirm(self) -> bool:
        """Asks the lock server, right before a job runs."""
        ...

    async def run(self) -> None:
        """Takes, keeps and retakes the lock until cancelled (a task of the app's lifespan)."""
        ...

    async def release(self) -> None:
        """Gives the lock up at shutdown, so that another process takes over at once."""
        ...


def create_leader(settings: Settings, *, redis: Redis | None) -> Leader:
    if redis is not None:
        return RedisLeader(redis)
    if settings.database_url.startswith("postgresql"):
        return PostgresLeader(settings.database_url)
    return SoleLeader()


class SoleLeader:
    """SQLite, or state in process memory: docs/operations.md allows one process only, so no lock
    is needed and this process leads from the start."""

    backend = "single-process"
    is_leader = True

    async def confirm(self) -> bool:
        return True

    async def run(self) -> None:
        log.info("scheduler leads", extra={"backend": self.backend})

    async def release(self) -> None:
        return None


class RedisLeader:
    """SET NX PX with a random token; the holder renews every third of the TTL. A holder that dies
    stops renewing, the key expires, and another process takes it within a TTL and a poll."""

    backend = "redis"

    def __init__(
        self,
        redis: Redis,
        *,
        key: str = LOCK_NAME,
        ttl_seconds: float = LOCK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._key = key
        self._ttl_ms = int(ttl_seconds * 1000)
        self._interval = ttl_seconds / 3
        # Not the app's Clock: the lease is measured against Redis's own expiry, which runs in
        # real time; a fake clock would make a lapsed lease look valid.
        self._monotonic = monotonic
        self._token = secrets.token_hex(16)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self._held = False
        self._lease_until = 0.0

    @property
    def is_leader(self) -> bool:
        # Redis expires the key no earlier than this: the lease is counted from before the request.
        return self._held and self._monotonic() < self._lease_until

    async def confirm(self) -> bool:
        if not self.is_leader:
            return False
        try:
            async with asyncio.timeout(self._interval):
                current = await self._redis.get(self._key)
        except Exception as error:
            log.warning("scheduler lock check failed", extra={"error": type(error).__name__})
            return False
        if current is None or _text(current) != self._token:
            self._lose("taken")
            return False
        return self.is_leader

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._interval):
                    await self._tick()
            except Exception as error:
                # Kept until the lease runs out: a blip shorter than the TTL changes nothing.
                log.warning("scheduler lock renewal failed", extra={"error": type(error).__name__})
            await asyncio.sleep(self._interval)

    async def _tick(self) -> None:
        started = self._monotonic()
        if self._held:
            if await self._extend(keys=[self._key], args=[self._token, self._ttl_ms]):
                self._lease_until = started + self._ttl_ms / 1000 * (1 - _CLOCK_DRIFT)
                return
            self._lose("expired")
        if await self._redis.set(self._key, self._token, nx=True, px=self._ttl_ms):
            self._held = True
            self._lease_until = started + self._ttl_ms / 1000 * (1 - _CLOCK_DRIFT)
            log.info("scheduler leadership taken", extra={"backend": self.backend})

    def _lose(self, reason: str) -> None:
        if self._held:
            self._held = False
            log.warning(
                "scheduler leadership lost", extra={"backend": self.backend, "reason": reason}
            )

    async def release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            async with asyncio.timeout(self._interval):
                await self._release(keys=[self._key], args=[self._token])
        except Exception as error:
            # The key then lapses on its own within the TTL.
            log.warning("scheduler lock release failed", extra={"error": type(error).__name__})
            return
        log.info("scheduler leadership released", extra={"backend": self.backend})


class PostgresLeader:
    """`pg_try_advisory_lock` on a connection of its own, held while this process leads. When the
    process dies its connection closes and PostgreSQL frees the lock; the others poll for it. A
    lost connection (detected by the poll, and checked before every job) ends the leadership."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        name: str = LOCK_NAME,
        poll_seconds: float = LOCK_SECONDS / 3,
    ) -> None:
        self._url = url
        self._lock_id = _advisory_lock_id(name)
        self._interval = poll_seconds
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None
        self._held = False

    @property
    def is_leader(self) -> bool:
        return self._held

    async def confirm(self) -> bool:
        if not self._held:
            return False
        # The lock lives exactly as long as the session: a session that answers still holds it.
        try:
            async with asyncio.timeout(self._interval):
                await self._execute("SELECT 1")
        except Exception as error:
            await self._drop(type(error).__name__)
            return False
        return self._held

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._interval):
                    await self._tick()
            except Exception as error:
                await self._drop(type(error).__name__)
            await asyncio.sleep(self._interval)

    async def _tick(self) -> None:
        if self._held:
            await self._execute("SELECT 1")
            return
        if self._connection is None:
            self._connection = await self._lock_engine().connect()
        taken = await self._execute("SELECT pg_try_advisory_lock(:id)", id=self._lock_id)
        if taken:
            self._held = True
            log.info("scheduler leadership taken", extra={"backend": self.backend})

    async def _execute(self, sql: str, **params: Any) -> Any:
        if self._connection is None:
            raise ConnectionError("no lock connection")
        return (await self._connection.execute(text(sql), params)).scalar()

    def _lock_engine(self) -> AsyncEngine:
        if self._engine is None:
            # Its own engine without a pool: the lock connection never returns to a pool, and the
            # app's 15 pooled connections stay for requests. Autocommit: an idle session holds the
            # lock without sitting "idle in transaction" (which a server timeout would end).
            options: dict[str, Any] = {}
            if self._url.startswith("postgresql+asyncpg"):
                # The server notices a vanished host (no FIN) within about a TTL, not the
                # kernel's default two hours, and frees the lock.
                idle = max(1, int(self._interval))
                options["connect_args"] = {
                    "server_settings": {
                        "tcp_keepalives_idle": str(idle),
                        "tcp_keepalives_interval": str(idle),
                        "tcp_keepalives_count": "2",
                    }
                }
            self._engine = create_async_engine(
                self._url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                hide_parameters=True,
                **options,
            )
        return self._engine

    async def _drop(self, reason: str) -> None:
        connection, self._connection = self._connection, None
        if self._held:
            self._held = False
            log.warning(
                "scheduler leadership lost", extra={"backend": self.backend, "reason": reason}
            )
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    async def release(self) -> None:
        held = self._held
        connection, self._connection = self._connection, None
        self._held = False
        if connection is not None:
            # Ending the session frees its advisory locks: no unlock needed.
            with contextlib.suppress(Exception):
                await connection.close()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if held:
            log.info("scheduler leadership released", extra={"backend": self.backend})


def _advisory_lock_id(name: str) -> int:
    # Advisory locks take a signed 64-bit key; a hash of the name keeps it apart from any other.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
