import asyncio
import json

import pytest

from core.db import create_engine, create_sessionmaker
from core.settings import new_secret
from directory.service import referral_records
from lotse.cli import main


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LOTSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOTSE_ENV", "development")
    monkeypatch.setenv("LOTSE_LOG_LEVEL", "WARNING")
    return url


async def run(*argv):
    return await asyncio.to_thread(main, ["directory", *argv])


async def services_in(url):
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            return {record.service_id for record in await referral_records(session)}
    finally:
        await engine.dispose()


async def test_generate_validate_import_export_all_exit_0(cli_env, tmp_path, capsys):
    generated, exported = tmp_path / "synthetic.json", tmp_path / "export.zip"
    assert await run("generate", str(generated), "--count", "30", "--seed", "2") == 0
    doc = json.loads(generated.read_text(encoding="utf-8"))
    assert all(org["synthetic"] for org in doc["organizations"])
    assert all(s["synthetic"] for org in doc["organizations"] for s in org["services"])

    assert await run("validate", str(generated)) == 0
    assert await run("import", str(generated)) == 0
    assert await run("export", str(exported)) == 0

    out = capsys.readouterr().out
    assert "Valid: " in out and "30 services" in out
    assert "Imported " in out and "Exported to " in out
    assert exported.exists()
    assert len(await services_in(cli_env)) > 0


async def test_problems_exit_1_with_the_report_table(cli_env, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    assert await run("generate", str(bad), "--count", "5") == 0
    doc = json.loads(bad.read_text(encoding="utf-8"))
    doc["organizations"][0]["services"] = [{"name": "ohne id"}]
    bad.write_text(json.dumps(doc), encoding="utf-8")

    assert await run("validate", str(bad)) == 1
    assert await run("import", str(bad)) == 1

    captured = capsys.readouterr()
    assert "file      row                           field" in captured.out
    assert "organizations[0].services[0]  id" in captured.out
    assert "nothing was written" in captured.err


async def test_production_refuses_synthetic_data_with_exit_1(
    cli_env, tmp_path, monkeypatch, capsys
):
    generated = tmp_path / "synthetic.zip"
    assert await run("generate", str(generated), "--count", "10") == 0
    monkeypatch.setenv("LOTSE_ENV", "production")
    monkeypatch.setenv("LOTSE_PSEUDONYM_PEPPER", new_secret())
    monkeypatch.setenv("LOTSE_ROUTING_KEY", new_secret())

    assert await run("import", str(generated)) == 1

    assert "synthetic data is never imported in production" in capsys.readouterr().out
    assert await services_in(cli_env) == set()


async def test_unusable_paths_and_usage_errors_exit_2(cli_env, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert await run("validate", str(tmp_path / "missing.json")) == 2
    assert await run("import", str(tmp_path / "notes.txt")) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        await run("generate", str(tmp_path / "x.json"))
    assert usage.value.code == 2
