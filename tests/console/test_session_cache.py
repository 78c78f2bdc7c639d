"""The console API's caches (counsellor_console/cache.py): logins and queues are served from
memory, and every change that matters still shows at once in this process, and within the
TTL when it happens where no app process sees it.

The fake clock stands still unless a test moves it, so nothing here expires by time alone:
what a test sees after a change is the invalidation, not the TTL."""

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import delete, select, update

from core.db import transaction
from core.models import ConsoleSession, Counsellor
from counsellor_console.cache import SESSION_TTL, SESSIONS_CHANNEL
from tests.console.conftest import BASE, login
from tests.console.test_console_api import start_web_chat
from tests.helpers import add_counsellor, add_team

API = "/api/v1/console"


def cache_of(app):
    cache = app.state.console_cache
    assert cache.active, "the caches run with the app's lifespan"
    return cache


async def queue_cache_listening(app):
    """Wait until the queue cache listens to the (one) team's channel, and return the team.

    The cache only keeps what it read once it listens (on Redis a round trip after the first
    read starts it); until then a later request reads again, which is right, but not what
    the tests that count cached views are about."""
    queues = cache_of(app).queues
    team_id = next(iter(queues._listeners))
    for _ in range(1000):
        if team_id in queues._listening:
            return team_id
        await asyncio.sleep(0.01)
    raise AssertionError("the queue cache never listened to the team's channel")


def cookie_of(client: httpx.AsyncClient) -> tuple[str, str]:
    cookie = next(c for c in client.cookies.jar if c.name.endswith("lotse_session"))
    return cookie.name, cookie.value


