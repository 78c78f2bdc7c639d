"""The crisis lexicon against a table of messages: what must raise the alarm (German and English,
slang, misspellings, dialect) and what must stay quiet (jokes, idioms, false friends). Plus the
personal-data tip. The sentences are made up; never put real messages from users here."""

from __future__ import annotations

import json

import pytest

from bot import personal_data
from bot.crisis import (
    CATEGORIES,
    LEXICON_FILE,
    CrisisDetector,
    LexiconError,
    default_detector,
    normalize,
)

CRISES = [
    # suicide, German
    ("ich will nicht mehr leben", "suicide"),
    ("Ich will mich umbringen", "suicide"),
    ("ich will mich umbrigen", "suicide"),
    ("ich bring mich um", "suicide"),
    ("manchmal denk ich an suizid", "suicide"),
    ("Suizidgedanken hab ich seit Wochen", "suicide"),
    ("suizied", "suicide"),
    ("ich denke über Selbstmord nach", "suicide"),
    ("selbsmord", "suicide"),
    ("hab selbst mord gedanken", "suicide"),
    ("ich will einfach nur sterben", "suicide"),
    ("ich möchte sterben", "suicide"),
    ("ich mochte am liebsten sterben", "suicide"),
    ("ich wär lieber tot", "suicide"),
    ("kein bock mehr zu leben", "suicide"),
    ("ich will nich mehr lebn", "suicide"),
    ("i mog nimmer leben", "suicide"),
    ("ich wil nicht mehr am leben sein", "suicide"),
    ("bin so lebensmüde", "suicide"),
    ("ich will einschlafen und nicht mehr aufwachen", "suicide"),
    ("das leben hat für mich keinen sinn mehr", "suicide"),
    ("ich will mir das leben nehmen", "suicide"),
    ("am liebsten würde ich mich aufhängen", "suicide"),
    ("Papa hat versucht sich umzubringen", "suicide"),
    ("ICH WILL NICHT MEHR LEBEN!!!", "suicide"),
    ("ich will nciht mehr leben", "suicide"),
    # suicide, English and algospeak
    ("I want to kill myself", "suicide"),
    ("i wanna kil myself", "suicide"),
    ("kms", "suicide"),
    ("honestly kms", "suicide"),
    ("i want to unalive myself", "suicide"),
    ("thinking about sewerslide", "suicide"),
    ("i want to die", "suicide"),
    ("i dont want to live anymore", "suicide"),
    ("I don't want to be alive", "suicide"),
    ("I'm better off dead", "suicide"),
    ("i feel suicidal", "suicide"),
    ("s*icide", "suicide"),
    ("su1c1de", "suicide"),
    ("I want to end it all", "suicide"),
    # self-harm
    ("ich ritze mich", "self_harm"),
    ("ich ritz mich", "self_harm"),
    ("ich hab wieder angefangen zu ritzen", "self_harm"),
    ("ich schneide mich", "self_harm"),
    ("ich hab mich wieder geritzt", "self_harm"),
    ("svv", "self_harm"),
    ("ich verletze mich selbst", "self_harm"),
    ("ich will mir was antun", "self_harm"),
    ("meine Freundin ritzt sich", "self_harm"),
    ("i cut myself", "self_harm"),
    ("i self harm", "self_harm"),
    ("selfharm", "self_harm"),
    ("i keep hurting myself", "self_harm"),
    # abuse
    ("er fasst mich an", "abuse"),
    ("mein onkel fasst mich immer da unten an", "abuse"),
    ("ich wurde missbraucht", "abuse"),
    ("mißbraucht", "abuse"),
    ("sexueller Missbrauch", "abuse"),
    ("er hat mich vergewaltigt", "abuse"),
    ("er hat mich begrapscht", "abuse"),
    ("er will nacktbilder von mir", "abuse"),
    ("he touches me there", "abuse"),
    ("i was abused", "abuse"),
    ("my stepdad molested me", "abuse"),
    # violence
    ("er schlägt mich", "violence"),
    ("papa haut mich", "violence"),
    ("mama schlägt mich jeden tag", "violence"),
    ("er schlagt mich", "violence"),
    ("mein stiefvater verprügelt mich", "violence"),
    ("er schlägt immer wieder meine mama", "violence"),
    ("er hat mich gewürgt", "violence"),
    ("bei uns gibt es häusliche gewalt", "violence"),
    ("my dad hits me", "violence"),
    ("he beats me", "violence"),
    ("my mom's boyfriend beat me up", "violence"),
    # running away
    ("ich hau ab von zuhause", "runaway"),
    ("ich hau ab von zu hause", "runaway"),
    ("ich will weglaufen", "runaway"),
    ("ich will einfach nur abhauen", "runaway"),
    ("ich bin weggelaufen", "runaway"),
    ("ich trau mich nicht nach hause", "runaway"),
    ("ich will nicht mehr nach hause", "runaway"),
    ("i want to run away", "runaway"),
    ("i ran away from home", "runaway"),
    ("they kicked me out", "runaway"),
    # invisible characters pasted into or between words (zero-width space, soft hyphen, word
    # joiner, zero-width joiner, byte order mark)
    ("ich will nicht mehr le\u200bben", "suicide"),
    ("i want to k\u00adill myself", "suicide"),
    ("mein pa\u200dpa schl\u2060ägt mich", "violence"),
    ("ich will mich um\ufeffbringen", "suicide"),
    ("ich will mich\u200bumbringen", "suicide"),
]

