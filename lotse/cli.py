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
from lotse.bootstrap import ROLES, AccountError, DevAccount, bootstrap, create_account


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


def cmd_account_create(settings: Settings, args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    try:
        password = asyncio.run(_create_account(settings, args))
    except AccountError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    # Printed once to the operator's terminal; only its argon2id hash is stored.
    print(f"Account '{args.login}' created. One-time password: {password}")
    return 0


async def _create_account(settings: Settings, args: argparse.Namespace) -> str:
    engine = create_engine(settings.database_url)
    try:
        return await create_account(
            create_sessionmaker(engine),
            clock=SystemClock(),
            login=args.login,
            display_name=args.display_name or args.login,
            role=args.role,
            team_slug=args.team,
        )
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lotse", description="Lotse counselling service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run console, web chat, Telegram bot and scheduler")
    sub.add_parser("migrate", help="upgrade the database schema")
    account = sub.add_parser("account", help="manage console accounts")
    account_sub = account.add_subparsers(dest="action", required=True)
    create = account_sub.add_parser("create", help="create an account; prints its password once")
    create.add_argument("login")
    create.add_argument("--display-name", default=None)
    create.add_argument("--role", choices=ROLES, default="counsellor")
    create.add_argument("--team", default="bundesweit", help="team slug (default: bundesweit)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if args.command == "account":
        return cmd_account_create(settings, args)
    commands = {"serve": cmd_serve, "migrate": cmd_migrate}
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
