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