async def me_status(app, cookie: tuple[str, str]) -> int:
    """GET /me with exactly this cookie, as a browser that kept it would send it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as other:
        other.cookies.set(*cookie)
        return (await other.get(f"{API}/me")).status_code


async def test_me_is_served_from_the_cache_after_the_first_request(app, client, counsellor):
    await login(client, "anna")
    first = await client.get(f"{API}/me")
    assert first.status_code == 200 and first.json()["login"] == "anna"
    assert len(cache_of(app).sessions) == 1
    queries = []

    def count(*_args):
        queries.append(1)

    from sqlalchemy import event

    engine = app.state.services.db.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        again = await client.get(f"{API}/me")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert again.json() == first.json()
    assert queries == [], "a cached login costs no database round trip"


async def test_logout_ends_a_cached_session_at_once(app, client, counsellor):
    headers = {"X-CSRF-Token": await login(client, "anna")}
    cookie = cookie_of(client)
    assert await me_status(app, cookie) == 200
    await client.post("/console/logout", headers=headers)
    assert await me_status(app, cookie) == 401, "the kept cookie opens nothing any more"
    assert len(cache_of(app).sessions) == 0


async def test_a_disabled_account_is_refused_at_once(app, client, services, counsellor):
    await login(client, "anna")
    assert (await client.get(f"{API}/me")).status_code == 200
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.login == "anna").values(is_active=False)
        )
    assert (await client.get(f"{API}/me")).status_code == 401


async def test_a_disabled_account_through_the_orm_is_refused_at_once(client, services, counsellor):
    await login(client, "anna")
    assert (await client.get(f"{API}/queue")).status_code == 200
    async with transaction(services.sessions) as session:
        account = await session.scalar(select(Counsellor).where(Counsellor.login == "anna"))
        account.is_active = False
    assert (await client.get(f"{API}/queue")).status_code == 401


async def test_deleted_sessions_are_refused_at_once(client, services, counsellor):
    await login(client, "anna")
    assert (await client.get(f"{API}/me")).status_code == 200
    async with transaction(services.sessions) as session:
        await session.execute(delete(ConsoleSession))
    assert (await client.get(f"{API}/me")).status_code == 401


async def test_a_change_no_app_process_sees_is_refused_within_the_ttl(app, client, services):
    """SQL by hand, past the ORM: the bound is the TTL."""
    await add_counsellor(services, login="anna")
    await login(client, "anna")
    assert (await client.get(f"{API}/me")).status_code == 200
    async with services.db.begin() as connection:
        await connection.execute(delete(ConsoleSession))
    assert (await client.get(f"{API}/me")).status_code == 200, "stale within the TTL"
    services.clock.advance(seconds=SESSION_TTL.total_seconds())
    assert (await client.get(f"{API}/me")).status_code == 401


async def test_another_process_logout_reaches_the_cache_over_the_bus(app, client, services):
    """Another process deletes the row and says so on the bus, as its watcher does."""
    counsellor = await add_counsellor(services, login="anna")
    await login(client, "anna")
    assert (await client.get(f"{API}/me")).status_code == 200
    async with services.db.begin() as connection:
        await connection.execute(delete(ConsoleSession))
    await services.bus.publish(
        SESSIONS_CHANNEL,
        {"type": "sessions.changed", "all": False, "counsellors": [str(counsellor.id)]},
    )
    for _ in range(200):  # real time, the fake clock stands still: the bus, not the TTL
        if len(cache_of(app).sessions) == 0:
            break
        await asyncio.sleep(0.01)
    assert (await client.get(f"{API}/me")).status_code == 401


async def test_idle_timeout_applies_to_a_cached_login(app, client, services, counsellor):
    # A TTL far beyond the idle timeout: the entry must still end with the session.
    cache_of(app).sessions._ttl = timedelta(hours=24)
    await login(client, "anna")
    assert (await client.get(f"{API}/me")).status_code == 200
    idle = timedelta(minutes=services.settings.session_idle_minutes)
    services.clock.advance(seconds=(idle - timedelta(minutes=2)).total_seconds())
    assert (await client.get(f"{API}/me")).status_code == 200, "from the cache, no activity"
    services.clock.advance(minutes=3)
    assert (await client.get(f"{API}/me")).status_code == 401
    async with services.sessions() as session:
        assert await session.scalar(select(ConsoleSession)) is None, "expired and deleted"


async def test_activity_through_the_cache_still_keeps_the_session_alive(client, services):
    """Requests served from the cache count: every TTL one goes to the database, which moves
    last_seen_at once it is a minute old."""
    await add_counsellor(services, login="anna")
    await login(client, "anna")
    idle = services.settings.session_idle_minutes
    for _ in range(idle * 2):
        services.clock.advance(minutes=1)
        assert (await client.get(f"{API}/me")).status_code == 200


async def test_availability_change_shows_in_me_at_once(client, counsellor):
    headers = {"X-CSRF-Token": await login(client, "anna")}
    assert (await client.get(f"{API}/me")).json()["availability"] == "online"
    changed = await client.put(
        f"{API}/me/availability", json={"availability": "away"}, headers=headers
    )
    assert changed.status_code == 200
    assert (await client.get(f"{API}/me")).json()["availability"] == "away"


async def test_claim_and_release_show_in_the_next_queue_read(app, client, counsellor):
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    queue = (await client.get(f"{API}/queue")).json()
    assert [c["status"] for c in queue] == ["waiting"]
    assert (await client.get(f"{API}/queue")).json() == queue, "served from the cache"
    conversation_id = queue[0]["id"]
    claimed = await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200
    assert [c["status"] for c in (await client.get(f"{API}/queue")).json()] == ["active"]
    await client.post(f"{API}/conversations/{conversation_id}/release", headers=headers)
    assert [c["status"] for c in (await client.get(f"{API}/queue")).json()] == ["waiting"]
    await client.put(
        f"{API}/conversations/{conversation_id}/crisis", json={"crisis": True}, headers=headers
    )
    assert [c["crisis"] for c in (await client.get(f"{API}/queue")).json()] == [True]


async def test_a_handover_and_a_message_show_in_the_next_queue_read(client, services):
    await add_counsellor(services, login="anna")
    await login(client, "anna")
    assert (await client.get(f"{API}/queue")).json() == []
    await start_web_chat(client)
    queue = (await client.get(f"{API}/queue")).json()
    assert len(queue) == 1, "the handover is there"
    services.clock.advance(seconds=1)
    sent = await client.post("/chat/api/messages", json={"kind": "text", "value": "hallo?"})
    assert sent.status_code == 200
    moved = (await client.get(f"{API}/queue")).json()
    assert moved[0]["last_message_at"] > queue[0]["last_message_at"]


async def test_the_cached_queue_is_what_the_service_answers(app, client, services, counsellor):
    await start_web_chat(client)
    await login(client, "anna")
    await client.get(f"{API}/queue")
    cached = (await client.get(f"{API}/queue")).json()
    fresh = await services.conversations.list_queue(counsellor=counsellor)
    assert cached == [summary.model_dump(mode="json") for summary in fresh]


async def test_another_team_never_sees_a_cached_queue(app, client, services, counsellor):
    await add_team(services, slug="nrw", states=["NW"])
    await add_counsellor(services, login="nora", team_slug="nrw")
    await start_web_chat(client)
    await login(client, "anna")
    assert len((await client.get(f"{API}/queue")).json()) == 1
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as nora:
        await login(nora, "nora")
        assert (await nora.get(f"{API}/queue")).json() == []
        assert (await nora.get(f"{API}/queue")).json() == []
    assert len((await client.get(f"{API}/queue")).json()) == 1


async def test_a_transfer_shows_in_both_teams_queues_at_once(app, client, services, counsellor):
    nrw = await add_team(services, slug="nrw", states=["NW"])
    await add_counsellor(services, login="nora", team_slug="nrw")
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as nora:
        await login(nora, "nora")
        assert (await nora.get(f"{API}/queue")).json() == []
        conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
        moved = await client.post(
            f"{API}/conversations/{conversation_id}/transfer",
            json={"to_team_id": str(nrw)},
            headers=headers,
        )
        assert moved.status_code == 200
        assert (await client.get(f"{API}/queue")).json() == []
        assert [c["id"] for c in (await nora.get(f"{API}/queue")).json()] == [conversation_id]


async def test_members_with_the_same_team_and_role_get_the_same_queue(client, services):
    """What the queue cache relies on (`QueueCache.view`): if list_queue ever answers two
    counsellors of one team and role differently, the cache key must say what differs."""
    anna = await add_counsellor(services, login="anna")
    ben = await add_counsellor(services, login="ben")
    await start_web_chat(client)
    headers = {"X-CSRF-Token": await login(client, "anna")}
    conversation_id = (await client.get(f"{API}/queue")).json()[0]["id"]
    await client.post(f"{API}/conversations/{conversation_id}/claim", headers=headers)
    assert await services.conversations.list_queue(
        counsellor=anna
    ) == await services.conversations.list_queue(counsellor=ben)


async def test_a_lead_and_a_counsellor_are_cached_apart(app, client, services, counsellor):
    lead = await add_counsellor(services, login="lena")
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.id == lead.id).values(role="team_lead")
        )
    await start_web_chat(client)
    await login(client, "anna")
    await client.get(f"{API}/queue")
    await queue_cache_listening(app)
    await client.get(f"{API}/queue")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as lena:
        await login(lena, "lena")
        await lena.get(f"{API}/queue")
    views = cache_of(app).queues._entries[counsellor.team_id]
    assert set(views) == {"counsellor", "team_lead"}


async def test_queue_reads_in_flight_at_once_share_one_database_read(app, client, services):
    await add_counsellor(services, login="anna")
    await start_web_chat(client)
    await login(client, "anna")
    await client.get(f"{API}/queue")
    team_id = await queue_cache_listening(app)
    cache_of(app).queues.drop_team(team_id)
    reads = []
    original = services.conversations.list_queue

    async def counted(**kwargs):
        reads.append(1)
        return await original(**kwargs)

    services.conversations.list_queue = counted
    try:
        answers = await asyncio.gather(*(client.get(f"{API}/queue") for _ in range(8)))
    finally:
        del services.conversations.list_queue
    assert {len(a.json()) for a in answers} == {1}
    assert len(reads) == 1
