"""The bot's direct answers under Telegram's limits, against a Bot API over HTTP that answers
the first sendMessage with a flood wait (HTTP 429), as Telegram does: the answer waits it out
and arrives, the relay's queue pauses with it, and both share one rate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiohttp import web

from bot.telegram.pacing import CHANNEL, PacedAnswers, relayed
from core.relay import OutboundJob, Relay
from core.schemas import ContactRoute

TOKEN = "123456:TEST-pacing"


class FloodingBotAPI:
    """sendMessage answers 429 `floods` times, then succeeds; every call is recorded."""

    def __init__(self, *, floods: int, retry_after: int = 1) -> None:
        self.floods = floods
        self.retry_after = retry_after
        self.calls: list[tuple[str, float]] = []

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append((method, time.monotonic()))
        if method.lower() == "sendmessage" and self.floods > 0:
            self.floods -= 1
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {self.retry_after}",
                    "parameters": {"retry_after": self.retry_after},
                },
                status=429,
            )
        message = {"message_id": len(self.calls), "date": 0, "chat": {"id": 1, "type": "private"}}
        return web.json_response({"ok": True, "result": {**message, "text": "ok"}})

    def sends(self) -> list[float]:
        return [at for method, at in self.calls if method.lower() == "sendmessage"]


@pytest.fixture
async def bots() -> AsyncIterator:
    made: list[Bot] = []

    def make(url: str, relay: Relay) -> Bot:
        bot = Bot(token=TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
        bot.session.middleware(PacedAnswers(relay=relay))
        made.append(bot)
        return bot

    yield make
    for bot in made:
        await bot.session.close()


def relay_for(services, *, rate: float = 28.0) -> Relay:
    return Relay(
        senders={},
        conversations=services.conversations,
        clock=services.clock,
        rate_per_second=rate,
    )


async def test_an_answer_waits_out_a_flood_limit_and_arrives(services, serve, bots):
    api = FloodingBotAPI(floods=1)
    relay = relay_for(services)
    bot = bots(await serve(api), relay)
    started = time.monotonic()
    sent = await bot.send_message(1, "Hallo")
    assert sent.message_id > 0
    first, second = api.sends()
    assert second - first >= 0.95, "sent again only after retry_after"
    assert time.monotonic() - started < 5
    # The relay's queue waits the rest of the flood out too: Telegram counts it per bot.
    assert relay.reserve(CHANNEL) >= 0 and relay._paused_until[CHANNEL] > started


async def test_a_flood_that_does_not_end_gives_the_answer_up(services, serve, bots):
    api = FloodingBotAPI(floods=10)
    bot = bots(await serve(api), relay_for(services))
    PacedAnswers.max_waits = 2
    try:
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(1, "Hallo")
    finally:
        PacedAnswers.max_waits = 3
    assert len(api.sends()) == 2


async def test_sends_of_the_relay_pass_through_untouched(services, serve, bots):
    """The relay has taken their slot and handles a 429 itself (pausing, retrying later)."""
    api = FloodingBotAPI(floods=1)
    bot = bots(await serve(api), relay_for(services))
    with relayed(), pytest.raises(TelegramRetryAfter):
        await bot.send_message(1, "Antwort der Beraterin")
    assert len(api.sends()) == 1


async def test_answers_and_queued_jobs_share_one_rate(services, serve, bots):
    """At 5 per second, three answers take two intervals, and the queue's next job waits
    behind them: together they never exceed the rate."""
    api = FloodingBotAPI(floods=0)
    relay = relay_for(services, rate=5.0)
    bot = bots(await serve(api), relay)
    await asyncio.gather(*(bot.send_message(1, f"Antwort {i}") for i in range(3)))
    sends = sorted(api.sends())
    assert sends[-1] - sends[0] >= 0.35
    assert relay.reserve(CHANNEL) >= 0.15, "the next slot is after the answers' slots"


async def test_a_queued_job_waits_for_a_pause_an_answer_met(services, serve, bots):
    class Recording:
        def __init__(self) -> None:
            self.at: list[float] = []

        async def send(self, *, route, text, buttons=()) -> None:
            self.at.append(time.monotonic())

    sender = Recording()
    relay = Relay(
        senders={CHANNEL: sender},
        conversations=services.conversations,
        clock=services.clock,
        rate_per_second=28.0,
    )
    running = asyncio.create_task(relay.run())
    try:
        relay.pause(CHANNEL, 0.5)
        paused_at = time.monotonic()
        route = ContactRoute(
            contact_id=uuid.uuid4(), channel=CHANNEL, pseudonym="p", chat_ref=b"x"
        )
        await relay.enqueue(OutboundJob(uuid.uuid4(), route, "nach der Pause"))
        await asyncio.wait_for(relay.drain(), 5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert sender.at and sender.at[0] - paused_at >= 0.45
