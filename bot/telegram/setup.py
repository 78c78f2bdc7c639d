"""Factories for the aiogram Bot and Dispatcher; nothing is wired at import time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand

from bot.telegram import handlers
from core.settings import Settings

if TYPE_CHECKING:
    from lotse.runtime import Services

log = logging.getLogger(__name__)
COMMANDS = {
    "de": [("start", "Neu anfangen"), ("hilfe", "Hilfe und Notfallnummern"), ("neu", "Von vorn")],
    "en": [("start", "Start over"), ("hilfe", "Help and hotlines"), ("neu", "Start again")],
}


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
    dispatcher.include_router(handlers.create_router())
    return dispatcher


async def register_commands(bot: Bot) -> None:
    """Best effort: the bot works without its command menu, so a failure only logs."""
    try:
        for lang, commands in COMMANDS.items():
            await bot.set_my_commands(
                [BotCommand(command=c, description=d) for c, d in commands],
                language_code=None if lang == "de" else lang,
            )
    except TelegramAPIError as error:
        log.warning("setMyCommands failed", extra={"error": type(error).__name__})
