"""Updates per second through the conversation engine, with real database writes.

    .venv/bin/python -m bench.run [--db sqlite|postgres|all] [--chats N] [--messages M]
                                  [--redis redis://127.0.0.1:6379/14] [--burst]

Each of N chats walks the guided path once (start, role, postcode, need, handover) and then sends
M free-text messages, which the engine stores as messages (the relay step). Chats run
concurrently; within a chat, updates are strictly sequential and each one holds the per-chat
isolation lock, exactly as the web chat adapter does. Afterwards the messages table is read back
to prove that every message arrived, once, with seq 1..M in the order sent. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import sqlalchemy
from aiogram.fsm.storage.base import StorageKey
from redis.asyncio import Redis
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from bot.engine import Inbound, Reply, Sender
from core import keyring
from core.models import Contact, Conversation, Message
from core.settings import load_settings, new_secret
from lotse.bootstrap import bootstrap
from lotse.devkeys import give_national_team_keys
from lotse.migrate import upgrade
from lotse.runtime import (
    Services,
    build_services,
    close_services,
    keep_startup_objects,
    release_startup_objects,
)
from referral.api import refresh_referral_index

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/lotse_bench"
CHANNEL = "bench"
# The guided path of one chat, as the buttons of the real flow send it. 90402 is Nürnberg: a
# postcode that resolves, so the results step ranks offers against a real area.
GUIDED = (
    Inbound("command", "start"),
    Inbound("action", "role:teen"),
    Inbound("text", "90402"),
    Inbound("action", "need:visits"),
    Inbound("action", "handover"),
)


def body(chat: int, k: int) -> str:
    # Unique per chat and position, so the read-back can tell lost, duplicated and reordered apart.
    return f"bench chat {chat} message {k}"


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Phase:
    """Latencies of one kind of update, and the span of wall time in which they ran."""

    latencies: list[float] = field(default_factory=list)
    start: float = math.inf
    end: float = 0.0

    def record(self, started: float, ended: float) -> None:
        self.latencies.append(ended - started)
        self.start = min(self.start, started)
        self.end = max(self.end, ended)

    @property
    def wall(self) -> float:
        return max(self.end - self.start, 0.0)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        # Nearest rank: the value at or below which p % of the updates finished.
        return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] * 1000


@dataclass
class Check:
    """What the read-back of the messages table found."""

    chats: int = 0
    chats_in_order: int = 0
    expected: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order_chats: int = 0
    bad_seq_chats: int = 0
    conversations_not_one: int = 0

    def short(self) -> str:
        share = 100.0 * self.chats_in_order / self.chats if self.chats else 0.0
        return f"{share:.0f}% in order, {self.lost} lost"

    def line(self) -> str:
        text = f"order: {self.short()}"
        if self.chats_in_order != self.chats or self.duplicated or self.conversations_not_one:
            text += (
                f" ({self.chats - self.chats_in_order} of {self.chats} chats wrong:"
                f" {self.duplicated} duplicated, {self.out_of_order_chats} chats out of order,"
                f" {self.bad_seq_chats} chats with seq not 1..M,"
                f" {self.conversations_not_one} contacts without exactly one conversation)"
            )
        return text


@dataclass
class SqlCount:
    """Round trips the engine causes: statements, plus pool checkouts (each one pings first)."""

    statements: int = 0
    checkouts: int = 0

    def since(self, earlier: SqlCount) -> SqlCount:
        return SqlCount(self.statements - earlier.statements, self.checkouts - earlier.checkouts)


def count_sql(services: Services) -> SqlCount:
    count = SqlCount()

    def statement(*_: object) -> None:
        count.statements += 1

    def checkout(*_: object) -> None:
        count.checkouts += 1

    event.listen(services.db.sync_engine, "before_cursor_execute", statement)
    event.listen(services.db.sync_engine, "checkout", checkout)
    return count


@dataclass
class Result:
    label: str
    guided: Phase = field(default_factory=Phase)
    relay: Phase = field(default_factory=Phase)
    every: Phase = field(default_factory=Phase)
    save_failed: int = 0
    closed: int = 0
    raised: Counter[str] = field(default_factory=Counter)
    setup_seconds: float = 0.0
    check: Check = field(default_factory=Check)
    sql: SqlCount = field(default_factory=SqlCount)
    sql_guided: SqlCount = field(default_factory=SqlCount)
    sql_total: SqlCount = field(default_factory=SqlCount)

    @property
    def failed(self) -> int:
        """Updates the user saw fail: raised out of the engine, or answered 'save failed'."""
        return sum(self.raised.values()) + self.save_failed


class ErrorCounter(logging.Handler):
    """Counts what the services log at ERROR, instead of letting tracebacks flood the figures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "-"
        self.counts[f"{record.name}: {record.getMessage()} ({kind})"] += 1


