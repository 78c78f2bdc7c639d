import asyncio

import pytest

from core.conversations import ConversationClosed, ConversationNotFound, Profile
from core.events import team_channel
from tests.helpers import add_counsellor, add_team
from tests.keyring import keyring_of


async def handover(services, name, *, state=None, lang="de"):
    pseudonym = services.identities.pseudonym(channel="test", identifier=name)
    result = await services.conversations.request_handover(
        channel="web",
        pseudonym=pseudonym,
        chat_ref=None,
        profile=Profile(language=lang, role="teen", federal_state=state, topics=("visits",)),
    )
    return pseudonym, result


async def test_handover_goes_to_the_state_team_else_the_national_one(services):
    bavaria = await add_team(services, slug="by", states=["BY"])
    _, in_bavaria = await handover(services, "a", state="BY")
    _, in_berlin = await handover(services, "b", state="BE")
    assert in_bavaria.conversation.team_id == bavaria
    assert in_berlin.conversation.team_id != bavaria


async def test_second_handover_reuses_the_open_conversation(services):
    _, first = await handover(services, "a")
    _, again = await handover(services, "a")
    assert first.conversation.id == again.conversation.id


async def test_queue_is_ordered_by_waiting_time_and_counts_who_is_ahead(services, clock):
    counsellor = await add_counsellor(services, login="c1")
    _, first = await handover(services, "a")
    clock.advance(minutes=1)
    _, second = await handover(services, "b")
    assert (first.waiting_ahead, second.waiting_ahead) == (0, 1)
    queue = await services.conversations.list_queue(counsellor=counsellor)
    assert [c.id for c in queue] == [first.conversation.id, second.conversation.id]


async def test_claim_reply_and_user_messages_keep_their_order(services, clock):
    counsellor = await add_counsellor(services, login="c1")
    pseudonym, result = await handover(services, "a")
    conversation_id = result.conversation.id
    await services.conversations.record_user_message(pseudonym=pseudonym, text="eins")
    claimed = await services.conversations.claim(
        conversation_id=conversation_id, counsellor=counsellor
    )
    assert claimed.status == "active" and claimed.counsellor_id == counsellor.id
    message, route = await services.conversations.add_counsellor_reply(
        conversation_id=conversation_id, counsellor=counsellor, text="zwei"
    )
    assert message.delivery == "queued" and route.pseudonym == pseudonym
    await services.conversations.record_user_message(pseudonym=pseudonym, text="drei")
    detail = await services.conversations.get_conversation(
        conversation_id=conversation_id, counsellor=counsellor
    )
    ring = keyring_of(services)
    assert [(m.seq, m.sender, ring.open(m)) for m in detail.messages] == [
        (1, "user", "eins"),
        (2, "counsellor", "zwei"),
        (3, "user", "drei"),
    ]


async def test_other_team_gets_not_found(services):
    await add_team(services, slug="by", states=["BY"])
    outsider = await add_counsellor(services, login="other", team_slug="by")
    _, result = await handover(services, "a", state="BE")
    with pytest.raises(ConversationNotFound):
        await services.conversations.get_conversation(
            conversation_id=result.conversation.id, counsellor=outsider
        )
    with pytest.raises(ConversationNotFound):
        await services.conversations.claim(
            conversation_id=result.conversation.id, counsellor=outsider
        )
    assert await services.conversations.list_queue(counsellor=outsider) == []


async def test_reply_before_claim_is_refused(services):
    counsellor = await add_counsellor(services, login="c1")
    _, result = await handover(services, "a")
    with pytest.raises(ConversationClosed):
        await services.conversations.add_counsellor_reply(
            conversation_id=result.conversation.id, counsellor=counsellor, text="hi"
        )


async def test_user_message_without_open_conversation_is_refused(services):
    with pytest.raises(ConversationClosed):
        await services.conversations.record_user_message(pseudonym="p1.none", text="hallo")


async def test_new_messages_are_published_to_the_team(services):
    pseudonym, result = await handover(services, "a")
    async with services.bus.subscribe(team_channel(result.conversation.team_id)) as events:
        await services.conversations.record_user_message(pseudonym=pseudonym, text="live-Kanarie")
        event = await asyncio.wait_for(events.get(), timeout=5)
    assert event["type"] == "message.created"
    assert keyring_of(services).open(event["message"]) == "live-Kanarie"
    assert "Kanarie" not in str(event), "events carry the sealed envelope only"


async def test_only_replies_queued_long_ago_are_marked_lost_and_consoles_hear_it(services, clock):
    """The outbound queue is in the memory of the process that took the reply. A reply still
    queued after 10 minutes was lost with that process; a younger one may be in another
    running process's queue right now, so it is left alone."""
    from lotse.scheduler import create_scheduler, fail_lost_replies

    counsellor = await add_counsellor(services, login="c1")
    _, result = await handover(services, "a")
    conversation_id = result.conversation.id
    await services.conversations.claim(conversation_id=conversation_id, counsellor=counsellor)
    old, _ = await services.conversations.add_counsellor_reply(
        conversation_id=conversation_id, counsellor=counsellor, text="eins"
    )
    clock.advance(minutes=9)
    young, _ = await services.conversations.add_counsellor_reply(
        conversation_id=conversation_id, counsellor=counsellor, text="zwei"
    )
    assert await fail_lost_replies(services) == 0, "nothing is 10 minutes old yet"

    clock.advance(minutes=1, seconds=1)
    channel = team_channel(result.conversation.team_id)
    async with services.bus.subscribe(channel) as events:
        assert await fail_lost_replies(services) == 1
        event = await asyncio.wait_for(events.get(), timeout=5)
    assert event == {
        "type": "message.delivery",
        "message_id": str(old.id),
        "conversation_id": str(conversation_id),
        "delivery": "failed",
    }
    detail = await services.conversations.get_conversation(
        conversation_id=conversation_id, counsellor=counsellor
    )
    delivery = {m.id: m.delivery for m in detail.messages}
    assert (delivery[old.id], delivery[young.id]) == ("failed", "queued")
    assert await fail_lost_replies(services) == 0, "a second run finds nothing more"
    assert "fail_lost_replies" in {job.id for job in create_scheduler(services).get_jobs()}
