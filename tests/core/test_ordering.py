"""Order and uniqueness under concurrency: the properties the relay and the console rely on."""

import asyncio

from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import select

from bot.engine import Inbound, Sender
from core.conversations import Profile
from core.models import Message
from tests.helpers import add_counsellor
from tests.keyring import transcript


async def open_chat(services, name):
    pseudonym = services.identities.pseudonym(channel="web", identifier=name)
    result = await services.conversations.request_handover(
        channel="web", pseudonym=pseudonym, chat_ref=None, profile=Profile()
    )
    return pseudonym, result.conversation.id


async def test_concurrent_user_and_counsellor_messages_get_distinct_numbers(services):
    counsellor = await add_counsellor(services, login="c1")
    pseudonym, conversation_id = await open_chat(services, "a")
    await services.conversations.claim(conversation_id=conversation_id, counsellor=counsellor)
    for round_ in range(20):
        await asyncio.gather(
            services.conversations.record_user_message(pseudonym=pseudonym, text=f"u{round_}"),
            services.conversations.add_counsellor_reply(
                conversation_id=conversation_id, counsellor=counsellor, text=f"c{round_}"
            ),
        )
    async with services.sessions() as session:
        seqs = (await session.scalars(select(Message.seq).order_by(Message.seq))).all()
    assert seqs == list(range(1, 41))


async def test_a_burst_from_one_chat_is_stored_in_arrival_order(services):
    pseudonym, _ = await open_chat(services, "burst")
    await services.engine.handle(
        sender=Sender("web", pseudonym), inbound=Inbound("command", "start")
    )
    await services.engine.handle(
        sender=Sender("web", pseudonym), inbound=Inbound("action", "handover")
    )
    key = StorageKey(bot_id=0, chat_id=0, user_id=0, destiny=f"web:{pseudonym}")

    async def deliver(n: int) -> None:
        async with services.isolation.lock(key):
            await services.engine.handle(
                sender=Sender("web", pseudonym), inbound=Inbound("text", f"m{n:02d}")
            )

    # Tasks start in creation order, like aiogram's handle_as_tasks polling.
    await asyncio.gather(*(asyncio.create_task(deliver(n)) for n in range(30)))
    assert await transcript(services) == [f"m{n:02d}" for n in range(30)]
    assert services.isolation.held_keys == 0, "locks are released, not leaked"


async def test_many_chats_at_once_do_not_exhaust_the_state_store(services):
    async def chat(n: int) -> str:
        who = Sender("web", services.identities.pseudonym(channel="web", identifier=f"many{n}"))
        key = StorageKey(bot_id=0, chat_id=0, user_id=0, destiny=f"web:{who.pseudonym}")
        async with services.isolation.lock(key):
            replies = await services.engine.handle(sender=who, inbound=Inbound("command", "start"))
        return replies[-1].text

    answers = await asyncio.gather(*(chat(n) for n in range(250)))
    assert set(answers) == {"Wer bist du?"}
