"""HTTP pieces shared by the console and the web chat: security headers, origin checks, SSE."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from core.events import EventBus

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEARTBEAT_SECONDS = 15.0


async def security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
    if request.url.path.startswith(("/console", "/chat", "/api")):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


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


def sse_response(request: Request, bus: EventBus, channel: str) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        async with bus.subscribe(channel) as queue:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_SECONDS)
                except TimeoutError:
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
