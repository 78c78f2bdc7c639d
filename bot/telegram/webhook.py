"""Telegram webhook transport: POST /telegram/webhook, the alternative to long polling.

Each request is checked in this order, and nothing is parsed before the secret matched:
Telegram's secret header (constant-time compare), the body size (Content-Length, then while
reading), the update id (duplicates are dropped: a bounded set per process plus a Redis SET NX
when Redis is configured, so several processes agree). Then Telegram gets its 200 at once, and a
background task, created in arrival order, validates aiogram's Update model and feeds it to the
dispatcher, whose events isolation (OrderedEventIsolation) keeps each chat's updates in that
order. A malformed update is answered 200 as well (Telegram would otherwise resend it forever)
and recorded by update id and error type, never by content.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramUnauthorizedError
from aiogram.types import Update
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from core.crypto import constant_time_equal
from core.settings import Settings, SettingsError, check_webhook_settings

if TYPE_CHECKING:
    from lotse.runtime import Services

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
_SECRET_HEADER = SECRET_HEADER.lower().encode()  # as ASGI servers hand header names over
ALLOWED_UPDATES = ["message", "callback_query"]
MAX_BODY_BYTES = 1024 * 1024
RECENT_UPDATE_IDS = 10_000
# Telegram keeps an undelivered update for up to 24 hours, so a resend can come that late.
DUPLICATE_TTL = timedelta(hours=24)
# Updates received but not yet handled; beyond this Telegram is asked to resend later (503).
MAX_PENDING_UPDATES = 2_000
SHUTDOWN_GRACE_SECONDS = 5.0
Answer = tuple[int, str | None]  # status, and the detail of a refusal (None: an empty 200)
OK: Answer = (200, None)


class RecentUpdates:
    """Remembers update ids: True the first time an id is seen, False for a resend."""

    def __init__(self, *, bot_id: int, redis: Redis | None, capacity: int = RECENT_UPDATE_IDS):
        self._bot_id = bot_id
        self._redis = redis
        self._capacity = capacity
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def first_time(self, update_id: int) -> bool:
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        if self._redis is None:
            return True
        key = f"lotse:telegram:update:{self._bot_id}:{update_id}"
        try:
            return bool(await self._redis.set(key, b"1", nx=True, ex=DUPLICATE_TTL))
        except BaseException:
            self._seen.pop(update_id, None)  # not recorded anywhere: a resend must get through
            raise


class WebhookIngest:
    """Accepts updates for one bot and runs them through the dispatcher in the background."""

    def __init__(
        self, *, settings: Settings, bot: Bot, dispatcher: Dispatcher, redis: Redis | None
    ):
        check_webhook_settings(settings)
        secret = settings.webhook_secret
        if secret is None:  # check_webhook_settings refuses it; this keeps mypy and readers sure
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET is not set")
        self.secret = secret
        self.bot = bot
        self.dispatcher = dispatcher
        self.recent = RecentUpdates(bot_id=bot.id, redis=redis)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_services(cls, services: Services) -> WebhookIngest:
        if services.bot is None or services.dispatcher is None:
            raise SettingsError("TELEGRAM_MODE=webhook needs TELEGRAM_BOT_TOKEN.")
        return cls(
            settings=services.settings,
            bot=services.bot,
            dispatcher=services.dispatcher,
            redis=services.redis,
        )

    @property
    def busy(self) -> bool:
        return len(self._tasks) >= MAX_PENDING_UPDATES

    def submit(self, update_id: int, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(
            self._feed(update_id, payload), name=f"telegram-update-{update_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _feed(self, update_id: int, payload: dict[str, Any]) -> None:
        # Tasks start in the order they were created, and nothing here awaits before the
        # dispatcher's events isolation takes its per-chat place in line: arrival order holds.
        try:
            update = Update.model_validate(payload, context={"bot": self.bot})
        except Exception as error:  # ValidationError, or anything else: recorded, never lost
            _malformed(update_id, type(error).__name__)
            return
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception as error:  # the router's error handler failed too: record it
            log.error(
                "telegram update lost",
                extra={"update_id": update_id, "error": type(error).__name__},
            )

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Let updates in hand finish for a moment, then cancel (Telegram has had its 200)."""
        if not self._tasks:
            return
        done, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in pending:
            task.cancel()
            log.error("telegram update cut off at shutdown", extra={"task": task.get_name()})
        await asyncio.gather(*pending, return_exceptions=True)


