"""The database engine: a pooled connection the server has ended is never handed out."""

import pytest
from sqlalchemy import text

from core.db import create_engine
from tests.conftest import TEST_DATABASE_URL


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="the server ends connections on PostgreSQL")
async def test_connections_the_server_ended_are_replaced_before_use(database_url):
    engine = create_engine(database_url)
    admin = create_engine(database_url)
    try:
        held = [await engine.connect() for _ in range(3)]
        ended = [(await c.execute(text("SELECT pg_backend_pid()"))).scalar() for c in held]
        for connection in held:
            await connection.close()
        async with admin.connect() as connection:
            for pid in ended:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(4):
            async with engine.connect() as connection:
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
            assert pid not in ended
    finally:
        await engine.dispose()
        await admin.dispose()
