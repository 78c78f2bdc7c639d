"""Short-lived in-process caches for the console API's hottest reads: which account a session
cookie belongs to (a few seconds), and a team's queue (about a second).

Without them every request was a database transaction for the session and the queue a
select of every open conversation with its contact: 450 and 160 requests/s on one worker
(bench/README.md). What makes them safe:

- Writes in this process invalidate at once, whoever makes them: `WriteWatcher` listens to
  the ORM sessions of the app's engine and, on commit, drops what a write to `counsellors` or
  `console_sessions` (logout, expiry, disabling, availability) or to `conversations`,
  `contacts` or `messages` (claim, handover, close, a message) can have changed. No caller has
  to remember the caches.
- Other processes hear about session changes on the bus (`SESSIONS_CHANNEL`) and about queue
  changes through the team channels they already publish on; a write that never passes an app
  process (SQL by hand) is seen once the TTL has passed. The TTL is the bound either way.
- A cached login never outlives its session's idle or absolute deadline, and a read that
  raced an invalidation is not stored (the epochs below).
- Callers get fresh detached copies, as from a database session that closed: nothing a handler
  does to them reaches the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, make_transient_to_detached
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from core.clock import Clock
from core.events import EventBus, team_channel
from core.models import ConsoleSession, Contact, Conversation, Counsellor, Message
from core.schemas import ConversationSummary
from counsellor_console.auth import SessionPolicy

if TYPE_CHECKING:
    from core.conversations import ConversationService

log = logging.getLogger(__name__)
SESSION_TTL = timedelta(seconds=5)
QUEUE_TTL = timedelta(seconds=1)
SESSIONS_CHANNEL = "console:sessions"
# Only live sessions are stored, so this is about how many consoles are open; past it the
# expired entries go, and if that is not enough, all of them.
MAX_SESSIONS = 20_000
_SESSION_TABLES = frozenset({"counsellors", "console_sessions"})
_QUEUE_TABLES = frozenset({"conversations", "contacts", "messages"})
_queue_json = TypeAdapter(list[ConversationSummary])
Login = tuple[Counsellor, ConsoleSession]


def _columns(model: type[Any]) -> tuple[str, ...]:
    return tuple(attr.key for attr in inspect(model).column_attrs)


_COUNSELLOR_COLUMNS = _columns(Counsellor)
_SESSION_COLUMNS = _columns(ConsoleSession)


def _revive(model: type[Any], values: dict[str, Any]) -> Any:
    """A detached instance like one a closed session hands back; lists and dicts copied.
    Loaded as the ORM loads a row (no constructor, no attribute events): a third of the time."""
    instance = inspect(model).class_manager.new_instance()
    instance.__dict__.update(
        {k: (v.copy() if isinstance(v, list | dict) else v) for k, v in values.items()}
    )
    make_transient_to_detached(instance)
    return instance


@dataclass(frozen=True)
class _CachedLogin:
    counsellor_id: uuid.UUID
    counsellor: dict[str, Any]
    session: dict[str, Any]
    deadline: datetime


class SessionCache:
    """Token digest -> snapshot of the account and the session row of a resolved login."""

    def __init__(self, *, clock: Clock, ttl: timedelta = SESSION_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[str, _CachedLogin] = {}
        # Bumped by every invalidation; a resolution that started before one is not stored.
        self.epoch = 0

    def get(self, digest: str) -> Login | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self._clock.now() >= entry.deadline:
            self._entries.pop(digest, None)
            return None
        return _revive(Counsellor, entry.counsellor), _revive(ConsoleSession, entry.session)

    def put(self, digest: str, login: Login, *, policy: SessionPolicy, epoch: int) -> None:
        if epoch != self.epoch:
            return
        counsellor, row = login
        # Never past the moment the database would refuse the session itself.
        deadline = min(
            self._clock.now() + self._ttl,
            row.last_seen_at + policy.idle,
            row.created_at + policy.absolute,
        )
        if len(self._entries) >= MAX_SESSIONS:
            self._sweep()
        self._entries[digest] = _CachedLogin(
            counsellor_id=counsellor.id,
            counsellor={k: getattr(counsellor, k) for k in _COUNSELLOR_COLUMNS},
            session={k: getattr(row, k) for k in _SESSION_COLUMNS},
            deadline=deadline,
        )

    def drop_counsellors(self, ids: Iterable[uuid.UUID]) -> None:
        gone = set(ids)
        self.epoch += 1
        for digest in [d for d, e in self._entries.items() if e.counsellor_id in gone]:
            del self._entries[digest]

    def drop_all(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self) -> None:
        now = self._clock.now()
        self._entries = {d: e for d, e in self._entries.items() if now < e.deadline}
        if len(self._entries) >= MAX_SESSIONS:
            self._entries.clear()


class QueueCache:
    """(team, view) -> the queue as JSON. The view is what `list_queue` answers differently
    for: today the team alone, the role kept apart so that a lead's view can never be served
    to a counsellor (tests/console/test_session_cache.py checks that two members with the same
    team and role get the same answer; if that changes, so must `view`)."""

    def __init__(self, *, clock: Clock, bus: EventBus, ttl: timedelta = QUEUE_TTL) -> None:
        self._clock = clock
        self._bus = bus
        self._ttl = ttl
        self._entries: dict[uuid.UUID | None, dict[str, tuple[bytes, datetime]]] = {}
        self._generations: dict[uuid.UUID | None, int] = {}
        self.epoch = 0
        # Teams whose channel this process listens to: only their queues are cached, so that
        # a change made by another process is seen at once, not only after the TTL.
        self._listening: set[uuid.UUID | None] = set()
        self._listeners: dict[uuid.UUID | None, asyncio.Task[None]] = {}
        self.inflight: dict[
            tuple[uuid.UUID | None, str], tuple[tuple[int, int], asyncio.Future[bytes]]
        ] = {}

    @staticmethod
    def view(counsellor: Counsellor) -> str:
        return counsellor.role

    def token(self, team_id: uuid.UUID | None) -> tuple[int, int]:
        """Taken before reading the queue from the database; `put` refuses the result if the
        team's queue was invalidated meanwhile. Starts listening to the team's channel, which
        is usually ready by the time the read is done."""
        self._listen(team_id)
        return self.epoch, self._generations.get(team_id, 0)

    def get(self, team_id: uuid.UUID | None, view: str) -> bytes | None:
        entry = self._entries.get(team_id, {}).get(view)
        if entry is None or self._clock.now() >= entry[1]:
            return None
        return entry[0]

    def put(
        self, team_id: uuid.UUID | None, view: str, body: bytes, *, token: tuple[int, int]
    ) -> None:
        if team_id not in self._listening or token != self.token(team_id):
            return
        self._entries.setdefault(team_id, {})[view] = (body, self._clock.now() + self._ttl)

    def drop_team(self, team_id: uuid.UUID | None) -> None:
        self._generations[team_id] = self._generations.get(team_id, 0) + 1
        self._entries.pop(team_id, None)

    def drop_all(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def _listen(self, team_id: uuid.UUID | None) -> None:
        if team_id is None or team_id in self._listeners:
            return
        self._listeners[team_id] = asyncio.create_task(
            self._follow(team_id), name=f"queue-cache-{team_id}"
        )

    async def _follow(self, team_id: uuid.UUID) -> None:
        try:
            async with self._bus.subscribe(team_channel(team_id)) as events:
                self._listening.add(team_id)
                while True:
                    await events.get()
                    # Any event of the team (a message too: it moves last_message_at).
                    self.drop_team(team_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("queue cache lost its team channel", exc_info=True)
        finally:
            self._listening.discard(team_id)
            self._listeners.pop(team_id, None)
            self.drop_team(team_id)

    async def close(self) -> None:
        tasks = list(self._listeners.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._entries.clear()


@dataclass
class _Pending:
    counsellors: set[uuid.UUID] = field(default_factory=set)
    all_sessions: bool = False
    queues: bool = False

    def __bool__(self) -> bool:
        return bool(self.counsellors) or self.all_sessions or self.queues


class WriteWatcher:
    """Turns the writes of the app's ORM sessions into cache invalidations.

    Listeners sit on the `Session` class (SQLAlchemy has no per-sessionmaker events for
    asyncio) and ignore sessions bound to another engine. Each write is applied once when it
    is flushed (so nothing is cached from a read in between) and again on commit, when it is
    also told to other processes; a rollback only costs a few cache misses."""

    _key = "lotse.console_cache"

    def __init__(self, *, engine: AsyncEngine, cache: ConsoleCache) -> None:
        self._engine = engine.sync_engine
        self._cache = cache
        self._publishing: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        event.listen(Session, "do_orm_execute", self._on_execute)
        event.listen(Session, "after_flush", self._on_flush)
        event.listen(Session, "after_commit", self._on_commit)
        event.listen(Session, "after_rollback", self._on_rollback)

    async def remove(self) -> None:
        event.remove(Session, "do_orm_execute", self._on_execute)
        event.remove(Session, "after_flush", self._on_flush)
        event.remove(Session, "after_commit", self._on_commit)
        event.remove(Session, "after_rollback", self._on_rollback)
        await asyncio.gather(*self._publishing, return_exceptions=True)

    def _pending(self, session: Session) -> _Pending | None:
        if session.bind is not self._engine:
            return None
        pending: _Pending | None = session.info.get(self._key)
        if pending is None:
            pending = session.info[self._key] = _Pending()
        return pending

    def _on_execute(self, state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete or state.is_insert):
            return
        pending = self._pending(state.session)
        if pending is None:
            return
        statement = state.statement
        table = getattr(getattr(statement, "table", None), "name", None)
        if table in _SESSION_TABLES:
            # Bulk statements: the heartbeat, availability and logout name one account by id;
            # anything else (the expiry job) has all logins looked up again.
            counsellor_id = _one_counsellor(statement) if table == "counsellors" else None
            if counsellor_id is None:
                pending.all_sessions = True
            else:
                pending.counsellors.add(counsellor_id)
        elif table in _QUEUE_TABLES:
            pending.queues = True
        else:
            return
        self._apply(pending)

    def _on_flush(self, session: Session, _flush: UOWTransaction) -> None:
        pending = self._pending(session)
        if pending is None:
            return
        for instance in (*session.new, *session.dirty, *session.deleted):
            if isinstance(instance, Counsellor):
                pending.counsellors.add(instance.id)
            elif isinstance(instance, ConsoleSession):
                if instance in session.dirty and _only_seen_moved(instance):
                    continue  # the own touch of `resolve_session` only extends the session
                pending.counsellors.add(instance.counsellor_id)
            elif isinstance(instance, Conversation | Contact | Message):
                pending.queues = True
        if pending:
            self._apply(pending)

    def _on_commit(self, session: Session) -> None:
        pending: _Pending | None = session.info.pop(self._key, None)
        if not pending or session.bind is not self._engine:
            return
        self._apply(pending)
        if pending.counsellors or pending.all_sessions:
            self._announce(pending)

    def _on_rollback(self, session: Session) -> None:
        session.info.pop(self._key, None)

    def _apply(self, pending: _Pending) -> None:
        if pending.all_sessions:
            self._cache.sessions.drop_all()
        elif pending.counsellors:
            self._cache.sessions.drop_counsellors(pending.counsellors)
        if pending.queues:
            self._cache.queues.drop_all()

    def _announce(self, pending: _Pending) -> None:
        event_ = {
            "type": "sessions.changed",
            "all": pending.all_sessions,
            "counsellors": [str(i) for i in pending.counsellors],
        }
        task = asyncio.get_running_loop().create_task(self._publish(event_))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, event_: dict[str, Any]) -> None:
        try:
            await self._cache.bus.publish(SESSIONS_CHANNEL, event_)
        except Exception:
            # Other processes then see the change after the TTL; this one has already.
            log.warning("session invalidation not published", exc_info=True)


def _one_counsellor(statement: Any) -> uuid.UUID | None:
    """X in `... WHERE counsellors.id = X`, else None."""
    where = getattr(statement, "whereclause", None)
    if not isinstance(where, BinaryExpression) or where.operator is not operator.eq:
        return None
    left, right = where.left, where.right
    if getattr(left, "key", None) != "id" or not isinstance(right, BindParameter):
        return None
    value = right.effective_value
    return value if isinstance(value, uuid.UUID) else None


def _only_seen_moved(row: ConsoleSession) -> bool:
    state = inspect(row)
    return not any(
        state.attrs[key].history.has_changes() for key in _SESSION_COLUMNS if key != "last_seen_at"
    )


class ConsoleCache:
    """Both caches, the watcher that invalidates them, and the listener for other processes'
    session changes. Used only while `active` (between `start` and `stop`, the app's
    lifespan): without the watcher nothing would invalidate them."""

    def __init__(self, *, engine: AsyncEngine, clock: Clock, bus: EventBus) -> None:
        self.bus = bus
        self.sessions = SessionCache(clock=clock)
        self.queues = QueueCache(clock=clock, bus=bus)
        self._watcher = WriteWatcher(engine=engine, cache=self)
        self._listener: asyncio.Task[None] | None = None
        self.active = False

    async def start(self) -> None:
        self._watcher.install()
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._follow(subscribed), name="session-cache")
        # Not active before other processes' invalidations can reach it.
        await asyncio.wait(
            [asyncio.ensure_future(subscribed.wait()), self._listener],
            return_when=asyncio.FIRST_COMPLETED,
        )
        self.active = subscribed.is_set()

    async def stop(self) -> None:
        self.active = False
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.queues.close()
        await self._watcher.remove()
        self.sessions.drop_all()

    async def _follow(self, subscribed: asyncio.Event) -> None:
        try:
            async with self.bus.subscribe(SESSIONS_CHANNEL) as events:
                subscribed.set()
                while True:
                    changed = await events.get()
                    if changed.get("all"):
                        self.sessions.drop_all()
                    else:
                        self.sessions.drop_counsellors(
                            uuid.UUID(i) for i in changed.get("counsellors", ())
                        )
        except asyncio.CancelledError:
            raise
        except Exception:
            # Without the other processes' news the cache would only have the TTL: off.
            log.warning("session cache lost its channel, switched off", exc_info=True)
            self.active = False
            self.sessions.drop_all()


async def cached_login(
    cache: SessionCache,
    *,
    digest: str,
    policy: SessionPolicy,
    resolve: Any,
) -> Login | None:
    """The login from the cache, else from `resolve()` (the database), stored for next time."""
    login = cache.get(digest)
    if login is not None:
        return login
    epoch = cache.epoch
    login = await resolve()
    if login is not None:
        cache.put(digest, login, policy=policy, epoch=epoch)
    return login


async def queue_json(
    *, cache: QueueCache | None, conversations: ConversationService, counsellor: Counsellor
) -> bytes:
    """The counsellor's queue as JSON, as the API sends it."""
    if cache is None:
        return _queue_json.dump_json(await conversations.list_queue(counsellor=counsellor))
    team_id, view = counsellor.team_id, cache.view(counsellor)
    body = cache.get(team_id, view)
    if body is not None:
        return body
    token = cache.token(team_id)
    # One read per team and view at a time: when an entry ends, the requests in flight
    # (16 under the bench) would otherwise all read the same queue at once. Only a read that
    # started after the last invalidation is shared.
    key = (team_id, view)
    flight = cache.inflight.get(key)
    if flight is not None and flight[0] == token:
        return await asyncio.shield(flight[1])
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    cache.inflight[key] = (token, future)
    try:
        body = _queue_json.dump_json(await conversations.list_queue(counsellor=counsellor))
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as error:
        future.set_exception(error)
        future.exception()  # retrieved: nobody else may be waiting
        raise
    else:
        future.set_result(body)
        cache.put(team_id, view, body, token=token)
        return body
    finally:
        if cache.inflight.get(key, (None, None))[1] is future:
            del cache.inflight[key]
