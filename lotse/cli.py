"""The `lotse` command: serve, migrate, account, directory, keys, statistics."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import crypto, logs
from core.clock import SystemClock
from core.db import create_engine, create_sessionmaker, transaction
from core.i18n import load_catalogue
from core.settings import Settings, SettingsError, load_settings
from core.statistics import PeriodOverlaps, StatisticsService, UnknownPeriod, report_csv
from core.statistics import label as statistics_label
from directory import io as directory_io
from directory.progress import TerminalProgress
from lotse import migrate
from lotse.bootstrap import (
    ROLES,
    AccountError,
    DevAccount,
    bootstrap,
    create_account,
    invite_account,
)

T = TypeVar("T")


async def _with_sessions(
    settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """`await work(sessions)` on an engine made for this one command and closed after it."""
    engine = create_engine(settings.database_url)
    try:
        return await work(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def _prepare(settings: Settings) -> list[DevAccount]:
    return await _with_sessions(
        settings,
        lambda sessions: bootstrap(
            sessions,
            clock=SystemClock(),
            create_dev_account=settings.create_dev_account and not settings.is_production,
        ),
    )


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
        unlock = f", unlock passphrase '{account.passphrase}'" if account.passphrase else ""
        print(
            "Development account created: "
            f"login '{account.login}', password '{account.password}'{unlock}",
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
    return await _with_sessions(
        settings,
        lambda sessions: create_account(
            sessions,
            clock=SystemClock(),
            login=args.login,
            display_name=args.display_name or args.login,
            role=args.role,
            team_slug=args.team,
        ),
    )


def cmd_account_keys(settings: Settings, args: argparse.Namespace) -> int:
    """`account leave` and `account reset-keys`: both end what the account could unlock."""
    from lotse import keyops

    migrate.upgrade(settings.database_url)

    async def run(sessions: async_sessionmaker[AsyncSession]) -> str:
        if args.action == "leave":
            await keyops.leave(sessions, login=args.login)
            return (
                f"'{args.login}' is disabled; sessions and key wraps are gone. A team lead's "
                "console starts the next key epoch when it is next unlocked."
            )
        had = await keyops.reset_keys(sessions, login=args.login)
        return (
            f"Member keys of '{args.login}' removed; they set up new ones at the next login "
            "and wait for a team lead to release the team's keys."
            if had
            else f"'{args.login}' had no member keys."
        )

    try:
        print(asyncio.run(_with_sessions(settings, run)))
    except AccountError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_account_reset_login(settings: Settings, args: argparse.Namespace) -> int:
    """`account reset-login`: a forgotten password or a lost second factor."""
    from counsellor_console.auth import reset_login

    migrate.upgrade(settings.database_url)

    async def run(sessions: async_sessionmaker[AsyncSession]) -> str | None:
        async with transaction(sessions) as session:
            return await reset_login(session, login=args.login)

    password = asyncio.run(_with_sessions(settings, run))
    if password is None:
        print(f"Error: no account {args.login!r}", file=sys.stderr)
        return 1
    # Printed once to the operator's terminal; only its argon2id hash is stored.
    print(
        f"Account '{args.login}': every session ended. One-time password: {password}\n"
        "At the next login they set up the second factor anew (new recovery codes), then "
        "choose their own password under Konto. Their keys and team stay as they were."
    )
    return 0


def _codes(value: str | None) -> list[str] | None:
    return None if value is None else [c.strip() for c in value.split(",") if c.strip()]


async def _team(args: argparse.Namespace, sessions: async_sessionmaker[AsyncSession]) -> str:
    from core import teams
    from core.team_keys import teams_with_keys
    from lotse.bootstrap import ensure_national_team

    if args.action == "create":
        async with transaction(sessions) as session:
            await ensure_national_team(session, clock=SystemClock())
        team = await teams.create_team(
            sessions=sessions,
            clock=SystemClock(),
            slug=args.slug,
            name=args.name,
            federal_states=_codes(args.states) or [],
            languages=_codes(args.languages) or ["de"],
        )
        return (
            f"Team '{team.slug}' created for {', '.join(team.federal_states) or 'all states'}"
            f" ({', '.join(team.languages)}). It takes conversations once its first lead "
            f"has made its keys: lotse account invite NAME --role team_lead --team {team.slug}"
        )
    if args.action == "set":
        team = await teams.change_team(
            sessions=sessions,
            slug=args.slug,
            name=args.name,
            federal_states=_codes(args.states),
            languages=_codes(args.languages),
        )
        return (
            f"Team '{team.slug}': {team.name}; states "
            f"{', '.join(team.federal_states) or 'all'}; languages {', '.join(team.languages)}"
        )
    async with sessions() as session:
        ready = await teams_with_keys(session)
    rows = [
        f"{t.slug}\t{t.name}\t{','.join(t.federal_states) or 'all'}\t"
        f"{','.join(t.languages)}\t{'keys' if t.id in ready else 'no keys yet'}"
        for t in await teams.list_teams(sessions=sessions)
    ]
    return "\n".join(["slug\tname\tstates\tlanguages\tkeys", *rows])


def cmd_team(settings: Settings, args: argparse.Namespace) -> int:
    """`team list|create|set`: the teams conversations are routed to by state and language."""
    from core.teams import TeamError

    migrate.upgrade(settings.database_url)
    try:
        print(asyncio.run(_with_sessions(settings, lambda sessions: _team(args, sessions))))
    except TeamError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_keys_recover(settings: Settings, args: argparse.Namespace) -> int:
    """With the offline recovery key: the team's current key, wrapped for a member again."""
    from lotse import keyops

    passphrase = os.environ.get("LOTSE_RECOVERY_PASSPHRASE")
    if passphrase is None and sys.stdin.isatty():
        passphrase = getpass.getpass("Passphrase of the recovery key (empty: none): ")
    try:
        private = crypto.load_private_key_pem(
            Path(args.path).read_bytes(), passphrase.encode() if passphrase else None
        )
    except (OSError, ValueError, TypeError) as error:
        print(f"Error: cannot read the recovery key: {type(error).__name__}", file=sys.stderr)
        return 1

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await keyops.recover(
                create_sessionmaker(engine),
                clock=SystemClock(),
                team_slug=args.team,
                login=args.member,
                recovery_private=private,
            )
        finally:
            await engine.dispose()

    try:
        epoch = asyncio.run(run())
    except AccountError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(f"The team key of epoch {epoch} is wrapped for '{args.member}' again.")
    return 0


