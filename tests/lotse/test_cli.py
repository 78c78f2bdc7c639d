import asyncio
import re

import pytest

from core.db import create_engine, create_sessionmaker, transaction
from counsellor_console.auth import authenticate
from lotse.cli import main


@pytest.fixture
def fresh_env(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LOTSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOTSE_ENV", "development")
    return url


async def can_log_in(url, login, password):
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await authenticate(session, login=login, password=password) is not None
    finally:
        await engine.dispose()


async def test_account_create_prints_a_password_that_logs_in(fresh_env, capsys):
    assert await asyncio.to_thread(main, ["account", "create", "anna"]) == 0
    password = re.search(r"One-time password: (\S+)", capsys.readouterr().out).group(1)
    assert await can_log_in(fresh_env, "anna", password)
    assert not await can_log_in(fresh_env, "anna", password + "x")


async def test_account_create_refuses_a_taken_login_and_unknown_team(fresh_env, capsys):
    assert await asyncio.to_thread(main, ["account", "create", "anna"]) == 0
    assert await asyncio.to_thread(main, ["account", "create", "anna"]) == 1
    assert await asyncio.to_thread(main, ["account", "create", "bob", "--team", "nope"]) == 1
    assert "no team 'nope'" in capsys.readouterr().err


def test_production_without_secrets_stops_with_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOTSE_ENV", "production")
    monkeypatch.setenv("LOTSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LOTSE_PSEUDONYM_PEPPER", raising=False)
    monkeypatch.delenv("LOTSE_ROUTING_KEY", raising=False)
    assert main(["migrate"]) == 2
    assert "LOTSE_PSEUDONYM_PEPPER" in capsys.readouterr().err
