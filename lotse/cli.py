"""The `lotse` command: serve, migrate, account, directory."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from core import logs
from core.clock import SystemClock
from core.db import create_engine, create_sessionmaker, transaction
from core.settings import Settings, SettingsError, load_settings
from directory import io as directory_io
from directory.progress import TerminalProgress
from lotse import migrate
from lotse.bootstrap import ROLES, AccountError, DevAccount, bootstrap, create_account


async def _prepare(settings: Settings) -> list[DevAccount]:
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
    for account in asyncio.run(_prepare(settings)):
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


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count)


async def _directory_import(settings: Settings, path: Path) -> directory_io.ImportSummary:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await directory_io.import_file(
                session,
                path=path,
                clock=SystemClock(),
                allow_synthetic=not settings.is_production,
                progress=TerminalProgress(),
            )
    finally:
        await engine.dispose()


async def _directory_export(settings: Settings, path: Path, fmt: str | None) -> dict[str, int]:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            data = await directory_io.export_directory(
                session, path=path, fmt=directory_io.detect_format(path, fmt)
            )
        return data.counts()
    finally:
        await engine.dispose()


def _directory_action(settings: Settings, args: argparse.Namespace) -> str:
    """Runs one directory action and returns the line to print; raises on problems."""
    path = Path(args.path)
    if args.action == "validate":
        loaded = directory_io.read_file(path, progress=TerminalProgress())
        return f"Valid: {_counts(loaded.data.counts())}."
    if args.action == "generate":
        # Imported here only: the generator is test tooling, never part of a running service.
        from directory.synthetic import generate_file

        fmt = directory_io.detect_format(path, args.format)
        data = generate_file(path, count=args.count, seed=args.seed, fmt=fmt)
        return f"Generated synthetic data in {path}: {_counts(data.counts())}."
    migrate.upgrade(settings.database_url)
    if args.action == "import":
        summary = asyncio.run(_directory_import(settings, path))
        new, changed = sum(summary.created.values()), sum(summary.updated.values())
        same = sum(summary.unchanged.values())
        return f"Imported {path}: {new} new, {changed} changed, {same} unchanged records."
    counts = asyncio.run(_directory_export(settings, path, args.format))
    return f"Exported to {path}: {_counts(counts)}."


def cmd_directory(settings: Settings, args: argparse.Namespace) -> int:
    try:
        print(_directory_action(settings, args))
    except directory_io.DirectoryFileError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except directory_io.ValidationFailed as failed:
        print(directory_io.format_problems(failed.problems))
        print(f"{len(failed.problems)} problem(s); nothing was written.", file=sys.stderr)
        return 1
    return 0


def _directory_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    directory = sub.add_parser("directory", help="import, export and check directory data")
    actions = directory.add_subparsers(dest="action", required=True)
    for name, text in (
        ("import", "validate a JSON file, zip or CSV directory and import it (all or nothing)"),
        ("validate", "check a file and print every problem; writes nothing"),
    ):
        actions.add_parser(name, help=text).add_argument("path")
    export = actions.add_parser("export", help="write the whole directory to a file")
    export.add_argument("path", help="a .json file, a .zip archive or a directory (CSV)")
    export.add_argument("--format", choices=("json", "csv"), default=None)
    generate = actions.add_parser("generate", help="write a synthetic directory (tests only)")
    generate.add_argument("path")
    generate.add_argument("--count", type=int, required=True, help="number of services")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--format", choices=("json", "csv"), default=None)


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
    _directory_parser(sub)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if args.command == "account":
        return cmd_account_create(settings, args)
    if args.command == "directory":
        return cmd_directory(settings, args)
    commands = {"serve": cmd_serve, "migrate": cmd_migrate}
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
