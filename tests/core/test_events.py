import asyncio

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.state import PseudonymousKeyBuilder
from lotse.runtime import build_services, close_services
from tests.conftest import TEST_REDIS_URL


async def test_subscriber_receives_events_in_order_and_publish_counts_it(services):
    async with services.bus.subscribe("team:x") as queue:
        counts = [await services.bus.publish("team:x", {"n": n}) for n in range(5)]
        received = [(await asyncio.wait_for(queue.get(), 5))["n"] for _ in range(5)]
    assert received == [0, 1, 2, 3, 4]
    assert counts == [1] * 5
    assert await services.bus.publish("team:x", {"n": 5}) == 0


@pytest.mark.skipif(not TEST_REDIS_URL, reason="fan-out across processes needs REDIS_URL")
async def test_events_fan_out_across_processes_through_redis(services, settings, clock):
    other_process = build_services(settings, clock=clock)
    try:
        async with other_process.bus.subscribe("team:y") as queue:
            await services.bus.publish("team:y", {"type": "queue.updated"})
            event = await asyncio.wait_for(queue.get(), 5)
        assert event == {"type": "queue.updated"}
    finally:
        await close_services(other_process)


@pytest.mark.skipif(not TEST_REDIS_URL, reason="the Redis bus needs REDIS_URL")
async def test_one_redis_subscription_per_process_serves_every_local_subscriber(
    services, settings, clock
):
    """Consoles of one process share the process's pub/sub connection: Redis counts one
    subscriber, each console gets every event, in order, and the channel is left in Redis
    only when the last one here goes."""
    other_process = build_services(settings, clock=clock)
    try:
        bus = services.bus
        async with bus.subscribe("team:z") as first:
            async with bus.subscribe("team:z") as second:
                # Confirmed by Redis before `subscribe` returns: nothing published is missed.
                assert await other_process.bus.publish("team:z", {"n": 1}) == 1
                assert await other_process.bus.publish("team:z", {"n": 2}) == 1
                for queue in (first, second):
                    got = [(await asyncio.wait_for(queue.get(), 5))["n"] for _ in range(2)]
                    assert got == [1, 2]
            assert await other_process.bus.publish("team:z", {"n": 3}) == 1
            assert (await asyncio.wait_for(first.get(), 5))["n"] == 3
            assert second.empty(), "a subscriber that left gets nothing more"
        for _ in range(50):  # the UNSUBSCRIBE is sent as the last one leaves
            if await other_process.bus.publish("team:z", {"n": 4}) == 0:
                break
            await asyncio.sleep(0.05)
        assert await other_process.bus.publish("team:z", {"n": 5}) == 0
    finally:
        await close_services(other_process)


@pytest.mark.skipif(not TEST_REDIS_URL, reason="the Redis bus needs REDIS_URL")
async def test_the_redis_bus_connects_again_when_its_connection_is_killed(services):
    """Redis restarted or the connection cut: the bus subscribes again by itself, and the
    stream keeps delivering, after a `queue.updated` so that a console catches up."""
    async with services.bus.subscribe("team:k") as queue:
        # Only this bus's connection: the Redis server may be shared with other runs.
        host, port = services.bus._pubsub.connection._writer.get_extra_info("sockname")[:2]
        await services.redis.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
        received: list[dict] = []
        for n in range(100):
            await services.bus.publish("team:k", {"n": n})
            try:
                received.append(await asyncio.wait_for(queue.get(), 0.1))
            except TimeoutError:
                continue
            if "n" in received[-1]:
                break
        assert received and "n" in received[-1], "events flow again"
    # Events published during the gap are lost (nothing here is stored); the subscriber is
    # told before the first event after it, so a console reloads its queue.
    assert received[0] == {"type": "queue.updated"}, received


def test_storage_keys_carry_no_plain_telegram_ids():
    builder = PseudonymousKeyBuilder(b"p" * 32)
    key = StorageKey(bot_id=42, chat_id=123456789, user_id=123456789)
    built = builder.build(key, "data")
    assert "123456789" not in built
    assert built == builder.build(key, "data")
    assert built != PseudonymousKeyBuilder(b"q" * 32).build(key, "data")


async def test_flow_state_is_kept_per_pseudonym(services):
    from bot.state import FlowStateStore

    store = FlowStateStore(services.storage)
    await store.set("p1.a", {"step": "need"})
    assert await store.get("p1.a") == {"step": "need"}
    assert await store.get("p1.b") == {}
    if services.redis is not None:
        keys = [k.decode() for k in await services.redis.keys("*")]
        assert keys and not any("p1.a" in k for k in keys)
