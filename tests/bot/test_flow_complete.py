"""The whole guided conversation through the engine, on the real database and event bus: info
cards for every role and topic in both languages, language choice, back, /stopp, /loeschen, a
shared location, opening hours and the expected wait."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, select, update

from bot.engine import NEEDS, ROLES, Inbound, Sender
from bot.state import FlowStateStore
from core.db import transaction
from core.events import team_channel
from core.models import Contact, Conversation, Counsellor, Team, TeamEpoch, TeamKeyWrap, TeamRoster
from tests.helpers import add_counsellor
from tests.keyring import table_rows, transcript


def sender(services, name="teen-1"):
    return Sender("web", services.identities.pseudonym(channel="web", identifier=name))


async def say(services, who, kind, value=""):
    return await services.engine.handle(sender=who, inbound=Inbound(kind, value))


async def walk(services, who, steps):
    replies = []
    for kind, value in steps:
        replies = await say(services, who, kind, value)
    return replies


def labels(replies):
    return [b.label for r in replies for row in r.buttons for b in row]


def actions(replies):
    return [b.action for r in replies for row in r.buttons for b in row]


async def set_hours(services, hours):
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Team).where(Team.slug == "bundesweit").values(opening_hours=hours)
        )


async def next_event(events, kind):
    while True:
        event = await asyncio.wait_for(events.get(), timeout=5)
        if event["type"] == kind:
            return event


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_every_role_and_topic_gets_its_own_info_card(services, lang):
    catalogue = services.catalogue
    seen = set()
    for role in ROLES:
        for need in NEEDS:
            who = sender(services, f"{lang}-{role}-{need}")
            steps = [("command", "start"), ("action", f"lang:{lang}")] if lang != "de" else []
            steps += [("command", "start")] if not steps else []
            steps += [("action", f"role:{role}"), ("action", "postcode:skip")]
            await walk(services, who, steps)
            replies = await say(services, who, "action", f"need:{need}")
            card = catalogue.text(lang, f"card.{need}.{role}")
            assert replies[0].text == card, (role, need)
            assert replies[1].text == catalogue.text(lang, f"card.more.{need}")
            seen.add(card)
    assert len(seen) == len(ROLES) * len(NEEDS), "no two roles or topics share a card"


async def test_the_child_card_is_shorter_than_the_caregivers(services):
    t = services.catalogue.text
    for need in NEEDS:
        assert len(t("de", f"card.{need}.child")) < len(t("de", f"card.{need}.caregiver"))


async def test_english_is_offered_at_the_start_and_changes_every_later_text(services):
    who = sender(services)
    start = await say(services, who, "command", "start")
    assert "English" in labels(start) and "Deutsch" not in labels(start)
    replies = await say(services, who, "action", "lang:en")
    assert replies[0].text == "All right, we'll write in English now."
    assert replies[1].text == "Who are you?", "the question is asked again, in English"
    assert "Deutsch" in labels(replies)
    await say(services, who, "action", "role:teen")
    replies = await say(services, who, "text", "90402")
    assert "Visits and contact" in labels(replies)
    assert all(label.isascii() or "–" in label for label in labels(replies))


async def test_sprache_switches_mid_flow_and_repeats_the_question(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:caregiver")])
    choice = await say(services, who, "command", "sprache")
    assert actions(choice) == ["lang:de", "lang:en"]
    replies = await say(services, who, "action", "lang:en")
    assert replies[-1].text.startswith("Where do you live"), replies[-1].text
    assert "Back" in labels(replies) and "Write with a person" in labels(replies)


async def test_every_step_offers_back_a_person_and_starting_over(services):
    who = sender(services)
    role = await say(services, who, "command", "start")
    assert "handover" in actions(role) and "Zurück" not in labels(role)
    for step in [("action", "role:teen"), ("text", "904"), ("action", "need:school")]:
        replies = await say(services, who, *step)
        assert {"back", "handover", "restart"} <= set(actions(replies[-1:])), step


async def test_back_walks_the_steps_in_reverse(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen"), ("text", "904")])
    await say(services, who, "action", "need:rights")
    assert (await say(services, who, "action", "back"))[0].text == "Worum geht es dir gerade?"
    assert (await say(services, who, "action", "back"))[0].text.startswith("Wo wohnst du")
    assert (await say(services, who, "action", "back"))[0].text == "Wer bist du?"
    stale = await say(services, who, "action", "back")
    assert "älteren Nachricht" in stale[0].text, "nothing before the first step"


async def test_a_new_role_after_walking_back_asks_the_postcode_again(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen"), ("text", "904")])
    await say(services, who, "action", "back")
    assert (await say(services, who, "action", "back"))[0].text == "Wer bist du?"
    again = await say(services, who, "action", "role:caregiver")
    assert again[-1].text.startswith("Wo wohnst du"), again[-1].text


async def test_the_feel_bad_button_gets_the_crisis_card_and_a_person(services):
    counsellor = await add_counsellor(services, login="bea")
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:child")])
    await say(services, who, "action", "postcode:skip")
    replies = await say(services, who, "action", "crisis")
    assert "116 111" in replies[0].text
    [waiting] = await services.conversations.list_queue(counsellor=counsellor)
    assert waiting.crisis and waiting.role == "child"


async def test_stopp_ends_the_talk_and_the_console_hears_of_it(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    await say(services, who, "action", "handover")
    async with services.sessions() as session:
        team_id = await session.scalar(select(Conversation.team_id))
    async with services.bus.subscribe(team_channel(team_id)) as events:
        replies = await say(services, who, "command", "stopp")
        event = await next_event(events, "queue.updated")
    assert "beendet" in replies[0].text
    assert event["conversation"]["status"] == "closed"
    again = await say(services, who, "command", "stopp")
    assert "mit niemandem" in again[0].text
    after = await say(services, who, "text", "noch da?")
    assert after[0].text.startswith("Das habe ich nicht ganz verstanden"), "back in the menu"
    assert await transcript(services) == [], "not sent to anyone"


async def test_english_command_names_are_understood(services):
    who = sender(services)
    assert "/loeschen" in (await say(services, who, "command", "help"))[0].text
    assert actions(await say(services, who, "command", "language")) == ["lang:de", "lang:en"]
    assert "116 111" in (await say(services, who, "command", "emergency"))[0].text


async def test_loeschen_asks_first_then_erases_everything_and_twice_is_a_no_op(services):
    who = sender(services)
    other = sender(services, "someone-else")
    for person in (who, other):
        await walk(services, person, [("command", "start"), ("action", "role:teen")])
        await say(services, person, "action", "handover")
        await say(services, person, "text", f"nachricht von {person.pseudonym[:6]}")
    confirm = await say(services, who, "command", "loeschen")
    assert actions(confirm) == ["erase:yes", "erase:no"]
    kept = await say(services, who, "action", "erase:no")
    assert "lösche nichts" in kept[0].text
    async with services.sessions() as session:
        assert await session.scalar(select(Contact.id).where(Contact.pseudonym == who.pseudonym))

    async with services.sessions() as session:
        team_id = await session.scalar(select(Conversation.team_id))
    async with services.bus.subscribe(team_channel(team_id)) as events:
        await say(services, who, "command", "loeschen")
        erased = await say(services, who, "action", "erase:yes")
        event = await next_event(events, "conversation.erased")
    assert "gelöscht" in erased[0].text
    assert who.pseudonym not in str(event)

    dump = await table_rows(services)
    assert who.pseudonym not in str(dump), "nothing linked to the pseudonym remains"
    assert f"nachricht von {who.pseudonym[:6]}" not in str(dump)
    assert f"nachricht von {other.pseudonym[:6]}" not in str(dump), "stored sealed only"
    assert await transcript(services) == [f"nachricht von {other.pseudonym[:6]}"], (
        "the other user keeps theirs"
    )
    assert await FlowStateStore(services.storage).get(who.pseudonym) == {}

    again = await walk(services, who, [("command", "loeschen"), ("action", "erase:yes")])
    assert "gelöscht" in again[0].text
    assert await services.conversations.erase_contact(pseudonym=who.pseudonym) == 0
    assert await table_rows(services) == dump, "a second erasure changes nothing"


async def test_after_erasure_starting_over_keeps_the_language_of_the_chat(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "lang:en")])
    await say(services, who, "command", "loeschen")
    erased = await say(services, who, "action", "erase:yes")
    assert actions(erased) == ["restart:en"]
    assert await FlowStateStore(services.storage).get(who.pseudonym) == {}, "nothing kept"
    again = await say(services, who, "action", "restart:en")
    assert again[-1].text == "Who are you?", again[-1].text


async def test_a_shared_location_stands_in_for_the_postcode_and_is_not_kept(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "location", "49.45213,11.07671")
    assert "90403" in replies[0].text
    assert replies[1].text == "Worum geht es dir gerade?"
    state = await FlowStateStore(services.storage).get(who.pseudonym)
    assert "49.45213" not in str(state) and "11.07671" not in str(state)
    assert state["area"]["prefix"] == "90403" and state["area"]["state"] == "BY"
    results = await say(services, who, "action", "need:visits")
    assert any("Treffpunkt e.V. Nürnberg" in r.text for r in results)


async def test_a_location_outside_germany_or_garbage_gets_a_clear_answer(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    paris = await say(services, who, "location", "48.8566,2.3522")
    assert "keine deutsche Postleitzahl" in paris[0].text
    broken = await say(services, who, "location", "nan,nan")
    assert "keine deutsche Postleitzahl" in broken[0].text
    assert (await say(services, who, "text", "904"))[0].text == "Worum geht es dir gerade?"


async def test_a_location_in_the_talk_with_the_team_is_not_passed_on(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "handover")])
    replies = await say(services, who, "location", "52.52,13.405")
    assert "gebe ich nicht weiter" in replies[0].text
    assert await transcript(services) == []


async def test_outside_opening_hours_the_user_learns_when_someone_answers(services, clock):
    # The fake clock stands on Thursday 15 January 2026, 11:00 in Berlin.
    await set_hours(services, {"mon": ["09:00-10:00"], "fri": ["16:00-20:00"]})
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:caregiver")])
    replies = await say(services, who, "action", "handover")
    assert "Freitag, 16:00 Uhr" in replies[0].text
    assert "Vor dir warten" not in replies[0].text
    (ack,) = await say(services, who, "text", "Ich schreib schon mal")
    assert ack.text.startswith("Deine Nachricht ist angekommen."), "kept, and it says so"
    assert await transcript(services) == ["Ich schreib schon mal"]


async def test_a_crisis_outside_opening_hours_points_to_the_numbers_that_answer(services):
    await set_hours(services, {"sat": ["10:00-12:00"]})
    who = sender(services)
    replies = await say(services, who, "text", "ich will nicht mehr leben")
    assert "116 111" in replies[0].text
    assert "rund um die Uhr" in replies[1].text and "Samstag, 10:00 Uhr" in replies[1].text


async def test_within_opening_hours_the_expected_wait_comes_from_recent_waits(services, clock):
    await set_hours(services, {"thu": ["08:00-18:00"]})
    counsellor = await add_counsellor(services, login="cem", online=True)
    for n, minutes in enumerate((4, 12, 20)):
        person = sender(services, f"earlier-{n}")
        await walk(services, person, [("command", "start"), ("action", "handover")])
        async with services.sessions() as session:
            conversation_id = await session.scalar(
                select(Conversation.id).join(Contact).where(Contact.pseudonym == person.pseudonym)
            )
        clock.advance(minutes=minutes)
        await services.conversations.claim(conversation_id=conversation_id, counsellor=counsellor)
        clock.advance(minutes=-minutes)
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "action", "handover")
    assert "Vor dir warten gerade: 0" in replies[0].text
    assert replies[1].text == "Die Wartezeit liegt gerade bei etwa 15 Minuten."


async def test_no_estimate_is_invented_without_enough_recent_waits(services, clock):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "action", "handover")
    assert len(replies) == 1 and "Wartezeit" not in replies[0].text


async def test_with_nobody_online_the_user_is_told_and_gets_the_teams_own_words(services):
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Team)
            .where(Team.slug == "bundesweit")
            .values(out_of_office={"de": "Wir sind ab 18 Uhr wieder da.", "en": "Back at 6 pm."})
        )
    await add_counsellor(services, login="far-away")  # exists, but not online
    # Online, but nobody to talk to: a directory editor and an admin at their consoles.
    for login, role in (("editor", "directory_editor"), ("admin", "admin")):
        staff = await add_counsellor(services, login=login, online=True)
        async with transaction(services.sessions) as session:
            await session.execute(
                update(Counsellor).where(Counsellor.id == staff.id).values(role=role)
            )
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "lang:en")])
    replies = await say(services, who, "action", "handover")
    assert replies[0].text.startswith("Nobody from our team is online right now.")
    assert replies[1].text == "Message from our team: Back at 6 pm."
    crisis = await say(services, sender(services, "other"), "text", "ich will nicht mehr leben")
    assert "niemand online" in crisis[1].text and "rund um die Uhr" in crisis[1].text


async def test_a_console_that_stopped_beating_no_longer_counts_as_online(services, clock):
    await add_counsellor(services, login="gone-home", online=True)
    clock.advance(minutes=4)
    who = sender(services)
    await walk(services, who, [("command", "start")])
    replies = await say(services, who, "action", "handover")
    assert replies[0].text.startswith("Gerade ist niemand aus unserem Team online")


async def test_a_location_before_the_role_asks_the_role_then_skips_the_postcode(services):
    who = sender(services)
    await say(services, who, "command", "start")
    replies = await say(services, who, "location", "49.45213,11.07671")
    assert replies[-1].text == "Wer bist du?"
    after_role = await say(services, who, "action", "role:caregiver")
    assert after_role[0].text == "Worum geht es dir gerade?", "the postcode is known already"


async def test_typed_topics_take_the_card_of_the_first_button_in_order(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    await say(services, who, "action", "postcode:skip")
    replies = await say(services, who, "text", "Schule und Besuch im Knast")
    assert replies[0].text == services.catalogue.text("de", "card.visits.teen")


async def test_unreadable_hours_in_the_database_never_break_a_handover_or_a_crisis(services):
    await set_hours(services, {"mon": ["kaputt"]})
    who = sender(services)
    replies = await say(services, who, "text", "ich will nicht mehr leben")
    assert "116 111" in replies[0].text and len(replies) == 2
    [conversation] = await services.conversations.list_queue(
        counsellor=await add_counsellor(services, login="dora")
    )
    assert conversation.crisis


async def test_a_restart_does_not_wipe_what_the_contact_row_knows(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen"), ("text", "90402")])
    await say(services, who, "action", "handover")
    await say(services, who, "command", "start")
    await say(services, who, "text", "ich will nicht mehr leben")
    async with services.sessions() as session:
        contact = await session.scalar(select(Contact))
    assert (contact.role, contact.federal_state) == ("teen", "BY")


async def test_the_language_for_answers_outside_a_turn_is_the_chosen_one(services):
    who = sender(services)
    assert await services.engine.language(pseudonym=who.pseudonym) == "de"
    await walk(services, who, [("command", "start"), ("action", "lang:en")])
    assert await services.engine.language(pseudonym=who.pseudonym) == "en"
    assert services.catalogue.text("en", "error.generic") != services.catalogue.text(
        "de", "error.generic"
    )


async def test_without_any_team_keys_the_user_gets_the_numbers_and_nothing_is_stored(services):
    async with transaction(services.sessions) as session:
        for table in (TeamKeyWrap, TeamRoster, TeamEpoch):
            await session.execute(delete(table))
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await say(services, who, "action", "handover")
    assert "noch niemand aus unserem Team" in replies[0].text and "116 111" in replies[0].text
    assert await transcript(services) == []
    crisis = await say(services, who, "text", "ich will nicht mehr leben")
    assert "116 111" in crisis[0].text, "the crisis card comes whatever the set-up"
    assert await transcript(services) == []
