"""End-to-end fixtures: the Bot API emulator, the service started with the README's command
(`./dev serve`) as a real process, and headless Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.e2e.telegram_harness import BotApiEmulator

ROOT = Path(__file__).resolve().parents[2]
BOT_TOKEN = "424242:E2E-lotse-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class RunningService:
    url: str
    login: str
    password: str
    process: subprocess.Popen[str]
    stdout: Path
    stderr: Path
    # The development directory editor (`dev-editor`), for the curation pages.
    editor_login: str = ""
    editor_password: str = ""
    # The development team lead (`dev-lead`), who signed epoch 1 of the national team.
    lead_login: str = ""
    lead_password: str = ""
    # Per login: the unlock passphrase of the member keys the bootstrap made (`dev`,
    # `dev-lead`); console_login unlocks them so transcripts open.
    passphrases: dict[str, str] = field(default_factory=dict)
    # Per login: the TOTP secret read off the set-up page, the last step used (a code works
    # once) and the browser cookies of the logged-in session, reused by later tests.
    totp: dict[str, str] = field(default_factory=dict)
    totp_steps: dict[str, int] = field(default_factory=dict)
    cookies: dict[str, list[Any]] = field(default_factory=dict)
    # The service's environment, for running `lotse` commands against the same database.
    env: dict[str, str] = field(default_factory=dict)

    def lotse(self, *args: str) -> str:
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "lotse"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def logs(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _fresh_postgres_database(url: str, name: str) -> str:
    """A database of its own for the service process, next to the suite's test database."""
    import asyncpg

    admin = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return url.rsplit("/", 1)[0] + f"/{name}"