QUIET = [
    "ich lach mich tot",
    "ich lach mich tod 😂",
    "totlachen",
    "ich bin tot müde",
    "ich bin todmüde",
    "der Film war zum sterben langweilig",
    "die Hausaufgaben bringen mich um",
    "Mathe bringt mich noch um",
    "Mama wird mich umbringen wenn sie die Note sieht",
    "ich sterbe vor langeweile",
    "ich will nicht sterben",
    "das haut mich um",
    "du hast mich verstanden",
    "Papa hat mich besucht",
    "er hat mein Vertrauen missbraucht",
    "ich muss mich anpassen",
    "ich will mich scheiden lassen",
    "ich will Stress abbauen",
    "man kann nicht vor seinen problemen weglaufen",
    "der Hund ist weggelaufen",
    "mein Rad hat ein kaputtes Ritzel",
    "er schlägt vor, dass wir uns treffen",
    "ich hau jetzt ab, tschüss",
    "Das macht keinen Sinn",
    "ich bin morgen nicht da",
    "Mein Papa ist im Gefängnis und ich darf es niemandem sagen",
    "Wie kann ich meinen Vater in der JVA besuchen?",
    "my homework is killing me",
    "i could die laughing",
    "killer app",
    "i was so amused",
    "she beat me at chess",
    "hit me up later",
    "we went racing",
    "i want to dye my hair",
    "the runway was long",
    "my dad had problems with drug abuse",
    "you can't run away from your problems",
    "Ich heiße Max und bin 14",
    "Hauptstraße 5",
    "",
    "   ",
    "🙂",
]


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector.load()


@pytest.mark.parametrize(("text", "category"), CRISES)
def test_crisis_is_recognised_with_its_category(detector, text, category):
    hit = detector.detect(text)
    assert hit is not None, text
    assert hit.category == category


@pytest.mark.parametrize("text", QUIET)
def test_jokes_idioms_and_false_friends_stay_quiet(detector, text):
    assert detector.detect(text) is None


def test_the_tables_are_big_enough_and_balanced():
    assert len(CRISES) >= 40 and len(QUIET) >= 20
    assert {category for _, category in CRISES} == set(CATEGORIES)


def test_a_joke_does_not_hide_a_crisis_in_the_same_message(detector):
    hit = detector.detect(
        "die Hausaufgaben bringen mich um, aber ehrlich: ich will nicht mehr leben"
    )
    assert hit is not None and hit.category == "suicide"


def test_several_categories_report_the_most_urgent(detector):
    hit = detector.detect("er schlägt mich und ich will weglaufen, ich will nicht mehr leben")
    assert hit is not None
    assert hit.category == "suicide"
    assert hit.categories == {"suicide", "violence", "runaway"}