@contextmanager
def counting_errors() -> Iterator[ErrorCounter]:
    root = logging.getLogger()
    handler = ErrorCounter()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# -- the scenario -----------------------------------------------------------------------------


class Chat:
    """One simulated user: the same pseudonym, sender and lock key for every update."""

    def __init__(self, services: Services, index: int, result: Result) -> None:
        self.index = index
        self.services = services
        self.result = result
        self.pseudonym = services.identities.pseudonym(channel=CHANNEL, identifier=str(index))
        self.sender = Sender(CHANNEL, self.pseudonym)
        self.key = StorageKey(bot_id=0, chat_id=0, user_id=0, destiny=f"bench:{self.pseudonym}")
        self.failed_text = services.catalogue.text("de", "flow.save_failed")
        self.closed_text = services.catalogue.text("de", "flow.conversation_closed")

    async def send(self, inbound: Inbound, phase: Phase) -> None:
        # The lock wait counts as latency: a real adapter cannot answer before it has the lock.
        started = time.perf_counter()
        try:
            async with self.services.isolation.lock(self.key):
                replies = await self.services.engine.handle(sender=self.sender, inbound=inbound)
        except Exception as error:  # noqa: BLE001  (counted and shown; the run goes on)
            self.result.raised[type(error).__name__] += 1
            replies = []
        ended = time.perf_counter()
        phase.record(started, ended)
        self.result.every.record(started, ended)
        self._inspect(replies)

    def _inspect(self, replies: list[Reply]) -> None:
        texts = [reply.text for reply in replies]
        self.result.save_failed += texts.count(self.failed_text)
        self.result.closed += texts.count(self.closed_text)

    async def run(self, messages: int, barrier: asyncio.Barrier, burst: bool) -> None:
        for inbound in GUIDED:
            await self.send(inbound, self.result.guided)
        # Every chat finishes its guided path before any relays, so the relay figure measures
        # message writes alone and not a mix with handovers still running in other chats.
        # The last chat to arrive overwrites this snapshot, so it covers the whole guided phase.
        self.result.sql_guided = SqlCount(self.result.sql.statements, self.result.sql.checkouts)
        await barrier.wait()
        texts = [Inbound("text", body(self.index, k)) for k in range(1, messages + 1)]
        if burst:
            # All messages of the chat at once, like updates handled as tasks: only the
            # isolation lock keeps them in order. Tasks are created in sending order.
            await asyncio.gather(*(self.send(inbound, self.result.relay) for inbound in texts))
        else:
            for inbound in texts:
                await self.send(inbound, self.result.relay)


async def warm_up(services: Services) -> None:
    """One untimed chat first: loads the postcode table and fills the connection pool's first
    slot, so one-off start-up costs do not land in the measured p99."""
    chat = Chat(services, -1, Result("warm-up"))
    barrier = asyncio.Barrier(1)
    await chat.run(1, barrier, burst=False)


