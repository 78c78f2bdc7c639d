"""Shared fixtures. The suite runs on the embedded defaults (SQLite, memory) or, when
LOTSE_TEST_DATABASE_URL / LOTSE_TEST_REDIS_URL are set, on PostgreSQL and Redis. A configured
service that is unreachable fails the run; it is never skipped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import FakeClock
from core.conversations import NATIONAL
from core.db import Base
from core.models import Team
from core.settings import Settings, load_settings, new_secret
from lotse import migrate
from lotse.bootstrap import bootstrap
from lotse.runtime import Services, build_services, close_services
from referral.api import refresh_referral_index
from tests.keyring import give_team_keys

TEST_DATABASE_URL = os.environ.get("LOTSE_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("LOTSE_TEST_REDIS_URL")
SECRETS = {
    "pseudonym_pepper": new_secret(),
    "routing_key": new_secret(),
}


def backend_label() -> str:
    database = "postgresql" if TEST_DATABASE_URL else "sqlite"
    state = "redis" if TEST_REDIS_URL else "memory"
    return f"db={database} state={state}"


def pytest_report_header() -> str:
    return f"lotse backends: {backend_label()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests last: fast feedback first, and Playwright's sync API (which runs its own
    event loop on the main thread while a browser is open) never overlaps an asyncio test."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


async def _reset_postgres(url: str) -> None:
    from core.db import create_engine

    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for the whole session (tables are emptied between tests)."""
    if TEST_DATABASE_URL:
        asyncio.run(_reset_postgres(TEST_DATABASE_URL))
        url = TEST_DATABASE_URL
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'lotse.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        env="test",
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        telegram_bot_token=None,
        **SECRETS,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _empty_tables(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())


@pytest.fixture
async def services(settings: Settings, clock: FakeClock) -> AsyncIterator[Services]:
    services = build_services(settings, clock=clock)
    await _empty_tables(services.sessions)
    if services.redis is not None:
        await services.redis.flushdb()
    await bootstrap(services.sessions, clock=clock, create_dev_account=False)
    # The national team holds keys, as a lead's browser would have made them: without any,
    # no conversation could be stored (tests/keyring.py reads what the server sealed).
    async with services.sessions() as session:
        national = await session.scalar(select(Team.id).where(Team.slug == NATIONAL))
    await give_team_keys(services, national)
    await refresh_referral_index(services)
    yield services
    await close_services(services)
