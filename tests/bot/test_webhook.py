"""The webhook route against the whole app (create_app, TELEGRAM_MODE=webhook), its bot talking
to the Bot API emulator: Telegram's part (posting updates with the secret header) is played by
the test client, everything the bot sends goes to the emulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.telegram import webhook
from bot.telegram.webhook import MAX_BODY_BYTES, SECRET_HEADER, WEBHOOK_PATH, RecentUpdates
from core.settings import Settings, SettingsError, load_settings
from core.web import CSP
from lotse.app import create_app
from tests.conftest import SECRETS, TEST_REDIS_URL
from tests.e2e.telegram_harness import BotApiEmulator

TOKEN = "777000111:webhook-unit-token"
SECRET = secrets.token_urlsafe(32)
HOOK_URL = "http://127.0.0.1:9/telegram/webhook"  # registered only; the test client posts
BASE = "https://testserver"
_ids = itertools.count(5_000)
_chats = itertools.count(880_001)


@pytest.fixture(scope="module")
def emulator() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as running:
        yield running


@pytest.fixture
def settings(database_url: str, tmp_path: Path, emulator: BotApiEmulator) -> Settings:
    """Overrides the suite's settings: the same database and Redis, with a bot in webhook mode."""
    return load_settings(
        env="test",
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        telegram_bot_token=TOKEN,
        telegram_api_base=emulator.api_base,
        telegram_mode="webhook",
        telegram_webhook_url=HOOK_URL,
        telegram_webhook_secret=SECRET,
        **SECRETS,
    )


@pytest.fixture
async def app(services):
    app = create_app(services.settings, services=services)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def message_update(text: str, *, chat_id: int, update_id: int, chat_type: str = "private"):
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": chat_type, "first_name": "Mia"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Mia", "username": "mia_x"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


async def post(client, body: Any, *, secret: str | None = SECRET, **options) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(WEBHOOK_PATH, content=content, headers=headers, **options)


async def post_ok(client, body: Any) -> None:
    assert (await post(client, body)).status_code == 200


async def replies_to(app, emulator: BotApiEmulator, chat_id: int) -> list[str]:
    await app.state.telegram_webhook.wait_idle()
    return [
        str(call.params.get("text"))
        for call in emulator.calls_to("sendMessage", TOKEN)
        if str(call.params.get("chat_id")) == str(chat_id)
    ]


async def test_start_update_gets_the_welcome_reply_at_the_emulator(app, client, emulator):
    chat_id = next(_chats)
    response = await post(client, message_update("/start", chat_id=chat_id, update_id=next(_ids)))
    assert response.status_code == 200
    welcome = app.state.services.catalogue.text("de", "flow.welcome")
    replies = await replies_to(app, emulator, chat_id)
    assert replies[0] == welcome
    assert len(replies) >= 2, "the role question follows the welcome"


async def test_lifespan_registers_the_webhook_with_its_secret_and_does_not_poll(app, emulator):
    call = emulator.wait_for_call("setWebhook", token=TOKEN)
    assert call.params["url"] == HOOK_URL
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    assert str(call.params["drop_pending_updates"]).lower() == "false"
    assert not emulator.calls_to("getUpdates", TOKEN)


async def test_missing_or_wrong_secret_is_refused_and_nothing_is_handled(app, client, emulator):
    chat_id = next(_chats)
    update = message_update("/start", chat_id=chat_id, update_id=next(_ids))
    assert (await post(client, update, secret=None)).status_code == 401
    assert (await post(client, update, secret=SECRET[:-1] + "x")).status_code == 403
    assert (await post(client, update, secret="")).status_code == 403
    # Refused before parsing: garbage with a wrong secret is not a "malformed update" (200).
    assert (await post(client, b"{garbage", secret="wrong")).status_code == 403
    assert await replies_to(app, emulator, chat_id) == []


