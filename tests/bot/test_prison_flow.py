"""The parent's prison in the guided conversation: found from what the user types, shown with
its visit facts (each labelled, unknown ones with a way to find out, always source and date),
and the offers near it. Runs through the engine against the real seed directory."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from bot.engine import MAX_TEXT, _parts
from bot.state import FlowStateStore
from core.models import Contact, Conversation
from tests.bot.test_engine import labels, sender, texts, walk

SEED = json.loads(
    (Path(__file__).resolve().parents[2] / "directory/seed/prisons.json").read_text("utf-8")
)
PRISONS = {prison["slug"]: prison for prison in SEED["prisons"]}
BRACKWEDE = PRISONS["jva-bielefeld-brackwede"]
# Labels of facts given as text in the card; family rooms and video visits are yes/no.
TEXT_LABELS = {
    "regular_times": "Besuchszeiten: ",
    "booking": "Besuch anmelden: ",
    "children_rules": "Besuch mit Kindern: ",
    "family_days": "Familientage: ",
    "special_visits_minors": "Extra-Besuche für Kinder und Jugendliche: ",
}
YES_NO_LABELS = {"family_rooms": "Familienzimmer: ", "video_visits": "Videobesuche: "}
VISITS_TO_BIELEFELD = [
    ("command", "start"),
    ("action", "role:caregiver"),
    ("text", "33647"),
    ("action", "need:visits"),
]


def buttons(reply):
    return {b.label: b.action for row in reply.buttons for b in row}


def card_of(replies, name):
    found = [r.text for r in replies if r.text.startswith(name + "\n")]
    assert len(found) == 1, texts(replies)
    return found[0]


async def test_visits_offer_the_prison_question_first_among_what_next(services):
    replies = await walk(services, sender(services), VISITS_TO_BIELEFELD)
    assert replies[-1].text == "Wie möchtest du weitermachen?"
    assert labels(replies[-1:])[0] == "Infos zu einem Gefängnis"
    assert "Mit jemandem schreiben" in labels(replies[-1:])


async def test_other_needs_also_offer_the_prison_question_after_the_results(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    replies = await walk(services, who, [("action", "postcode:skip"), ("action", "need:school")])
    assert labels(replies[-1:]) == [
        "Mit jemandem schreiben",
        "Infos zu einem Gefängnis",
        "Zurück",
        "Neu starten",
    ]


async def test_bielefeld_shows_brackwede_with_its_visit_facts_source_and_date(services):
    who = sender(services)
    await walk(services, who, VISITS_TO_BIELEFELD)
    asked = await walk(services, who, [("action", "prison")])
    assert asked[0].text == (
        "In welchem Gefängnis ist dein Elternteil? Schreib den Namen oder die Stadt "
        "(z. B. „Bielefeld“)."
    )
    replies = await walk(services, who, [("text", "Bielefeld")])
    card = card_of(replies, "Justizvollzugsanstalt Bielefeld-Brackwede")
    lines = card.split("\n")
    assert lines[1] == "Ort: Bielefeld"
    visits = BRACKWEDE["visits"]
    for fact, label in TEXT_LABELS.items():
        assert label + visits[fact] in lines
    assert "Familienzimmer: ja, gibt es" in lines
    assert lines[-1] == f"Stand: 21.11.2026 · Quelle: {BRACKWEDE['source']}"
    assert replies[-1].text == "Wie möchtest du weitermachen?"
    assert "Infos zu einem Gefängnis" in labels(replies[-1:])


async def test_unknown_facts_say_whom_to_ask_and_never_show_a_value(services):
    who = sender(services)
    await walk(services, who, [*VISITS_TO_BIELEFELD, ("action", "prison")])
    brackwede = card_of(
        await walk(services, who, [("text", "JVA Brackwede")]),
        "Justizvollzugsanstalt Bielefeld-Brackwede",
    )
    assert (
        "Ruf am besten direkt bei der JVA an und frag nach Videobesuchen – dazu habe ich noch "
        "keine Infos. Telefon: 0521 4896-0 · Website: https://www.jva-bielefeld-brackwede.nrw.de"
    ) in brackwede.split("\n")
    assert "Videobesuche:" not in brackwede

    await walk(services, who, [("action", "prison")])
    replies = await walk(services, who, [("text", "willich 2")])
    willich = card_of(replies, "Justizvollzugsanstalt Willich II")
    assert (
        "Frag am besten direkt bei der JVA nach den Besuchszeiten, der Anmeldung für einen "
        "Besuch, Familienzimmern und Videobesuchen – dazu habe ich noch keine Infos. Wie du sie "
        "erreichst, steht auf ihrer Website: https://www.jva-willich2.nrw.de"
    ) in willich.split("\n")
    for label in ("Besuchszeiten:", "Besuch anmelden:", "Familienzimmer:", "Videobesuche:"):
        assert label not in willich


async def test_every_seed_prison_card_shows_exactly_what_the_directory_knows(services):
    who = sender(services)
    await walk(services, who, [("command", "start")])
    for slug, prison in PRISONS.items():
        replies = await walk(services, who, [("action", f"prison:{slug}")])
        parts = [r.text for r in replies[: replies.index(_first_after_card(replies))]]
        assert all(len(part) <= MAX_TEXT for part in parts), slug
        lines = "\n".join(parts).split("\n")
        assert lines[0] == prison["name"]
        visits = prison["visits"]
        for fact, label in TEXT_LABELS.items():
            shown = [line for line in lines if line.startswith(label)]
            assert shown == ([label + visits[fact]] if visits[fact] else []), (slug, fact)
        for fact, label in YES_NO_LABELS.items():
            shown = [line for line in lines if line.startswith(label)]
            assert len(shown) == (visits[fact] is not None), (slug, fact)
        unknown = [f for f in (*TEXT_LABELS, *YES_NO_LABELS) if visits[f] is None]
        find_out = [line for line in lines if "dazu habe ich noch keine Infos" in line]
        assert len(find_out) == (1 if unknown else 0), slug
        if unknown and prison["phone"]:
            assert find_out[0].startswith("Ruf am besten direkt bei der JVA an")
            assert prison["phone"] in find_out[0]
        elif unknown and prison["website"]:
            assert prison["website"] in find_out[0]
        assert lines[-1] == f"Stand: 21.11.2026 · Quelle: {prison['source']}", slug


def _first_after_card(replies):
    near = "Unterstützung in der Nähe dieses Gefängnisses:"
    return next(r for r in replies if r.buttons or r.text == near)


async def test_willich_offers_a_choice_and_a_click_shows_the_chosen_one(services):
    who = sender(services)
    await walk(services, who, [*VISITS_TO_BIELEFELD, ("action", "prison")])
    replies = await walk(services, who, [("text", "knast in willich")])
    assert replies[0].text == "Ich habe mehrere Gefängnisse gefunden. Welches meinst du?"
    choice = buttons(replies[0])
    assert choice["JVA Willich I"] == "prison:jva-willich-1"
    assert choice["JVA Willich II"] == "prison:jva-willich-2"
    assert "Mit jemandem schreiben" in choice
    assert all(len(action.encode()) <= 64 for action in choice.values())
    shown = await walk(services, who, [("action", "prison:jva-willich-1")])
    assert shown[0].text.startswith("Justizvollzugsanstalt Willich I\nOrt: Willich\n")
    assert not any(r.text.startswith("Justizvollzugsanstalt Willich II") for r in shown)


async def test_misspelt_prison_is_still_found(services):
    who = sender(services)
    await walk(services, who, [*VISITS_TO_BIELEFELD, ("action", "prison")])
    replies = await walk(services, who, [("text", "jva bielefled")])
    assert replies[0].text.startswith("Justizvollzugsanstalt Bielefeld-Brackwede\n")


async def test_nonsense_gets_a_kind_answer_and_the_user_can_type_again(services):
    who = sender(services)
    await walk(services, who, [*VISITS_TO_BIELEFELD, ("action", "prison")])
    replies = await walk(services, who, [("text", "ich weiß nicht, irgendwo")])
    assert replies[0].text.startswith("Dazu habe ich leider kein Gefängnis gefunden")
    assert "Stadt" in replies[0].text and "„Mit jemandem schreiben“" in replies[0].text
    assert "Mit jemandem schreiben" in labels(replies)
    again = await walk(services, who, [("text", "Bielefeld")])
    assert again[0].text.startswith("Justizvollzugsanstalt Bielefeld-Brackwede\n")


async def test_offers_near_the_prison_say_nahe_der_jva(services):
    # A teen in Nuremberg whose father is in Bielefeld: the group at the prison is far from
    # home, so it comes as an offer near the prison, not among the local results.
    who = sender(services)
    results = await walk(
        services,
        who,
        [
            ("command", "start"),
            ("action", "role:teen"),
            ("text", "90402"),
            ("action", "need:visits"),
        ],
    )
    group_name = "Eltern-Kind-Gruppen in der JVA Bielefeld-Brackwede"
    assert not any(group_name in text for text in texts(results))
    await walk(services, who, [("action", "prison")])
    replies = await walk(services, who, [("text", "Brackwede")])
    intro = texts(replies).index("Unterstützung in der Nähe dieses Gefängnisses:")
    near = texts(replies)[intro + 1 : -1]
    assert near, "at least one offer near the prison"
    group = next(card for card in near if card.startswith(group_name))
    assert group.split("\n")[2].startswith("unter 1 km · nahe der JVA · für Jugendliche")
    assert all(" · nahe der JVA" in card.split("\n")[2] for card in near)
    assert all("Stand:" in card and "Quelle:" in card for card in near)


async def test_prison_stays_in_the_flow_state_and_never_reaches_the_conversation(services):
    who = sender(services)
    states = FlowStateStore(services.storage)
    await walk(services, who, [*VISITS_TO_BIELEFELD, ("action", "prison"), ("text", "Bielefeld")])
    assert (await states.get(who.pseudonym))["prison"] == "jva-bielefeld-brackwede"
    await walk(services, who, [("action", "handover"), ("text", "Wann darf ich kommen?")])
    async with services.sessions() as session:
        rows = [
            *(await session.scalars(select(Conversation))).all(),
            *(await session.scalars(select(Contact))).all(),
        ]
    stored = " ".join(str(getattr(row, c.key)) for row in rows for c in row.__table__.columns)
    assert rows and "brackwede" not in stored.lower() and "bielefeld" not in stored.lower()
    await walk(services, who, [("command", "start")])
    assert "prison" not in await states.get(who.pseudonym), "a new start forgets the prison"


async def test_a_later_search_includes_the_offers_near_the_remembered_prison(services):
    who = sender(services)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    state = await FlowStateStore(services.storage).get(who.pseudonym)
    state.update(prison="jva-bielefeld-brackwede")
    await FlowStateStore(services.storage).set(who.pseudonym, state)
    replies = await walk(services, who, [("text", "90402"), ("action", "need:visits")])
    assert "Unterstützung in der Nähe dieses Gefängnisses:" in texts(replies)


async def test_a_prison_gone_from_the_directory_is_dropped_not_an_error(services):
    who = sender(services)
    states = FlowStateStore(services.storage)
    await walk(services, who, [("command", "start"), ("action", "role:teen")])
    await states.set(who.pseudonym, {**await states.get(who.pseudonym), "prison": "jva-gone"})
    replies = await walk(services, who, [("action", "postcode:skip"), ("action", "need:visits")])
    assert replies[1].text.startswith("Unten findest du Angebote"), "after the info card"
    assert "prison" not in await states.get(who.pseudonym)
    stale = await walk(services, who, [("action", "prison:jva-gone")])
    assert "älteren Nachricht" in stale[0].text


async def test_english_prison_card_uses_the_english_catalogue(services):
    who = sender(services)
    # There is no language choice in the flow yet; /start keeps the language in the state.
    await FlowStateStore(services.storage).set(who.pseudonym, {"lang": "en"})
    replies = await walk(services, who, VISITS_TO_BIELEFELD)
    assert "Info about a prison" in labels(replies[-1:])
    asked = await walk(services, who, [("action", "prison")])
    assert asked[0].text.startswith("Which prison is your parent in?")
    replies = await walk(services, who, [("text", "Bielefeld")])
    card = card_of(replies, "Justizvollzugsanstalt Bielefeld-Brackwede")
    assert "Town: Bielefeld" in card
    assert "Visiting times: " + BRACKWEDE["visits"]["regular_times"] in card
    assert "Family rooms: yes, there are" in card
    assert "Best call the prison directly and ask about video visits" in card
    assert card.endswith(f"Checked: 21.11.2026 · Source: {BRACKWEDE['source']}")
    none = await walk(services, who, [("action", "prison"), ("text", "qwertz")])
    assert none[0].text.startswith("Sorry, I couldn't find a prison")
    choice = await walk(services, who, [("action", "prison"), ("text", "Willich")])
    assert choice[0].text == "I found more than one prison. Which one do you mean?"


def test_a_card_longer_than_one_message_is_split_between_lines():
    lines = ["a" * 3000, "b" * 1000, "c" * 200, "d" * 5000]
    parts = _parts(lines, MAX_TEXT)
    assert [len(p) for p in parts] == [3000 + 1 + 1000, 200, MAX_TEXT]
    assert parts[0] == "a" * 3000 + "\n" + "b" * 1000
    assert parts[2].endswith("…")
