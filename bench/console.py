"""Console fan-out (SSE) and the console JSON API, against a real uvicorn server.

    .venv/bin/python -m bench.console [--db sqlite|postgres|all] [--consoles 100,500]
                                      [--events 50] [--interval 0.1] [--redis URL]
                                      [--only fanout|api] [--duration 10]

For each database the runner migrates an empty one, bootstraps it, writes N counsellors with
logged-in console sessions and 20 waiting conversations, and serves the app with uvicorn on
127.0.0.1 (one worker, in this process, as `lotse serve` does). Then:

1. fan-out: C consoles (client processes of their own) open GET /api/v1/console/events, each
   with its own session cookie; once all are subscribed, M user messages go through
   `ConversationService.record_user_message`, which publishes message.created on the team
   channel. Latency per (console, event) from the publish to the console reading it;
   every event must reach every console once, in order.
2. API: GET /api/v1/console/queue and /me under wrk (or a Python load generator in two
   processes when wrk is missing) for a fixed time: requests/s, latency, non-2xx.

Figures only; the exit code is 1 when an event was lost or a response was an error, never for
speed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import math
import multiprocessing
import os
import platform
import shutil
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import httpx
import redis
import sqlalchemy
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from bench.run import drop_postgres, flush_redis, recreate_postgres
from core.conversations import NATIONAL, ConversationService, Profile
from core.crypto import hash_password, new_token, token_digest
from core.db import transaction
from core.events import Event, EventBus, RedisEventBus, team_channel
from core.models import ConsoleSession, Counsellor, Team, new_id
from core.settings import load_settings, new_secret
from counsellor_console.deps import session_cookie_name
from lotse.app import create_app
from lotse.bootstrap import bootstrap
from lotse.devkeys import provision_team
from lotse.migrate import upgrade
from lotse.runtime import Services, build_services, close_services

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/lotse_bench_console"
EVENTS_PATH = "/api/v1/console/events"
API_PATHS = ("/api/v1/console/queue", "/api/v1/console/me")
MARKER = b"event: message.created"
WAITING = 20  # conversations in the team's queue
API_SESSIONS = 100  # the API load cycles through this many consoles' cookies
# Targets of the issue: reported, never asserted.
FANOUT_TARGETS = {100: 30.0, 500: 150.0}  # consoles: p99 ms
API_TARGET = 3000.0  # requests/s on one worker
# Above this, a client process was starved of CPU and its timestamps say little about the server.
CLIENT_LAG_LIMIT_MS = 20.0


def body(k: int) -> str:
    return f"bench event {k}"


def percentile_ms(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    # Nearest rank: the value at or below which p % of the samples lie.
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] * 1000


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


# -- the consoles: client processes ------------------------------------------------------------
#
# Each client process holds a share of the SSE connections as bare asyncio protocols: a read
# costs one list append and a substring count, so the client adds as little as possible to the
# latency it measures. Events are parsed only after the measurement. Timestamps are
# time.monotonic(), CLOCK_MONOTONIC on Linux, which all processes of the machine share.


class SseConsole(asyncio.Protocol):
    def __init__(self, request: bytes, expected: int) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.expected = expected
        self.chunks: list[tuple[float, bytes]] = []
        self.head = b""
        self.seen = 0
        self.subscribed: asyncio.Future[int] = loop.create_future()  # the HTTP status
        self.complete: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.monotonic(), data))
        if not self.subscribed.done():
            self.head += data
            head, end, body = self.head.partition(b"\r\n\r\n")
            # The head leaves before the stream starts; the stream's first bytes (": connected")
            # only after the bus subscription, so from then on no event can be missed.
            if end and (body or not head.startswith(b"HTTP/1.1 200")):
                self.subscribed.set_result(int(head[9:12]))
        self.seen += data.count(MARKER)
        if self.seen >= self.expected and not self.complete.done():
            self.complete.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_result(0)
        if not self.complete.done():
            self.complete.set_result(None)


def parse_stream(chunks: list[tuple[float, bytes]]) -> tuple[list[tuple[str, float]], int]:
    """(message id, time its last byte was read) of each message.created, and how many
    blocks could not be read."""
    raw, sse, head_done, chunked = b"", b"", False, True
    received: list[tuple[str, float]] = []
    broken = 0
    for at, data in chunks:
        raw += data
        if not head_done:
            if b"\r\n\r\n" not in raw:
                continue
            head, raw = raw.split(b"\r\n\r\n", 1)
            head_done, chunked = True, b"transfer-encoding: chunked" in head.lower()
        if not chunked:
            sse, raw = sse + raw, b""
        while chunked:
            end = raw.find(b"\r\n")
            if end < 0:
                break
            size = int(raw[:end].split(b";")[0], 16)
            if len(raw) < end + 2 + size + 2:
                break
            sse += raw[end + 2 : end + 2 + size]
            raw = raw[end + 4 + size :]
        while b"\n\n" in sse:
            block, sse = sse.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line[:7])
            if fields.get(b"event") != b"message.created":
                continue
            try:
                # Messages are sealed now: an event is known by its message id.
                received.append((json.loads(fields[b"data"])["message"]["id"], at))
            except (KeyError, ValueError, IndexError):
                broken += 1
    return received, broken


async def _loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late a 5 ms sleep wakes up: a busy client would show it here."""
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.005)
        samples.append(time.monotonic() - before - 0.005)