async def _flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def service(
    e2e_emulator: BotApiEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    workdir = tmp_path_factory.mktemp("service")
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOTSE_", "DATABASE_URL", "REDIS_URL", "TELEGRAM_"))
    }
    env.update(
        LOTSE_PORT=str(port),
        LOTSE_DATA_DIR=str(workdir / "var"),
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_BASE=e2e_emulator.api_base,
        LOTSE_LOG_LEVEL="INFO",
    )
    # Names derive from the suite's own database and Redis db, so parallel runs with different
    # LOTSE_TEST_* settings never share the service's state.
    if TEST_DATABASE_URL:
        name = TEST_DATABASE_URL.rsplit("/", 1)[1].split("?")[0] + "_e2e"
        env["DATABASE_URL"] = asyncio.run(_fresh_postgres_database(TEST_DATABASE_URL, name))
    if TEST_REDIS_URL:
        base, _, db = TEST_REDIS_URL.rpartition("/")
        redis_url = f"{base}/{int(db or 1) - 1}"
        asyncio.run(_flush_redis(redis_url))
        env["REDIS_URL"] = redis_url
    stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [str(ROOT / "dev"), "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    running = RunningService(url, "", "", process, stdout, stderr, env=env)
    try:
        _wait_until_up(running)
        match = re.search(r"login '([^']+)', password '([^']+)'", stdout.read_text())
        assert match, "the development account was not printed:\n" + running.logs()
        running.login, running.password = match.group(1), match.group(2)
        editor = re.search(r"login '(dev-editor)', password '([^']+)'", stdout.read_text())
        assert editor, "the development editor account was not printed:\n" + running.logs()
        running.editor_login, running.editor_password = editor.group(1), editor.group(2)
        printed = stdout.read_text()
        lead = re.search(r"login '(dev-lead)', password '([^']+)'", printed)
        if lead:
            running.lead_login, running.lead_password = lead.group(1), lead.group(2)
        for login, passphrase in re.findall(
            r"login '([^']+)', password '[^']+', unlock passphrase '([^']+)'", printed
        ):
            running.passphrases[login] = passphrase
        run_on_service_db(running, _room_for_every_test)
        yield running
    finally:
        _stop(process)


async def _room_for_every_test(sessions: Any) -> None:
    """The tests share one service and its development accounts, and many take a conversation
    and leave it open. With the default capacity (5 at once) a later test's claim would depend
    on how many earlier ones ran; the capacity itself is tested in tests/console."""
    from sqlalchemy import update

    from core.models import Counsellor

    async with sessions() as session, session.begin():
        await session.execute(
            update(Counsellor)
            .where(Counsellor.login.in_(("dev", "dev-lead")))
            .values(capacity=1000)
        )


def _wait_until_up(service: RunningService, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError("the service exited during start-up:\n" + service.logs())
        try:
            if httpx.get(service.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not come up:\n" + service.logs())


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    # Playwright's 5 s default for expect() is short for a busy CI machine opening sealed
    # messages (PBKDF2, ECDH) in the browser; only a failing check ever waits this long.
    expect.set_options(timeout=15_000)

    executable = os.environ.get("LOTSE_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="de-DE")
    page = context.new_page()
    yield page
    context.close()


# Screenshots land in var/ (ignored by git); the ones in docs/screenshots are copied from there
# after a person has looked at them.
SCREENSHOTS = Path(os.environ.get("LOTSE_SCREENSHOT_DIR", ROOT / "var" / "screenshots"))


def console_login(
    page: Any, service: RunningService, login: str, password: str, *, unlock: bool = True
) -> None:
    """Log in as a person would: password, then the second factor, set up on the first login
    (the secret is read off the page, the recovery codes acknowledged). Later logins of the
    same account reuse its session cookies; failing that, a fresh code is typed. When the
    bootstrap printed an unlock passphrase for the account, its keys are unlocked too, so the
    sealed transcripts open (`unlock=False` leaves them locked)."""
    _login(page, service, login, password)
    if unlock and login in service.passphrases:
        unlock_keys(page, service.passphrases[login])


def unlock_keys(page: Any, passphrase: str) -> None:
    """The keys panel, as a person uses it: the passphrase, then wait for the team's keys."""
    from playwright.sync_api import expect

    state = page.locator("#keys-state")
    expect(state).to_have_text("Schlüssel: gesperrt")
    state.click()
    page.get_by_label("Entsperrsatz", exact=True).fill(passphrase)
    page.get_by_role("button", name="Entsperren").click()
    expect(state).to_have_text("Schlüssel: entsperrt", timeout=15_000)
    expect(page.locator("#team-state-text")).not_to_be_empty(timeout=15_000)
    state.click()  # closes the panel again


def _login(page: Any, service: RunningService, login: str, password: str) -> None:
    from playwright.sync_api import expect

    from core.crypto import TOTP_STEP_SECONDS, totp_code

    if login in service.cookies:
        page.context.add_cookies(service.cookies[login])
        page.goto(service.url + "/console")
        if page.url.endswith("/console"):
            return
    page.goto(service.url + "/console/login")
    page.get_by_label("Benutzername").fill(login)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Zweiter Faktor")).to_be_visible()
    first_time = login not in service.totp
    if first_time:
        service.totp[login] = page.locator("#totp-secret").inner_text().strip()
    step = int(time.time()) // TOTP_STEP_SECONDS
    while step <= service.totp_steps.get(login, -1):  # that code was used: wait for the next
        time.sleep(0.5)
        step = int(time.time()) // TOTP_STEP_SECONDS
    page.get_by_label("Code").fill(totp_code(service.totp[login], step))
    page.get_by_role("button", name="Bestätigen").click()
    service.totp_steps[login] = step
    if first_time:
        expect(page.get_by_role("heading", name="Deine Wiederherstellungscodes")).to_be_visible()
        page.get_by_role("link", name="Weiter zur Konsole").click()
    page.wait_for_url("**/console")
    service.cookies[login] = page.context.cookies()


def run_on_service_db(service: RunningService, work: Any) -> Any:
    """`await work(sessions)` against the service's own database, off the event loop that
    Playwright's sync API owns in this thread."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    url = service.env.get("DATABASE_URL") or (
        f"sqlite+aiosqlite:///{service.env['LOTSE_DATA_DIR']}/lotse.db"
    )

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            return await work(async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def conversation_of(service: RunningService, user: Any) -> str:
    """The id of the emulator user's open conversation, newest first, read from the service's
    own database: its pseudonym is computed with the pepper the service generated, just as
    the bot computes it. The queue shows no content, so this is how a test knows which entry
    is its own; trying entries in turn would claim other tests' conversations on the way."""
    from sqlalchemy import select

    from bot.telegram.handlers import CHANNEL
    from core.identity import Identities
    from core.models import Contact, Conversation
    from core.settings import load_settings

    settings = load_settings(
        data_dir=Path(service.env["LOTSE_DATA_DIR"]),
        database_url=service.env.get("DATABASE_URL", ""),
    )
    pseudonym = Identities(settings).pseudonym(channel=CHANNEL, identifier=str(user.user_id))

    async def lookup(sessions: Any) -> str | None:
        async with sessions() as session:
            found = await session.scalar(
                select(Conversation.id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.pseudonym == pseudonym, Conversation.status != "closed")
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
        return str(found) if found else None

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if found := run_on_service_db(service, lookup):
            return str(found)
        time.sleep(0.3)
    raise AssertionError(f"the emulator user {user.user_id} has no open conversation")


def message_count(service: RunningService, conversation_id: str) -> int:
    """How many messages the service has stored for the conversation (sealed: only counted)."""
    import uuid

    from sqlalchemy import func, select

    from core.models import Message

    async def count(sessions: Any) -> int:
        async with sessions() as session:
            return int(
                await session.scalar(
                    select(func.count(Message.id)).where(
                        Message.conversation_id == uuid.UUID(conversation_id)
                    )
                )
                or 0
            )

    return int(run_on_service_db(service, count))


def open_conversation_with(
    page: Any, service: RunningService, user: Any, text: str, *, button: str = "Übernehmen"
) -> None:
    """Take (`button="Übernehmen"`) or open (`"Öffnen"`) the emulator user's conversation
    from the queue, as a counsellor does, and wait until its transcript shows `text`. The
    queue and the transcript update live, so both are waited for."""
    from playwright.sync_api import expect

    conversation = conversation_of(service, user)
    item = page.locator(f'.queue-item[data-id="{conversation}"]')
    action = item.get_by_role("button", name=button)
    expect(action).to_be_visible(timeout=30_000)
    action.click()
    expect(page.locator("#transcript")).to_contain_text(text, timeout=30_000)


def join_team_keys(page: Any, browser: Any, service: RunningService, passphrase: str) -> str:
    """A new member's first steps with keys: set them up under `passphrase` on `page` (logged
    in), wait for the lead, who shares the team keys from a console of their own after
    comparing the fingerprint; then the member's console reads the team's transcripts.
    Returns the member's fingerprint."""
    from playwright.sync_api import expect

    state = page.locator("#keys-state")
    expect(state).to_have_text("Schlüssel einrichten")
    state.click()
    page.get_by_label("Entsperrsatz (mindestens 12 Zeichen)").fill(passphrase)
    page.get_by_label("Entsperrsatz noch einmal").fill(passphrase)
    page.get_by_role("button", name="Schlüssel erzeugen").click()
    expect(page.locator("#team-state-text")).to_contain_text(
        "Warte auf Freigabe durch die Teamleitung", timeout=15_000
    )
    own = page.locator("#my-fingerprint").inner_text().removeprefix("Dein Fingerabdruck: ")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="de-DE")
    try:
        lead = context.new_page()
        console_login(lead, service, service.lead_login, service.lead_password)
        row = lead.locator("#team-awaiting li", has_text=own)
        row.get_by_role("button", name=re.compile("^Schlüssel freigeben")).click()
        expect(row).to_have_count(0, timeout=15_000)
    finally:
        context.close()
    page.reload()
    unlock_keys(page, passphrase)
    expect(page.locator("#team-state-text")).to_contain_text("Epoche")
    return own


def reach_the_team(teen: Any, text: str) -> None:
    """A teen in Berlin walks the guided flow to the team and writes `text` there."""
    teen.send_command("/start")
    teen.wait_for_message("anonym")
    teen.click("Ich bin jugendlich (13–17)")
    teen.wait_for_message("Postleitzahl")
    teen.send_text("10115")
    teen.wait_for_message("Worum geht es dir gerade?")
    teen.click("Besuche und Kontakt")
    teen.wait_for_message("Wie möchtest du weitermachen?")
    teen.click("Mit jemandem schreiben")
    # Whether a console is online depends on the tests before: either answer hands over.
    teen.wait_for_any("Vor dir warten gerade", "niemand aus unserem Team online")
    teen.send_text(text)
