"""The migrations build exactly the schema the models describe, on the suite's database, and
they go down and up again: a hand-written migration that drifts from a model fails here."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine

import core.models  # noqa: F401 - the tables register on Base.metadata
import directory.models  # noqa: F401
from core.db import Base
from lotse import migrate


def _sync_url(url: str) -> str:
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


def _compare(connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "render_as_batch": True}
    )
    return [
        diff
        for diff in compare_metadata(context, Base.metadata)
        # SQLite reports JSON and some server defaults loosely; types are what matter.
        if not (isinstance(diff, list) and diff and diff[0][0] == "modify_default")
    ]


def _differences(url: str) -> list[object]:
    engine = create_sync_engine(_sync_url(url))
    try:
        with engine.connect() as connection:
            return _compare(connection)
    finally:
        engine.dispose()


async def test_the_suites_database_matches_the_models(database_url):
    """On the database the suite runs on: PostgreSQL in CI's second run, where types differ
    most from SQLite's."""
    from core.db import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_compare) == []
    finally:
        await engine.dispose()


async def test_the_migrated_schema_matches_the_models(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/schema.db"
    await asyncio.to_thread(migrate.upgrade, url)
    assert await asyncio.to_thread(_differences, url) == []


async def test_the_newest_migration_goes_down_and_up_again(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/roundtrip.db"
    await asyncio.to_thread(migrate.upgrade, url)
    config = migrate.alembic_config(url)
    from alembic import command

    await asyncio.to_thread(command.downgrade, config, "-1")
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await asyncio.to_thread(_differences, url) == []


async def test_follow_up_answers_move_into_the_statistics_and_back(tmp_path):
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite+aiosqlite:///{tmp_path}/answers.db"
    await asyncio.to_thread(migrate.upgrade, url, "0007")
    engine = create_sync_engine(_sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO followup_answers (id, answer, topics, federal_state, month) "
                    "VALUES ('0b7c1a6e0c6e4bb8a7c5a1c0d0e0f001', 'helped', '[\"visits\"]', "
                    "'BE', '2026-11')"
                )
            )
        await asyncio.to_thread(migrate.upgrade, url)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT unit, answer, topics, federal_state, month FROM stat_events")
            ).all()
        assert [tuple(r) for r in rows] == [("followup", "helped", '["visits"]', "BE", "2026-11")]
        await asyncio.to_thread(command.downgrade, migrate.alembic_config(url), "0007")
        with engine.connect() as connection:
            back = connection.execute(text("SELECT answer, month FROM followup_answers")).all()
        assert [tuple(r) for r in back] == [("helped", "2026-11")]
    finally:
        engine.dispose()
