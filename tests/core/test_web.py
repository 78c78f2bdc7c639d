"""SecurityHeaders, the plain ASGI middleware every response of the app passes through."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from core.web import CSP, SecurityHeaders

EXPECTED = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
}


async def page(_: Request) -> Response:
    return PlainTextResponse("hallo")


async def own_headers(_: Request) -> Response:
    headers = {"Cache-Control": "max-age=60", "X-Frame-Options": "SAMEORIGIN"}
    return PlainTextResponse("eigene", headers=headers)


async def stream(_: Request) -> Response:
    async def parts():
        yield "a"
        yield "b"

    return StreamingResponse(parts(), media_type="text/plain")


def client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[
            Route("/console/page", page),
            Route("/static/page", page),
            Route("/chat/own", own_headers),
            Route("/api/stream", stream),
        ]
    )
    app.add_middleware(SecurityHeaders)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_every_response_gets_the_security_headers_and_private_paths_no_store():
    async with client() as http:
        private, public, missing = [
            await http.get(path) for path in ("/console/page", "/static/page", "/nowhere")
        ]
    for response in (private, public, missing):
        assert {name: response.headers.get(name) for name in EXPECTED} == EXPECTED
    assert private.headers["cache-control"] == "no-store"
    assert "cache-control" not in public.headers
    assert missing.status_code == 404


async def test_headers_a_response_sets_itself_are_kept_and_not_doubled():
    async with client() as http:
        response = await http.get("/chat/own")
    assert response.headers.get_list("cache-control") == ["max-age=60"]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_streamed_body_passes_through_whole():
    async with client() as http:
        response = await http.get("/api/stream")
    assert response.text == "ab"
    assert response.headers["cache-control"] == "no-store"
