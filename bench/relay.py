"""Outbound relay against a Bot API stub that answers 429 like Telegram.

    .venv/bin/python -m bench.relay [--scenario backlog|burst|mixed|overrate] [--chats N]
                                    [--messages M] [--burst B] [--rate R] [--over-rate R2]
                                    [--retry-after S] [--sequential]

A stub of the Bot API runs as a real HTTP server on loopback, in a process of its own (so that
its clock and its event loop are not the relay's). It enforces Telegram's limits with sliding
windows: more than 30 messages in any second for one bot, or more than one per second for one
chat, gets HTTP 429 with `parameters.retry_after`, and the bot (or chat) stays refused until that
has passed. The real relay (core/relay.py) sends through the real TelegramSender and an aiogram
Bot built by bot/telegram/setup.create_bot with TELEGRAM_API_BASE pointing at the stub.

Scenarios (each with a bot token of its own, so their limits do not mix; by default they run at
the same time so that a full run stays under a minute):

- backlog:  N chats x M replies enqueued at once, at the configured rate (TELEGRAM_SEND_RATE).
- burst:    one chat gets B replies at once; only the per-chat pacing (1/s) applies.
- mixed:    one chat with a burst of B, 100 chats x 2 at once, and 40 new chats trickling in.
- overrate: 100 chats x 3 at a deliberately too-high rate, to show how the relay reacts to 429.

Figures: drain rate, 429s (and the ones after the first), busiest second per bot and per chat,
per-chat order of what the stub accepted, enqueue-to-200 latency. Exit code 1 when a message was
lost, duplicated or reordered, never for speed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple, cast

import aiogram
import aiohttp
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.methods import Response, SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import web

from bot.telegram.sender import TelegramSender
from bot.telegram.setup import create_bot
from core.clock import SystemClock
from core.conversations import ConversationService
from core.identity import Identities
from core.relay import OutboundJob, Relay
from core.schemas import ContactRoute
from core.settings import load_settings, new_secret

CHANNEL = "telegram"
WINDOW = 1.0  # seconds: Telegram states its limits per second
BOT_LIMIT = 30  # messages per WINDOW per bot
CHAT_LIMIT = 1  # messages per WINDOW per chat
FIRST_CHAT_ID = 100_000


# -- the edge we do not run: Telegram's Bot API, as a rate-limiting stub -----------------------


class Call(NamedTuple):
    """One sendMessage as the stub saw it; `why` says which limit refused it."""

    at: float
    chat: int
    status: int
    text: str
    why: str = ""  # "bot" (30/s), "chat" (1/s) or "blocked" (inside a retry_after)


@dataclass
class _Limits:
    """One bot's sliding windows. Only accepted messages count: a refused call sent nothing."""

    accepted: deque[float] = field(default_factory=deque)
    per_chat: dict[int, deque[float]] = field(default_factory=dict)
    blocked_until: float = 0.0
    chat_blocked_until: dict[int, float] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    next_id: Iterator[int] = field(default_factory=lambda: itertools.count(1))


class StubState:
    def __init__(self, *, retry_after: int) -> None:
        self.retry_after = retry_after
        self.bots: dict[str, _Limits] = defaultdict(_Limits)

    def decide(self, token: str, chat_id: int, now: float) -> tuple[int, str] | None:
        """Seconds to wait and why (a 429), or None when the message may be delivered now."""
        bot = self.bots[token]
        # Like Telegram's flood wait: once refused, the bot (or chat) is refused until it passes.
        until = max(bot.blocked_until, bot.chat_blocked_until.get(chat_id, 0.0))
        if now < until:
            return max(1, math.ceil(until - now)), "blocked"
        for window in (bot.accepted, bot.per_chat.get(chat_id, deque())):
            while window and window[0] <= now - WINDOW:
                window.popleft()
        if len(bot.accepted) >= BOT_LIMIT:
            bot.blocked_until = now + self.retry_after
            return self.retry_after, "bot"
        if len(bot.per_chat.get(chat_id, ())) >= CHAT_LIMIT:
            bot.chat_blocked_until[chat_id] = now + self.retry_after
            return self.retry_after, "chat"
        bot.accepted.append(now)
        bot.per_chat.setdefault(chat_id, deque()).append(now)
        return None


