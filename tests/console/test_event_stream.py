"""A console's event stream ends with its session: after logout (or expiry, or a disabled
account) no further event reaches it, while a valid session keeps receiving."""

from __future__ import annotations

import asyncio

from core import web
from core.db import transaction
from core.events import MemoryEventBus
from counsellor_console.auth import session_alive
from counsellor_console.deps import session_cookie_name, session_policy
from tests.console.conftest import login


class OpenRequest:
    async def is_disconnected(self) -> bool:
        return False


async def read(stream, count: int) -> list[str]:
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == count:
            break
    return chunks


async def test_the_stream_ends_when_the_session_does(monkeypatch):
    monkeypatch.setattr(web, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(web, "RECHECK_SECONDS", 0.0)
    bus = MemoryEventBus()
    allowed = {"yes": True}

    async def still_allowed() -> bool:
        return allowed["yes"]

    response = web.sse_response(OpenRequest(), bus, "team:t", still_allowed=still_allowed)
    stream = response.body_iterator
    assert await read(stream, 1) == [": connected\n\n"]

    async def publish_soon(text: str) -> None:
        await asyncio.sleep(0.01)
        await bus.publish("team:t", {"type": "message.created", "text": text})

    asyncio.create_task(publish_soon("erste"))
    [event] = await asyncio.wait_for(read(stream, 1), 2)
    assert "erste" in event
    allowed["yes"] = False
    asyncio.create_task(publish_soon("nach dem Abmelden"))
    rest = await asyncio.wait_for(read(stream, 10), 2)
    assert all("nach dem Abmelden" not in chunk for chunk in rest), "nothing after the logout"


async def test_session_alive_follows_logout_and_disabling(client, services, counsellor):
    headers = {"X-CSRF-Token": await login(client, "anna")}
    token = client.cookies[session_cookie_name(services)]
    policy = session_policy(services)

    async def alive() -> bool:
        async with services.sessions() as session:
            return await session_alive(session, token=token, clock=services.clock, policy=policy)

    assert await alive()
    services.clock.advance(minutes=31)
    assert not await alive(), "idle too long"
    services.clock.advance(minutes=-31)
    async with transaction(services.sessions) as session:
        from sqlalchemy import update

        from core.models import Counsellor

        await session.execute(update(Counsellor).values(is_active=False))
    assert not await alive(), "a disabled account"
    async with transaction(services.sessions) as session:
        await session.execute(update(Counsellor).values(is_active=True))
    assert await alive()
    await client.post("/console/logout", headers=headers)
    assert not await alive(), "after logout"
