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
from dataclasses import dataclass
from pathlib import Path

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
    running = RunningService(url, "", "", process, stdout, stderr)
    try:
        _wait_until_up(running)
        match = re.search(r"login '([^']+)', password '([^']+)'", stdout.read_text())
        assert match, "the development account was not printed:\n" + running.logs()
        running.login, running.password = match.group(1), match.group(2)
        editor = re.search(r"login '(dev-editor)', password '([^']+)'", stdout.read_text())
        assert editor, "the development editor account was not printed:\n" + running.logs()
        running.editor_login, running.editor_password = editor.group(1), editor.group(2)
        yield running
    finally:
        _stop(process)


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
    from playwright.sync_api import sync_playwright

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
