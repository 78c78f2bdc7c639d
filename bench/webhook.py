"""Webhook ingest: requests per second and latency of POST /telegram/webhook.

    .venv/bin/python -m bench.webhook [--transport uvicorn|asgi|all] [--requests N]
                                      [--connections C] [--chats K] [--redis URL] [--no-handlers]
                                      [--loop auto|asyncio|uvloop] [--http auto|h11|httptools]

The whole app (create_app, TELEGRAM_MODE=webhook, a migrated SQLite file, bootstrap) receives
Telegram updates with the secret header, as Telegram would send them: C connections, each
waiting for its answer before sending the next (Telegram keeps up to 40 connections open).
`uvicorn` serves the app on loopback and the load comes from a second process over raw
keep-alive HTTP/1.1, with the event loop and HTTP parser `lotse serve` gets (uvicorn's "auto":
uvloop and httptools when installed; `--loop`/`--http` pick others for a comparison); `asgi`
calls the app in-process through httpx.ASGITransport (the client then shares the one core with
the app). The bot's Bot API session is a stub that answers at once
(Telegram itself is not part of the measurement), so the handlers' own work is measured: each chat
walks /start, the role button, a postcode and a need button, the same path as bench.run.

Figures: requests/s over the timed requests, per-request latency (nearest-rank p50/p95/p99),
and the time from the first timed request until every accepted update has been handled (the
dispatcher works after the 200).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import math
import multiprocessing
import os
import platform
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import httpx
from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Chat, Message, User

from bot.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from core.settings import load_settings, new_secret
from lotse.app import create_app
from lotse.bootstrap import bootstrap
from lotse.devkeys import give_national_team_keys
from lotse.migrate import upgrade
from lotse.runtime import build_services, close_services

TOKEN = "4242424242:bench-webhook-token"
SECRET = secrets.token_urlsafe(32)
WARMUP = 200
# Few enough chats that each walks all four steps once: the first postcode and the first need
# load tables and warm caches, a one-off cost that must not land among the timed requests.
WARMUP_CHATS = WARMUP // 4
BOT_USER = User(id=4242424242, is_bot=True, first_name="Lotse")


# -- the edge we do not run: Telegram's Bot API -----------------------------------------------


class StubSession(BaseSession):
    """Answers every Bot API call at once, like a Telegram with no latency."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._ids = itertools.count(1)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        self.calls[type(method).__name__] += 1
        if isinstance(method, SendMessage):
            chat = Chat(id=int(method.chat_id), type="private")
            sent = Message(
                message_id=next(self._ids), date=int(time.time()), chat=chat, text=method.text
            )
            return sent  # type: ignore[return-value]
        return True  # type: ignore[return-value]

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        pass


# -- the updates Telegram would post --------------------------------------------------------


def _user(chat: int) -> dict[str, Any]:
    return {"id": chat, "is_bot": False, "first_name": "Bench"}