def test_a_hit_carries_no_words_of_the_message(detector):
    hit = detector.detect("Ich will mich umbringen, Canary-7731")
    assert hit is not None
    for shown in (repr(hit), str(hit)):
        assert "umbringen" not in shown and "Canary" not in shown
    assert set(hit.__slots__) == {"category", "categories"}  # type: ignore[attr-defined]


def test_normalize_undoes_spelling_tricks():
    assert normalize("SUIZID!!") == ["suizid"]
    assert normalize("Selbstmörder") == ["selbstmoerder"]
    assert normalize("don't") == ["dont"]
    assert normalize("su1z1d") == ["suizid"]
    assert normalize("su!c!de") == ["suicide"]
    assert normalize("neeeeein") == ["neein"]
    assert normalize("0151 2345") == ["0151", "2345"], "plain numbers stay numbers"


def test_the_shipped_lexicon_loads_and_is_shared():
    assert default_detector() is default_detector()
    assert default_detector().size > 200
    data = json.loads(LEXICON_FILE.read_text(encoding="utf-8"))
    assert set(data["categories"]) == set(CATEGORIES)


def test_a_long_message_is_checked_to_its_end(detector):
    text = "Heute war die Schule okay. " * 140 + "Ich will nicht mehr leben."
    assert len(text) <= 4096
    assert detector.detect(text) is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"categories": {"sadness": ["traurig"]}}, "unknown crisis categories"),
        ({"categories": {"suicide": ["... sterben"]}}, "start and end with a word"),
        ({"categories": {"suicide": ["will ... ... sterben"]}}, "two gaps"),
        ({"categories": {"suicide": ["a b c d e f g"]}}, "at most 6 words"),
        ({"categories": {"suicide": ["sterben"]}, "spellings": {"leben": ["lebn"]}}, "spellings"),
    ],
)
def test_an_editors_mistake_in_the_lexicon_is_named(data, message):
    with pytest.raises(LexiconError, match=message):
        CrisisDetector.from_mapping(data)


def test_editors_rules_work_as_documented():
    detector = CrisisDetector.from_mapping(
        {
            "categories": {"runaway": ["will ... weg", "=abhauen", "ausreiss*"]},
            "guards": ["will nur weg"],
            "spellings": {"abhauen": ["abhaun"]},
            "negations": ["nicht"],
        }
    )
    assert detector.detect("ich will hier einfach weg")
    assert not detector.detect("ich will nicht weg")  # a negation in the gap
    assert not detector.detect("ich will hier nur mal so weg"), "gap of four words"
    assert not detector.detect("ich will nur weg"), "guard"
    assert detector.detect("abhaun") and not detector.detect("abbauen"), "=exact and spellings"
    assert detector.detect("Ausreißerin")


PERSONAL = [
    ("ruf mich an: 0151 23456789", "privacy.contact"),
    ("meine Nummer ist +49 176 1234567", "privacy.contact"),
    ("(030) 123 45 67", "privacy.contact"),
    ("schreib an mia.k@example.de", "privacy.contact"),
    ("ich wohne Hauptstraße 5", "privacy.contact"),
    ("Musterweg 12a", "privacy.contact"),
    ("Friedrich-Ebert-Str. 7", "privacy.contact"),
    ("Lange Straße 3", "privacy.contact"),
    ("ich heiße Max Mustermann", "privacy.name"),
    ("mein Name ist lisa müller", "privacy.name"),
    ("my name is John Smith", "privacy.name"),
]
NOT_PERSONAL = [
    "90402",
    "01067",
    "Ich bin 14 und in Klasse 8b",
    "am 01.02.2024 war der Besuch",
    "116 111",
    "0800 111 0 111",
    "Ich heiße Max und bin 14",
    "ich heiße eigentlich anders",
    "wir haben 3 Kinder",
    "um 14:30 Uhr",
    "Platz 1 beim Turnier",
]


@pytest.mark.parametrize(("text", "key"), PERSONAL)
def test_personal_data_gets_a_gentle_tip(text, key):
    assert personal_data.advice_key(text) == key


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_postcodes_hotlines_dates_and_first_names_get_no_tip(text):
    assert personal_data.advice_key(text) is None
