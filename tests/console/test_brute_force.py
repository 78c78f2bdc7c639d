"""Password guessing meets a wall: after a few failures the login answers 429 with Retry-After,
even for the right password, the lock doubles with each further failure, and time frees it."""

from __future__ import annotations

from core.clock import FakeClock
from core.ratelimit import MemoryAttempts, Policy
from tests.console.conftest import login


async def try_login(client, name: str, password: str):
    page = await client.get("/console/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return await client.post(
        "/console/login", data={"login": name, "password": password, "csrf": csrf}
    )


async def test_guessing_a_password_gets_429_and_then_the_lock_passes(
    client, services, counsellor, clock
):
    for _ in range(5):
        assert (await try_login(client, "anna", "wrong")).status_code == 401
    assert (await try_login(client, "anna", "wrong")).status_code == 401  # earns the first lock
    locked = await try_login(client, "anna", "pw-long-enough")
    assert locked.status_code == 429, "not even the right password while locked"
    assert int(locked.headers["retry-after"]) >= 1
    assert "Zu viele Versuche" in locked.text
    clock.advance(seconds=3)
    await login(client, "anna")  # the lock is over and the right password works
    assert (await client.get("/api/v1/console/me")).status_code == 200


async def test_a_made_up_login_is_limited_like_a_real_one(client, services, clock):
    for _ in range(6):
        assert (await try_login(client, "nobody", "x")).status_code == 401
    assert (await try_login(client, "nobody", "x")).status_code == 429


async def test_many_logins_from_one_address_are_limited_too(client, services, clock):
    for n in range(6):
        assert (await try_login(client, f"user{n}", "x")).status_code == 401
    assert (await try_login(client, "someone-new", "x")).status_code == 429


async def test_each_further_failure_doubles_the_lock_up_to_the_cap():
    clock = FakeClock()
    attempts = MemoryAttempts(clock=clock, policy=Policy(free_failures=2, max_lock_seconds=10))
    locks = [await attempts.failed("k") for _ in range(8)]
    assert locks == [0, 0, 2, 4, 8, 10, 10, 10]
    assert await attempts.blocked_for("k") == 10
    clock.advance(seconds=10)
    assert await attempts.blocked_for("k") == 0
    await attempts.succeeded("k")
    assert await attempts.failed("k") == 0, "a success forgets the failures"


async def test_the_attempts_store_in_use_follows_the_backend(services):
    from core.ratelimit import RedisAttempts

    expected = RedisAttempts if services.redis is not None else MemoryAttempts
    assert isinstance(services.attempts, expected)
    assert await services.attempts.failed("probe") == 0
    if services.redis is not None:
        keys = [k.decode() for k in await services.redis.keys("lotse:attempts:*")]
        assert keys == ["lotse:attempts:probe"]
