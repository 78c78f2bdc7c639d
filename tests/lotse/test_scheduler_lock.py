"""Exactly one process runs the scheduled jobs: two lock holders in one test process (two Redis
clients, or two PostgreSQL engines), each with its own scheduler and a job that counts its runs.
Only the holder's runs count, and when it stops, dies or loses its connection the other one takes
over. Short TTLs keep this fast; the production ones are in lotse/leader.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from redis.asyncio import Redis
from sqlalchemy import text

from core.db import create_engine
from core.settings import Settings
from lotse.leader import (
    Leader,
    PostgresLeader,
    RedisLeader,
    SoleLeader,
    create_leader,
)
from lotse.scheduler import EVERY_PROCESS, LeaderOnlyExecutor, create_scheduler, new_scheduler
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL

TTL = 0.6
POLL = TTL / 3
JOB_EVERY = 0.05
needs_redis = pytest.mark.skipif(not TEST_REDIS_URL, reason="the Redis lock needs REDIS_URL")
needs_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="the advisory lock needs PostgreSQL"
)


class Node:
    """One app process as far as the scheduler goes: a lock holder and a scheduler."""

    def __init__(self, name: str, leader: Leader, runs: list[str]) -> None:
        self.name = name
        self.leader = leader
        self.scheduler = new_scheduler(leader)
        self.task: asyncio.Task[None] | None = None

        async def count() -> None:
            runs.append(name)

        self.scheduler.add_job(count, "interval", seconds=JOB_EVERY, id="count", coalesce=True)

    def start(self) -> None:
        self.start_renewing()
        self.scheduler.start()

    def start_renewing(self) -> None:
        self.task = asyncio.create_task(self.leader.run())

    async def stop_renewing(self) -> None:
        """What a process that hangs or dies does: no renewal, no release."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def stop(self) -> None:
        """A clean shutdown, as the app's lifespan does it."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.stop_renewing()
        await self.leader.release()


async def until(condition: Callable[[], bool], *, within: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def assert_handed_over(runs: list[str]) -> None:
    assert "a" in runs and "b" in runs, runs
    first_b = runs.index("b")
    assert set(runs[:first_b]) == {"a"} and set(runs[first_b:]) == {"b"}, runs


@pytest.fixture
async def redis_clients() -> AsyncIterator[tuple[Redis, Redis, Redis]]:
    assert TEST_REDIS_URL
    clients = (
        Redis.from_url(TEST_REDIS_URL),
        Redis.from_url(TEST_REDIS_URL),
        Redis.from_url(TEST_REDIS_URL),
    )
    await clients[2].ping()  # configured but unreachable fails here, never skips
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        await node.stop()


def redis_pair(
    clients: tuple[Redis, Redis, Redis], nodes: list[Node], runs: list[str]
) -> tuple[Node, Node, str]:
    key = f"lotse:test:leader:{uuid.uuid4().hex}"
    a = Node("a", RedisLeader(clients[0], key=key, ttl_seconds=TTL), runs)
    b = Node("b", RedisLeader(clients[1], key=key, ttl_seconds=TTL), runs)
    nodes.extend([a, b])
    return a, b, key


def postgres_pair(nodes: list[Node], runs: list[str]) -> tuple[Node, Node]:
    assert TEST_DATABASE_URL
    name = f"lotse:test:leader:{uuid.uuid4().hex}"
    a = Node("a", PostgresLeader(TEST_DATABASE_URL, name=name, poll_seconds=POLL), runs)
    b = Node("b", PostgresLeader(TEST_DATABASE_URL, name=name, poll_seconds=POLL), runs)
    nodes.extend([a, b])
    return a, b


async def only_a_leads(a: Node, b: Node, runs: list[str]) -> None:
    a.start()
    await until(lambda: a.leader.is_leader, within=1)
    b.start()
    await asyncio.sleep(3 * JOB_EVERY + POLL)
    assert not b.leader.is_leader and not await b.leader.confirm()
    assert runs and set(runs) == {"a"}, runs


@needs_redis
async def test_redis_only_the_holder_runs_jobs_and_a_release_hands_over_at_once(
    redis_clients, nodes
):
    runs: list[str] = []
    a, b, _ = redis_pair(redis_clients, nodes, runs)
    await only_a_leads(a, b, runs)

    await a.stop()
    await until(lambda: b.leader.is_leader, within=POLL + 0.5)
    await until(lambda: runs.count("b") >= 2, within=1)
    assert_handed_over(runs)


@needs_redis
async def test_redis_holder_that_stops_renewing_stops_running_jobs_and_the_other_takes_over(
    redis_clients, nodes
):
    runs: list[str] = []
    a, b, _ = redis_pair(redis_clients, nodes, runs)
    await only_a_leads(a, b, runs)

    # A hung holder: its scheduler still fires, but its lease runs out before the key does.
    await a.stop_renewing()
    lapsed = await until(lambda: not a.leader.is_leader, within=TTL)
    taken = await until(lambda: b.leader.is_leader, within=TTL + POLL + 0.5)
    assert lapsed + taken <= TTL + POLL + 0.5
    await until(lambda: runs.count("b") >= 2, within=1)
    assert_handed_over(runs)


@needs_redis
async def test_redis_lock_of_another_holder_is_never_extended_or_deleted(redis_clients, nodes):
    runs: list[str] = []
    a, _, key = redis_pair(redis_clients, nodes, runs)
    admin = redis_clients[2]
    a.start()
    await until(lambda: a.leader.is_leader, within=1)

    # The key lapsed and somebody else took it (here: replaced it) while a was not looking.
    await admin.set(key, "another-holder", px=int(TTL * 1000))
    assert not await a.leader.confirm()
    assert not a.leader.is_leader
    await asyncio.sleep(POLL + 0.05)
    await a.leader.release()
    assert await admin.get(key) == b"another-holder"
    assert 0 < await admin.pttl(key) <= TTL * 1000 - POLL * 1000 + 50
    count = len(runs)
    await asyncio.sleep(3 * JOB_EVERY)
    assert len(runs) == count


@needs_postgres
async def test_postgres_only_the_holder_runs_jobs_and_a_release_hands_over(nodes):
    runs: list[str] = []
    a, b = postgres_pair(nodes, runs)
    await only_a_leads(a, b, runs)

    await a.stop()
    await until(lambda: b.leader.is_leader, within=POLL + 0.5)
    await until(lambda: runs.count("b") >= 2, within=1)
    assert_handed_over(runs)


@needs_postgres
async def test_postgres_holder_whose_connection_is_killed_stops_and_the_other_takes_over(nodes):
    assert TEST_DATABASE_URL
    runs: list[str] = []
    a, b = postgres_pair(nodes, runs)
    await only_a_leads(a, b, runs)

    # Renewal held still, so that a cannot win the lock back on its next poll (it may, when it
    # runs: any live session may take a free lock); its scheduler keeps firing meanwhile.
    await a.stop_renewing()
    admin = create_engine(TEST_DATABASE_URL)
    try:
        async with admin.connect() as connection:
            holders = (
                await connection.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                )
            ).scalars()
            for pid in holders:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()

    # Noticed by the check before a's next job, not only by a renewal.
    await until(lambda: not a.leader.is_leader, within=JOB_EVERY + 0.2)
    await until(lambda: b.leader.is_leader, within=POLL + 0.5)
    await until(lambda: runs.count("b") >= 2, within=1)
    a.start_renewing()
    await asyncio.sleep(2 * POLL)
    assert not a.leader.is_leader, "a reconnected, as a follower"
    assert_handed_over(runs)


def test_the_lock_follows_the_backends():
    sqlite = Settings(database_url="sqlite+aiosqlite:///x.db")
    postgres = Settings(database_url="postgresql+asyncpg://h/db")
    redis = Redis.from_url("redis://127.0.0.1:1/0")
    assert isinstance(create_leader(sqlite, redis=None), SoleLeader)
    assert isinstance(create_leader(postgres, redis=None), PostgresLeader)
    assert isinstance(create_leader(sqlite, redis=redis), RedisLeader)


async def test_a_single_process_leads_at_once():
    leader = SoleLeader()
    await leader.run()
    assert leader.is_leader and await leader.confirm()


class Follower:
    backend = "test"
    is_leader = False

    async def confirm(self) -> bool:
        return False

    async def run(self) -> None:
        return None

    async def release(self) -> None:
        return None


async def test_a_follower_refreshes_its_own_index_but_runs_no_leader_job(services):
    services.leader = Follower()
    scheduler = create_scheduler(services)
    executed: list[str] = []
    scheduler.add_listener(
        lambda event: (
            executed.append(event.job_id) if isinstance(event, JobExecutionEvent) else None
        ),
        EVENT_JOB_EXECUTED,
    )
    leader_jobs = [job.id for job in scheduler.get_jobs() if job.executor != EVERY_PROCESS]
    assert "expire_console_sessions" in leader_jobs
    assert isinstance(scheduler._executors["default"], LeaderOnlyExecutor)
    scheduler.start()
    try:
        for job in scheduler.get_jobs():
            # APScheduler keeps its own wall time, not the services' (fake) clock.
            job.modify(next_run_time=datetime.now(UTC))
        await until(lambda: "refresh_referral_index" in executed, within=5)
        await asyncio.sleep(0.1)
    finally:
        scheduler.shutdown(wait=False)
    assert not set(leader_jobs) & set(executed)
