"""Finding the parent's prison from what someone types: "jva bielefeld", "Brackwede", "knast in
willich", "Frauengefängnis Berlin", with typos.

Each prison gets a few key words from its name, city and slug (without words every prison
shares, such as "Justizvollzugsanstalt"). Each word of the text is compared with the key words:
exactly, with one typo (two in long words), as the start of a key word, or as part of a compound
word. A prison scores the sum of its best match per word; roman numerals and digits ("Willich
II", "Willich 2") only break ties between prisons that matched by name or city. Only the
prisons with the best score come back, so one clear hit is a list of one. The text is never
logged.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA

from referral.index import ReferralIndex
from referral.records import PrisonRecord
from referral.text import normalize

DEFAULT_LIMIT = 3
# Words too common in prison names or in how people talk about prison to tell prisons apart.
# Family words are here because one prison's name contains "Mutter-Kind": "meine Mutter ist in
# Haft" must not find it.
GENERIC = frozenset(
    """
    justizvollzugsanstalt justizvollzugsanstalten jva jvk jvas uha untersuchungshaftanstalt
    anstalt gefaengnis knast haft prison jail mit des der die das fuer am an im in bei und
    nrw krankenhaus einrichtung mutter kind kinder vater papa mama mutti eltern elternteil
    """.split()
)
NUMERALS = {"1": "i", "2": "ii", "3": "iii", "4": "iv", "5": "v"}
ROMAN = frozenset(NUMERALS.values())
# Shorter words only match exactly: "Werl", "Ulm" and "Köln" are one typo from other words.
TYPO_MIN_LENGTH = 5
TWO_TYPOS_MIN_LENGTH = 10
PREFIX_MIN_LENGTH = 5
COMPOUND_MIN_LENGTH = 8
COMPOUND_MIN_PART = 5
EXACT, TYPO, TWO_TYPOS, PARTIAL = 1.0, 0.9, 0.8, 0.8
NUMERAL_WEIGHT = 0.5
# Scores closer than this count as a tie: both prisons are offered to pick from.
TIE = 0.05
# A pasted wall of text is cut: a prison name is a few words.
MAX_WORDS = 30
_DIGITS = re.compile(r"(\d+)")
_UMLAUT_E = re.compile(r"([aou])e")
_LONG_FORM = re.compile(r"^Justizvollzugsanstalt\b")


@dataclass(frozen=True, slots=True)
class _Table:
    prisons: tuple[PrisonRecord, ...]
    keys: tuple[str, ...]
    # key word -> numbers of the prisons (in `prisons`) that have it
    owners: dict[str, frozenset[int]]


_tables: weakref.WeakKeyDictionary[ReferralIndex, _Table] = weakref.WeakKeyDictionary()


def find_prisons(
    index: ReferralIndex, text: str, limit: int = DEFAULT_LIMIT
) -> list[PrisonRecord]:
    """The prisons `text` most likely names, best first: empty when nothing fits, one when one
    fits clearly, several (at most `limit`) when they fit equally well."""
    table = _table(index)
    scores: dict[int, float] = {}
    named: set[int] = set()
    after_name = False
    for word in _words(text)[:MAX_WORDS]:
        numeral = word in ROMAN
        # A numeral counts right after a name ("Willich II"), not as the English "I".
        found = _best_per_prison(table, word) if after_name or not numeral else {}
        for prison, quality in found.items():
            weight = NUMERAL_WEIGHT if numeral else 1.0
            scores[prison] = scores.get(prison, 0.0) + weight * quality
            if not numeral:
                named.add(prison)
        after_name = bool(found) and not numeral
    ranked = sorted(named, key=lambda p: (-scores[p], table.prisons[p].name))
    if not ranked:
        return []
    best = scores[ranked[0]]
    return [table.prisons[p] for p in ranked if scores[p] >= best - TIE][:limit]


def short_name(prison: PrisonRecord) -> str:
    """The name as people say it, short enough for a button on a phone: "JVA Willich II"."""
    return _LONG_FORM.sub("JVA", prison.name, count=1)


def _words(text: str) -> list[str]:
    """Normalised words without the generic ones; digits split off and spelled as roman
    numerals ("Willich2" -> "willich ii")."""
    words: dict[str, None] = {}
    for word in _DIGITS.sub(r" \1 ", normalize(text)).split():
        word = NUMERALS.get(word, word)
        if word not in GENERIC:
            words[word] = None
    return list(words)


def _best_per_prison(table: _Table, word: str) -> dict[int, float]:
    best: dict[int, float] = {}
    for key, quality in _key_matches(table.keys, word):
        for prison in table.owners[key]:
            best[prison] = max(best.get(prison, 0.0), quality)
    return best


def _key_matches(keys: tuple[str, ...], word: str) -> Iterable[tuple[str, float]]:
    if word in ROMAN or len(word) < TYPO_MIN_LENGTH:
        yield from ((key, EXACT) for key in keys if key == word)
        return
    edits = 2 if len(word) >= TWO_TYPOS_MIN_LENGTH else 1
    for key, distance, _ in process.extract(
        word, keys, scorer=OSA.distance, score_cutoff=edits, limit=None
    ):
        if distance == 0 or len(key) >= TYPO_MIN_LENGTH:
            yield key, (EXACT, TYPO, TWO_TYPOS)[int(distance)]
    for key in keys:
        if len(word) >= PREFIX_MIN_LENGTH and key != word and key.startswith(word):
            yield key, PARTIAL
        elif _compound_part(word, key):
            yield key, PARTIAL


def _compound_part(word: str, key: str) -> bool:
    """ "frauengefaengnis" contains "frauen", "jvabielefeld" ends in "bielefeld"."""
    return (
        len(word) >= COMPOUND_MIN_LENGTH
        and len(key) >= COMPOUND_MIN_PART
        and key not in ROMAN
        and len(word) > len(key)
        and (word.startswith(key) or word.endswith(key))
    )


def _table(index: ReferralIndex) -> _Table:
    """Key words of the index's prisons, built once per index (an index never changes)."""
    table = _tables.get(index)
    if table is None:
        table = _build(index.prisons)
        _tables[index] = table
    return table


def _build(prisons: list[PrisonRecord]) -> _Table:
    owners: dict[str, set[int]] = {}
    for number, prison in enumerate(prisons):
        source = " ".join((prison.name, prison.city or "", prison.slug.replace("-", " ")))
        for word in _words(source):
            # "Koln", "Nurnberg": umlauts typed without their dots
            for key in {word, _UMLAUT_E.sub(r"\1", word)}:
                owners.setdefault(key, set()).add(number)
    return _Table(
        tuple(prisons), tuple(owners), {key: frozenset(found) for key, found in owners.items()}
    )