def cmd_account_invite(settings: Settings, args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    try:
        token = asyncio.run(_invite(settings, args))
    except AccountError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    # Imported here, as bootstrap does: the console's auth module is slow to load for a CLI.
    from counsellor_console.auth import invitation_url

    # The link is the credential: printed once, stored as a digest, valid for 7 days.
    print(f"Invitation for '{args.display_name}' ({args.role}), valid 7 days:")
    print(f"  {invitation_url(args.base_url, token)}")
    return 0


async def _invite(settings: Settings, args: argparse.Namespace) -> str:
    return await _with_sessions(
        settings,
        lambda sessions: invite_account(
            sessions,
            clock=SystemClock(),
            display_name=args.display_name,
            role=args.role,
            team_slug=args.team,
        ),
    )


def cmd_keys(args: argparse.Namespace) -> int:
    """Offline key work; needs no configuration, so it runs on a machine without the service."""
    passphrase = os.environ.get("LOTSE_RECOVERY_PASSPHRASE")
    if passphrase is None and sys.stdin.isatty():
        passphrase = getpass.getpass("Passphrase for the recovery key (empty: none): ")
    secret = passphrase.encode() if passphrase else None
    path = Path(args.path)
    if args.action == "recovery":
        if path.exists():
            print(f"Error: {path} exists; a recovery key is never overwritten", file=sys.stderr)
            return 1
        private, public = crypto.new_x25519()
        # Owner-only from the first byte: the file is the key that can open everything.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(crypto.private_key_pem(private, secret))
        print(f"Recovery private key written to {path} (mode 0600). Keep it offline.")
        if not secret:
            print("It has no passphrase: store it on encrypted media only.")
    else:
        try:
            private = crypto.load_private_key_pem(path.read_bytes(), secret)
        except (OSError, ValueError, TypeError) as error:
            print(f"Error: cannot read the recovery key: {type(error).__name__}", file=sys.stderr)
            return 1
        public = crypto.x25519_public_raw(private)
    # Only the public half goes to the service (LOTSE_RECOVERY_PUBLIC_KEY).
    print(f"Recovery public key: {crypto.b64url(public)}")
    return 0


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


async def _statistics(settings: Settings, args: argparse.Namespace) -> str:
    """The same published reports the dashboard shows: `list`, or `export` one period (it is
    published, once, if it was not yet)."""
    engine = create_engine(settings.database_url)
    try:
        stats = StatisticsService(
            sessions=create_sessionmaker(engine),
            clock=SystemClock(),
            granularity=settings.statistics_period,
        )
        if args.action == "list":
            periods = [p.key for p in await stats.periods()]
            running = f"running: {stats.current().key} (published once it is complete)"
            return "\n".join([*periods, running]) if periods else f"No completed period; {running}"
        report = await stats.report(stats.parse(args.period))
    finally:
        await engine.dispose()
    if args.format == "json":
        return report.model_dump_json(indent=2)
    catalogue = load_catalogue()
    return report_csv(
        report, label=lambda d, v: statistics_label(catalogue, args.lang, d, v)
    ).rstrip("\r\n")


def cmd_statistics(settings: Settings, args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    try:
        text = asyncio.run(_statistics(settings, args))
    except UnknownPeriod as error:
        print(
            f"Error: {error} is not a completed {settings.statistics_period} "
            "(e.g. 2026-Q3, 2026-11 or 2026, as LOTSE_STATISTICS_PERIOD says).",
            file=sys.stderr,
        )
        return 2
    except PeriodOverlaps as error:
        print(f"Error: a report of another period length ({error}) covers it.", file=sys.stderr)
        return 2
    if getattr(args, "output", None):
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"Wrote {args.output}.")
    else:
        print(text)
    return 0


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


def _team_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    team = sub.add_parser("team", help="the teams conversations are routed to")
    actions = team.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every team: states, languages, whether it has keys")
    changes = (("create", "add a team"), ("set", "change a team's name, states or languages"))
    for name, text in changes:
        action = actions.add_parser(name, help=text)
        action.add_argument("slug", help="short name, e.g. 'bayern'")
        action.add_argument("--name", required=name == "create", help="the name counsellors see")
        action.add_argument(
            "--states", help="federal state codes it serves, comma-separated, e.g. BY or HB,NI"
        )
        action.add_argument("--languages", help="languages it answers in, e.g. de,en (default de)")


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
    invite = account_sub.add_parser(
        "invite", help="make a one-time link (7 days) with which a person sets up an account"
    )
    invite.add_argument("display_name", help="the name colleagues see, e.g. 'Anna (Caritas)'")
    invite.add_argument("--role", choices=ROLES, default="counsellor")
    invite.add_argument("--team", default="bundesweit", help="team slug (default: bundesweit)")
    invite.add_argument(
        "--base-url",
        default=None,
        help="the console's public address (default: http://LOTSE_HOST:LOTSE_PORT)",
    )
    leave = account_sub.add_parser(
        "leave", help="a member leaves: disabled, sessions and key wraps gone, new epoch due"
    )
    leave.add_argument("login")
    reset = account_sub.add_parser(
        "reset-keys", help="for a lost unlock passphrase: remove the member's keys and wraps"
    )
    reset.add_argument("login")
    reset_login = account_sub.add_parser(
        "reset-login",
        help="forgotten password or lost second factor: new password, second factor anew",
    )
    reset_login.add_argument("login")
    _team_parser(sub)
    _directory_parser(sub)
    keys = sub.add_parser("keys", help="offline keys: the organisation's recovery key")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    recovery = keys_sub.add_parser(
        "recovery", help="make the recovery key pair: private key to PATH, public key printed"
    )
    recovery.add_argument("path")
    show = keys_sub.add_parser("public", help="print the public half of the recovery key at PATH")
    show.add_argument("path")
    recover = keys_sub.add_parser(
        "recover", help="with the recovery key at PATH: wrap a team's key for a member again"
    )
    recover.add_argument("path")
    recover.add_argument("--team", required=True, help="team slug")
    recover.add_argument("--member", required=True, help="login of a member with new keys")
    statistics = sub.add_parser("statistics", help="the published monitoring statistics")
    stats_sub = statistics.add_subparsers(dest="action", required=True)
    stats_sub.add_parser("list", help="the completed periods, newest first")
    export = stats_sub.add_parser("export", help="one period's protected tables")
    export.add_argument("period", help="e.g. 2026-Q3 (LOTSE_STATISTICS_PERIOD says which kind)")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--lang", choices=("de", "en"), default="de", help="names in the CSV")
    export.add_argument("--output", help="write to this file instead of printing")
    args = parser.parse_args(argv)
    if args.command == "keys" and args.action != "recover":
        return cmd_keys(args)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if args.command == "account" and args.action == "invite":
        args.base_url = args.base_url or f"http://{settings.host}:{settings.port}"
        return cmd_account_invite(settings, args)
    if args.command == "keys":
        return cmd_keys_recover(settings, args)
    if args.command == "account" and args.action == "reset-login":
        return cmd_account_reset_login(settings, args)
    if args.command == "account" and args.action in ("leave", "reset-keys"):
        return cmd_account_keys(settings, args)
    if args.command == "account":
        return cmd_account_create(settings, args)
    if args.command == "directory":
        return cmd_directory(settings, args)
    if args.command == "team":
        return cmd_team(settings, args)
    if args.command == "statistics":
        return cmd_statistics(settings, args)
    commands = {"serve": cmd_serve, "migrate": cmd_migrate}
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
