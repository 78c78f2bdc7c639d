"""Factories for the aiogram Bot and Dispatcher; nothing is wired at import time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, ErrorEvent

from bot.engine import COMMANDS
from bot.telegram import handlers
from core.i18n import DEFAULT_LANGUAGE, Catalogue
from core.settings import Settings

if TYPE_CHECKING:
    from lotse.runtime import Services

log = logging.getLogger(__name__)


def create_bot(settings: Settings) -> Bot:
    token = settings.bot_token
    if token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    api = TelegramAPIServer.from_base(settings.telegram_api_base.rstrip("/"))
    return Bot(token=token, session=AiohttpSession(api=api))


def create_dispatcher(services: Services) -> Dispatcher:
    dispatcher = Dispatcher(
        storage=services.storage,
        events_isolation=services.isolation,
        engine=services.engine,
        identities=services.identities,
        catalogue=services.catalogue,
    )
    dispatcher.errors.register(record_failure)
    dispatcher.include_router(handlers.create_router())
    return dispatcher


async def record_failure(event: ErrorEvent) -> None:
    """Every failed update is recorded by its id; then the router's handler answers the user.

    With a webhook Telegram has its 200 already and will not resend, so this line is the record.
    """
    log.error(
        "telegram update failed",
        extra={"update_id": event.update.update_id, "error": type(event.exception).__name__},
    )
    raise SkipHandler


async def register_commands(bot: Bot, catalogue: Catalogue) -> None:
    """The command menu in every catalogue language; German is also the default for clients
    in any other language. Best effort: the bot works without its menu, so a failure only logs."""
    for lang in catalogue.interface_languages:
        commands = [
            BotCommand(command=name, description=catalogue.text(lang, f"command.{name}"))
            for name in COMMANDS
        ]
        try:
            await bot.set_my_commands(
                commands, language_code=None if lang == DEFAULT_LANGUAGE else lang
            )
        except TelegramAPIError as error:  # one language failing leaves the others their menu
            log.warning(
                "setMyCommands failed", extra={"language": lang, "error": type(error).__name__}
            )
