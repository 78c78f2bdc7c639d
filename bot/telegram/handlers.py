"""Short aiogram handlers: private chats only, each update becomes one engine call."""

from __future__ import annotations

import logging

from aiogram import Router
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
    """Text, a command or a shared location; anything else (photos, voice, stickers, files,
    contacts) is answered kindly and goes no further: the engine never sees its content."""
    if message.location is not None and message.venue is None:
        location = message.location
        return Inbound("location", f"{location.latitude},{location.longitude}")
    text = message.text
    if text is None:
        # A photo's caption is read for a crisis; the photo itself never is.
        return Inbound("unsupported", message.caption or "")
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


async def on_error(
    event: ErrorEvent, catalogue: Catalogue, engine: ConversationEngine, identities: Identities
) -> bool:
    """Any failure gets a friendly reply, in the user's language; the log names the error type,
    never the content."""
    log.error(
        "update handling failed",
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
    )
    update = event.update
    message = update.message or (update.callback_query.message if update.callback_query else None)
    user = update.message.from_user if update.message else None
    if user is None and update.callback_query is not None:
        user = update.callback_query.from_user
    if message is not None and message.chat.type == "private":
        try:
            lang = "de"
            if user is not None:
                pseudonym = identities.pseudonym(channel=CHANNEL, identifier=str(user.id))
                lang = await engine.language(pseudonym=pseudonym)
            text = catalogue.text(lang, "error.generic")
            await message.bot.send_message(message.chat.id, text)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - reporting the failure must not fail again
            log.warning("could not tell the user about the failure")
    return True


# Coroutines rather than magic filters (F.chat.type == "private"): aiogram runs a filter that
# is a plain callable, a magic filter included, in a worker thread (asyncio.to_thread), one
# thread hop per update and filter, a quarter of the dispatcher's own cost per update.
async def private_message(message: Message) -> bool:
    return message.chat.type == "private"


async def private_callback(query: CallbackQuery) -> bool:
    return query.message is not None and query.message.chat.type == "private"


def create_router() -> Router:
    router = Router(name="telegram")
    router.message.filter(private_message)
    router.callback_query.filter(private_callback)
    router.message.register(on_message)
    router.callback_query.register(on_callback)
    router.errors.register(on_error)
    return router