async def _fanout(command: dict[str, Any], results: Any, stop: Any, worker: int) -> None:
    loop = asyncio.get_running_loop()
    consoles = []
    for token in command["tokens"]:
        request = (
            f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Cookie: {command['cookie']}={token}\r\n\r\n"
        ).encode()
        consoles.append(SseConsole(request, command["expected"]))
    limit = asyncio.Semaphore(command["connect_concurrency"])

    async def connect(console: SseConsole) -> None:
        async with limit:
            try:
                await loop.create_connection(lambda: console, "127.0.0.1", command["port"])
            except OSError:
                console.subscribed.set_result(0)
                return
            await console.subscribed

    started = time.monotonic()
    await asyncio.gather(*(connect(c) for c in consoles))
    statuses = [c.subscribed.result() for c in consoles]
    results.put(("subscribed", worker, statuses, time.monotonic() - started))
    lag: list[float] = []
    done = asyncio.Event()
    ticker = asyncio.create_task(_loop_lag(lag, done))
    cpu, wall = time.process_time(), time.monotonic()
    try:
        live = [c.complete for c in consoles if c.subscribed.result() == 200]
        # `stop` is a multiprocessing.Event, set by the parent: nothing to await, so look.
        while not stop.is_set() and not all(f.done() for f in live):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    finally:
        done.set()
        await ticker
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    streams = []
    for console in consoles:
        received, broken = parse_stream(console.chunks)
        streams.append({"received": received, "broken": broken})
    results.put(
        (
            "result",
            worker,
            {
                "streams": streams,
                "cpu": cpu,
                "wall": wall,
                "lag_p99": percentile_ms(lag, 99),
                "lag_max": max(lag, default=0.0) * 1000,
            },
        )
    )
    for console in consoles:
        if console.transport is not None:
            console.transport.close()
    await asyncio.sleep(0.1)  # let the FINs go out before the next command


async def _api_connection(
    port: int, requests: list[bytes], until: float, out: list[tuple[float, int]]
) -> int:
    """Keep-alive GETs in a closed loop; returns the number of socket errors."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    k = 0
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            writer.write(requests[k % len(requests)])
            k += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            out.append((time.monotonic() - started, int(head[9:12])))
    except (OSError, asyncio.IncompleteReadError):
        return 1
    finally:
        writer.close()
    return 0


async def _api_load(command: dict[str, Any], results: Any, worker: int) -> None:
    requests = [
        (
            f"GET {command['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: {command['cookie']}={token}\r\n\r\n"
        ).encode()
        for token in command["tokens"]
    ]
    out: list[tuple[float, int]] = []
    # Every process starts at the same moment, given by the parent, so their windows coincide.
    await asyncio.sleep(max(command["start"] - time.monotonic(), 0.0))
    until = command["start"] + command["duration"]
    n = command["connections"]
    shares = [requests[i::n] or requests for i in range(n)]
    errors = await asyncio.gather(
        *(_api_connection(command["port"], share, until, out) for share in shares)
    )
    results.put(("api", worker, {"samples": out, "errors": sum(errors)}))


def client_process(worker: int, commands: Any, results: Any, stop: Any) -> None:
    """A console machine: runs the parent's commands until told to exit."""
    while True:
        command = commands.get()
        if command["kind"] == "exit":
            return
        if command["kind"] == "fanout":
            asyncio.run(_fanout(command, results, stop, worker))
        elif command["kind"] == "api":
            asyncio.run(_api_load(command, results, worker))