async def verify(
    services: Services, chats: list[Chat], messages: int, keys: keyring.EpochSecrets
) -> Check:
    """Stored messages are sealed: they are opened with the bench's stand-in team keys, as a
    member's browser would."""
    check = Check(chats=len(chats), expected=len(chats) * messages)
    wanted = {chat.pseudonym: chat for chat in chats}
    stored: dict[str, list[tuple[int, str]]] = defaultdict(list)
    async with services.sessions() as session:
        rows = await session.execute(
            select(
                Contact.pseudonym,
                Message.seq,
                Message.id,
                Message.conversation_id,
                Message.envelope,
                Conversation.team_id,
            )
            .join(Conversation, Conversation.contact_id == Contact.id)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Contact.channel == CHANNEL, Message.sender == "user")
            .order_by(Contact.pseudonym, Message.seq, Message.created_at)
        )
        for pseudonym, seq, message_id, conversation_id, envelope, team_id in rows:
            text = keyring.open_message(
                transcript=keys.transcript,
                team=str(team_id),
                conversation=str(conversation_id),
                message=str(message_id),
                sender="user",
                envelope=envelope,
            )
            stored[pseudonym].append((seq, text))
        per_contact = await session.execute(
            select(Contact.pseudonym, func.count(Conversation.id))
            .join(Conversation, Conversation.contact_id == Contact.id, isouter=True)
            .where(Contact.channel == CHANNEL)
            .group_by(Contact.pseudonym)
        )
        conversations: dict[str, int] = {name: n for name, n in per_contact}
    for pseudonym, chat in wanted.items():
        expected = [body(chat.index, k) for k in range(1, messages + 1)]
        got = stored.get(pseudonym, [])
        bodies = [text for _, text in got]
        seqs = [seq for seq, _ in got]
        check.stored += len(got)
        check.lost += len(set(expected) - set(bodies))
        check.duplicated += len(bodies) - len(set(bodies))
        present = [text for text in bodies if text in set(expected)]
        in_sent_order = present == sorted(set(present), key=expected.index)
        check.out_of_order_chats += not in_sent_order
        check.bad_seq_chats += seqs != list(range(1, len(got) + 1)) or len(got) != messages
        check.conversations_not_one += conversations.get(pseudonym, 0) != 1
        check.chats_in_order += bodies == expected and seqs == list(range(1, messages + 1))
    return check


# -- one backend ------------------------------------------------------------------------------


async def recreate_postgres(url: str) -> str:
    """Drop and create the bench database; returns the server version for the machine line."""
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        name = parsed.database
        # Identifiers cannot be bound parameters, so quote the name from --postgres-url here.
        quoted = '"' + str(name).replace('"', '""') + '"'
        await connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {quoted}")
        version = connection.get_server_version()
        return f"{version.major}.{version.minor}"
    finally:
        await connection.close()


