"""The layered crisis detection: the model is built from the corpus in the repository, the
held-out part keeps the recall and false-alarm floors docs/crisis.md names, a crisis split over
two messages counts, and nothing of a message is kept beyond minutes in memory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.crisis import evaluate
from bot.crisis_build import corpus_digest, read_corpus, split
from bot.crisis_model import default_model
from bot.crisis_triage import CONTEXT_FOR, CrisisTriage, RecentTexts, default_triage
from core.clock import FakeClock
from core.schemas import CRISIS_CATEGORIES, CRISIS_LEVELS

# The floors of the held-out part (docs/crisis.md, "Measured"): what this build reaches, less a
# margin; a change to the corpus, the lexicon or the model that falls below them fails here.
FLOOR_RECALL = 0.70
FLOOR_IMMINENT_RECALL = 0.68
CEILING_FALSE_ALARMS = 0.045


@pytest.fixture(scope="module")
def triage() -> CrisisTriage:
    return default_triage()


def test_the_shipped_model_was_built_from_the_corpus_on_disk():
    assert default_model().corpus_digest == corpus_digest(), (
        "the corpus changed: run `python -m bot.crisis_build` and commit bot/crisis_model.npz"
    )


def test_the_corpus_has_every_category_language_and_a_held_out_part():
    rows = read_corpus()
    train, held_out = split(rows)
    assert len(rows) >= 12000
    assert 0.15 < len(held_out) / len(rows) < 0.25
    assert {r.label for r in held_out} >= set(CRISIS_CATEGORIES)
    assert {r.lang for r in held_out} == {"de", "en", "tr", "ru", "uk", "ar"}
    assert not {r.text for r in train} & {r.text for r in held_out}


def test_held_out_recall_and_false_alarms_stay_above_the_floors(triage):
    _, held_out = split(read_corpus())
    table = evaluate(held_out, triage.assess)
    overall = table["all"]["all"]
    assert overall.recall >= FLOOR_RECALL
    assert table["level"]["imminent"].recall >= FLOOR_IMMINENT_RECALL
    assert overall.false_alarms <= CEILING_FALSE_ALARMS


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("ich hab grad 20 tabletten geschluckt", "acute_danger"),
        ("mama liegt am boden und bewegt sich nicht", "acute_danger"),
        ("ich kotze nach jedem essen", "eating_disorder"),
        ("er bringt mich um wenn ich was sage", "threat"),
        ("bin von zuhause abgehauen", "runaway"),
        ("papa schlagen meine mama", "violence"),
    ],
)
def test_the_new_categories_are_found(triage, text, category):
    found = triage.assess(text)
    assert found is not None and found.category == category
    assert found.level in CRISIS_LEVELS


def test_acute_danger_is_imminent_and_a_joke_stays_quiet(triage):
    found = triage.assess("ich hab grad 20 tabletten geschluckt")
    assert found is not None and found.level == "imminent"
    assert triage.assess("mathe bringt mich um haha") is None


def test_a_crisis_split_over_two_messages_counts(triage):
    assert triage.assess("umbringen") is None, "alone it is no crisis"
    found = triage.assess("umbringen", earlier=["hab keine lust mehr", "ich will mich"])
    assert found is not None and found.category == "suicide"
    assert found.by.endswith("+context")


def test_an_assessment_carries_no_words(triage):
    found = triage.assess("Ich will mich umbringen, Canary-7731")
    assert found is not None
    assert "umbringen" not in repr(found) and "Canary" not in repr(found)
    assert set(found.__slots__) == {"category", "level", "by"}  # type: ignore[attr-defined]


def test_the_language_is_named_only_when_the_model_is_sure(triage):
    assert triage.read("не хочу больше жить, всё надоело").language in ("ru", "uk")
    assert triage.read("artık yaşamak istemiyorum hiçbir şeyin anlamı yok").language == "tr"
    assert triage.read("ich bin 14 und wohne in köln").language in ("de", None)


def test_recent_texts_live_minutes_in_memory_and_are_bounded():
    clock = FakeClock(datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
    recent = RecentTexts(clock=clock, chats=2)
    recent.add("a", "eins")
    recent.add("a", "zwei")
    recent.add("a", "drei")
    assert recent.earlier("a") == ["zwei", "drei"], "only the last two"
    clock.advance(seconds=CONTEXT_FOR.total_seconds() + 1)
    assert recent.earlier("a") == [], "gone after the window"
    recent.add("b", "x")
    recent.add("c", "y")
    recent.add("d", "z")
    assert recent.earlier("b") == [], "the oldest chat is dropped beyond the bound"
    recent.forget("d")
    assert recent.earlier("d") == []