class Clients:
    """The client processes, started once (spawned: no state shared with the server)."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        self.stop = context.Event()
        self.commands = [context.Queue() for _ in range(count)]
        self.processes = [
            context.Process(
                target=client_process,
                args=(i, self.commands[i], self.results, self.stop),
                daemon=True,
            )
            for i in range(count)
        ]
        for process in self.processes:
            process.start()

    def __len__(self) -> int:
        return len(self.processes)

    def send(self, worker: int, command: dict[str, Any]) -> None:
        self.commands[worker].put(command)

    async def receive(self, wait: float) -> tuple[str, int, Any] | None:
        """The next report of any client process, or None after `wait` seconds."""
        loop = asyncio.get_running_loop()

        def get() -> tuple[str, int, Any] | None:
            try:
                return self.results.get(timeout=wait)  # type: ignore[no-any-return]
            except Empty:
                return None

        return await loop.run_in_executor(None, get)

    def close(self) -> None:
        for queue in self.commands:
            queue.put({"kind": "exit"})
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


# -- the server side ---------------------------------------------------------------------------


@dataclass
class Stamp:
    arrived: float  # the user's message reached the service
    published: float = math.nan  # the service called bus.publish (after the commit)


class StampingBus:
    """The app's own bus, with the moment of each message.created publish noted down.

    Only the bench's publishing ConversationService uses this wrapper; the consoles subscribe
    through the app, on the very same bus underneath."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.stamps: dict[int, Stamp] = {}
        # The runner publishes one message at a time and says which one is next; the event
        # carries only its id (the text is sealed), so the id is mapped to that number here.
        self.current = -1
        self.numbers: dict[str, int] = {}

    async def publish(self, channel: str, event: Event) -> int:
        published = time.monotonic()
        receivers = await self.inner.publish(channel, event)
        if event.get("type") == "message.created":
            self.numbers[str(event["message"]["id"])] = self.current
            self.stamps[self.current].published = published
        return receivers

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[asyncio.Queue[Event]]:
        return self.inner.subscribe(channel)  # type: ignore[no-any-return]


@dataclass
class Seed:
    team_id: uuid.UUID
    cookie: str
    tokens: list[str]
    pseudonyms: list[str]


async def seed(services: Services, *, consoles: int) -> Seed:
    """Counsellors with logged-in console sessions, and a queue of waiting conversations."""
    now = services.clock.now()
    # Nobody logs in with it; one argon2 hash for all, 500 of them would take half a minute.
    password_hash = hash_password(new_token())
    tokens = [new_token() for _ in range(consoles)]
    async with transaction(services.sessions) as session:
        team = await session.scalar(select(Team).where(Team.slug == NATIONAL))
        assert team is not None, "bootstrap makes the national team"
        counsellors = [
            Counsellor(
                id=new_id(),
                login=f"bench-{i}",
                display_name=f"Bench {i}",
                password_hash=password_hash,
                role="counsellor",
                team_id=team.id,
                availability="online",
                seen_at=now,
                created_at=now,
            )
            for i in range(consoles)
        ]
        session.add_all(counsellors)
        await session.flush()  # the sessions' foreign key needs the accounts first
        # The test seam: session rows as a finished login (password, then second factor)
        # leaves them, with mfa_passed and a token we know. The login itself is not measured.
        session.add_all(
            ConsoleSession(
                token_hash=token_digest(token),
                counsellor_id=counsellor.id,
                csrf_token=new_token(),
                created_at=now,
                last_seen_at=now,
                mfa_passed=True,
            )
            for counsellor, token in zip(counsellors, tokens, strict=True)
        )
        team_id = team.id
        # Only a team with keys takes conversations (core/conversations.py `route_team`).
        await provision_team(session, team_id=team_id, clock=services.clock)
    pseudonyms = []
    for i in range(WAITING):
        pseudonym = services.identities.pseudonym(channel="bench", identifier=str(i))
        await services.conversations.request_handover(
            channel="web", pseudonym=pseudonym, chat_ref=None, profile=Profile()
        )
        pseudonyms.append(pseudonym)
    return Seed(team_id, session_cookie_name(services), tokens, pseudonyms)


