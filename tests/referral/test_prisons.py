"""Finding the parent's prison from typed text: names, cities, parts of names, numerals, typos,
and words that must find nothing. Runs over the prisons of the real seed directory."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest

from referral.index import ReferralIndex
from referral.prisons import find_prisons, short_name
from referral.records import PrisonRecord

SEED = Path(__file__).resolve().parents[2] / "directory/seed/prisons.json"


def seed_prisons() -> list[PrisonRecord]:
    prisons = json.loads(SEED.read_text("utf-8"))["prisons"]
    return [
        PrisonRecord(
            prison_id=f"id-{number}",
            slug=prison["slug"],
            name=prison["name"],
            federal_state=prison["federal_state"],
            prison_types=frozenset(prison["prison_types"]),
            source=prison["source"],
            assured_date=date.fromisoformat(prison["last_checked"]),
            city=prison["city"],
        )
        for number, prison in enumerate(prisons)
    ]


INDEX = ReferralIndex([], seed_prisons())
WILLICH = ["jva-willich-1", "jva-willich-2"]
BRACKWEDE = ["jva-bielefeld-brackwede"]

FINDS = [
    # city, name, part of a name, with and without "JVA"
    ("Bielefeld", BRACKWEDE),
    ("jva bielefeld", BRACKWEDE),
    ("Brackwede", BRACKWEDE),
    ("JVA Bielefeld-Brackwede", BRACKWEDE),
    ("in der Nähe von Bielefeld", BRACKWEDE),
    ("Justizvollzugsanstalt Köln", ["jva-koeln"]),
    ("Tegel", ["jva-berlin-tegel"]),
    ("Stammheim", ["jva-stuttgart"]),
    ("Glaubitz", ["jva-zeithain"]),
    ("Fröndenberg", ["jvk-nrw-mutter-kind-einrichtung"]),
    # misspellings, umlauts typed without dots, words run together
    ("Bielefled", BRACKWEDE),
    ("bilefeld", BRACKWEDE),
    ("jvabielefeld", BRACKWEDE),
    ("Stamheim", ["jva-stuttgart"]),
    ("Fulsbüttel", ["jva-hamburg-fuhlsbuettel"]),
    ("Fuhlsbuttel", ["jva-hamburg-fuhlsbuettel"]),
    ("Koln", ["jva-koeln"]),
    ("Nurnberg", ["jva-nuernberg"]),
    ("Remschied", ["jva-remscheid"]),
    ("Wupper", ["jva-wuppertal-vohwinkel"]),
    # several prisons in one town: a choice, unless a numeral or another word decides
    ("knast in willich", WILLICH),
    ("Wilich", WILLICH),
    ("I think it's in Willich", WILLICH),
    ("JVA Willich II", ["jva-willich-2"]),
    ("willich 2", ["jva-willich-2"]),
    ("Willich1", ["jva-willich-1"]),
    ("Frankfurt", ["jva-frankfurt-am-main-i", "jva-frankfurt-am-main-iii"]),
    ("Frankfurt am Main 3", ["jva-frankfurt-am-main-iii"]),
    ("Berlin", ["jva-berlin-tegel", "jva-fuer-frauen-berlin"]),
    ("Frauengefängnis Berlin", ["jva-fuer-frauen-berlin"]),
    ("Vechta", ["jva-vechta", "jva-fuer-frauen-vechta"]),
    ("JVA für Frauen Vechta", ["jva-fuer-frauen-vechta"]),
    ("Hamburg", ["jva-hamburg-billwerder", "jva-hamburg-fuhlsbuettel", "uha-hamburg"]),
]

FINDS_NOTHING = [
    "",
    "hallo",
    "keine Ahnung",
    "ich weiß nicht",
    "mein Papa ist im Gefängnis",
    # one prison's name contains "Mutter-Kind": a mother in prison is not that prison
    "meine Mutter ist in Haft",
    "JVA",
    "Knast",
    "Besuchszeiten",
    "Familie",
    # towns without a prison in the directory, and near misses of towns with one
    "München",
    "Bremen",
    "Dortmund",
    "Hannover",
    "Heidelberg",
    "Werne",
    "Halle",
    # numerals alone, and the English "I", name nothing
    "2",
    "II",
    "I",
    "asdfgh qwertz",
]


@pytest.mark.parametrize(("text", "slugs"), FINDS)
def test_finds_the_prison(text, slugs):
    assert sorted(p.slug for p in find_prisons(INDEX, text)) == sorted(slugs)


@pytest.mark.parametrize("text", FINDS_NOTHING)
def test_false_matches_find_nothing(text):
    assert find_prisons(INDEX, text) == []


def test_every_prison_is_found_by_its_name_and_by_its_town():
    for prison in seed_prisons():
        for text in (prison.name, prison.city or prison.name):
            assert prison.slug in [p.slug for p in find_prisons(INDEX, text)], text


def test_at_most_limit_prisons_best_first():
    found = find_prisons(INDEX, "Hamburg", limit=2)
    assert [p.slug for p in found] == ["jva-hamburg-billwerder", "jva-hamburg-fuhlsbuettel"]


def test_an_index_without_prisons_finds_nothing():
    assert find_prisons(ReferralIndex([]), "Bielefeld") == []


def test_a_pasted_wall_of_text_is_answered_quickly():
    story = "Mein Papa ist seit Montag in der JVA und ich weiß nicht was ich tun soll " * 300
    words = " ".join(f"wort{n}" for n in range(5000))
    started = time.perf_counter()
    assert [p.slug for p in find_prisons(INDEX, story + " Bielefeld")] == BRACKWEDE
    # Only the first few dozen different words are compared with the prisons.
    assert find_prisons(INDEX, words + " Bielefeld") == []
    assert time.perf_counter() - started < 1.0


def test_short_name_abbreviates_only_the_leading_long_form():
    by_slug = {p.slug: p for p in seed_prisons()}
    assert short_name(by_slug["jva-willich-2"]) == "JVA Willich II"
    assert short_name(by_slug["uha-hamburg"]) == "Untersuchungshaftanstalt Hamburg"
    assert short_name(by_slug["jva-fuer-frauen-berlin"]) == "JVA für Frauen Berlin"
