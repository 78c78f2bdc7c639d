"""HTTP pieces shared by the console and the web chat: security headers, origin checks, SSE."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.events import EventBus

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEARTBEAT_SECONDS = 15.0
# How stale a stream's permission may get while events keep coming.
RECHECK_SECONDS = 5.0
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
]
# Pages and API answers with personal data are not to be kept in any cache.
_NO_STORE_PATHS = ("/console", "/chat", "/api")
_SECURITY_HEADERS_NO_STORE = [*_SECURITY_HEADERS, (b"cache-control", b"no-store")]


class SecurityHeaders:
    """Adds the security headers to every HTTP response that does not set them itself.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware (``app.middleware("http")``) ran
    every request in a task group of its own, with memory streams for the body, which cost about
    as much as a whole Telegram webhook request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith(_NO_STORE_PATHS)
        wanted = _SECURITY_HEADERS_NO_STORE if no_store else _SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in wanted if name not in present]
                message = {**message, "headers": headers}  # never the sender's own list
            await send(message)

        await self.app(scope, receive, send_with_headers)


def json_response(body: bytes | str) -> Response:
    """JSON serialised already (pydantic's `dump_json`): returning a Response skips FastAPI's
    second validation of the model against `response_model` and its jsonable_encoder pass,
    most of a cached request's cost."""
    return Response(content=body, media_type="application/json")


def require_same_origin(request: Request) -> None:
    """Refuse cross-site state changes: Sec-Fetch-Site where the browser sends it, else Origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise HTTPException(status_code=403, detail="cross-site request refused")
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(status_code=403, detail="cross-site request refused")


def sse_response(
    request: Request,
    bus: EventBus,
    channel: str,
    *,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
) -> StreamingResponse:
    """Events of one channel as Server-Sent Events, with a heartbeat. `still_allowed` is asked
    again at every heartbeat and before an event once RECHECK_SECONDS have passed: a stream
    must end with the session that opened it (logout, expiry, a disabled account)."""

    async def stream() -> AsyncIterator[str]:
        # Each stream starts its recheck clock at a random point of the interval: consoles
        # that connected together (a restart, a bench) would otherwise all ask the database
        # before the same event, and every one of them would wait for the burst.
        checked = time.monotonic() - random.uniform(0.0, RECHECK_SECONDS)
        async with bus.subscribe(channel) as queue:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_SECONDS)
                except TimeoutError:
                    event = None
                if still_allowed is not None and (
                    event is None or time.monotonic() - checked >= RECHECK_SECONDS
                ):
                    if not await still_allowed():
                        return
                    checked = time.monotonic()
                if event is None:
                    yield ": heartbeat\n\n"
                    continue
                yield f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def integrity_hashes(directory: Path) -> dict[str, str]:
    """Subresource Integrity values for the static files, computed once at start-up."""
    hashes = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            digest = hashlib.sha384(path.read_bytes()).digest()
            hashes[path.name] = "sha384-" + base64.b64encode(digest).decode()
    return hashes