async def serve(app: FastAPI, http: str) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """uvicorn on a free loopback port, one worker, no access log, as `lotse serve` runs it."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and a bare socket.socket() has proto 0. Without it, Nagle holds the body of each
    # keep-alive response until the delayed ACK, 40 ms later (`lotse serve` binds by host and
    # port, which gets the proto from getaddrinfo).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http=http,
        lifespan="off",  # the app's lifespan runs around this, in measure_backend
        access_log=False,
        log_level="warning",
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.01)
    return server, serving, sock.getsockname()[1]


def server_stack(server: uvicorn.Server) -> str:
    """What serves: the HTTP parser and the event loop (uvicorn's "auto" takes httptools and
    uvloop when they are installed, else h11 and asyncio)."""
    protocol = server.config.http_protocol_class.__module__.rsplit(".", 1)[-1]
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return f"{protocol.removesuffix('_impl')}, {loop} loop"


# -- fan-out -----------------------------------------------------------------------------------


@dataclass
class Fanout:
    label: str
    consoles: int
    events: int
    subscribed: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    subscribe_seconds: float = 0.0
    counted_by_bus: int = 0
    latencies: list[float] = field(default_factory=list)  # publish to console
    end_to_end: list[float] = field(default_factory=list)  # message arrival to console
    last_console: list[float] = field(default_factory=list)  # per event: the slowest console
    delivered: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    broken: int = 0
    not_published: int = 0
    server_cpu: float = 0.0
    client_cpu: list[float] = field(default_factory=list)
    client_lag_p99: float = 0.0
    client_lag_max: float = 0.0
    left_subscribed: int = 0
    load: float = 0.0

    @property
    def expected(self) -> int:
        return self.consoles * self.events

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def ok(self) -> bool:
        return (
            self.subscribed == self.consoles
            and self.lost == 0
            and not self.duplicated
            and not self.out_of_order
            and not self.broken
        )


async def _receivers(bus: EventBus, channel: str) -> int:
    # A publish says how many subscribers got it: SSE streams on the memory bus, processes on
    # Redis (one pub/sub connection per process serves all its streams).
    return await bus.publish(channel, {"type": "bench.probe"})


async def fanout(
    *,
    label: str,
    services: Services,
    seeded: Seed,
    port: int,
    clients: Clients,
    consoles: int,
    args: argparse.Namespace,
) -> Fanout:
    result = Fanout(label, consoles, args.events, load=load_average())
    channel = team_channel(seeded.team_id)
    clients.stop.clear()
    tokens = seeded.tokens[:consoles]
    for worker in range(len(clients)):
        clients.send(
            worker,
            {
                "kind": "fanout",
                "port": port,
                "cookie": seeded.cookie,
                "tokens": tokens[worker :: len(clients)],
                "expected": args.events,
                "connect_concurrency": args.connect_concurrency,
            },
        )
    for _ in range(len(clients)):
        message = await clients.receive(wait=120)
        if message is None or message[0] != "subscribed":
            raise RuntimeError(f"a client process did not connect its consoles: {message}")
        _, _, statuses, seconds = message
        result.subscribed += statuses.count(200)
        for status in statuses:
            if status != 200:
                result.refused[status] = result.refused.get(status, 0) + 1
        result.subscribe_seconds = max(result.subscribe_seconds, seconds)
    result.counted_by_bus = await _receivers(services.bus, channel)

    stamping = StampingBus(services.bus)
    # A second ConversationService on the app's sessions and bus: the real code path of a
    # user's message, with the publish moment noted by the wrapper.
    publisher = ConversationService(sessions=services.sessions, clock=services.clock, bus=stamping)
    cpu = time.process_time()
    window = time.monotonic()
    start = time.monotonic() + 0.2
    for k in range(args.events):
        await asyncio.sleep(max(start + k * args.interval - time.monotonic(), 0.0))
        stamping.stamps[k] = Stamp(arrived=time.monotonic())
        stamping.current = k
        await publisher.record_user_message(
            pseudonym=seeded.pseudonyms[k % len(seeded.pseudonyms)], text=body(k)
        )
    reports: dict[int, Any] = {}
    deadline = time.monotonic() + args.drain
    while len(reports) < len(clients):
        message = await clients.receive(wait=max(deadline - time.monotonic(), 0.05))
        if message is None:
            clients.stop.set()  # whoever is still waiting gives up and reports what it has
            deadline = time.monotonic() + 60
            continue
        reports[message[1]] = message[2]
    result.server_cpu = (time.process_time() - cpu) / (time.monotonic() - window)
    clients.stop.set()

    per_event: dict[int, list[float]] = {k: [] for k in range(args.events)}
    for report in reports.values():
        result.client_cpu.append(report["cpu"] / report["wall"] if report["wall"] else 0.0)
        result.client_lag_p99 = max(result.client_lag_p99, report["lag_p99"])
        result.client_lag_max = max(result.client_lag_max, report["lag_max"])
        for stream in report["streams"]:
            result.broken += stream["broken"]
            received = [(stamping.numbers.get(i, -1), at) for i, at in stream["received"]]
            numbers = [k for k, _ in received]
            result.duplicated += len(numbers) - len(set(numbers))
            result.out_of_order += numbers != sorted(numbers)
            result.delivered += len(set(numbers) & set(per_event))
            for k, at in received:
                stamp = stamping.stamps.get(k)
                if stamp is None or math.isnan(stamp.published):
                    continue
                result.latencies.append(at - stamp.published)
                result.end_to_end.append(at - stamp.arrived)
                per_event[k].append(at - stamp.published)
    result.not_published = sum(math.isnan(s.published) for s in stamping.stamps.values())
    result.last_console = [max(v) for v in per_event.values() if v]
    # The consoles have closed their connections: every subscription should be gone.
    for _ in range(50):
        result.left_subscribed = await _receivers(services.bus, channel)
        if not result.left_subscribed:
            break
        await asyncio.sleep(0.1)
    print_fanout(result)
    return result


def print_fanout(r: Fanout) -> None:
    refused = ", ".join(f"{n}x status {s}" for s, n in sorted(r.refused.items()))
    print(
        f"  fan-out {r.consoles} consoles (load {r.load:.1f}): {r.subscribed} of {r.consoles}"
        f" subscribed in {r.subscribe_seconds:.2f} s"
        + (f" (refused: {refused})" if refused else "")
        + f"; the bus counts {r.counted_by_bus} subscribers"
    )
    for name, values in (
        ("publish -> console", r.latencies),
        ("message -> console", r.end_to_end),
        ("slowest per event", r.last_console),
    ):
        print(
            f"    {name:<19} {len(values):>6}  p50 {percentile_ms(values, 50):7.1f}"
            f"  p95 {percentile_ms(values, 95):7.1f}  p99 {percentile_ms(values, 99):7.1f}"
            f"  max {percentile_ms(values, 100):7.1f} ms"
        )
    print(
        f"    delivered {r.delivered} of {r.expected} ({r.events} events x {r.consoles}"
        f" consoles), {r.lost} lost, {r.duplicated} duplicated,"
        f" {r.out_of_order} consoles out of order"
        + (f", {r.broken} unreadable" if r.broken else "")
        + (f", {r.not_published} not published" if r.not_published else "")
    )
    clients = " + ".join(f"{c:.0%}" for c in r.client_cpu)
    print(
        f"    CPU during the events: server {r.server_cpu:.0%} of a core, clients {clients}"
        f" (client loop lag p99 {r.client_lag_p99:.1f} ms, max {r.client_lag_max:.1f} ms);"
        f" subscriptions left after the consoles closed: {r.left_subscribed}"
    )
    if r.client_lag_p99 > CLIENT_LAG_LIMIT_MS:
        print(
            f"    the clients fell behind (loop lag p99 above {CLIENT_LAG_LIMIT_MS:.0f} ms): this"
            " round measured a busy machine, not the server; run it again"
        )


# -- API throughput ----------------------------------------------------------------------------


@dataclass
class Throughput:
    label: str
    path: str
    tool: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    p50: float = math.nan
    p99: float = math.nan
    max: float = math.nan
    non_2xx: int = 0
    socket_errors: int = 0
    timeouts: int = 0
    server_cpu: float = 0.0
    cpu_seconds: float = 0.0
    load: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return not self.non_2xx and not self.socket_errors


WRK_SCRIPT = """
local cookie_name = "%(cookie)s"
local tokens = {%(tokens)s}
local path = "%(path)s"
local prepared = {}
local threads = {}
local next_one = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for n, token in ipairs(tokens) do
    prepared[n] = wrk.format("GET", path, {["Cookie"] = cookie_name .. "=" .. token})
  end
  non2xx = 0
