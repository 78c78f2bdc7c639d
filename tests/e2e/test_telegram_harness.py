"""Self-test of the e2e Telegram harness: a real aiogram Bot against the mended emulator.

The tests are sync (like the browser e2e tests); aiogram calls run via ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from tests.e2e.telegram_harness import BotApiEmulator, TelegramUser

pytestmark = pytest.mark.e2e

T = TypeVar("T")
_bot_ids = itertools.count(700_001)


@pytest.fixture(scope="module")
def emulator() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as running:
        yield running


@pytest.fixture
def token() -> str:
    """A fresh bot per test, so update buffers never leak between tests."""
    return f"{next(_bot_ids)}:E2E-harness-token"


@pytest.fixture
def user(emulator: BotApiEmulator, token: str) -> TelegramUser:
    return emulator.user(token, first_name="Mia")


def make_bot(emulator: BotApiEmulator, token: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.api_base))
    return Bot(token, session=session)


def with_bot(emulator: BotApiEmulator, token: str, action: Callable[[Bot], Awaitable[T]]) -> T:
    """Run one async bot interaction from sync test code."""

    async def run() -> T:
        async with make_bot(emulator, token) as bot:
            return await action(bot)

    return asyncio.run(run())


def choice_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Yes", callback_data="answer:yes")],
            [InlineKeyboardButton(text="No", callback_data="answer:no")],
        ]
    )


def test_get_me_is_mended(emulator: BotApiEmulator, token: str) -> None:
    me = with_bot(emulator, token, lambda bot: bot.get_me())
    assert me.is_bot is True
    assert me.id == int(token.split(":")[0])
    assert me.username == emulator.bot_username


def test_unsupported_methods_succeed_and_are_recorded(
    emulator: BotApiEmulator, token: str
) -> None:
    async def configure(bot: Bot) -> tuple[bool, bool, list[BotCommand], bool]:
        commands = [BotCommand(command="start", description="Start")]
        set_ok = await bot.set_my_commands(commands)
        action_ok = await bot.send_chat_action(chat_id=1, action="typing")
        listed = await bot.get_my_commands()
        deleted = await bot.delete_my_commands()
        await bot.set_chat_menu_button()
        return set_ok, action_ok, listed, deleted

    set_ok, action_ok, listed, deleted = with_bot(emulator, token, configure)
    assert (set_ok, action_ok, deleted) == (True, True, True)
    assert [c.command for c in listed] == ["start"]
    call = emulator.wait_for_call("setMyCommands", token=token)
    assert call.params["commands"] == [{"command": "start", "description": "Start"}]
    assert emulator.calls_to("setChatMenuButton", token)


def test_get_updates_honours_offset(
    emulator: BotApiEmulator, token: str, user: TelegramUser
) -> None:
    user.send_command("/start")

    async def poll(bot: Bot) -> tuple[list[Update], list[Update], list[Update]]:
        first = await bot.get_updates(timeout=1)
        unconfirmed = await bot.get_updates(timeout=0)  # still there: not confirmed yet
        confirmed = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
        return first, unconfirmed, confirmed

    first, unconfirmed, confirmed = with_bot(emulator, token, poll)
    assert len(first) == 1
    message = first[0].message
    assert message is not None and message.text == "/start"
    assert message.from_user is not None and message.from_user.id == user.user_id
    assert message.entities and message.entities[0].type == "bot_command"
    assert [u.update_id for u in unconfirmed] == [first[0].update_id]
    assert confirmed == []


def test_long_poll_waits_then_returns_early(
    emulator: BotApiEmulator, token: str, user: TelegramUser
) -> None:
    async def timed(bot: Bot, seconds: int) -> tuple[list[Update], float]:
        started = time.monotonic()
        updates = await bot.get_updates(timeout=seconds)
        return updates, time.monotonic() - started

    empty, waited = with_bot(emulator, token, lambda bot: timed(bot, 1))
    assert empty == []
    assert waited >= 0.8

    # Something arriving mid-poll ends the long poll well before its timeout.
    sender = threading.Timer(0.3, user.send_text, args=("hello",))
    sender.start()
    updates, waited = with_bot(emulator, token, lambda bot: timed(bot, 10))
    sender.join()
    assert [u.message.text for u in updates if u.message] == ["hello"]
    assert waited < 5


def test_inline_keyboard_click_and_edit(
    emulator: BotApiEmulator, token: str, user: TelegramUser
) -> None:
    sent = with_bot(
        emulator,
        token,
        lambda bot: bot.send_message(user.chat_id, "Choose one", reply_markup=choice_keyboard()),
    )
    assert sent.chat.id == user.chat_id
    assert isinstance(sent.reply_markup, InlineKeyboardMarkup)

    seen = user.wait_for_message("Choose")
    assert seen["message_id"] == sent.message_id
    assert user.last_keyboard() == ["Yes", "No"]

    user.click("Yes")
    updates = with_bot(emulator, token, lambda bot: bot.get_updates(timeout=2))
    query = updates[-1].callback_query
    assert query is not None and query.data == "answer:yes"
    assert query.chat_instance
    assert query.from_user.id == user.user_id
    assert isinstance(query.message, Message)
    assert query.message.message_id == sent.message_id
    assert query.message.chat.id == user.chat_id

    async def answer(bot: Bot) -> bool:
        await bot.answer_callback_query(query.id)
        edited = await bot.edit_message_text(
            text="You chose yes", chat_id=user.chat_id, message_id=sent.message_id
        )
        return edited is True

    assert with_bot(emulator, token, answer)
    edited = next(m for m in user.messages() if m["message_id"] == sent.message_id)
    assert edited["text"] == "You chose yes"
    assert user.last_keyboard() == []  # Telegram drops the keyboard on a plain text edit


def test_users_are_isolated(emulator: BotApiEmulator, token: str) -> None:
    alice, bob = emulator.user(token, first_name="Alice"), emulator.user(token, first_name="Bob")
    assert alice.chat_id != bob.chat_id

    async def greet(bot: Bot) -> None:
        await bot.send_message(alice.chat_id, "for alice")
        await bot.send_message(bob.chat_id, "for bob")

    with_bot(emulator, token, greet)
    assert bob.wait_for_message()["text"] == "for bob"
    assert alice.wait_for_message()["text"] == "for alice"
    assert [m["text"] for m in alice.messages()] == ["for alice"]


def echo_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Pick a letter", reply_markup=letter_keyboard())

    @router.callback_query(F.data.startswith("letter:"))
    async def picked(query: CallbackQuery) -> None:
        await query.answer()
        assert isinstance(query.message, Message)
        await query.message.answer(f"clicked {query.data}")

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        await message.answer(f"photo received ({len(message.photo or [])} sizes)")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    return router


def letter_keyboard() -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(text=x, callback_data=f"letter:{x}") for x in "AB"]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


class PollingBot:
    """An aiogram Dispatcher long-polling in a background thread (own event loop)."""

    def __init__(self, emulator: BotApiEmulator, token: str, router: Router) -> None:
        self._dispatcher = Dispatcher()
        self._dispatcher.include_router(router)
        self._bot = make_bot(emulator, token)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="polling-bot", daemon=True
        )

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        polling = asyncio.create_task(
            self._dispatcher.start_polling(self._bot, handle_signals=False)
        )
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({polling, stop}, return_when=asyncio.FIRST_COMPLETED)
        # stop_polling is awaited inside this loop: awaiting it from another thread
        # would hang, because the loop ends as soon as polling returns.
        if not polling.done():
            await self._dispatcher.stop_polling()
        stop.cancel()
        await polling  # re-raises a polling crash in the thread

    def __enter__(self) -> PollingBot:
        self._thread.start()
        assert self._started.wait(timeout=5), "polling thread did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "polling did not stop"


def test_dispatcher_polling_round_trip(
    emulator: BotApiEmulator, token: str, user: TelegramUser
) -> None:
    with PollingBot(emulator, token, echo_router()):
        user.send_command("/start")
        assert user.wait_for_message("Pick a letter")
        user.click("B")
        assert user.wait_for_message("clicked letter:B")
        user.send_text("hello")
        assert user.wait_for_message("echo: hello")
        user.send_photo()
        assert user.wait_for_message("photo received (2 sizes)")
    # Polling really ran through the proxy, with aiogram's allowed_updates honoured.
    assert emulator.calls_to("getUpdates", token)
    assert emulator.calls_to("answerCallbackQuery", token)


def test_media_upload_reaches_the_user(
    emulator: BotApiEmulator, token: str, user: TelegramUser
) -> None:
    photo = BufferedInputFile(b"\x89PNG fake image bytes", filename="chart.png")
    sent = with_bot(
        emulator, token, lambda bot: bot.send_photo(user.chat_id, photo, caption="Your chart")
    )
    assert sent.caption == "Your chart"
    received = user.wait_for_message("Your chart")
    assert received["harness_media_method"] == "sendPhoto"
    # The multipart upload was converted for the emulator; the call keeps the file name.
    assert emulator.calls_to("sendPhoto", token)[-1].params["photo"] == "chart.png"
