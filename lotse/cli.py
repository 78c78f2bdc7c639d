"""The `lotse` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import sys

from core import logs
from core.clock import SystemClock
from core.db import create_engine, create_sessionmaker
from core.settings import Settings, SettingsError, load_settings
from lotse import migrate
from lotse.bootstrap import DevAccount, bootstrap


async def _prepare(settings: Settings) -> DevAccount | None:
    engine = create_engine(settings.database_url)
    try:
        return await bootstrap(
            create_sessionmaker(engine),
            clock=SystemClock(),
            create_dev_account=settings.create_dev_account and not settings.is_production,
        )
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings) -> int:
    migrate.upgrade(settings.database_url)
    print("Database is up to date.")
    return 0


def cmd_serve(settings: Settings) -> int:
    import uvicorn

    from lotse.app import create_app

    migrate.upgrade(settings.database_url)
    account = asyncio.run(_prepare(settings))
    if account is not None:
        # Printed once, to the operator's terminal only; it is never logged or shown again.
        print(
            f"Development account created: login '{account.login}', password '{account.password}'",
            flush=True,
        )
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"Lotse is listening on {url}  (console: {url}/console, web chat: {url}/chat)", flush=True
    )
    if not settings.bot_token:
        print("No TELEGRAM_BOT_TOKEN set: Telegram is off; try the web chat instead.", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lotse", description="Lotse counselling service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run console, web chat, Telegram bot and scheduler")
    sub.add_parser("migrate", help="upgrade the database schema")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    commands = {"serve": cmd_serve, "migrate": cmd_migrate}
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
