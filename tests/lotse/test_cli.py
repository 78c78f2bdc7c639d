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


async def test_account_invite_prints_a_one_time_link(fresh_env, capsys):
    assert (
        await asyncio.to_thread(
            main,
            ["account", "invite", "Anna (Caritas)", "--base-url", "https://lotse.example.org"],
        )
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"https://lotse\.example\.org/console/invite/[\w-]{40,}", out)
    assert await asyncio.to_thread(main, ["account", "invite", "X", "--team", "nope"]) == 1


def test_keys_recovery_writes_an_owner_only_key_whose_public_half_opens_nothing_alone(
    tmp_path, capsys, monkeypatch
):
    import os
    import stat

    from core import crypto

    monkeypatch.setenv("LOTSE_RECOVERY_PASSPHRASE", "lange geheime passphrase")
    path = tmp_path / "recovery.pem"
    assert main(["keys", "recovery", str(path)]) == 0
    made = re.search(r"Recovery public key: (\S+)", capsys.readouterr().out).group(1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert main(["keys", "recovery", str(path)]) == 1, "never overwritten"
    assert main(["keys", "public", str(path)]) == 0
    assert made in capsys.readouterr().out
    # The recovery key opens what was sealed to its public half.
    envelope = crypto.seal_to(
        recipient=crypto.from_b64url(made), plaintext=b"epoch key", kid="k", epoch=1, context={}
    )
    private = crypto.load_private_key_pem(path.read_bytes(), b"lange geheime passphrase")
    assert crypto.open_sealed(private=private, envelope=envelope, context={}) == b"epoch key"
    monkeypatch.setenv("LOTSE_RECOVERY_PASSPHRASE", "falsch")
    assert main(["keys", "public", str(path)]) == 1
    assert "lange geheime" not in capsys.readouterr().err


def test_serve_runs_uvicorn_on_uvloop_and_httptools(fresh_env, monkeypatch, capsys):
    import uvicorn
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from lotse.runtime import close_services

    started: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options, app=app))
    assert main(["serve"]) == 0
    app = started.pop("app")
    try:
        # Resolved as uvicorn.run resolves its options: "auto" must find both installed.
        config = uvicorn.Config(app, **started)
        config.load()
        assert config.http_protocol_class is HttpToolsProtocol
        loop = config.get_loop_factory()()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.run(close_services(app.state.services))
    assert "Lotse is listening on" in capsys.readouterr().out


async def test_statistics_list_and_export_the_published_report(fresh_env, tmp_path, capsys):
    """The operator's way to the figures (for a funder's report): the same protected tables
    as the dashboard. The real clock decides which quarters are complete."""
    from datetime import UTC, datetime

    from core.models import StatEvent
    from core.statistics import period_of, previous
    from lotse import migrate

    await asyncio.to_thread(migrate.upgrade, fresh_env)
    last = previous(period_of(datetime.now(UTC).strftime("%Y-%m"), "quarter"))
    engine = create_engine(fresh_env)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            for i in range(12):
                session.add(
                    StatEvent(
                        unit="conversation",
                        month=last.months[1],
                        role="teen" if i % 2 else "caregiver",
                        federal_state="BE" if i < 9 else "HB",
                        topics=["visits"],
                        outcomes=[],
                        crisis=False,
                    )
                )
    finally:
        await engine.dispose()
    assert await asyncio.to_thread(main, ["statistics", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == last.key
    out = tmp_path / "figures.csv"
    command = ["statistics", "export", last.key, "--output", str(out)]
    assert await asyncio.to_thread(main, command) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("period,table,unit,row_dimension,row,row_label")
    grand = [
        line
        for line in lines
        if line.startswith(f"{last.key},conversations_by_state,")
        and ",total,Gesamt,role,total,Gesamt," in line
    ]
    assert grand == [
        f"{last.key},conversations_by_state,conversation,state,total,Gesamt,role,total,Gesamt,12"
    ]
    assert any(line.endswith(",<5") for line in lines)  # Bremen's three
    assert (
        await asyncio.to_thread(main, ["statistics", "export", last.key, "--format", "json"]) == 0
    )
    assert '"period": "' + last.key + '"' in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["statistics", "export", "2999-Q1"]) == 2
    assert "not a completed quarter" in capsys.readouterr().err


async def test_migrate_builds_the_schema_and_a_second_run_changes_nothing(fresh_env, capsys):
    from sqlalchemy import inspect

    assert await asyncio.to_thread(main, ["migrate"]) == 0
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    engine = create_engine(fresh_env)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert {
        "conversations",
        "messages",
        "stat_events",
        "stat_reports",
        "alembic_version",
    } <= tables


async def test_account_reset_login_prints_a_new_password_and_the_old_one_is_gone(
    fresh_env, capsys
):
    assert await asyncio.to_thread(main, ["account", "create", "anna"]) == 0
    old = re.search(r"One-time password: (\S+)", capsys.readouterr().out).group(1)
    assert await asyncio.to_thread(main, ["account", "reset-login", "anna"]) == 0
    out = capsys.readouterr().out
    new = re.search(r"One-time password: (\S+)", out).group(1)
    assert "second factor anew" in out
    assert await can_log_in(fresh_env, "anna", new)
    assert not await can_log_in(fresh_env, "anna", old)
    assert await asyncio.to_thread(main, ["account", "reset-login", "nobody"]) == 1
    assert "no account 'nobody'" in capsys.readouterr().err


async def test_team_create_list_and_set_route_by_state_and_language(fresh_env, capsys):
    async def run(*args: str) -> int:
        return await asyncio.to_thread(main, list(args))

    assert await run("team", "create", "bayern", "--name", "Team Bayern", "--states", "BY") == 0
    assert "lotse account invite NAME --role team_lead --team bayern" in capsys.readouterr().out
    assert await run("team", "create", "bayern", "--name", "Noch eins") == 1
    assert "exists already" in capsys.readouterr().err
    assert await run("team", "create", "nord", "--name", "Nord", "--states", "HB,XX") == 1
    assert "unknown federal state XX" in capsys.readouterr().err
    assert await run("team", "create", "Ä", "--name", "Umlaut") == 1
    assert "lowercase" in capsys.readouterr().err
    assert await run("team", "set", "bayern", "--states", "BY,BW", "--languages", "de,tr") == 0
    assert await run("team", "set", "nope", "--name", "x") == 1
    capsys.readouterr()
    assert await run("team", "list") == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "slug\tname\tstates\tlanguages\tkeys"
    assert "bayern\tTeam Bayern\tBW,BY\tde,tr\tno keys yet" in rows
    assert any(row.startswith("bundesweit\t") for row in rows), "the national team is there"