async def test_an_oversized_body_is_refused_with_413(client):
    big = b'{"update_id": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert (await post(client, big)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(20):
            yield b"x" * (MAX_BODY_BYTES // 16)

    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    response = await client.post(WEBHOOK_PATH, content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_malformed_updates_are_answered_200_and_recorded_without_content(
    app, client, caplog
):
    caplog.set_level(logging.WARNING, logger="bot.telegram.webhook")
    update_id = next(_ids)
    broken = {"update_id": update_id, "message": {"text": "Mein geheimes Wort", "chat": "kaputt"}}
    assert (await post(client, b"{not json")).status_code == 200
    assert (await post(client, {"message": {"text": "ohne id"}})).status_code == 200
    assert (await post(client, broken)).status_code == 200
    await app.state.telegram_webhook.wait_idle()  # the Update model is checked in the background
    records = [r for r in caplog.records if r.getMessage() == "telegram update malformed"]
    assert [(r.update_id, r.error) for r in records] == [  # type: ignore[attr-defined]
        (None, "JSONDecodeError"),
        (None, "missing update_id"),
        (update_id, "ValidationError"),
    ]
    assert "geheimes" not in caplog.text and "ohne id" not in caplog.text


async def test_a_duplicate_update_is_handled_once(app, client, emulator):
    chat_id = next(_chats)
    update = message_update("/hilfe", chat_id=chat_id, update_id=next(_ids))
    assert (await post(client, update)).status_code == 200
    assert (await post(client, update)).status_code == 200
    help_text = app.state.services.catalogue.text("de", "flow.help")
    assert await replies_to(app, emulator, chat_id) == [help_text]


@pytest.mark.skipif(not TEST_REDIS_URL, reason="processes agree through Redis only")
async def test_processes_sharing_redis_agree_on_duplicates(services):
    update_id = next(_ids)
    this = RecentUpdates(bot_id=777000111, redis=services.redis)
    other = RecentUpdates(bot_id=777000111, redis=services.redis)
    assert await this.first_time(update_id)
    assert not await other.first_time(update_id), "another process saw it first"
    assert not await this.first_time(update_id)


async def test_updates_from_groups_are_not_handled(app, client, emulator):
    group = -(next(_chats))
    update = message_update("/start", chat_id=group, update_id=next(_ids), chat_type="group")
    assert (await post(client, update)).status_code == 200
    assert await replies_to(app, emulator, group) == []


async def test_a_failing_handler_is_recorded_with_the_update_id_and_answered(
    app, client, emulator, services, caplog, monkeypatch
):
    async def broken(**_: object) -> list[object]:
        raise RuntimeError("engine down")

    monkeypatch.setattr(services.engine, "handle", broken)
    chat_id, update_id = next(_chats), next(_ids)
    update = message_update("Ich bin traurig", chat_id=chat_id, update_id=update_id)
    assert (await post(client, update)).status_code == 200
    replies = await replies_to(app, emulator, chat_id)
    assert replies == [services.catalogue.text("de", "error.generic")]
    failed = [r for r in caplog.records if r.getMessage() == "telegram update failed"]
    assert [(r.update_id, r.error) for r in failed] == [(update_id, "RuntimeError")]  # type: ignore[attr-defined]
    assert "traurig" not in caplog.text


def callback_update(data: str, *, chat_id: int, update_id: int, chat_type: str = "private"):
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type, "first_name": "Mia"}
    shown = {
        "message_id": update_id - 1,
        "date": int(time.time()),
        "chat": chat,
        "from": {"id": 777000111, "is_bot": True, "first_name": "Lotse"},
        "text": "…",
    }
    sender = {"id": abs(chat_id), "is_bot": False, "first_name": "Mia"}
    query = {"id": str(update_id), "from": sender, "chat_instance": "i", "message": shown}
    return {"update_id": update_id, "callback_query": {**query, "data": data}}


def hold_first_update(services, monkeypatch) -> tuple[asyncio.Event, list[str]]:
    """The engine sees updates as usual, but the first one waits for the returned event; the
    list records, in order, what the engine was asked to handle."""
    gate, seen = asyncio.Event(), []
    real = services.engine.handle

    async def held(*, sender, inbound, **kwargs):
        seen.append(inbound.value)
        if len(seen) == 1:
            await gate.wait()
        return await real(sender=sender, inbound=inbound, **kwargs)

    monkeypatch.setattr(services.engine, "handle", held)
    return gate, seen


async def test_one_chats_updates_are_handled_in_arrival_order(app, client, services, monkeypatch):
    gate, seen = hold_first_update(services, monkeypatch)
    chat_id = next(_chats)
    texts = ["eins", "zwei", "drei", "vier", "fünf"]
    for text in texts[:2]:
        await post_ok(client, message_update(text, chat_id=chat_id, update_id=next(_ids)))
    # A malformed update in between is recorded and skipped; it holds nobody up.
    await post_ok(client, {"update_id": next(_ids), "message": {"chat": "kaputt"}})
    for text in texts[2:]:
        await post_ok(client, message_update(text, chat_id=chat_id, update_id=next(_ids)))
    # With Redis the chat lock is real I/O, so wait (bounded) for the first update to arrive,
    # then give the later ones time to queue up behind it: they must wait for the chat.
    async with asyncio.timeout(5):
        while not seen:  # noqa: ASYNC110 - the engine's list is what there is to watch
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert seen == ["eins"]
    gate.set()
    await app.state.telegram_webhook.wait_idle()
    assert seen == texts


async def test_beyond_the_pending_limit_telegram_gets_503_and_its_resend_is_handled(
    app, client, emulator, services, monkeypatch
):
    gate, _ = hold_first_update(services, monkeypatch)
    monkeypatch.setattr(webhook, "MAX_PENDING_UPDATES", 1)
    chat_id = next(_chats)
    first = message_update("/hilfe", chat_id=chat_id, update_id=next(_ids))
    second = message_update("/hilfe", chat_id=chat_id, update_id=next(_ids))
    assert (await post(client, first)).status_code == 200
    refused = await post(client, second)
    assert refused.status_code == 503 and refused.json() == {"detail": "busy, send again later"}
    gate.set()
    await app.state.telegram_webhook.wait_idle()
    assert (await post(client, second)).status_code == 200, "refused, so not a duplicate"
    help_text = services.catalogue.text("de", "flow.help")
    assert await replies_to(app, emulator, chat_id) == [help_text, help_text]


async def test_when_redis_fails_telegram_gets_503_and_the_id_is_not_remembered(
    app, client, monkeypatch
):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    ingest = app.state.telegram_webhook
    monkeypatch.setattr(ingest, "recent", RecentUpdates(bot_id=ingest.bot.id, redis=unreachable))
    update = message_update("/hilfe", chat_id=next(_chats), update_id=next(_ids))
    try:
        assert (await post(client, update)).status_code == 503
        assert (await post(client, update)).status_code == 503, "a resend is checked again"
    finally:
        await unreachable.aclose()


async def test_chat_filters_run_on_the_event_loop_and_leave_groups_alone(
    app, client, emulator, monkeypatch
):
    hops: list[object] = []
    real_to_thread = asyncio.to_thread

    async def counted(func, /, *args, **kwargs):
        hops.append(func)
        return await real_to_thread(func, *args, **kwargs)

    # aiogram runs a filter that is not a coroutine (a magic filter too) through to_thread.
    monkeypatch.setattr(asyncio, "to_thread", counted)
    private, group = next(_chats), -next(_chats)
    group_click = callback_update(
        "role:teen", chat_id=group, update_id=next(_ids), chat_type="group"
    )
    await post_ok(client, message_update("/start", chat_id=private, update_id=next(_ids)))
    await post_ok(
        client, message_update("/start", chat_id=group, update_id=next(_ids), chat_type="group")
    )
    await post_ok(client, group_click)
    assert await replies_to(app, emulator, private), "the private chat is answered"
    assert await replies_to(app, emulator, group) == []
    answered = emulator.calls_to("answerCallbackQuery", TOKEN)
    assert group_click["callback_query"]["id"] not in [
        str(c.params.get("callback_query_id")) for c in answered
    ]
    assert hops == []


async def test_refusals_are_json_and_answers_carry_the_security_headers(client):
    refused = await post(client, {"update_id": 1}, secret="wrong")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {"detail": "wrong secret token"}
    accepted = await post(client, b"{not json")
    assert accepted.status_code == 200 and accepted.content == b""
    for response in (refused, accepted):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == CSP


async def test_a_client_gone_before_its_body_arrived_gets_no_answer(app):
    endpoint = webhook.WebhookEndpoint(app.state.telegram_webhook)
    scope = {
        "type": "http",
        "method": "POST",
        "path": WEBHOOK_PATH,
        "headers": [(SECRET_HEADER.lower().encode(), SECRET.encode())],
    }
    sent: list[object] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    await endpoint(scope, receive, send)
    assert sent == []


async def test_the_webhook_route_is_matched_first_and_only_for_post(app, client):
    assert app.router.routes[0].path == WEBHOOK_PATH
    assert (await client.get(WEBHOOK_PATH)).status_code == 405


def webhook_overrides(tmp_path: Path, **changes: object) -> dict[str, object]:
    overrides: dict[str, object] = {
        "env": "development",
        "data_dir": tmp_path,
        "telegram_bot_token": TOKEN,
        "telegram_mode": "webhook",
        "telegram_webhook_url": "https://lotse.example.org/telegram/webhook",
        "telegram_webhook_secret": SECRET,
        **SECRETS,
    }
    overrides.update(changes)
    return {k: v for k, v in overrides.items() if v is not None}


def test_webhook_mode_refuses_to_start_without_a_secret_even_in_development(tmp_path):
    with pytest.raises(SettingsError, match="TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET"):
        load_settings(**webhook_overrides(tmp_path, telegram_webhook_secret=None))
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET must be 32 to 256"):
        load_settings(**webhook_overrides(tmp_path, telegram_webhook_secret="short-secret"))
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_URL"):
        load_settings(**webhook_overrides(tmp_path, telegram_webhook_url=None))
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_URL"):
        load_settings(**webhook_overrides(tmp_path, telegram_webhook_url="http://example.org/"))
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        load_settings(**webhook_overrides(tmp_path, telegram_bot_token=None))
    assert load_settings(**webhook_overrides(tmp_path)).telegram_mode == "webhook"


def test_the_secret_never_appears_in_a_settings_error(tmp_path):
    with pytest.raises(SettingsError) as raised:
        load_settings(**webhook_overrides(tmp_path, telegram_mode="hook", telegram_send_rate=-1))
    assert "TELEGRAM_MODE" in str(raised.value) and SECRET not in str(raised.value)


async def test_the_app_refuses_webhook_mode_without_a_secret(services, monkeypatch):
    unchecked = services.settings.model_copy(update={"telegram_webhook_secret": SecretStr(" ")})
    monkeypatch.setattr(services, "settings", unchecked)
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
        create_app(unchecked, services=services)


async def test_without_webhook_mode_there_is_no_webhook_route(settings):
    polling = settings.model_copy(update={"telegram_mode": "polling", "telegram_bot_token": None})
    app = create_app(polling)  # no lifespan: only the routing is asked
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await post(client, {"update_id": 1})
    assert response.status_code == 404
    from lotse.runtime import close_services

    await close_services(app.state.services)
