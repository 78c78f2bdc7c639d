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
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from cryptography.exceptions import InvalidTag

from bot.telegram.pacing import relayed
from core.identity import Identities
from core.relay import Buttons, DeliveryError
from core.schemas import ContactRoute


class TelegramSender:
    def __init__(self, *, bot: Bot, identities: Identities) -> None:
        self._bot = bot
        self._identities = identities

    async def send(self, *, route: ContactRoute, text: str, buttons: Buttons = ()) -> None:
        if route.chat_ref is None:
            raise DeliveryError("no_route", permanent=True)
        try:
            chat_id = self._identities.open_chat(pseudonym=route.pseudonym, sealed=route.chat_ref)
        except (InvalidTag, ValueError):
            # A changed routing key or a tampered row: this reply cannot be routed, say so.
            raise DeliveryError("no_route", permanent=True) from None
        try:
            with relayed():  # its slot is taken already: the answers' pacing lets it pass
                await self._bot.send_message(
                    chat_id, text, parse_mode=None, reply_markup=_markup(buttons)
                )
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


def _markup(buttons: Buttons) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    rows = [
        [InlineKeyboardButton(text=label, callback_data=action) for label, action in row]
        for row in buttons
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)