class WebhookEndpoint:
    """POST /telegram/webhook as a plain ASGI app.

    FastAPI's per-request machinery (the Request object, dependency solving, response classes)
    cost more than the checks themselves, and Telegram's requests need none of it. The app's
    middleware (error handling, security headers) still wraps this endpoint.
    """

    def __init__(self, ingest: WebhookIngest):
        self.ingest = ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, detail = await accept(scope, receive, self.ingest)
        except ClientDisconnect:  # Telegram gave up before the body was in: nothing to answer
            return
        if detail is None:
            body, headers = b"", [(b"content-length", b"0")]
        else:
            body = json.dumps({"detail": detail}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> tuple[str | None, bytes | None]:
    """The secret token and Content-Length, in one pass over the headers (first one counts)."""
    secret: str | None = None
    length: bytes | None = None
    for name, value in scope["headers"]:
        if name == _SECRET_HEADER and secret is None:
            secret = value.decode("latin-1")
        elif name == b"content-length" and length is None:
            length = value
    return secret, length


async def _read_capped(receive: Receive, declared: bytes | None) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY_BYTES (declared or actual)."""
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    # An update nearly always arrives in one chunk: then it is passed on without a copy.
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _update_id(payload: Any) -> int | None:
    value = payload.get("update_id") if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _malformed(update_id: int | None, error: str) -> Answer:
    # Answered 200 so that Telegram does not resend it forever; recorded without content.
    log.warning("telegram update malformed", extra={"update_id": update_id, "error": error})
    return OK


async def accept(scope: Scope, receive: Receive, ingest: WebhookIngest) -> Answer:
    """The whole request path, as (status, detail): the endpoint only writes the answer."""
    given, declared = _headers(scope)
    if given is None:
        return 401, "missing secret token"
    if not constant_time_equal(given, ingest.secret):
        return 403, "wrong secret token"
    if ingest.busy:
        return 503, "busy, send again later"
    body = await _read_capped(receive, declared)
    if body is None:
        return 413, "request body too large"
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        return _malformed(None, type(error).__name__)
    update_id = _update_id(payload)
    if update_id is None:
        return _malformed(None, "missing update_id")
    try:
        first = await ingest.recent.first_time(update_id)
    except RedisError as error:
        log.error(
            "update id check failed", extra={"update_id": update_id, "error": type(error).__name__}
        )
        return 503, "try again later"
    if not first:
        log.info("duplicate telegram update dropped", extra={"update_id": update_id})
        return OK
    # Validated into aiogram's Update in the background task, not here: Telegram needs only
    # the update id checked to get its 200, and the task is created now, in arrival order.
    ingest.submit(update_id, payload)
    return OK


def create_route(ingest: WebhookIngest) -> Route:
    # Telegram's interface, not ours: kept out of the OpenAPI schema.
    return Route(WEBHOOK_PATH, WebhookEndpoint(ingest), methods=["POST"], include_in_schema=False)


async def register_webhook(bot: Bot, settings: Settings) -> bool:
    """setWebhook with our secret; True once Telegram accepted it.

    pending updates are kept (drop_pending_updates=False): they are users' messages.
    """
    url, secret = settings.telegram_webhook_url, settings.webhook_secret
    if url is None or secret is None:
        raise SettingsError("TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET are needed")
    await bot.set_webhook(
        url,
        secret_token=secret,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=False,
    )
    log.info("telegram webhook registered")
    return True


async def keep_webhook_registered(
    bot: Bot, settings: Settings, *, retry_max: float = 60.0
) -> None:
    """Registers the webhook, retrying with backoff while Telegram cannot be reached.

    A refusal (bad URL, wrong token) is permanent: it is logged as an error and not retried.
    """
    delay = 1.0
    while True:
        try:
            await register_webhook(bot, settings)
            return
        except (TelegramBadRequest, TelegramUnauthorizedError) as error:
            # Telegram's description (e.g. "bad webhook: ...") is what the operator must fix.
            log.error(
                "setWebhook refused",
                extra={"error": type(error).__name__, "detail": error.message},
            )
            return
        except (TelegramAPIError, OSError) as error:  # TimeoutError is an OSError
            log.warning(
                "setWebhook failed, retrying",
                extra={"error": type(error).__name__, "in_seconds": delay},
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, retry_max)
