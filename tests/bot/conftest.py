"""Fixtures of the bot tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web


@pytest.fixture
async def serve() -> AsyncIterator:
    """A stand-in Bot API over HTTP on a free local port: `await serve(api)` routes every
    `/bot<token>/<method>` to `api.handle` and returns the base URL."""
    runners: list[web.AppRunner] = []

    async def start(api: Any) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", api.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
