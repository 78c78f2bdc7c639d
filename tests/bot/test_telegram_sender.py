"""How the relay's Telegram sender reads Telegram's answers, against a Bot API over HTTP:
a user who blocked the bot is "blocked" for good, a flood wait is a pause with its seconds,
a server error is worth another try, a bad request is not."""

from __future__ import annotations

import uuid

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from bot.telegram.sender import TelegramSender
from core.relay import DeliveryError
from core.schemas import ContactRoute
from tests.bot.test_pacing import TOKEN

ANSWERS = {
    "blocked": (403, "Forbidden: bot was blocked by the user", {}),
    "flood": (429, "Too Many Requests: retry after 7", {"retry_after": 7}),
    "server": (502, "Bad Gateway", {}),
    "bad": (400, "Bad Request: message text is empty", {}),
}


class AnsweringBotAPI:
    def __init__(self, status: int, description: str, parameters: dict) -> None:
        self.answer = (status, description, parameters)

    async def handle(self, request: web.Request) -> web.Response:
        status, description, parameters = self.answer
        body = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)


@pytest.mark.parametrize(
    ("case", "reason", "permanent", "retry_after"),
    [
        ("blocked", "blocked", True, None),
        ("flood", "retry_after", False, 7.0),
        ("server", "transient", False, None),
        ("bad", "bad_request", True, None),
    ],
)
async def test_telegrams_refusals_become_delivery_states(
    services,
    serve,
    case,
    reason,
    permanent,
    retry_after,
):
    url = await serve(AnsweringBotAPI(*ANSWERS[case]))
    bot = Bot(token=TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    pseudonym = services.identities.pseudonym(channel="telegram", identifier="4242")
    route = ContactRoute(
        contact_id=uuid.uuid4(),
        channel="telegram",
        pseudonym=pseudonym,
        chat_ref=services.identities.seal_chat(pseudonym=pseudonym, chat_id=4242),
    )
    try:
        with pytest.raises(DeliveryError) as raised:
            await TelegramSender(bot=bot, identities=services.identities).send(
                route=route, text="Hallo"
            )
    finally:
        await bot.session.close()
    assert raised.value.reason == reason
    assert raised.value.permanent is permanent
    assert raised.value.retry_after == retry_after
