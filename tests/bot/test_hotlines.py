"""The crisis card from the hotline data: what answers now comes first, a closed line shows its
hours, the youngest get a plainer card, and other languages get their own services first."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.hotlines import HOTLINES_FILE, HotlineBook, HotlineDataError, default_hotlines
from core.i18n import LOCALES_DIR, load_catalogue

SUNDAY_NIGHT = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)  # 23:00 in Berlin
FRIDAY_AFTERNOON = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)  # 16:00 in Berlin


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_every_fact_has_a_source_and_dates():
    for entry in json.loads(HOTLINES_FILE.read_text(encoding="utf-8"))["hotlines"]:
        assert entry["source"].startswith("https://"), entry["id"]
        assert entry["last_checked"], entry["id"]
        assert "source_date" in entry, entry["id"]


def test_at_night_the_card_names_who_answers_now_and_when_the_others_open(catalogue):
    card = default_hotlines().card(now=SUNDAY_NIGHT, lang="de", child=False, catalogue=catalogue)
    now, later = card.split("Später wieder erreichbar:")
    assert "TelefonSeelsorge, rund um die Uhr" in now and "116 111" not in now
    assert "116 111 (Mo–Sa 14–20 Uhr)" in later
    assert "112" in card.splitlines()[-2]


def test_in_the_afternoon_nummer_gegen_kummer_is_open(catalogue):
    card = default_hotlines().card(
        now=FRIDAY_AFTERNOON, lang="de", child=False, catalogue=catalogue
    )
    assert "Später" not in card and "• Nummer gegen Kummer: 116 111" in card


def test_a_child_gets_phone_lines_only_in_plain_words(catalogue):
    card = default_hotlines().card(
        now=FRIDAY_AFTERNOON, lang="de", child=True, catalogue=catalogue
    )
    assert card.startswith("Hier kannst du jetzt anrufen.")
    assert "krisenchat" not in card and "https://" not in card
    assert "Ruf die 112 an." in card


@pytest.mark.parametrize(("lang", "own"), [("uk", "0800 500 225 0"), ("ru", "030 440 308 454")])
def test_another_language_lists_its_own_services_first(catalogue, lang, own):
    card = default_hotlines().card(
        now=FRIDAY_AFTERNOON, lang=lang, child=False, catalogue=catalogue
    )
    german = catalogue.text(lang, "crisis.card_in_german")
    assert card.index(own) < card.index(german) < card.index("116 111")


def test_the_card_languages_have_every_line_of_the_german_card():
    german = load_catalogue().messages["de"]
    card_keys = [
        k for k in german if k.startswith(("crisis.card", "crisis.line", "weekday.short"))
    ]
    for lang in ("tr", "ru", "uk", "ar"):
        assert (LOCALES_DIR / lang / "LC_MESSAGES" / "crisis.po").exists()
        table = load_catalogue().messages[lang]
        assert [
            k for k in [*card_keys, "crisis.intro", "flow.foreign_language"] if k not in table
        ] == []


def test_data_without_the_emergency_numbers_is_refused():
    with pytest.raises(HotlineDataError):
        HotlineBook([])
