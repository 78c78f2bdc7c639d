"""Database engine, sessions and the declarative base shared by every package's models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Connections one process keeps to a server database (PostgreSQL); waiters queue for a free one.
POOL_SIZE = 15


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive ones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; take time from the Clock")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Parameters are hidden so that no message text or identifier ever reaches a log line."""
    options: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    else:
        # The same ceiling as SQLAlchemy's default (5 + 10 overflow), but all of it kept: under
        # load, overflow connections were closed on return and opened again moments later
        # (TCP, authentication, type codecs), about one in 30 updates.
        options.update(pool_size=POOL_SIZE, max_overflow=0)
    options.update(kwargs)
    ping = options["pool_pre_ping"] and url.startswith("postgresql+asyncpg")
    if ping:
        # Pinged on checkout below instead: SQLAlchemy's asyncpg ping wraps its query in
        # BEGIN and ROLLBACK, three round trips on every checkout, more than a message costs.
        options["pool_pre_ping"] = False
    engine = create_async_engine(url, **options)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    if ping:
        event.listen(engine.sync_engine, "checkout", _ping_asyncpg)
    return engine


def _ping_asyncpg(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """The pre-ping in one round trip: the simple query protocol, so no prepared statement and
    no open transaction (safe behind PgBouncer in transaction mode too). A connection that
    fails it is dead: the pool drops every connection as old as it and checks out a new one,
    as SQLAlchemy's own pre-ping does."""
    try:
        dbapi_connection.run_async(lambda connection: connection.execute("SELECT 1"))
    except Exception as error:
        raise exc.InvalidatePoolError() from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the console read while the bot writes; foreign keys make deletion really cascade.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session
