from bot.engine import ConversationEngine, Inbound, Sender
from bot.state import FlowStateStore
from core.conversations import ConversationService
from core.db import create_engine, create_sessionmaker
from tests.helpers import add_counsellor
from tests.keyring import transcript

FALLBACK = "Das habe ich nicht ganz verstanden – das ist okay."


def sender(services, name="teen-1"):
    return Sender("web", services.identities.pseudonym(channel="web", identifier=name))


async def walk(services, who, steps):
    replies = []
    for kind, value in steps:
        replies = await services.engine.handle(sender=who, inbound=Inbound(kind, value))
    return replies


def texts(replies):
    return [r.text for r in replies]


def labels(replies):
    return [b.label for r in replies for row in r.buttons for b in row]


async def test_thin_path_finds_an_offer_near_the_postcode(services):
    who = sender(services)
    replies = await walk(services, who, [("command", "start")])
    assert "anonym" in replies[0].text
    assert "Ich bin jugendlich (13–17)" in labels(replies)
    await walk(services, who, [("action", "role:teen")])
    replies = await walk(services, who, [("text", "90402")])
    assert "Besuche und Kontakt" in labels(replies)
    replies = await walk(services, who, [("action", "need:visits")])
    cards = texts(replies)
    assert cards[0].startswith("So läuft ein Besuch"), "the info card for teens comes first"
    assert cards[1].startswith("Unten findest du Angebote rund um Besuche")
    assert any("Treffpunkt e.V. Nürnberg" in c and " km · für Jugendliche" in c for c in cards)
    reasons = [card.split("\n")[2] for card in cards[2:-1]]
    assert any(r.startswith(("online", "bundesweit")) for r in reasons), "fallback is there"
    assert all("Stand:" in c and "Quelle:" in c for c in cards[2:-1])
    assert "Mit jemandem schreiben" in labels(replies)


async def test_handover_then_free_text_is_stored_in_the_conversation(services):
    await add_counsellor(services, login="otto", online=True)
    who = sender(services)
    await walk(
        services,
        who,
        [
            ("command", "start"),
            ("action", "role:teen"),
            ("action", "postcode:skip"),
            ("action", "need:talking"),
        ],
    )
    replies = await walk(services, who, [("action", "handover")])
    assert "Vor dir warten gerade: 0" in replies[0].text
    assert await walk(services, who, [("text", "Mein Papa ist im Gefängnis")]) == []
    assert await transcript(services) == ["Mein Papa ist im Gefängnis"]


async def test_malformed_and_unknown_postcodes_get_different_answers(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:caregiver")])
    words = await walk(services, who, [("text", "Nürnberg")])
    malformed = await walk(services, who, [("text", "9040x2")])
    unknown = await walk(services, who, [("text", "00000")])
    # Words are no postcode attempt: maybe something else is going on, so a kind answer with
    # the ways to a person; digits that are no postcode get the postcode hint.
    assert words[0].text.startswith(FALLBACK)
    assert [b.action for row in words[0].buttons for b in row] == ["crisis", "handover"]
    assert "nicht wie eine Postleitzahl" in malformed[0].text
    assert "kenne ich nicht" in unknown[0].text
    ok = await walk(services, who, [("text", "33")])
    assert ok[0].text == "Worum geht es dir gerade?"


async def test_bad_input_gets_a_friendly_answer(services):
    who = sender(services)
    assert "kenne ich nicht" in (await walk(services, who, [("command", "foo")]))[0].text
    assert "nicht annehmen" in (await walk(services, who, [("unsupported", "")]))[0].text
    stale = await walk(services, who, [("action", "need:unknown")])
    assert "älteren Nachricht" in stale[0].text
    await walk(services, who, [("command", "start")])
    chatter = await walk(services, who, [("text", "hallo?")])
    assert chatter[0].text.startswith(FALLBACK)
    assert "Ich bin ein Kind (bis 12)" in labels(chatter)


async def test_text_before_start_begins_the_conversation(services):
    replies = await walk(services, sender(services), [("text", "hi")])
    assert replies[-1].text == "Wer bist du?"


async def test_very_long_text_is_cut_to_telegram_size_not_dropped(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "handover")])
    await walk(services, who, [("text", "x" * 10_000)])
    assert await transcript(services) == ["x" * 4096]


async def test_failed_database_write_asks_the_user_to_send_again(services, tmp_path):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "handover")])
    # A real database that cannot be opened, not a mock: the write fails inside SQLAlchemy.
    broken_db = create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    broken = ConversationEngine(
        catalogue=services.catalogue,
        states=FlowStateStore(services.storage),
        conversations=ConversationService(
            sessions=create_sessionmaker(broken_db), clock=services.clock, bus=services.bus
        ),
        referrals=services.referrals,
    )
    replies = await broken.handle(sender=who, inbound=Inbound("text", "bitte nicht verlieren"))
    assert "noch einmal" in replies[0].text
    await broken_db.dispose()


async def test_flow_state_survives_between_updates_per_user(services):
    a, b = sender(services, "a"), sender(services, "b")
    await walk(services, a, [("command", "start"), ("action", "role:teen")])
    await walk(services, b, [("command", "start")])
    replies = await walk(services, a, [("text", "904")])
    assert replies[0].text == "Worum geht es dir gerade?"
    replies = await walk(services, b, [("text", "904")])
    assert replies[0].text.startswith(FALLBACK)


async def test_typed_need_is_understood_instead_of_a_button(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:caregiver")])
    await walk(services, who, [("text", "33647")])
    replies = await walk(
        services, who, [("text", "Wie kann ich mit den Kindern in den Knast zu Besuch?")]
    )
    assert replies[0].text.startswith("So funktionieren Besuche"), texts(replies)[0]
    assert any("Besuche und Kontakt" in r.text for r in replies[2:-1])
    unclear = await walk(
        services,
        who,
        [
            ("action", "restart"),
            ("action", "role:teen"),
            ("action", "postcode:skip"),
            ("text", "hmm"),
        ],
    )
    assert unclear[0].text.startswith(FALLBACK)


async def test_while_nobody_is_there_every_message_is_acknowledged_until_someone_takes_it(
    services,
):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "handover")])
    first = await walk(services, who, [("text", "ist da jemand?")])
    second = await walk(services, who, [("text", "hallo??")])
    for replies in (first, second):
        assert [r.text for r in replies] == [
            "Deine Nachricht ist angekommen. Gerade ist niemand aus dem Team online – sobald "
            "jemand da ist, liest er oder sie alles. Wenn es dringend ist: /notfall."
        ]
    counsellor = await add_counsellor(services, login="mia", online=True)
    (waiting,) = await services.conversations.list_queue(counsellor=counsellor)
    await services.conversations.claim(conversation_id=waiting.id, counsellor=counsellor)
    assert await walk(services, who, [("text", "danke")]) == [], "someone reads it now"
    assert await transcript(services) == ["ist da jemand?", "hallo??", "danke"]