def _message(update_id: int, chat: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": 1_760_000_000,
        "chat": {"id": chat, "type": "private", "first_name": "Bench"},
        "from": _user(chat),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


def _button(update_id: int, chat: int, data: str) -> dict[str, Any]:
    shown = {
        "message_id": update_id - 1,
        "date": 1_760_000_000,
        "chat": {"id": chat, "type": "private", "first_name": "Bench"},
        "from": BOT_USER.model_dump(exclude_none=True),
        "text": "…",
    }
    query = {
        "id": str(update_id),
        "from": _user(chat),
        "chat_instance": f"bench-{chat}",
        "message": shown,
        "data": data,
    }
    return {"update_id": update_id, "callback_query": query}


def bodies(count: int, chats: int, *, start: int, group: bool = False) -> list[bytes]:
    """`count` updates: chats take turns, each walking start, role, postcode, need."""
    steps = (
        lambda u, c: _message(u, c, "/start"),
        lambda u, c: _button(u, c, "role:teen"),
        lambda u, c: _message(u, c, "90402"),
        lambda u, c: _button(u, c, "need:visits"),
    )
    out = []
    for n in range(count):
        chat = 700_000_000 + n % chats
        update = steps[(n // chats) % len(steps)](start + n, chat)
        if group:  # the router ignores these: only the ingest path is left
            for kind in ("message", "callback_query"):
                if kind in update:
                    inner = update[kind].get("message", update[kind])
                    inner["chat"] = {"id": -chat, "type": "group", "title": "Bench"}
        out.append(json.dumps(update).encode())
    return out


# -- measuring ------------------------------------------------------------------------------


def percentile_ms(latencies: list[float], p: float) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def report(name: str, latencies: list[float], statuses: Counter[int], wall: float) -> dict:
    rate = len(latencies) / wall
    p50, p95, p99 = (percentile_ms(latencies, p) for p in (50, 95, 99))
    status = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    print(
        f"  {name:8} {len(latencies)} requests in {wall:.2f} s = {rate:,.0f} req/s; "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max "
        f"{max(latencies) * 1000:.1f} ms; status {status}"
    )
    other = sum(n for code, n in statuses.items() if code != 200)
    return {"rate": rate, "p50": p50, "p95": p95, "p99": p99, "other": other}


def request_bytes(body: bytes, secret: str) -> bytes:
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\n{SECRET_HEADER}: {secret}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _raw_connection(port: int, requests: list[bytes], out: list[tuple[float, int]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            out.append((time.perf_counter() - started, int(head[9:12])))
    finally:
        writer.close()


async def _raw_load(port: int, requests: list[bytes], connections: int) -> tuple:
    shares = [requests[i::connections] for i in range(connections)]
    results: list[list[tuple[float, int]]] = [[] for _ in shares]
    began = time.monotonic()  # one clock for all processes (Linux): the server reads it too
    started = time.perf_counter()
    await asyncio.gather(
        *(_raw_connection(port, s, r) for s, r in zip(shares, results, strict=True))
    )
    wall = time.perf_counter() - started
    return [x for r in results for x in r], wall, began


def client_process(port: int, options: dict[str, Any], queue: Any) -> None:
    """Runs in a second process, so the load generator has a core of its own."""
    warm = bodies(WARMUP, WARMUP_CHATS, start=1, group=options["group"])
    timed = bodies(options["requests"], options["chats"], start=WARMUP + 1, group=options["group"])
    asyncio.run(
        _raw_load(
            port, [request_bytes(b, options["secret"]) for b in warm], options["connections"]
        )
    )
    requests = [request_bytes(b, options["secret"]) for b in timed]
    # This process imported the whole app with this module: without a freeze, a full garbage
    # collection walks those objects during the timed run, a pause of about 0.4 s of the client
    # that showed up as the max latency.
    gc.freeze()
    queue.put(asyncio.run(_raw_load(port, requests, options["connections"])))


# -- the app --------------------------------------------------------------------------------


async def build(args: argparse.Namespace, workdir: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    settings = load_settings(
        env="test",
        data_dir=workdir,
        database_url=url,
        redis_url=args.redis,
        telegram_bot_token=TOKEN,
        telegram_mode="webhook",
        telegram_webhook_url="https://bench.invalid/telegram/webhook",
        telegram_webhook_secret=SECRET,
        pseudonym_pepper=new_secret(),
        routing_key=new_secret(),
    )
    services = build_services(settings)
    if services.redis is not None:
        await services.redis.flushdb()
    await bootstrap(services.sessions, clock=services.clock, create_dev_account=False)
    await give_national_team_keys(services.sessions, clock=services.clock)
    assert services.bot is not None
    await services.bot.session.close()
    stub = StubSession()
    services.bot.session = stub
    return services, stub, create_app(settings, services=services)


async def run_asgi(app, args: argparse.Namespace) -> tuple:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def one_connection(share: list[bytes], out: list[tuple[float, int]]) -> None:
            for body in share:
                started = time.perf_counter()
                response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
                out.append((time.perf_counter() - started, response.status_code))
                # One turn of the event loop, as a network round trip gives it: the webhook path
                # need not suspend in-process, and the client would then starve the dispatcher.
                await asyncio.sleep(0)

        async def load(requests: list[bytes]) -> tuple[list[tuple[float, int]], float, float]:
            shares = [requests[i :: args.connections] for i in range(args.connections)]
            results: list[list[tuple[float, int]]] = [[] for _ in shares]
            began, started = time.monotonic(), time.perf_counter()
            await asyncio.gather(
                *(one_connection(s, r) for s, r in zip(shares, results, strict=True))
            )
            return [x for r in results for x in r], time.perf_counter() - started, began

        await load(bodies(WARMUP, WARMUP_CHATS, start=1, group=args.no_handlers))
        await app.state.telegram_webhook.wait_idle()
        return await load(
            bodies(args.requests, args.chats, start=WARMUP + 1, group=args.no_handlers)
        )


async def run_uvicorn(app, args: argparse.Namespace) -> tuple:  # type: ignore[no-untyped-def]
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=args.http,
        lifespan="off",
        access_log=False,
        log_level="warning",
        log_config=None,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.01)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    options = {
        "requests": args.requests,
        "chats": args.chats,
        "connections": args.connections,
        "group": args.no_handlers,
        "secret": SECRET,  # the spawned process imports this module anew
    }
    client = context.Process(target=client_process, args=(port, options, queue))
    client.start()
    loop = asyncio.get_running_loop()
    results = await loop.run_in_executor(None, queue.get)
    await loop.run_in_executor(None, client.join)
    server.should_exit = True
    await serving
    return results


async def measure(transport: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="lotse-bench-webhook-") as tmp:
        services, stub, app = await build(args, Path(tmp))
        try:
            async with app.router.lifespan_context(app):
                if transport == "asgi":
                    results, wall, began = await run_asgi(app, args)
                else:
                    results, wall, began = await run_uvicorn(app, args)
                await app.state.telegram_webhook.wait_idle()
                handled = time.monotonic() - began
        finally:
            await close_services(services)
    latencies = [latency for latency, _ in results]
    figures = report(transport, latencies, Counter(code for _, code in results), wall)
    sent = stub.calls["SendMessage"]
    print(
        f"  {'':8} every update handled {handled:.2f} s after the first timed request "
        f"({args.requests / handled:,.0f} upd/s); {sent} replies sent"
    )
    return figures


def http_name(choice: str) -> str:
    """The HTTP implementation uvicorn uses for --http (its "auto" takes httptools if present)."""
    if choice != "auto":
        return choice
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return "httptools" if AutoHTTPProtocol.__name__ == "HttpToolsProtocol" else "h11"


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop for --loop; "auto" is uvloop when installed, as uvicorn.run chooses it."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def machine_line(args: argparse.Namespace) -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    import fastapi
    import uvicorn

    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    http = "no HTTP parser" if args.transport == "asgi" else http_name(args.http)
    return (
        f"machine: {usable} usable cores, load {load:.1f} before start, "
        f"Python {platform.python_version()}, FastAPI {fastapi.__version__}, "
        f"uvicorn {uvicorn.__version__} ({http}, {loop} loop)"
    )


async def main_async(args: argparse.Namespace) -> int:
    print(machine_line(args))
    handlers = "no handlers (group chats)" if args.no_handlers else "guided path handlers"
    print(
        f"scenario: {args.requests} updates (+{WARMUP} warm-up in {WARMUP_CHATS} chats), "
        f"{args.chats} chats, "
        f"{args.connections} connections, {handlers}, state in "
        f"{'Redis' if args.redis else 'memory'}"
    )
    transports = ["uvicorn", "asgi"] if args.transport == "all" else [args.transport]
    rows = {t: await measure(t, args) for t in transports}
    print("targets (issue 4): >= 1,500 req/s and p99 < 50 ms, every request answered 200")
    for name, row in rows.items():
        # A 503 (more than MAX_PENDING_UPDATES waiting) is answered at once: it flatters both
        # rate and latency, so such a run says the dispatcher fell behind, not how fast ingest is.
        met = row["rate"] >= 1500 and row["p99"] < 50 and not row["other"]
        other = f" ({row['other']} not answered 200: not comparable)" if row["other"] else ""
        print(f"  {name:8} {'met' if met else 'NOT met'}{other}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("uvicorn", "asgi", "all"), default="all")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--redis", default=None, help="e.g. redis://127.0.0.1:6379/14 (flushed)")
    parser.add_argument(
        "--no-handlers",
        action="store_true",
        help="updates from group chats, which the router ignores: the ingest path alone",
    )
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        return runner.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