async def drop_postgres(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        quoted = '"' + str(parsed.database).replace('"', '""') + '"'
        await connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await connection.close()


async def flush_redis(url: str) -> str:
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
        info = await redis.info("server")
        return str(info.get("redis_version", "?"))
    finally:
        await redis.aclose()


async def run_backend(*, label: str, url: str, data_dir: Path, args: argparse.Namespace) -> Result:
    result = Result(label)
    setup_started = time.perf_counter()
    if args.redis:
        await flush_redis(args.redis)
    # Alembic's env.py calls asyncio.run itself, so it needs a thread without a running loop.
    await asyncio.to_thread(upgrade, url)
    settings = load_settings(
        env="test",
        data_dir=data_dir,
        database_url=url,
        redis_url=args.redis,
        pseudonym_pepper=new_secret(),
        routing_key=new_secret(),
    )
    services = build_services(settings)
    try:
        await bootstrap(services.sessions, clock=services.clock, create_dev_account=False)
        keys = await give_national_team_keys(services.sessions, clock=services.clock)
        assert keys is not None, "a fresh database: the national team had no keys yet"
        await refresh_referral_index(services)
        # Start-up is done here, as in lotse/app.py: the first user comes next.
        keep_startup_objects()
        await warm_up(services)
        result.setup_seconds = time.perf_counter() - setup_started
        chats = [Chat(services, i, result) for i in range(args.chats)]
        barrier = asyncio.Barrier(len(chats))
        result.sql = count_sql(services)
        with counting_errors() as errors:
            await asyncio.gather(*(chat.run(args.messages, barrier, args.burst) for chat in chats))
        result.sql_total = SqlCount(result.sql.statements, result.sql.checkouts)
        result.check = await verify(services, chats, args.messages, keys)
    finally:
        await close_services(services)
        release_startup_objects()
    print_backend(result, errors.counts)
    return result


def print_backend(result: Result, logged: Counter[str]) -> None:
    every, guided, relay = result.every, result.guided, result.relay
    setup = f"set-up: migrate + bootstrap + warm-up {result.setup_seconds:.1f} s"
    print(f"\n== {result.label}  ({setup})")
    for name, phase in (("all updates", every), ("guided path", guided), ("relay msgs", relay)):
        print(
            f"  {name:<12} {len(phase.latencies):>6} in {phase.wall:6.2f} s"
            f"  = {phase.rate:7.1f} upd/s   p50 {phase.percentile_ms(50):7.1f}"
            f"  p95 {phase.percentile_ms(95):7.1f}  p99 {phase.percentile_ms(99):7.1f} ms"
        )
    relay_sql = result.sql_total.since(result.sql_guided)
    chats = len(guided.latencies) / len(GUIDED)
    if chats and relay.latencies:
        per = len(relay.latencies)
        print(
            f"  SQL per chat's guided path: {result.sql_guided.statements / chats:.1f} statements"
            f" in {result.sql_guided.checkouts / chats:.1f} pool checkouts;"
            f" per relay message: {relay_sql.statements / per:.1f} statements"
            f" in {relay_sql.checkouts / per:.1f} checkouts (each checkout adds a ping)"
        )
    check = result.check
    print(f"  stored {check.stored} of {check.expected} relay messages; {check.line()}")
    if result.save_failed or result.closed or result.raised:
        raised = ", ".join(f"{n}x {name}" for name, n in result.raised.items()) or "none"
        print(
            f"  failures seen by users: {result.save_failed} 'save failed' replies,"
            f" {result.closed} 'conversation closed' replies; raised out of handle(): {raised}"
        )
    for line, n in logged.most_common(5):
        print(f"  logged {n}x {line}")


def print_table(results: list[Result]) -> None:
    head = (
        f"{'backend':<18}{'updates':>8}{'wall s':>8}{'upd/s':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'relay/s':>9}{'relay p95':>10}{'failed':>8}  order"
    )
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        e = r.every
        print(
            f"{r.label:<18}{len(e.latencies):>8}{e.wall:>8.2f}{e.rate:>8.1f}"
            f"{e.percentile_ms(50):>8.1f}{e.percentile_ms(95):>8.1f}{e.percentile_ms(99):>8.1f}"
            f"{r.relay.rate:>9.1f}{r.relay.percentile_ms(95):>10.1f}{r.failed:>8}"
            f"  {r.check.short()}"
        )
    if any(r.failed for r in results):
        # A failed update returns fast, so rates and latencies of such a run flatter the system.
        print("rows with failed updates are not comparable: fix the failures first (see above)")


def machine_line(extra: list[str]) -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # Others may share the machine (tests running in parallel): the load says how busy it was.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    parts = [
        f"{usable} usable cores (of {os.cpu_count()}), load {load:.1f} before start",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"{platform.system()} {platform.machine()}",
        f"SQLAlchemy {sqlalchemy.__version__}",
        f"SQLite {sqlite3.sqlite_version}",
        *extra,
    ]
    return "machine: " + ", ".join(parts)


async def main_async(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgres"] if args.db == "all" else [args.db]
    extra: list[str] = []
    if "postgres" in backends:
        extra.append(f"PostgreSQL {await recreate_postgres(args.postgres_url)}")
    if args.redis:
        extra.append(f"Redis {await flush_redis(args.redis)}")
    print(machine_line(extra))
    mode = "Redis" if args.redis else "memory"
    print(
        f"scenario: {args.chats} chats x ({len(GUIDED)} guided + {args.messages} relay) updates,"
        f" chats concurrent, FSM storage and isolation: {mode}"
        + (", relay messages of a chat sent as a burst" if args.burst else "")
    )
    results: list[Result] = []
    suffix = "+redis" if args.redis else ""
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="lotse-bench-") as tmp:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            else:
                url = args.postgres_url
            try:
                results.append(
                    await run_backend(
                        label=backend + suffix, url=url, data_dir=Path(tmp), args=args
                    )
                )
            finally:
                if backend == "postgres" and not args.keep:
                    await drop_postgres(url)
    print_table(results)
    ok = all(r.check.chats_in_order == r.check.chats and not r.failed for r in results)
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--chats", type=int, default=200, help="concurrent chats (default 200)")
    parser.add_argument(
        "--messages", type=int, default=10, help="relay messages per chat (default 10)"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="use Redis FSM storage and isolation; this database is FLUSHED first",
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help=f"default {POSTGRES_URL}")
    parser.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL bench database afterwards"
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="send each chat's relay messages all at once and let the isolation lock order them",
    )
    args = parser.parse_args(argv)
    if args.chats < 1 or args.messages < 1:
        parser.error("--chats and --messages must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
