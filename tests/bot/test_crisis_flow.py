"""Crisis safety through the engine, on the real database and event bus: the card comes first at
any step, the conversation goes to the top of the queue with its flag, the team is alerted, and
no word of the message ends up anywhere but in a conversation the user was already writing to."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, update

from bot.engine import ConversationEngine, Inbound, Sender
from bot.state import FlowStateStore
from core.conversations import ConversationService
from core.db import create_engine, create_sessionmaker, transaction
from core.events import team_channel
from core.models import Conversation, Team
from tests.helpers import add_counsellor
from tests.keyring import keyring_of, transcript

CRISIS = "ich will nicht mehr leben"


def sender(services, name="teen-1"):
    return Sender("web", services.identities.pseudonym(channel="web", identifier=name))


async def say(services, who, kind, value):
    return await services.engine.handle(sender=who, inbound=Inbound(kind, value))


async def walk(services, who, steps):
    replies = []
    for kind, value in steps:
        replies = await say(services, who, kind, value)
    return replies


async def national_team(services):
    async with services.sessions() as session:
        return await session.scalar(select(Team.id).where(Team.slug == "bundesweit"))


async def conversations(services):
    async with services.sessions() as session:
        return (
            await session.scalars(select(Conversation).order_by(Conversation.created_at))
        ).all()


async def bodies(services):
    return await transcript(services)


async def next_event(events, kind):
    while True:
        event = await asyncio.wait_for(events.get(), timeout=5)
        if event["type"] == kind:
            return event


async def test_crisis_right_after_start_gets_the_card_first_and_the_top_of_the_queue(
    services, clock
):
    counsellor = await add_counsellor(services, login="anna")
    # Someone else has been waiting for a while already.
    other = sender(services, "waiting-longer")
    await walk(services, other, [("command", "start"), ("action", "handover")])
    clock.advance(minutes=5)

    who = sender(services)
    await say(services, who, "command", "start")
    async with services.bus.subscribe(team_channel(await national_team(services))) as events:
        replies = await say(services, who, "text", CRISIS)
        alert = await next_event(events, "conversation.crisis")

    assert "116 111" in replies[0].text
    assert "0800 111 0 111" in replies[0].text and "112" in replies[0].text
    assert "Bescheid" in replies[1].text
    assert all("Antworten unten" not in r.text for r in replies), "no menu after the card"
    queue = await services.conversations.list_queue(counsellor=counsellor)
    assert [c.crisis for c in queue] == [True, False]
    assert alert["conversation"]["id"] == str(queue[0].id)
    assert alert["conversation"]["crisis"] is True
    assert CRISIS not in str(alert), "the alert carries the flag, never the words"
    # The counsellor who takes it reads what raised it, as the first message of the talk.
    assert await bodies(services) == [CRISIS]
    assert queue[0].topics == []

    # From now on the user is writing to the team; nobody is online, so each message is
    # acknowledged.
    (ack,) = await say(services, who, "text", "hallo?")
    assert ack.text.startswith("Deine Nachricht ist angekommen.")
    assert await bodies(services) == [CRISIS, "hallo?"]


async def test_crisis_while_talking_to_the_team_is_stored_and_flagged(services):
    await add_counsellor(services, login="olga", online=True)
    who = sender(services)
    await walk(
        services,
        who,
        [("command", "start"), ("action", "role:teen"), ("action", "handover")],
    )
    [conversation] = await conversations(services)
    assert not conversation.crisis
    async with services.bus.subscribe(team_channel(conversation.team_id)) as events:
        replies = await say(services, who, "text", "Papa haut mich")
        alert = await next_event(events, "conversation.crisis")
        created = await next_event(events, "message.created")
    assert len(replies) == 1 and "116 111" in replies[0].text
    assert await bodies(services) == ["Papa haut mich"]
    assert keyring_of(services).open(created["message"]) == "Papa haut mich"
    [flagged] = await conversations(services)
    assert flagged.id == conversation.id and flagged.crisis
    assert alert["conversation"]["id"] == str(conversation.id)


async def test_second_crisis_message_does_not_alert_again(services):
    who = sender(services)
    await say(services, who, "text", CRISIS)
    [conversation] = await conversations(services)
    async with services.bus.subscribe(team_channel(conversation.team_id)) as events:
        await say(services, who, "text", "ich ritze mich")
        await next_event(events, "message.created")
        assert events.empty(), "one alert per conversation"
    assert len(await conversations(services)) == 1


async def test_text_before_any_start_can_raise_the_alarm(services):
    who = sender(services)
    replies = await say(services, who, "text", "I want to kill myself")
    assert replies[0].text.startswith("Danke, dass du mir das schreibst.")
    assert "116 111" in replies[0].text
    [conversation] = await conversations(services)
    assert conversation.crisis and conversation.status == "waiting"


async def test_crisis_in_the_middle_of_the_guided_questions(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "text", "mein stiefvater schlägt mich")
    assert "116 111" in replies[0].text
    [conversation] = await conversations(services)
    assert conversation.crisis and conversation.contact_id is not None


async def test_crisis_after_the_conversation_was_closed_opens_a_new_one(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "handover")])
    async with transaction(services.sessions) as session:
        await session.execute(update(Conversation).values(status="closed"))
    replies = await say(services, who, "text", CRISIS)
    assert "116 111" in replies[0].text
    closed, new = await conversations(services)
    assert closed.status == "closed" and not closed.crisis
    assert new.status == "waiting" and new.crisis
    assert await bodies(services) == [CRISIS], "the user was writing to the team: stored"


async def test_a_crisis_jumps_ahead_of_everyone_waiting(services, clock):
    await add_counsellor(services, login="olga", online=True)
    first = sender(services, "a")
    await walk(services, first, [("command", "start"), ("action", "handover")])
    clock.advance(minutes=1)
    await say(services, sender(services, "b"), "text", CRISIS)
    clock.advance(minutes=1)
    replies = await walk(
        services, sender(services, "c"), [("command", "start"), ("action", "handover")]
    )
    assert "Vor dir warten gerade: 2" in replies[0].text
    counsellor = await add_counsellor(services, login="anna")
    queue = await services.conversations.list_queue(counsellor=counsellor)
    assert [c.crisis for c in queue] == [True, False, False]


async def test_notfall_shows_the_card_and_changes_nothing(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:caregiver")])
    replies = await say(services, who, "command", "notfall")
    assert len(replies) == 1
    assert replies[0].text.startswith("Hier findest du Hilfe:")
    assert "116 111" in replies[0].text and "0800 111 0 222" in replies[0].text
    assert await conversations(services) == []
    after = await say(services, who, "text", "90402")
    assert after[0].text == "Worum geht es dir gerade?", "the flow goes on where it was"


async def test_notfall_works_before_start_and_in_english(services):
    who = sender(services)
    assert "116 111" in (await say(services, who, "command", "notfall"))[0].text
    await services.engine._states.set(who.pseudonym, {"lang": "en", "step": "role"})
    english = await say(services, who, "command", "notfall")
    assert english[0].text.startswith("Here is where you find help:")


async def test_personal_data_gets_one_gentle_tip_per_conversation(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "text", "Hauptstraße 5")
    assert "nicht wie eine Postleitzahl" in replies[0].text, "the normal answer comes first"
    assert replies[-1].text == (
        "Tipp: Du musst hier keine Telefonnummer oder Adresse schreiben – wir brauchen sie nicht."
    )
    again = await say(services, who, "text", "0151 23456789")
    assert all("Tipp" not in r.text for r in again)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    later = await walk(services, who, [("action", "handover"), ("text", "ich heiße Max Müller")])
    assert all("Tipp" not in r.text for r in later), "not again after a restart"
    assert await bodies(services) == ["ich heiße Max Müller"]


async def test_a_crisis_gets_no_privacy_tip(services):
    who = sender(services)
    replies = await say(services, who, "text", "er schlägt mich, ich wohne Musterweg 12")
    assert all("Tipp" not in r.text for r in replies)


async def test_buttons_are_not_checked_and_harmless_text_stays_quiet(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "text", "ich lach mich tot")
    assert all("116 111" not in r.text for r in replies)
    assert await conversations(services) == []


async def test_nothing_of_the_message_is_logged(services, caplog):
    caplog.set_level(logging.INFO)
    who = sender(services)
    text = "ich will mich umbringen Kanarienvogel-4711"
    await say(services, who, "text", text)
    await say(services, who, "text", text)
    crisis_lines = [r for r in caplog.records if r.getMessage() == "crisis detected"]
    assert [r.category for r in crisis_lines] == ["suicide", "suicide"]  # type: ignore[attr-defined]
    for record in caplog.records:
        dumped = record.getMessage() + repr(record.__dict__)
        assert "Kanarienvogel" not in dumped and "umbringen" not in dumped
        assert who.pseudonym not in dumped
    assert not hasattr(crisis_lines[0], "conversation_id"), "category and id never together"


async def test_failed_database_still_shows_the_card_first(services, tmp_path):
    broken_db = create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    broken = ConversationEngine(
        catalogue=services.catalogue,
        states=FlowStateStore(services.storage),
        conversations=ConversationService(
            sessions=create_sessionmaker(broken_db), clock=services.clock, bus=services.bus
        ),
        referrals=services.referrals,
    )
    who = sender(services)
    await broken.handle(sender=who, inbound=Inbound("command", "start"))
    replies = await broken.handle(sender=who, inbound=Inbound("text", CRISIS))
    assert "116 111" in replies[0].text
    assert replies[1].text.startswith("Das habe ich nicht ganz verstanden"), "the flow goes on"
    await broken_db.dispose()


async def test_the_queue_takes_the_most_urgent_first_then_the_longest_waiting(services, clock):
    counsellor = await add_counsellor(services, login="lena")
    runaway, suicide, danger = (sender(services, n) for n in ("runaway", "suicide", "danger"))
    for who, text in (
        (runaway, "bin von zuhause abgehauen und schlaf heute draußen"),
        (suicide, "ich will nicht mehr leben"),
        (danger, "ich hab grad 20 tabletten geschluckt"),
    ):
        await say(services, who, "command", "start")
        await say(services, who, "text", text)
        clock.advance(minutes=1)
    async with services.bus.subscribe(team_channel(await national_team(services))) as events:
        # A later, more urgent message raises the level of an open conversation and alerts again.
        await say(services, suicide, "text", "ich steh auf der brücke und spring jetzt")
        alert = await next_event(events, "conversation.crisis")
    assert alert["conversation"]["crisis_level"] == "imminent"
    queue = await services.conversations.list_queue(counsellor=counsellor)
    assert [(c.crisis_level, c.crisis_category) for c in queue[:2]] == [
        ("imminent", "suicide"),  # imminent since its last message, waiting longer
        ("imminent", "acute_danger"),
    ]
    # Outside tonight: concern, or high for a night outside (the model may say either).
    assert queue[2].crisis_category == "runaway" and queue[2].crisis_level in ("concern", "high")


async def test_a_photo_caption_is_read_for_a_crisis_and_the_photo_is_not(services):
    who = sender(services)
    await say(services, who, "command", "start")
    replies = await say(services, who, "unsupported", "ich will mich umbringen")
    assert replies[0].text.startswith("Danke, dass du mir das schreibst.")
    assert await bodies(services) == ["ich will mich umbringen"], "the caption, as words"
    plain = await say(services, sender(services, "other"), "unsupported", "mein hund 🐶")
    assert "nicht annehmen" in plain[0].text


async def test_text_in_another_language_goes_to_a_person_with_a_word_in_that_language(services):
    who = sender(services)
    await say(services, who, "command", "start")
    replies = await say(services, who, "text", "babam cezaevinde ve kimseyle konuşamıyorum")
    assert replies[0].text.startswith("Mesajını ekibimize iletiyorum.")
    assert "Ich gebe deine Nachricht an unser Team weiter." in replies[0].text
    assert await bodies(services) == ["babam cezaevinde ve kimseyle konuşamıyorum"]