end

function request()
  next_one = next_one %% #prepared + 1
  return prepared[next_one]
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\": %%d, \\"us\\": %%d, \\"p50\\": %%d, \\"p99\\": %%d, \\"max\\": %%d, "
    .. "\\"non2xx\\": %%d, \\"sockets\\": %%d, \\"timeouts\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, bad, e.connect + e.read + e.write, e.timeout))
end
"""


async def _wrk(port: int, path: str, seconds: float, script: Path, connections: int) -> dict:
    process = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    for line in out.decode().splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])  # type: ignore[no-any-return]
    raise RuntimeError(f"wrk gave no figures: {out.decode()} {err.decode()}")


async def _python_load(
    clients: Clients, command: dict[str, Any], seconds: float, connections: int
) -> dict:
    start = time.monotonic() + 0.5
    for worker in range(len(clients)):
        share = max(connections // len(clients), 1)
        clients.send(
            worker,
            {**command, "kind": "api", "start": start, "duration": seconds, "connections": share},
        )
    samples: list[tuple[float, int]] = []
    errors = 0
    for _ in range(len(clients)):
        message = await clients.receive(wait=seconds + 60)
        if message is None or message[0] != "api":
            raise RuntimeError(f"a client process did not report its load: {message}")
        samples += message[2]["samples"]
        errors += message[2]["errors"]
    latencies = [latency for latency, _ in samples]
    return {
        "requests": len(samples),
        "us": seconds * 1e6,
        "p50": percentile_ms(latencies, 50) * 1000,
        "p99": percentile_ms(latencies, 99) * 1000,
        "max": percentile_ms(latencies, 100) * 1000,
        "non2xx": sum(not 200 <= status < 300 for _, status in samples),
        "sockets": errors,
        "timeouts": 0,
    }


async def check_api(port: int, seeded: Seed) -> None:
    """One request each first: a fast stream of 401s would be a fine figure of nothing."""
    cookies = {seeded.cookie: seeded.tokens[0]}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", cookies=cookies) as http:
        queue = await http.get(API_PATHS[0])
        me = await http.get(API_PATHS[1])
    assert queue.status_code == 200 and len(queue.json()) == WAITING, queue.text[:200]
    assert me.status_code == 200 and me.json()["login"] == "bench-0", me.text[:200]


async def throughput(
    *,
    label: str,
    port: int,
    seeded: Seed,
    clients: Clients,
    path: str,
    args: argparse.Namespace,
    workdir: Path,
) -> Throughput:
    tokens = seeded.tokens[:API_SESSIONS]
    tool = "wrk" if shutil.which("wrk") and not args.python_load else "python"
    result = Throughput(label, path, tool, args.api_connections, load=load_average())
    run: Callable[[float], Awaitable[dict]]
    if tool == "wrk":
        script = workdir / "console.lua"
        script.write_text(
            WRK_SCRIPT
            % {
                "cookie": seeded.cookie,
                "tokens": ", ".join(f'"{t}"' for t in tokens),
                "path": path,
            }
        )

        def run(seconds: float) -> Awaitable[dict]:
            return _wrk(port, path, seconds, script, args.api_connections)

    else:
        command = {"port": port, "path": path, "cookie": seeded.cookie, "tokens": tokens}

        def run(seconds: float) -> Awaitable[dict]:
            return _python_load(clients, command, seconds, args.api_connections)

    await run(args.warmup)  # untimed: connections, statement caches, the first-call costs
    cpu, wall = time.process_time(), time.monotonic()
    figures = await run(args.duration)
    result.cpu_seconds = time.process_time() - cpu
    result.server_cpu = result.cpu_seconds / (time.monotonic() - wall)
    result.requests = figures["requests"]
    result.seconds = figures["us"] / 1e6
    result.p50, result.p99, result.max = (figures[k] / 1000 for k in ("p50", "p99", "max"))
    result.non_2xx, result.socket_errors = figures["non2xx"], figures["sockets"]
    result.timeouts = figures["timeouts"]
    cpu_ms = result.cpu_seconds / result.requests * 1000 if result.requests else math.nan
    print(
        f"  api GET {path:<24} {result.requests:>7} in {result.seconds:5.1f} s"
        f" = {result.rate:7,.0f} req/s  p50 {result.p50:6.1f}  p99 {result.p99:6.1f}"
        f"  max {result.max:6.1f} ms; non-2xx {result.non_2xx}, socket errors"
        f" {result.socket_errors}, timeouts {result.timeouts}"
    )
    print(
        f"    ({tool}, {args.api_connections} keep-alive connections, {len(tokens)} sessions;"
        f" server CPU {result.server_cpu:.0%} of a core, {cpu_ms:.2f} ms per request;"
        f" load {result.load:.1f})"
    )
    return result


# -- one backend -------------------------------------------------------------------------------


async def measure_backend(
    *,
    label: str,
    url: str,
    redis_url: str | None,
    workdir: Path,
    clients: Clients,
    args: argparse.Namespace,
) -> tuple[list[Fanout], list[Throughput]]:
    started = time.perf_counter()
    if redis_url:
        await flush_redis(redis_url)
    await asyncio.to_thread(upgrade, url)  # Alembic runs an event loop of its own
    settings = load_settings(
        env="test",
        data_dir=workdir,
        database_url=url,
        redis_url=redis_url,
        telegram_bot_token=None,
        pseudonym_pepper=new_secret(),
        routing_key=new_secret(),
    )
    services = build_services(settings)
    fanouts: list[Fanout] = []
    rates: list[Throughput] = []
    try:
        await bootstrap(services.sessions, clock=services.clock, create_dev_account=False)
        seeded = await seed(services, consoles=max(max(args.consoles), API_SESSIONS))
        app = create_app(settings, services=services)
        async with app.router.lifespan_context(app):
            server, serving, port = await serve(app, args.http)
            bus = "redis" if isinstance(services.bus, RedisEventBus) else "memory"
            print(
                f"\n== {label}, {bus} bus  (set-up: migrate, bootstrap, {len(seeded.tokens)}"
                f" sessions, {WAITING} waiting conversations: {time.perf_counter() - started:.1f}"
                f" s; uvicorn on 127.0.0.1:{port}, {server_stack(server)})"
            )
            try:
                if args.only in (None, "fanout"):
                    for consoles in args.consoles:
                        fanouts.append(
                            await fanout(
                                label=f"{label}, {bus} bus",
                                services=services,
                                seeded=seeded,
                                port=port,
                                clients=clients,
                                consoles=consoles,
                                args=args,
                            )
                        )
                # The API does not touch the bus: measured once per database, without Redis.
                if args.only in (None, "api") and not redis_url:
                    await check_api(port, seeded)
                    for path in args.api:
                        rates.append(
                            await throughput(
                                label=label,
                                port=port,
                                seeded=seeded,
                                clients=clients,
                                path=path,
                                args=args,
                                workdir=workdir,
                            )
                        )
            finally:
                server.should_exit = True
                await serving
    finally:
        await close_services(services)
    return fanouts, rates


# -- the whole run -----------------------------------------------------------------------------


def machine_line(extra: list[str]) -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wrk = "wrk" if shutil.which("wrk") else "no wrk (Python load generator)"
    parts = [
        f"{usable} usable cores (of {os.cpu_count()}), load {load_average():.1f} before start",
        f"Python {platform.python_version()}",
        f"uvicorn {uvicorn.__version__}",
        f"SQLAlchemy {sqlalchemy.__version__}",
        f"SQLite {sqlite3.sqlite_version}",
        *extra,
        wrk,
    ]
    return "machine: " + ", ".join(parts)


def print_table(fanouts: list[Fanout], rates: list[Throughput]) -> None:
    if fanouts:
        head = (
            f"{'fan-out':<26}{'consoles':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
            f"{'max ms':>8}  delivered"
        )
        print("\n" + head + "\n" + "-" * len(head))
        for f in fanouts:
            print(
                f"{f.label:<26}{f.consoles:>9}{percentile_ms(f.latencies, 50):>8.1f}"
                f"{percentile_ms(f.latencies, 95):>8.1f}{percentile_ms(f.latencies, 99):>8.1f}"
                f"{percentile_ms(f.latencies, 100):>8.1f}  {f.delivered}/{f.expected}"
            )
    if rates:
        head = f"{'api':<26}{'path':<24}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>9}"
        print("\n" + head + "\n" + "-" * len(head))
        for r in rates:
            print(
                f"{r.label:<26}{r.path.rsplit('/', 1)[1]:<24}{r.rate:>8,.0f}{r.p50:>8.1f}"
                f"{r.p99:>8.1f}{r.non_2xx:>9}"
            )
    print("\ntargets (reported, not asserted):")
    for f in fanouts:
        limit = FANOUT_TARGETS.get(f.consoles)
        if limit is not None:
            p99 = percentile_ms(f.latencies, 99)
            met = p99 <= limit and f.lost == 0
            print(
                f"  {f.label}, {f.consoles} consoles: p99 {p99:.1f} ms <= {limit:.0f} ms,"
                f" every event delivered: {'met' if met else 'NOT met'}"
            )
    for r in rates:
        if not r.path.startswith("/api/v1/console/"):
            continue  # a reference like /healthz, not the console API the target is about
        met = r.rate >= API_TARGET and r.ok
        print(
            f"  {r.label} GET {r.path}: {r.rate:,.0f} >= {API_TARGET:,.0f} req/s:"
            f" {'met' if met else 'NOT met'}"
        )


async def main_async(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgres"] if args.db == "all" else [args.db]
    extra: list[str] = []
    if "postgres" in backends:
        extra.append(f"PostgreSQL {await recreate_postgres(args.postgres_url)}")
    if args.redis:
        parser = "hiredis" if importlib.util.find_spec("hiredis") else "pure-Python parser"
        extra.append(
            f"Redis {await flush_redis(args.redis)} (redis-py {redis.__version__}, {parser})"
        )
    print(machine_line(extra))
    consoles = ", ".join(str(c) for c in args.consoles)
    print(
        f"scenario: {consoles} consoles, {args.events} events one every"
        f" {args.interval * 1000:.0f} ms, {args.clients} client processes;"
        f" API {args.duration:g} s (+{args.warmup:g} s warm-up) per path,"
        f" {args.api_connections} connections"
    )
    buses = [None, args.redis] if args.redis else [None]
    clients = Clients(args.clients)
    fanouts: list[Fanout] = []
    rates: list[Throughput] = []
    try:
        for backend in backends:
            for redis_url in buses:
                if redis_url and args.only == "api":
                    continue
                with tempfile.TemporaryDirectory(prefix="lotse-bench-console-") as tmp:
                    if backend == "sqlite":
                        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
                    else:
                        url = args.postgres_url
                        await recreate_postgres(url)
                    try:
                        f, r = await measure_backend(
                            label=backend,
                            url=url,
                            redis_url=redis_url,
                            workdir=Path(tmp),
                            clients=clients,
                            args=args,
                        )
                        fanouts += f
                        rates += r
                    finally:
                        if backend == "postgres" and not args.keep:
                            await drop_postgres(url)
    finally:
        clients.close()
    print_table(fanouts, rates)
    ok = all(f.ok for f in fanouts) and all(r.ok for r in rates)
    if not ok:
        print("events were lost or responses failed: see above (exit code 1)")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument(
        "--consoles",
        default="100,500",
        type=lambda text: [int(c) for c in text.split(",")],
        help="connected consoles per fan-out round, comma-separated (default 100,500)",
    )
    parser.add_argument("--events", type=int, default=50, help="messages published (default 50)")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between messages (default 0.1)"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="seconds after the last message until missing events count as lost (default 10)",
    )
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=50,
        help="console connections opened at once per client process (default 50)",
    )
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes for the consoles (default 2)"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="also run the fan-out on the Redis event bus; this database is FLUSHED first",
    )
    parser.add_argument("--only", choices=("fanout", "api"), default=None)
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of API load per path (default 10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed API load first (default 2)"
    )
    parser.add_argument(
        "--api",
        default="queue,me",
        type=lambda text: [n if n[0] == "/" else f"/api/v1/console/{n}" for n in text.split(",")],
        help="paths to load, comma-separated; names under /api/v1/console/ (default queue,me)",
    )
    parser.add_argument(
        "--api-connections", type=int, default=16, help="keep-alive connections (default 16)"
    )
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="use the Python load generator even when wrk is installed",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop; auto as `lotse serve`: uvloop when installed (default auto)",
    )
    parser.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default="auto",
        help="uvicorn's HTTP parser; auto: httptools when installed (default auto)",
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help=f"default {POSTGRES_URL}")
    parser.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL bench database afterwards"
    )
    args = parser.parse_args(argv)
    if min(args.consoles) < 1 or args.events < 1 or args.clients < 1:
        parser.error("--consoles, --events and --clients must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # The loop uvicorn.run would take for `lotse serve` (uvloop when installed), in-process.
    factory = uvicorn.Config(app=None, loop=args.loop).get_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
