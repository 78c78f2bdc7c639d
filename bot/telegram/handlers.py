"""Short aiogram handlers: private chats only, each update becomes one engine call."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.engine import ConversationEngine, Inbound, Reply, Sender
from core.i18n import Catalogue
from core.identity import Identities

log = logging.getLogger(__name__)
CHANNEL = "telegram"


def _sender(identities: Identities, user_id: int, chat_id: int) -> Sender:
    pseudonym = identities.pseudonym(channel=CHANNEL, identifier=str(user_id))
    return Sender(CHANNEL, pseudonym, identities.seal_chat(pseudonym=pseudonym, chat_id=chat_id))


def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    rows = [
        [InlineKeyboardButton(text=b.label, callback_data=b.action) for b in row]
        for row in reply.buttons
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def _answer(message: Message, replies: list[Reply]) -> None:
    # Plain text (no parse mode): user-supplied and directory text can never inject markup.
    for reply in replies:
        await message.answer(reply.text, reply_markup=_markup(reply), parse_mode=None)


def _inbound(message: Message) -> Inbound:
    text = message.text
    if text is None:
        return Inbound("unsupported")
    if text.startswith("/"):
        command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""
        return Inbound("command", command)
    return Inbound("text", text)


async def on_message(message: Message, engine: ConversationEngine, identities: Identities) -> None:
    if message.from_user is None:
        return
    sender = _sender(identities, message.from_user.id, message.chat.id)
    await _answer(message, await engine.handle(sender=sender, inbound=_inbound(message)))


async def on_callback(
    query: CallbackQuery, engine: ConversationEngine, identities: Identities
) -> None:
    await query.answer()
    if query.message is None or query.data is None:
        return
    sender = _sender(identities, query.from_user.id, query.message.chat.id)
    replies = await engine.handle(sender=sender, inbound=Inbound("action", query.data))
    for reply in replies:
        await query.bot.send_message(  # type: ignore[union-attr]
            query.message.chat.id, reply.text, reply_markup=_markup(reply), parse_mode=None
        )


async def on_error(event: ErrorEvent, catalogue: Catalogue) -> bool:
    """Any failure gets a friendly reply; the log names the error type, never the content."""
    log.error(
        "update handling failed",
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
    )
    message = event.update.message or (
        event.update.callback_query.message if event.update.callback_query else None
    )
    if message is not None and message.chat.type == "private":
        try:
            await message.bot.send_message(message.chat.id, catalogue.text("de", "error.generic"))  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - reporting the failure must not fail again
            log.warning("could not tell the user about the failure")
    return True


def create_router() -> Router:
    router = Router(name="telegram")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(on_message)
    router.callback_query.register(on_callback)
    router.errors.register(on_error)
    return router
