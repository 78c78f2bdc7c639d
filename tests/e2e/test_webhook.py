"""Webhook mode end to end: a second service process (`./dev serve`, TELEGRAM_MODE=webhook,
its own bot token) registers its webhook at the Bot API emulator, and the emulator posts user
updates to it.

The emulator (telegram-test-api) ignores setWebhook's secret_token and posts raw updates, so a
small "Telegram edge" in this module plays the part the emulator leaves out: the emulator posts to
it, and it forwards each update to the service with the X-Telegram-Bot-Api-Secret-Token header
and the fields mended as the harness mends them for getUpdates (no botToken, a chat_instance).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.e2e.conftest import (
    ROOT,
    RunningService,
    _free_port,
    _fresh_postgres_database,
    _stop,
    _wait_until_up,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e
SECRET = secrets.token_urlsafe(32)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _mend(update: dict[str, Any]) -> dict[str, Any]:
    """What Telegram would have sent: the emulator leaks its request field and omits some."""
    message = update.get("message")
    if isinstance(message, dict):
        message.pop("botToken", None)
    query = update.get("callback_query")
    if isinstance(query, dict):
        sender = query.get("from") or {}
        nested = query.get("message")
        if isinstance(nested, dict):
            nested.pop("botToken", None)
            nested.setdefault("message_id", 0)
            nested.setdefault("chat", {"id": sender.get("id", 0), "type": "private"})
            date = int(nested.get("date") or 0)
            nested["date"] = date // 1000 if date > 10**11 else date
        query.setdefault("chat_instance", f"e2e-chat-instance-{sender.get('id', 0)}")
    return update


class TelegramEdge:
    """Receives the emulator's webhook posts and forwards them with the secret header."""

    def __init__(self, secret: str) -> None:
        self.target = ""
        self.forwarded: list[int] = []  # statuses the service answered
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                update = _mend(json.loads(body))
                response = httpx.post(
                    edge.target,
                    content=json.dumps(update).encode(),
                    headers={"Content-Type": "application/json", SECRET_HEADER: secret},
                    timeout=10,
                )
                edge.forwarded.append(response.status_code)
                self.send_response(response.status_code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:  # quiet: no request lines in the output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/telegram/webhook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TelegramEdge:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class WebhookService:
    running: RunningService
    token: str
    edge: TelegramEdge


@pytest.fixture(scope="module")
def webhook_service(
    e2e_emulator: BotApiEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookService]:
    workdir = tmp_path_factory.mktemp("webhook-service")
    port = _free_port()
    # A token of its own per run: update ids restart with every emulator, and Redis remembers
    # seen ids per bot for a day.
    token = f"{secrets.randbelow(10**9) + 10**9}:E2E-webhook-token"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOTSE_", "DATABASE_URL", "REDIS_URL", "TELEGRAM_"))
    }
    with TelegramEdge(SECRET) as edge:
        edge.target = f"http://127.0.0.1:{port}/telegram/webhook"
        env.update(
            LOTSE_PORT=str(port),
            LOTSE_DATA_DIR=str(workdir / "var"),
            LOTSE_LOG_LEVEL="INFO",
            TELEGRAM_BOT_TOKEN=token,
            TELEGRAM_API_BASE=e2e_emulator.api_base,
            TELEGRAM_MODE="webhook",
            TELEGRAM_WEBHOOK_URL=edge.url,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
        )
        if TEST_DATABASE_URL:
            name = TEST_DATABASE_URL.rsplit("/", 1)[1].split("?")[0] + "_e2e_webhook"
            env["DATABASE_URL"] = asyncio.run(_fresh_postgres_database(TEST_DATABASE_URL, name))
        if TEST_REDIS_URL:
            # The polling service's Redis database, not flushed: every key of ours is derived
            # from our own pepper, team ids or bot id, so the two services never meet there.
            base, _, db = TEST_REDIS_URL.rpartition("/")
            env["REDIS_URL"] = f"{base}/{int(db or 1) - 1}"
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
        running = RunningService(f"http://127.0.0.1:{port}", "", "", process, stdout, stderr)
        try:
            _wait_until_up(running)
            e2e_emulator.wait_for_call("setWebhook", token=token)
            yield WebhookService(running, token, edge)
        finally:
            _stop(process)


def test_a_user_reaches_the_bot_through_the_webhook(
    webhook_service: WebhookService, e2e_emulator: BotApiEmulator
) -> None:
    registered = e2e_emulator.calls_to("setWebhook", webhook_service.token)[-1]
    assert registered.params["url"] == webhook_service.edge.url
    assert registered.params["secret_token"] == SECRET
    teen = e2e_emulator.user(webhook_service.token, first_name="Lea", username="lea_secret")

    teen.send_command("/start")
    teen.wait_for_message("anonym")
    teen.click("Ich bin jugendlich (13–17)")
    teen.wait_for_message("Postleitzahl")
    teen.send_text("90402")
    teen.wait_for_message("Worum geht es dir gerade?")

    assert set(webhook_service.edge.forwarded) == {200}
    assert not e2e_emulator.calls_to("getUpdates", webhook_service.token), "no polling"
    logs = webhook_service.running.logs()
    assert "telegram webhook registered" in logs
    for private in ("lea_secret", str(teen.user_id), "90402", SECRET):
        assert private not in logs


def test_a_post_without_the_secret_is_refused(webhook_service: WebhookService) -> None:
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "/start"}}
    response = httpx.post(webhook_service.edge.target, json=update, timeout=10)
    assert response.status_code == 401