def create_stub_app(state: StubState) -> web.Application:
    async def send_message(request: web.Request) -> web.Response:
        now = time.monotonic()  # arrival, before parsing: what Telegram's counter would see
        token = request.match_info["token"]
        form = await request.post()
        chat_id = int(str(form["chat_id"]))
        text = str(form.get("text", ""))
        bot = state.bots[token]
        refused = state.decide(token, chat_id, now)
        if refused is not None:
            wait, why = refused
            bot.calls.append(Call(now, chat_id, 429, text, why))
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {wait}",
                    "parameters": {"retry_after": wait},
                },
                status=429,
            )
        bot.calls.append(Call(now, chat_id, 200, text))
        message = {
            "message_id": next(bot.next_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": text,
        }
        return web.json_response({"ok": True, "result": message})

    async def get_me(request: web.Request) -> web.Response:
        user = {"id": int(request.match_info["token"].split(":")[0]), "is_bot": True}
        return web.json_response({"ok": True, "result": {**user, "first_name": "Stub"}})

    async def calls(request: web.Request) -> web.Response:
        return web.json_response(state.bots[request.match_info["token"]].calls)

    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", send_message)
    app.router.add_post("/bot{token}/getMe", get_me)
    app.router.add_get("/_calls/{token}", calls)
    return app


async def _serve_stub(conn: Connection, retry_after: int) -> None:
    runner = web.AppRunner(create_stub_app(StubState(retry_after=retry_after)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # port 0: the OS picks a free one
    await site.start()
    conn.send(runner.addresses[0][1])
    await asyncio.to_thread(conn.recv)  # any message from the parent means stop
    await runner.cleanup()


def _stub_main(conn: Connection, retry_after: int) -> None:
    asyncio.run(_serve_stub(conn, retry_after))


class Stub:
    """The stub's process. time.monotonic is system-wide on Linux, so both sides share it."""

    def __init__(self, retry_after: int) -> None:
        # Forked before any event loop or thread exists: a spawned child would spend seconds
        # importing aiogram again. Spawn only where fork is not available.
        fork = "fork" in multiprocessing.get_all_start_methods()
        context = (
            multiprocessing.get_context("fork") if fork else multiprocessing.get_context("spawn")
        )
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_stub_main, args=(child, retry_after), daemon=True, name="bot-api-stub"
        )
        self.url = ""

    def start(self) -> None:
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the Bot API stub did not start")
        self.url = f"http://127.0.0.1:{self._conn.recv()}"

    async def calls(self, token: str) -> list[Call]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.url}/_calls/{token}") as response:
                return [Call(*row) for row in await response.json()]

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()


# -- what the relay's side sees --------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    chat_id: int
    retry_after: float | None  # set for a 429


class RequestTap(BaseRequestMiddleware):
    """Records when each sendMessage left and when its answer came, inside aiogram's session,
    so the relay and the sender run unchanged. Needed to tell a 429 the relay could not have
    avoided (already on the wire) from one sent while it should have been pausing."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        started = time.monotonic()
        chat_id = int(method.chat_id) if isinstance(method, SendMessage) else 0
        try:
            response = await make_request(bot, method)
        except TelegramRetryAfter as error:
            self.attempts.append(Attempt(started, time.monotonic(), chat_id, error.retry_after))
            raise
        except TelegramAPIError:
            self.attempts.append(Attempt(started, time.monotonic(), chat_id, None))
            raise
        self.attempts.append(Attempt(started, time.monotonic(), chat_id, None))
        return response


class DeliveryLog:
    """Stands in for ConversationService.mark_delivery, with the same keyword-only coroutine.

    The database is not what is measured here (bench.run measures message writes), and the
    relay marks outside its pacing path (after the chat's next job is scheduled), so a recorder
    keeps the figures about pacing; it also gives the moment the relay learned each outcome."""

    def __init__(self) -> None:
        self.marks: dict[uuid.UUID, tuple[float, str]] = {}
        self.marked_twice = 0

    async def mark_delivery(self, *, message_id: uuid.UUID, delivery: str) -> None:
        self.marked_twice += message_id in self.marks
        self.marks[message_id] = (time.monotonic(), delivery)


# -- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    at: float  # seconds after the scenario starts; 0 = part of the initial backlog
    chat: int
    text: str


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: float
    sends: list[Send]
    about: str


def text(chat: int, k: int) -> str:
    # Unique per chat and position, so lost, duplicated and reordered can be told apart.
    return f"reply {k} to chat {chat}"


def backlog_sends(chats: int, messages: int, *, first: int = FIRST_CHAT_ID) -> list[Send]:
    # Round-robin, as several counsellors answering at once would queue them.
    return [
        Send(0.0, first + c, text(first + c, k))
        for k in range(1, messages + 1)
        for c in range(chats)
    ]


def build_scenarios(args: argparse.Namespace, rate: float) -> list[Scenario]:
    burst_chat = FIRST_CHAT_ID - 1
    burst = [Send(0.0, burst_chat, text(burst_chat, k)) for k in range(1, args.burst + 1)]
    trickle_first = FIRST_CHAT_ID + 1000
    # New chats every 0.25 s while the backlog drains: their replies queue behind it.
    trickle = [
        Send(0.25 * (i + 1), trickle_first + i, text(trickle_first + i, 1)) for i in range(40)
    ]
    every = {
        "backlog": Scenario(
            "backlog",
            rate,
            backlog_sends(args.chats, args.messages),
            f"{args.chats} chats x {args.messages} at once",
        ),
        "burst": Scenario("burst", rate, burst, f"1 chat x {args.burst} at once"),
        "mixed": Scenario(
            "mixed",
            rate,
            burst + backlog_sends(100, 2) + trickle,
            f"1 chat x {args.burst} + 100 chats x 2 at once + 40 chats at 4/s",
        ),
        "overrate": Scenario(
            "overrate", args.over_rate, backlog_sends(100, 3), "100 chats x 3 at once"
        ),
    }
    return [every[name] for name in args.scenario]


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: Scenario
    token: str
    enqueued: dict[uuid.UUID, tuple[float, Send]] = field(default_factory=dict)
    marks: dict[uuid.UUID, tuple[float, str]] = field(default_factory=dict)
    marked_twice: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    started: float = 0.0


async def run_scenario(scenario: Scenario, *, stub: Stub, index: int, data_dir: Path) -> Outcome:
    token = f"{4_200_000 + index}:bench-relay-{scenario.name}"
    settings = load_settings(
        env="test",
        data_dir=data_dir,
        pseudonym_pepper=new_secret(),
        routing_key=new_secret(),
        telegram_bot_token=token,
        telegram_api_base=stub.url,
    )
    identities = Identities(settings)
    bot = create_bot(settings)  # the production factory: TelegramAPIServer.from_base(stub)
    tap = RequestTap()
    bot.session.middleware(tap)
    deliveries = DeliveryLog()
    # As lotse.runtime.build_services builds it, with the recorder in place of the service.
    relay = Relay(
        senders={CHANNEL: TelegramSender(bot=bot, identities=identities)},
        conversations=cast(ConversationService, deliveries),
        clock=SystemClock(),
        rate_per_second=scenario.rate,
    )
    routes: dict[int, ContactRoute] = {}
    for send in scenario.sends:
        if send.chat not in routes:
            pseudonym = identities.pseudonym(channel=CHANNEL, identifier=str(send.chat))
            routes[send.chat] = ContactRoute(
                contact_id=uuid.uuid4(),
                channel=CHANNEL,
                pseudonym=pseudonym,
                chat_ref=identities.seal_chat(pseudonym=pseudonym, chat_id=send.chat),
            )
    outcome = Outcome(scenario, token)
    runner = asyncio.create_task(relay.run())
    outcome.started = time.monotonic()

    async def enqueue(send: Send) -> None:
        job = OutboundJob(message_id=uuid.uuid4(), route=routes[send.chat], text=send.text)
        outcome.enqueued[job.message_id] = (time.monotonic(), send)
        await relay.enqueue(job)

    try:
        for send in (s for s in scenario.sends if s.at == 0.0):
            await enqueue(send)
        # drain() returns whenever nothing is pending, so the late ones must all be in first.
        for send in sorted((s for s in scenario.sends if s.at > 0.0), key=lambda s: s.at):
            await asyncio.sleep(max(0.0, outcome.started + send.at - time.monotonic()))
            await enqueue(send)
        await relay.drain()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await bot.session.close()
    outcome.marks = deliveries.marks
    outcome.marked_twice = deliveries.marked_twice
    outcome.attempts = tap.attempts
    outcome.calls = await stub.calls(token)
    return outcome


# -- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    # Nearest rank, as bench.run: the value at or below which p % of the messages arrived.
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def busiest_window(times: list[float]) -> int:
    """Most events in any half-open window of WINDOW seconds (the stub counts the same way)."""
    ordered = sorted(times)
    most, low = 0, 0
    for high, t in enumerate(ordered):
        while ordered[low] <= t - WINDOW:
            low += 1
        most = max(most, high - low + 1)
    return most


@dataclass
class Figures:
    name: str
    rate: float
    messages: int
    delivered: int
    wall: float
    drain_rate: float
    stub_pace: float
    too_many: int
    causes: Counter[str]
    after_first: int
    in_flight: int
    during_pause: int
    fresh: int
    bot_busiest: int
    chat_busiest: int
    chat_min_gap: float
    chats: int
    chats_in_order: int
    lost: int
    duplicated: int
    failed_marks: int
    p50: float
    p95: float
    p_max: float
    resume_gaps: list[float]
    others_done: float  # when every chat but the one with the most messages was through

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.chats_in_order == self.chats

    def order(self) -> str:
        return (
            f"{self.chats_in_order}/{self.chats} chats in order, {self.lost} lost,"
            f" {self.duplicated} duplicated"
        )


def classify_429s(attempts: list[Attempt]) -> tuple[int, int, int, list[float]]:
    """Split the 429s after the first: already on the wire when the relay learned of a 429
    (unavoidable), sent while a pause it had been told about was still running (a relay bug),
    or sent after the pause had ended (the configured rate is too high). Also returns, per
    pause, how long after the 429 arrived the next request left."""
    refused = sorted((a for a in attempts if a.retry_after is not None), key=lambda a: a.started)
    in_flight = during_pause = fresh = 0
    for i, attempt in enumerate(refused[1:], start=1):
        known = [r for r in refused[:i] if r.ended <= attempt.started]
        if any(r.ended + (r.retry_after or 0.0) > attempt.started for r in known):
            during_pause += 1
        elif len(known) < i:  # an earlier 429 was still on its way back when this one left
            in_flight += 1
        else:
            fresh += 1
    starts = sorted(a.started for a in attempts)
    gaps = []
    for r in refused:
        later = [s for s in starts if s >= r.ended]
        if later:
            gaps.append(later[0] - r.ended)
    return in_flight, during_pause, fresh, gaps


def figures(outcome: Outcome) -> Figures:
    sends = outcome.scenario.sends
    calls = outcome.calls
    accepted: dict[int, list[str]] = defaultdict(list)
    chat_times: dict[int, list[float]] = defaultdict(list)
    for call in calls:
        chat_times[call.chat].append(call.at)
        if call.status == 200:
            accepted[call.chat].append(call.text)
    expected: dict[int, list[str]] = defaultdict(list)
    for send in sends:
        expected[send.chat].append(send.text)
    lost = duplicated = in_order = 0
    for chat, wanted in expected.items():
        got = accepted.get(chat, [])
        lost += len(set(wanted) - set(got))
        duplicated += len(got) - len(set(got))
        in_order += got == wanted
    sent_at = [
        (mark[0], outcome.enqueued[mid][0])
        for mid, mark in outcome.marks.items()
        if mark[1] == "sent"
    ]
    latencies = [done - queued for done, queued in sent_at]
    # Shows whether one chat's burst holds the others up: FIFO is per chat, not per channel.
    busiest_chat = max(expected, key=lambda chat: len(expected[chat]))
    others_done = max(
        (
            mark[0] - outcome.started
            for mid, mark in outcome.marks.items()
            if outcome.enqueued[mid][1].chat != busiest_chat
        ),
        default=math.nan,
    )
    last = max((done for done, _ in sent_at), default=outcome.started)
    wall = last - outcome.started
    ok_times = sorted(call.at for call in calls if call.status == 200)
    pace = (len(ok_times) - 1) / (ok_times[-1] - ok_times[0]) if len(ok_times) > 1 else math.nan
    gaps = [b - a for times in chat_times.values() for a, b in itertools.pairwise(sorted(times))]
    causes = Counter(call.why for call in calls if call.status == 429)
    too_many = sum(causes.values())
    in_flight, during_pause, fresh, resume_gaps = classify_429s(outcome.attempts)
    return Figures(
        name=outcome.scenario.name,
        rate=outcome.scenario.rate,
        messages=len(sends),
        delivered=len(sent_at),
        wall=wall,
        drain_rate=len(sent_at) / wall if wall > 0 else math.nan,
        stub_pace=pace,
        too_many=too_many,
        causes=causes,
        after_first=max(too_many - 1, 0),
        in_flight=in_flight,
        during_pause=during_pause,
        fresh=fresh,
        bot_busiest=busiest_window([call.at for call in calls]),
        chat_busiest=max((busiest_window(times) for times in chat_times.values()), default=0),
        chat_min_gap=min(gaps, default=math.nan),
        chats=len(expected),
        chats_in_order=in_order,
        lost=lost,
        duplicated=duplicated + outcome.marked_twice,
        failed_marks=sum(mark[1] != "sent" for mark in outcome.marks.values()),
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p_max=max(latencies, default=math.nan),
        resume_gaps=resume_gaps,
        others_done=others_done,
    )


def print_scenario(f: Figures, outcome: Outcome) -> None:
    print(f"\n== {f.name}: {outcome.scenario.about} = {f.messages} messages at {f.rate:g}/s")
    print(
        f"  delivered {f.delivered} of {f.messages} in {f.wall:.2f} s = {f.drain_rate:.2f} msg/s"
        f" (first enqueue to last 200); accepted at the stub {f.stub_pace:.2f}/s"
        f" (mean gap {1000 / f.stub_pace:.1f} ms, slot {1000 / f.rate:.1f} ms)"
    )
    why = ", ".join(f"{n} {cause}" for cause, n in sorted(f.causes.items())) or "none"
    print(
        f"  429s: {f.too_many} ({f.after_first} after the first: {f.in_flight} already on the"
        f" wire, {f.during_pause} sent during a pause, {f.fresh} after a pause had ended);"
        f" refused by the stub's limit: {why}"
    )
    if f.resume_gaps:
        print(
            f"  after a 429 the next request left {min(f.resume_gaps):.3f} to"
            f" {max(f.resume_gaps):.3f} s later ({len(f.resume_gaps)} times)"
        )
    print(
        f"  busiest second: {f.bot_busiest} calls for the bot (stub limit {BOT_LIMIT}),"
        f" {f.chat_busiest} for one chat (limit {CHAT_LIMIT}); smallest gap between two calls"
        f" to one chat {f.chat_min_gap:.3f} s"
    )
    print(f"  order: {f.order()}; {f.failed_marks} marked failed")
    if f.chats > 1 and not math.isnan(f.others_done) and f.others_done < f.wall - 1:
        print(f"  every chat but the busiest one was through after {f.others_done:.2f} s")
    print(
        f"  enqueue to 200: p50 {f.p50:.2f} s, p95 {f.p95:.2f} s, max {f.p_max:.2f} s"
        f" over {f.delivered} messages"
    )


def print_table(rows: list[Figures]) -> None:
    head = (
        f"{'scenario':<10}{'rate':>6}{'msgs':>6}{'wall s':>8}{'msg/s':>7}{'429':>5}"
        f"{'>1st':>5}{'bot/s':>6}{'chat/s':>7}{'p50 s':>7}{'p95 s':>7}  order"
    )
    print("\n" + head)
    print("-" * len(head))
    for f in rows:
        print(
            f"{f.name:<10}{f.rate:>6g}{f.messages:>6}{f.wall:>8.2f}{f.drain_rate:>7.2f}"
            f"{f.too_many:>5}{f.after_first:>5}{f.bot_busiest:>6}{f.chat_busiest:>7}"
            f"{f.p50:>7.2f}{f.p95:>7.2f}  {f.order()}"
        )


def print_target(rows: list[Figures], default_rate: float) -> None:
    # The target, reported and not asserted: speed never fails the run.
    for f in rows:
        if f.name == "backlog":
            print(
                f"target (backlog at {f.rate:g}/s): no 429 after the first:"
                f" {'yes' if f.after_first == 0 else f'no ({f.after_first})'};"
                f" drains at >= 28 msg/s: {'yes' if f.drain_rate >= 28 else 'no'}"
                f" ({f.drain_rate:.2f})"
                + (
                    ""
                    if f.rate == default_rate
                    else f" [rate is not the setting's {default_rate:g}]"
                )
            )


class LogCounter(logging.Handler):
    """Counts the relay's warnings (one per 429) instead of printing each."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {record.getMessage()}"] += 1


@contextmanager
def counting_logs() -> Iterator[LogCounter]:
    root = logging.getLogger()
    handler = LogCounter()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def machine_line() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"machine: {usable} usable cores (of {os.cpu_count()}), load {load:.1f} before start,"
        f" Python {platform.python_version()}, aiogram {aiogram.__version__},"
        f" aiohttp {aiohttp.__version__}, {platform.system()} {platform.machine()}"
    )


async def main_async(args: argparse.Namespace, stub: Stub) -> int:
    with tempfile.TemporaryDirectory(prefix="lotse-bench-relay-") as tmp:
        # The setting (TELEGRAM_SEND_RATE, default 28) unless --rate overrides it.
        default_rate = load_settings(
            env="test", data_dir=Path(tmp), pseudonym_pepper=new_secret(), routing_key=new_secret()
        ).telegram_send_rate
        rate = args.rate or default_rate
        scenarios = build_scenarios(args, rate)
        print(machine_line())
        mode = "one after another" if args.sequential else "at the same time, one bot each"
        print(
            f"stub: 429 above {BOT_LIMIT} msg/s per bot or {CHAT_LIMIT}/s per chat (sliding"
            f" {WINDOW:g} s windows), retry_after {args.retry_after} s; scenarios run {mode}"
        )
        with counting_logs() as logs:

            async def one(i: int, scenario: Scenario) -> Outcome:
                return await run_scenario(scenario, stub=stub, index=i, data_dir=Path(tmp))

            if args.sequential:
                outcomes = [await one(i, s) for i, s in enumerate(scenarios)]
            else:
                outcomes = list(
                    await asyncio.gather(*(one(i, s) for i, s in enumerate(scenarios)))
                )
    rows = []
    for outcome in outcomes:
        row = figures(outcome)
        rows.append(row)
        print_scenario(row, outcome)
    # The relay's log records carry no scenario, so the counts are for the whole run.
    for line, n in logs.counts.most_common(5):
        print(f"logged (whole run) {n}x {line}")
    print_table(rows)
    print_target(rows, default_rate)
    return 0 if all(row.ok for row in rows) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=(__doc__ or "").split("\n")[0]
    )
    names = ("backlog", "burst", "mixed", "overrate")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=names,
        help="run only this scenario (repeatable; default: all four)",
    )
    parser.add_argument("--chats", type=int, default=200, help="backlog chats (default 200)")
    parser.add_argument(
        "--messages", type=int, default=5, help="backlog replies per chat (default 5)"
    )
    parser.add_argument(
        "--burst", type=int, default=20, help="replies to the one burst chat (default 20)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="relay rate per second for backlog, burst and mixed (default: TELEGRAM_SEND_RATE)",
    )
    parser.add_argument(
        "--over-rate", type=float, default=40.0, help="rate of the overrate scenario (default 40)"
    )
    parser.add_argument(
        "--retry-after", type=int, default=1, help="retry_after the stub answers (default 1 s)"
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the scenarios one after another (cleaner figures, about 110 s)",
    )
    args = parser.parse_args(argv)
    args.scenario = args.scenario or list(names)
    if min(args.chats, args.messages, args.burst, args.retry_after) < 1:
        parser.error("--chats, --messages, --burst and --retry-after must be at least 1")
    if (args.rate is not None and args.rate <= 0) or args.over_rate <= 0:
        parser.error("rates must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stub = Stub(args.retry_after)
    stub.start()  # before asyncio.run, see Stub
    try:
        return asyncio.run(main_async(args, stub))
    finally:
        stub.stop()


if __name__ == "__main__":
    sys.exit(main())
