"""The bot's own answers under Telegram's limits.

Counsellor replies, farewells and check-ins leave through the relay's queue (core/relay.py),
which paces them and waits out a RetryAfter. The bot's direct answers to a user's message
(`message.answer`, `bot.send_message` in handlers.py) do not: they are sent while the update is
handled. This request middleware gives each of them a slot of the same channel pacing, and on
a RetryAfter (HTTP 429) pauses the relay's channel, waits and sends again, so an answer is not
lost to a flood limit. Sends made by the relay itself are marked and pass straight through: the
relay has taken their slot already and handles their errors.

Pacing is per process, as the relay's is (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot

    from core.relay import Relay

log = logging.getLogger(__name__)
CHANNEL = "telegram"
_RELAYED: ContextVar[bool] = ContextVar("lotse_relayed_send", default=False)


@contextlib.contextmanager
def relayed() -> Iterator[None]:
    """Around a send the relay makes (bot/telegram/sender.py)."""
    token = _RELAYED.set(True)
    try:
        yield
    finally:
        _RELAYED.reset(token)


class PacedAnswers(BaseRequestMiddleware):
    # A user is waiting for this answer: after this many flood waits, or one longer than
    # this, it is given up (logged; the user gets nothing, as Telegram refused) rather than
    # holding the chat's lock for minutes.
    max_waits = 3
    max_wait_seconds = 60.0

    def __init__(self, *, relay: Relay) -> None:
        self._relay = relay

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        if _RELAYED.get() or not isinstance(method, SendMessage):
            return await make_request(bot, method)
        waits = 0
        while True:
            delay = self._relay.reserve(CHANNEL)
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                seconds = float(error.retry_after)
                self._relay.pause(CHANNEL, seconds)
                waits += 1
                if waits >= self.max_waits or seconds > self.max_wait_seconds:
                    raise
                log.warning("answer waits for telegram", extra={"retry_after": seconds})
