"""End-to-end harness around the ``telegram-test-api`` Bot API emulator (npm, 4.2.1).

The bot under test talks to :attr:`BotApiEmulator.api_base` (aiogram:
``TelegramAPIServer.from_base(api_base)``). That URL is a small mending reverse
proxy in front of the emulator, which fills the emulator's gaps so an unmodified
aiogram bot can run against it:

* ``getMe`` lacks ``is_bot`` (and reports id 666 whatever the token says);
* ``getUpdates`` ignores ``offset``/``timeout``/``limit`` and marks everything it
  returns as read, so the proxy keeps its own buffer and long-polls the emulator;
* callback-query updates lack ``chat_instance`` (and a usable ``message``);
* ``sendMessage`` echoes the raw request back as its "Message" (stringified JSON
  fields, millisecond dates, a chat named "Bot"), so the proxy rebuilds it;
* unknown methods (``setMyCommands``, ``sendChatAction``, ...) answer HTTP 500,
  media ``send*`` methods included; the proxy answers them like Telegram would;
* the emulator only parses JSON and urlencoded bodies, so multipart uploads are
  converted to urlencoded (files are replaced by their file names).

Simulated users (:class:`TelegramUser`) talk to the emulator's client API
directly and are synchronous, because the e2e tests are plain sync pytest
functions that also drive Playwright's sync API. Usage::

    with BotApiEmulator() as emulator:          # needs `npm ci` in tests/e2e/emulator
        start_bot(api_base=emulator.api_base, token=TOKEN)
        mia = emulator.user(TOKEN, first_name="Mia")
        mia.send_command("/start")
        mia.wait_for_message("Hallo")
        mia.click("Weiter")
        emulator.wait_for_call("setMyCommands")
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from aiohttp import ClientSession, ClientTimeout, web

__all__ = ["BotApiCall", "BotApiEmulator", "TelegramUser", "bot_identity"]

log = logging.getLogger(__name__)

EMULATOR_DIR = Path(__file__).resolve().parent / "emulator"
READY_MARKER = "EMULATOR READY"
POLL_INTERVAL = 0.05  # seconds between polls of the emulator (proxy and users)
# How long a test waits for the bot: generous, since CI machines can be slow and busy; a
# test that passes never waits this long, only a failing one does.
WAIT = 20.0
HOST = "127.0.0.1"
DEFAULT_BOT_USERNAME = "TestNameBot"

# Media senders the emulator does not know. They must return a Message, so the proxy
# stores them as a bot message (caption as text) instead of answering ``true``.
MEDIA_SEND_METHODS = frozenset(
    {
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendAnimation",
        "sendVoice",
        "sendVideoNote",
        "sendSticker",
        "sendLocation",
        "sendVenue",
        "sendContact",
        "sendPoll",
        "sendDice",
    }
)
# Results for unsupported getters whose return type is not ``bool`` (aiogram validates them).
GETTER_DEFAULTS: dict[str, Any] = {
    "getMyDescription": {"description": ""},
    "getMyShortDescription": {"short_description": ""},
    "getMyName": {"name": ""},
    "getChatMenuButton": {"type": "default"},
    "getWebhookInfo": {"url": "", "has_custom_certificate": False, "pending_update_count": 0},
}
EDIT_METHODS = frozenset(
    {"editMessageText", "editMessageCaption", "editMessageReplyMarkup", "deleteMessage"}
)


def bot_identity(token: str, username: str = DEFAULT_BOT_USERNAME) -> dict[str, Any]:
    """The bot ``User`` as the mended ``getMe`` reports it.

    Real Telegram bot ids are the token prefix; aiogram derives ``bot.id`` from the
    token, so ``getMe`` must agree with it (the emulator always says 666).
    """
    prefix = token.split(":", 1)[0]
    return {
        "id": int(prefix) if prefix.isdigit() else 666,
        "is_bot": True,
        "first_name": "Lotse Test Bot",
        "username": username,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


@dataclass(frozen=True)
class BotApiCall:
    """One Bot API request made by the bot, as seen by the proxy.

    ``params`` holds the form/JSON fields; values that aiogram serialises as JSON
    (``reply_markup``, ``commands``, ...) are decoded, scalars stay strings for
    form-encoded requests (e.g. ``chat_id`` is ``"1001"``).
    """

    method: str
    params: dict[str, Any]
    token: str
    at: float = field(default_factory=time.monotonic)


class _CallLog:
    """Thread-safe record of Bot API calls, shared by proxy, emulator and users.

    Kept apart from BotApiEmulator so that nothing long-lived (the proxy thread, the
    finalizer) references the emulator, which would keep it from being collected.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[BotApiCall] = []

    def append(self, call: BotApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    def snapshot(self) -> list[BotApiCall]:
        with self._lock:
            return list(self._calls)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _decode_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _seconds(timestamp: Any) -> int:
    """Telegram dates are Unix seconds; the emulator stores milliseconds for bot messages."""
    value = _as_int(timestamp, int(time.time()))
    return value // 1000 if value > 10**11 else value


def _private_chat(user: dict[str, Any]) -> dict[str, Any]:
    chat = {"id": user.get("id", 0), "type": "private", "first_name": user.get("first_name", "")}
    if user.get("username"):
        chat["username"] = user["username"]
    return chat


def _fallback_chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private" if chat_id > 0 else "group", "first_name": "User"}


def _inline_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    markup = message.get("reply_markup")
    if not isinstance(markup, dict):
        return []
    return [button for row in markup.get("inline_keyboard") or [] for button in row]


# --------------------------------------------------------------------------- node process


class _EmulatorProcess:
    """The ``node server.js`` child process."""

    START_ATTEMPTS = 3  # a picked free port can be taken before node binds it

    def __init__(self, node: str, startup_timeout: float) -> None:
        self._node = node
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=50)
        self._ready = threading.Event()
        self.port = 0

    def start(self) -> int:
        for attempt in range(1, self.START_ATTEMPTS + 1):
            try:
                return self._start_once(_free_port())
            except _PortTaken:
                log.warning("emulator port was taken (attempt %d), retrying", attempt)
        raise RuntimeError("could not start the Bot API emulator: no free port found")

    def _start_once(self, port: int) -> int:
        self._ready.clear()
        self._output.clear()
        # EMULATOR_EXIT_WITH_PARENT: node exits when our end of its stdin closes,
        # i.e. even when this Python process is killed without running cleanup.
        env = {**os.environ, "EMULATOR_EXIT_WITH_PARENT": "1"}
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [self._node, "server.js", str(port)],
            cwd=EMULATOR_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(
            target=self._pump_output, args=(self._proc,), name="emulator-output", daemon=True
        ).start()
        self._wait_ready(port)
        self.port = port
        return port

    def _pump_output(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            self._output.append(line)
            log.debug("emulator: %s", line)
            if line.startswith(READY_MARKER):
                self._ready.set()

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        while not self._ready.wait(POLL_INTERVAL):
            if self._proc.poll() is not None:
                output = "\n".join(self._output)
                self._proc = None
                if "EADDRINUSE" in output:
                    raise _PortTaken(port)
                raise RuntimeError(f"Bot API emulator exited during startup:\n{output}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"Bot API emulator not ready after {self._startup_timeout}s:\n"
                    + "\n".join(self._output)
                )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("emulator ignored SIGTERM, killing it")
            proc.kill()
            proc.wait(timeout=5)


class _PortTaken(Exception):
    pass


# --------------------------------------------------------------------------- mending proxy


@dataclass
class _ParsedRequest:
    fields: list[tuple[str, str]]  # raw values, as the emulator will receive them
    params: dict[str, Any]  # decoded values, for recording and mending
    body: bytes
    content_type: str | None


@dataclass
class _BotState:
    """Per-token state the emulator does not keep."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: list[dict[str, Any]] = field(default_factory=list)  # unconfirmed updates
    allowed_updates: list[str] | None = None
    commands: dict[str, Any] = field(default_factory=dict)

    def confirm(self, offset: int | None) -> None:
        """Telegram semantics: an offset confirms (drops) every update below it."""
        if offset is None:
            return
        if offset < 0:
            self.pending = self.pending[offset:]
        else:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]

    def add(self, update: dict[str, Any]) -> None:
        if self.allowed_updates and not any(kind in update for kind in self.allowed_updates):
            return  # Telegram drops update kinds the bot did not ask for
        if all(u["update_id"] != update["update_id"] for u in self.pending):
            self.pending.append(update)
            self.pending.sort(key=lambda u: u["update_id"])


class _MendingProxy:
    """aiohttp reverse proxy in a background thread with its own event loop."""

    def __init__(
        self, emulator_url: str, record: Callable[[BotApiCall], None], bot_username: str
    ) -> None:
        self._emulator_url = emulator_url
        self._record = record
        self._bot_username = bot_username
        self._states: dict[str, _BotState] = {}
        self._chats: dict[int, dict[str, Any]] = {}  # chats seen in user updates
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._closing = False
        self.url = ""

    # lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        started = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(started, errors), name="bot-api-proxy", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError("mending proxy did not start")
        if errors:
            raise RuntimeError("mending proxy failed to start") from errors[0]
        return self.url

    def _run(self, started: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start() in the calling thread
            errors.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=15))
        # Uploads are converted to urlencoded, so accept generously sized bodies.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # handler_cancellation: a bot that hangs up (stop_polling) ends its long poll here;
        # shutdown_timeout: never wait long for handlers when the harness stops.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))  # bind ourselves: no race between picking and using the port
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{HOST}:{sock.getsockname()[1]}"

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        self._closing = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        except Exception:  # shutting down anyway; do not mask the test's own failure
            log.exception("mending proxy shutdown failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # request handling --------------------------------------------------------------------

    def _state(self, token: str) -> _BotState:
        return self._states.setdefault(token, _BotState())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        parsed = await _parse_request(request)
        self._record(BotApiCall(method=method, params=parsed.params, token=token))
        if method == "getUpdates":
            return web.json_response(await self._get_updates(token, parsed.params))
        status, raw = await self._forward(request.method, token, method, parsed)
        mended = await self._mend(token, method, parsed, status, raw)
        if mended is None:
            return web.Response(status=status, body=raw, content_type="application/json")
        return web.json_response(mended)

    async def _forward(
        self, http_method: str, token: str, method: str, parsed: _ParsedRequest
    ) -> tuple[int, bytes]:
        assert self._session is not None
        headers = {"Content-Type": parsed.content_type} if parsed.content_type else {}
        url = f"{self._emulator_url}/bot{token}/{method}"
        async with self._session.request(
            http_method, url, data=parsed.body, headers=headers
        ) as response:
            return response.status, await response.read()

    async def _mend(
        self, token: str, method: str, parsed: _ParsedRequest, status: int, raw: bytes
    ) -> dict[str, Any] | None:
        """Return a replacement response body, or None to pass the emulator's through."""
        try:
            payload = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        if status == 500 and "is not supported" in str(payload.get("message", "")):
            return {"ok": True, "result": await self._unsupported(token, method, parsed)}
        if status != 200 or not payload.get("ok"):
            return None
        result = payload.get("result")
        if method == "getMe":
            return {"ok": True, "result": bot_identity(token, self._bot_username)}
        if method == "sendMessage" and isinstance(result, dict):
            return {"ok": True, "result": self._bot_message(token, result)}
        if result is None:
            # answerCallbackQuery, editMessage*, deleteMessage, setWebhook answer null.
            return {"ok": True, "result": True}
        return None

    async def _unsupported(self, token: str, method: str, parsed: _ParsedRequest) -> Any:
        state = self._state(token)
        if method in MEDIA_SEND_METHODS:
            return await self._send_media(token, method, parsed)
        if method == "setMyCommands":
            state.commands[_commands_key(parsed.params)] = parsed.params.get("commands") or []
        elif method == "deleteMyCommands":
            state.commands.pop(_commands_key(parsed.params), None)
        elif method == "getMyCommands":
            return state.commands.get(_commands_key(parsed.params), [])
        return GETTER_DEFAULTS.get(method, True)

    async def _send_media(self, token: str, method: str, parsed: _ParsedRequest) -> Any:
        """Store a media message as a bot message so users see it (caption as text)."""
        caption = str(parsed.params.get("caption") or "")
        fields = [(k, v) for k, v in parsed.fields if k != "text"]
        fields += [("text", caption), ("harness_media_method", method)]
        body = urlencode(fields).encode()
        media = _ParsedRequest(fields, {}, body, "application/x-www-form-urlencoded")
        _, raw = await self._forward("POST", token, "sendMessage", media)
        message = self._bot_message(token, json.loads(raw)["result"])
        message.pop("text", None)
        if caption:
            message["caption"] = caption
        return message

    def _bot_message(self, token: str, echoed: dict[str, Any]) -> dict[str, Any]:
        """Rebuild a proper Message from the emulator's echo of the request."""
        chat_id = _as_int((echoed.get("chat") or {}).get("id"), 0)
        message: dict[str, Any] = {
            "message_id": echoed["message_id"],
            "date": _seconds(echoed.get("date")),
            "chat": self._chats.get(chat_id) or _fallback_chat(chat_id),
            "from": bot_identity(token, self._bot_username),
        }
        if isinstance(echoed.get("text"), str):
            message["text"] = echoed["text"]
        entities = _decode_value(echoed.get("entities"))
        if isinstance(entities, list):
            message["entities"] = entities
        if _inline_buttons(echoed):
            message["reply_markup"] = echoed["reply_markup"]
        return message

    # getUpdates --------------------------------------------------------------------------

    async def _get_updates(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        state = self._state(token)
        offset = _as_int(params["offset"], 0) if "offset" in params else None
        limit = min(max(_as_int(params.get("limit"), 100), 1), 100)
        timeout = max(_as_int(params.get("timeout"), 0), 0)
        if isinstance(params.get("allowed_updates"), list):
            state.allowed_updates = params["allowed_updates"] or None  # [] means "all"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with state.lock:
            state.confirm(offset)
            while True:
                await self._pull(token, state)
                if state.pending or self._closing or loop.time() >= deadline:
                    break
                await asyncio.sleep(POLL_INTERVAL)
            return {"ok": True, "result": state.pending[:limit]}

    async def _pull(self, token: str, state: _BotState) -> None:
        """Move the emulator's unread updates into our buffer (the emulator forgets them)."""
        assert self._session is not None
        url = f"{self._emulator_url}/bot{token}/getUpdates"
        async with self._session.post(url) as response:
            payload = await response.json(content_type=None)
        for update in payload.get("result") or []:
            state.add(self._mend_update(update))

    def _mend_update(self, update: dict[str, Any]) -> dict[str, Any]:
        update = json.loads(json.dumps(update))  # private deep copy
        message = update.get("message")
        if isinstance(message, dict):
            message.pop("botToken", None)  # the emulator leaks the client's request field
            message["date"] = _seconds(message.get("date"))
            self._remember_chat(message.get("chat"))
        query = update.get("callback_query")
        if isinstance(query, dict):
            self._mend_callback_query(query)
        return update

    def _mend_callback_query(self, query: dict[str, Any]) -> None:
        sender = query.get("from") or {}
        nested = query.get("message")
        if isinstance(nested, dict):
            nested.pop("botToken", None)
            nested.setdefault("message_id", 0)
            nested["date"] = _seconds(nested.get("date"))
            nested.setdefault("chat", self._chats.get(sender.get("id", 0), _private_chat(sender)))
            chat_id = nested["chat"].get("id", 0)
        else:
            query.pop("message", None)  # the emulator sends null; aiogram wants it absent
            chat_id = sender.get("id", 0)
        # Stable per chat, as with Telegram (it identifies the chat the message was sent in).
        query.setdefault("chat_instance", f"e2e-chat-instance-{chat_id}")

    def _remember_chat(self, chat: Any) -> None:
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            self._chats[chat["id"]] = chat


def _commands_key(params: dict[str, Any]) -> str:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)


async def _parse_request(request: web.Request) -> _ParsedRequest:
    """Read a Bot API request the way Telegram would: query, urlencoded, JSON or multipart."""
    fields: list[tuple[str, str]] = list(request.query.items())
    params: dict[str, Any] = {}
    if request.content_type.startswith("multipart/"):
        # The emulator cannot parse multipart, so the body is re-encoded as urlencoded.
        fields += _multipart_fields(await request.post())
        body = urlencode(fields).encode()
        content_type: str | None = "application/x-www-form-urlencoded"
    else:
        body = await request.read()
        content_type = request.headers.get("Content-Type")
        if request.content_type == "application/json" and body:
            params.update(json.loads(body))
        elif body:
            fields += parse_qsl(body.decode(), keep_blank_values=True)
    params.update({key: _decode_value(value) for key, value in fields})
    return _ParsedRequest(fields, params, body, content_type)


def _multipart_fields(
    form: Mapping[str, str | bytes | bytearray | web.FileField],
) -> list[tuple[str, str]]:
    """Form fields with uploads replaced by their file names.

    aiogram sends ``photo=attach://<part>`` plus a file part named ``<part>``; resolving
    that makes ``params["photo"]`` the uploaded file's name.
    """
    files = {k: v.filename for k, v in form.items() if isinstance(v, web.FileField)}
    fields: list[tuple[str, str]] = []
    for key, value in form.items():
        if key in files:
            continue
        text = value if isinstance(value, str) else bytes(value).decode()  # type: ignore[arg-type]
        if text.startswith("attach://") and text[len("attach://") :] in files:
            text = files[text[len("attach://") :]]
        fields.append((key, text))
    return fields


# --------------------------------------------------------------------------- public API


def _shutdown(
    process: _EmulatorProcess, proxy: _MendingProxy, users: Iterable[TelegramUser]
) -> None:
    """Module-level so weakref.finalize does not keep the emulator object alive."""
    for user in list(users):
        user.close()
    proxy.stop()
    process.stop()


class BotApiEmulator:
    """The Bot API emulator plus its mending proxy; use as a context manager.

    ``api_base`` is what the bot uses as TELEGRAM_API_BASE; ``emulator_url`` is the raw
    emulator (its client API is what :class:`TelegramUser` talks to).
    """

    def __init__(
        self,
        *,
        node: str = "node",
        startup_timeout: float = 15.0,
        bot_username: str = DEFAULT_BOT_USERNAME,
    ) -> None:
        self.bot_username = bot_username
        self.api_base = ""
        self.emulator_url = ""
        self._node = node
        self._startup_timeout = startup_timeout
        self._log = _CallLog()
        self._users: dict[tuple[str, int], TelegramUser] = {}
        self._user_ids = itertools.count(10_001)
        self._finalizer: weakref.finalize[..., BotApiEmulator] | None = None

    def __enter__(self) -> BotApiEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> BotApiEmulator:
        if self._finalizer is not None and self._finalizer.alive:
            return self
        node = self._check_prerequisites()
        process = _EmulatorProcess(node, self._startup_timeout)
        self.emulator_url = f"http://{HOST}:{process.start()}"
        proxy = _MendingProxy(self.emulator_url, self._log.append, self.bot_username)
        # finalize also runs at interpreter exit (atexit) and on garbage collection.
        users = self._users.values()
        self._finalizer = weakref.finalize(self, _shutdown, process, proxy, users)
        try:
            self.api_base = proxy.start()
        except BaseException:
            self.stop()  # do not leave node running behind a failed start
            raise
        log.info("Bot API emulator at %s, mending proxy at %s", self.emulator_url, self.api_base)
        return self

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs at most once
        self._users.clear()

    def _check_prerequisites(self) -> str:
        node = shutil.which(self._node)
        if node is None:
            raise RuntimeError(f"Node.js ({self._node!r}) not found; it runs the Bot API emulator")
        if not (EMULATOR_DIR / "node_modules" / "telegram-test-api").is_dir():
            raise RuntimeError(
                f"telegram-test-api is not installed: run `npm ci` in {EMULATOR_DIR}"
            )
        return node

    # recorded calls ----------------------------------------------------------------------

    @property
    def calls(self) -> list[BotApiCall]:
        """Snapshot of every Bot API call made so far, oldest first."""
        return self._log.snapshot()

    def calls_to(self, method: str, token: str | None = None) -> list[BotApiCall]:
        return [c for c in self.calls if c.method == method and token in (None, c.token)]

    def wait_for_call(
        self, method: str, timeout: float = 10.0, token: str | None = None
    ) -> BotApiCall:
        """First recorded call of ``method``, waiting for it (bots call some methods late)."""
        deadline = time.monotonic() + timeout
        while not (found := self.calls_to(method, token)):
            if time.monotonic() > deadline:
                seen = sorted({c.method for c in self.calls})
                raise AssertionError(f"{method} was not called within {timeout}s; seen: {seen}")
            time.sleep(POLL_INTERVAL)
        return found[0]

    # simulated users ---------------------------------------------------------------------

    def user(
        self,
        token: str,
        user_id: int | None = None,
        chat_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = None,
    ) -> TelegramUser:
        """A simulated Telegram user talking to the bot with ``token``.

        Without ``user_id`` every call yields a new user (distinct id and private chat).
        """
        if not self.emulator_url:
            raise RuntimeError("start the emulator before creating users")
        uid = user_id if user_id is not None else next(self._user_ids)
        cid = chat_id if chat_id is not None else uid
        if (token, cid) in self._users:
            # Two readers of one chat would steal each other's messages (reads are destructive).
            raise ValueError(f"chat {cid} of bot {token.split(':')[0]} already has a user")
        user = TelegramUser(
            self._log,
            self.emulator_url,
            bot_identity(token, self.bot_username),
            token,
            uid,
            cid,
            first_name,
            username or f"user{uid}",
            language_code,
        )
        self._users[(token, cid)] = user
        return user


class TelegramUser:
    """A simulated user in a private (or given) chat with the bot; all methods are sync."""

    def __init__(
        self,
        calls: _CallLog,
        emulator_url: str,
        bot: dict[str, Any],
        token: str,
        user_id: int,
        chat_id: int,
        first_name: str,
        username: str,
        language_code: str | None,
    ) -> None:
        self.token = token
        self.user_id = user_id
        self.chat_id = chat_id
        self.received: list[dict[str, Any]] = []  # bot messages to this chat, in order
        self.deleted_ids: set[int] = set()
        self._calls = calls
        self._bot = bot
        self._http = httpx.Client(base_url=emulator_url, timeout=10.0)
        self._returned: set[int] = set()  # message ids already handed out by wait_for_message
        self._edits_applied = 0
        self._from: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "username": username,
        }
        if language_code:
            self._from["language_code"] = language_code
        self._chat = _private_chat(self._from) if chat_id == user_id else _fallback_chat(chat_id)

    def close(self) -> None:
        self._http.close()

    # sending -----------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self._post("/sendMessage", self._message(text=text))

    def send_command(self, command: str) -> None:
        """Send e.g. ``"/start"`` or ``"/start ref-123"`` with its ``bot_command`` entity."""
        if not command.startswith("/"):
            raise ValueError(f"commands start with '/': {command!r}")
        entity = {"type": "bot_command", "offset": 0, "length": len(command.split()[0])}
        self._post("/sendCommand", self._message(text=command, entities=[entity]))

    def send_photo(self, caption: str | None = None) -> None:
        sizes = [
            {"file_id": f"photo-{self.user_id}-s", "file_unique_id": "ps", "width": 90,
             "height": 90, "file_size": 1024},
            {"file_id": f"photo-{self.user_id}-m", "file_unique_id": "pm", "width": 800,
             "height": 800, "file_size": 65536},
        ]  # fmt: skip
        content: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            content["caption"] = caption
        self.send_raw(**content)

    def send_sticker(self) -> None:
        sticker = {
            "file_id": f"sticker-{self.user_id}",
            "file_unique_id": "st",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        }
        self.send_raw(sticker=sticker)

    def send_raw(self, **content: Any) -> None:
        """Send a message with arbitrary content fields (contact, location, document, ...)."""
        self._post("/sendMessage", self._message(**content))

    def click(self, button_text: str, timeout: float = WAIT) -> None:
        """Press an inline button of the latest bot message that has an inline keyboard."""
        deadline = time.monotonic() + timeout
        while (found := self._find_button(button_text)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no inline button {button_text!r}; last keyboard: {self.last_keyboard()}"
                )
            time.sleep(POLL_INTERVAL)
        message, button = found
        if "callback_data" not in button:
            raise AssertionError(f"button {button_text!r} has no callback_data: {button}")
        query_message = {
            key: message[key]
            for key in ("message_id", "date", "chat", "from", "text", "caption", "reply_markup")
            if key in message
        }
        self._post(
            "/sendCallback",
            {
                "botToken": self.token,
                "from": self._from,
                "message": query_message,
                "data": button["callback_data"],
            },
        )

    # receiving ---------------------------------------------------------------------------

    def wait_for_message(
        self, contains: str | None = None, timeout: float = WAIT
    ) -> dict[str, Any]:
        """First bot message not returned before whose text/caption contains ``contains``."""
        deadline = time.monotonic() + timeout
        while True:
            self._refresh()
            for message in self.received:
                if message["message_id"] not in self._returned and _matches(message, contains):
                    self._returned.add(message["message_id"])
                    return message
            if time.monotonic() > deadline:
                texts = [_text_of(m) for m in self.received]
                raise AssertionError(
                    f"user {self.user_id}: no new message containing {contains!r} "
                    f"within {timeout}s; received: {texts}"
                )
            time.sleep(POLL_INTERVAL)

    def pass_over_until(self, message: dict[str, Any]) -> None:
        """Counts every message received before `message` as handed out: for replies whose
        number varies (a handover's optional notes) that a test does not read one by one."""
        for earlier in self.received:
            if earlier["message_id"] == message["message_id"]:
                return
            self._returned.add(earlier["message_id"])

    def wait_for_any(self, *contains: str, timeout: float = WAIT) -> dict[str, Any]:
        """Like ``wait_for_message``, for the first new message that contains any of these."""
        deadline = time.monotonic() + timeout
        while True:
            self._refresh()
            for message in self.received:
                if message["message_id"] not in self._returned and any(
                    _matches(message, part) for part in contains
                ):
                    self._returned.add(message["message_id"])
                    return message
            if time.monotonic() > deadline:
                texts = [_text_of(m) for m in self.received]
                raise AssertionError(
                    f"user {self.user_id}: no new message containing any of {contains!r} "
                    f"within {timeout}s; received: {texts}"
                )
            time.sleep(POLL_INTERVAL)

    def messages(self) -> list[dict[str, Any]]:
        """All bot messages to this chat so far (edits applied), oldest first."""
        self._refresh()
        return list(self.received)

    def last_keyboard(self) -> list[str]:
        """Button texts of the latest inline keyboard, row by row flattened ([] if none)."""
        self._refresh()
        message = self._last_keyboard_message()
        return [] if message is None else [b["text"] for b in _inline_buttons(message)]

    # internals ---------------------------------------------------------------------------

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "botToken": self.token,
            "from": self._from,
            "chat": self._chat,
            "date": int(time.time()),
            **content,
        }

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        response = self._http.post(path, json=payload)
        response.raise_for_status()
        return response.json()

    def _refresh(self) -> None:
        """Fetch new bot messages (the emulator marks them read) and apply edits/deletions."""
        entries = self._post("/getUpdates", {"token": self.token, "chatId": self.chat_id})
        new = [self._to_message(entry) for entry in entries.get("result") or []]
        edits = [
            c for c in self._calls.snapshot() if c.method in EDIT_METHODS and c.token == self.token
        ]
        # New messages may predate edits we already processed: replay those on them.
        for call in edits[: self._edits_applied]:
            self._apply_edit(call, new)
        self.received.extend(new)
        for call in edits[self._edits_applied :]:
            self._apply_edit(call, self.received)
        self._edits_applied = len(edits)

    def _to_message(self, entry: dict[str, Any]) -> dict[str, Any]:
        message = {k: v for k, v in entry["message"].items() if k not in ("botToken", "chat_id")}
        message.update(
            message_id=entry["messageId"],
            date=_seconds(entry["time"]),
            chat=self._chat,
        )
        message["from"] = self._bot
        return message

    def _apply_edit(self, call: BotApiCall, messages: list[dict[str, Any]]) -> None:
        params = call.params
        if str(params.get("chat_id")) != str(self.chat_id):
            return
        message_id = _as_int(params.get("message_id"), -1)
        if call.method == "deleteMessage":
            self.deleted_ids.add(message_id)
            return
        for message in messages:
            if message["message_id"] == message_id:
                _edit(message, call.method, params)

    def _last_keyboard_message(self) -> dict[str, Any] | None:
        with_keyboard = [
            m
            for m in self.received
            if m["message_id"] not in self.deleted_ids and _inline_buttons(m)
        ]
        return with_keyboard[-1] if with_keyboard else None

    def _find_button(self, text: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        self._refresh()
        message = self._last_keyboard_message()
        if message is None:
            return None
        for button in _inline_buttons(message):
            if button.get("text") == text:
                return message, button
        return None


def _edit(message: dict[str, Any], method: str, params: dict[str, Any]) -> None:
    """Apply an edit like Telegram: an edit without reply_markup removes the keyboard."""
    if method == "editMessageText":
        message["text"] = params.get("text", "")
    elif method == "editMessageCaption":
        message["caption"] = params.get("caption", "")
    markup = params.get("reply_markup")
    if isinstance(markup, dict):
        message["reply_markup"] = markup
    else:
        message.pop("reply_markup", None)


def _text_of(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


def _matches(message: dict[str, Any], contains: str | None) -> bool:
    return contains is None or contains in _text_of(message)
