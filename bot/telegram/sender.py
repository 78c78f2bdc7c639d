"""Delivers relayed counsellor replies to Telegram, mapping its errors for the relay."""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from cryptography.exceptions import InvalidTag

from core.identity import Identities
from core.relay import DeliveryError
from core.schemas import ContactRoute


class TelegramSender:
    def __init__(self, *, bot: Bot, identities: Identities) -> None:
        self._bot = bot
        self._identities = identities

    async def send(self, *, route: ContactRoute, text: str) -> None:
        if route.chat_ref is None:
            raise DeliveryError("no_route", permanent=True)
        try:
            chat_id = self._identities.open_chat(pseudonym=route.pseudonym, sealed=route.chat_ref)
        except (InvalidTag, ValueError):
            # A changed routing key or a tampered row: this reply cannot be routed, say so.
            raise DeliveryError("no_route", permanent=True) from None
        try:
            await self._bot.send_message(chat_id, text, parse_mode=None)
        except TelegramRetryAfter as error:
            raise DeliveryError("retry_after", retry_after=float(error.retry_after)) from None
        except TelegramForbiddenError:
            raise DeliveryError("blocked", permanent=True) from None
        except TelegramBadRequest:
            raise DeliveryError("bad_request", permanent=True) from None
        except (TelegramNetworkError, TelegramServerError):
            raise DeliveryError("transient") from None
        except TelegramAPIError:
            raise DeliveryError("rejected", permanent=True) from None
