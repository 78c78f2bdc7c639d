"""Free text -> need codes, through the editable lexicon in referral/lexicon.json.

A query's words are compared once with a few hundred lexicon terms: phrases, then single words
(exactly, with a typo, or as parts of a compound word). The cost depends on the length of the
text, never on the number of offers. The rules are documented for editors in the file itself.
Matched text is never logged.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from referral.records import NEEDS

LEXICON_FILE = Path(__file__).with_name("lexicon.json")
# A chat message is short; the cap bounds the cost of a pasted wall of text.
MAX_TOKENS = 80
MAX_PHRASE_WORDS = 3
# Shorter terms only match exactly: among short words, one typo mostly makes another real word
# ("Geld" - "Gold", "Noten" - "Nöten"). Checked against a German word list during development.
TYPO_MIN_LENGTH = 6
TWO_TYPOS_MIN_LENGTH = 13
PHRASE_TYPO_MIN_LENGTH = 9
COMPOUND_MIN_TOKEN = 7
# Parts of four letters gave too many accidents ("Freundschaft" ends in "haft").
COMPOUND_MIN_PART = 5
COMPOUND_MIN_REST = 3
IGNORE_PREFIX_MIN_LENGTH = 7
CONTEXT_KEY = "context"
_WORD = re.compile(r"[^\W_]+")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

How = Literal["exact", "typo", "compound"]


class LexiconError(ValueError):
    """The lexicon file is not usable (an editor's typo in a need code, say)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One lexicon term found in a text; `context` terms only say that it is about prison."""

    term: str
    needs: frozenset[str]
    how: How
    context: bool = False


def normalize(text: str) -> str:
    """Lower case, umlauts spelled out, accents dropped, punctuation gone: one space between
    words. Applied to lexicon terms and user text alike, so both spellings meet."""
    folded = text.casefold().translate(_TRANSLIT)
    bare = "".join(
        c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c)
    )
    return " ".join(_WORD.findall(bare))


@dataclass(frozen=True, slots=True)
class _Entry:
    needs: frozenset[str]
    context: bool


class Lexicon:
    """The terms of lexicon.json, prepared for matching; build once, share between queries."""

    def __init__(
        self,
        *,
        needs: Mapping[str, Iterable[str]],
        context_terms: Iterable[str],
        context_needs: Iterable[str],
        ignore: Iterable[str],
        misspellings: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.context_needs = frozenset(context_needs)
        canonical = _entries(needs, context_terms)
        spelled = dict(misspellings or {})
        spelled_context = spelled.pop(CONTEXT_KEY, ())
        # Known misspellings match exactly only: they are not the centre of further typos.
        self._entries = _entries(spelled, spelled_context) | canonical
        self._ignore = frozenset(normalize(term) for term in ignore) - {""}
        self._ignore_prefixes = tuple(
            sorted(t for t in self._ignore if " " not in t and len(t) >= IGNORE_PREFIX_MIN_LENGTH)
        )
        self._parts = frozenset(t for t in canonical if " " not in t)
        # Sorted, so that a tie between two terms resolves the same way in every process.
        self._typo_terms = sorted(t for t in self._parts if len(t) >= TYPO_MIN_LENGTH)
        self._typo_allowed = np.array(
            [2 if len(t) >= TWO_TYPOS_MIN_LENGTH else 1 for t in self._typo_terms], dtype=np.int32
        )
        self._phrases = {
            n: [t for t in canonical if t.count(" ") == n - 1 and len(t) >= PHRASE_TYPO_MIN_LENGTH]
            for n in range(2, MAX_PHRASE_WORDS + 1)
        }

    @classmethod
    def load(cls, path: Path = LEXICON_FILE) -> Lexicon:
        return cls.from_mapping(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Lexicon:
        context = data.get("context", {})
        misspellings = data.get("misspellings", {})
        used = {*data.get("needs", {}), *context.get("needs", ()), *misspellings}
        unknown = used - {*NEEDS, CONTEXT_KEY}
        if unknown:
            raise LexiconError(f"unknown need codes in the lexicon: {sorted(unknown)}")
        return cls(
            needs=data.get("needs", {}),
            context_terms=context.get("terms", ()),
            context_needs=context.get("needs", ()),
            ignore=data.get("ignore", ()),
            misspellings=misspellings,
        )

    @property
    def size(self) -> int:
        return len(self._entries)

    def needs(self, text: str) -> frozenset[str]:
        """The need codes a text asks about; context words alone give `context_needs`."""
        found = self.hits(text)
        specific = frozenset().union(*(hit.needs for hit in found if not hit.context))
        if specific:
            return specific
        return self.context_needs if any(hit.context for hit in found) else frozenset()

    def hits(self, text: str) -> list[Hit]:
        tokens = normalize(text).split()[:MAX_TOKENS]
        taken = self._ignored_positions(tokens, words=range(2, MAX_PHRASE_WORDS + 1))
        found = self._phrase_hits(tokens, taken)
        # A phrase wins over a false friend inside it ("das Recht" maps, "recht gut" does not).
        taken |= self._ignored_positions(tokens, words=(1,))
        found += self._word_hits(tokens, taken)
        return found

    def _hit(self, term: str, how: How) -> Hit:
        entry = self._entries[term]
        return Hit(term=term, needs=entry.needs, how=how, context=entry.context)

    def _ignored_positions(self, tokens: list[str], *, words: Iterable[int]) -> set[int]:
        taken: set[int] = set()
        for n in words:
            for start, phrase in _ngrams(tokens, n):
                if phrase in self._ignore or (n == 1 and phrase.startswith(self._ignore_prefixes)):
                    taken.update(range(start, start + n))
        return taken

    def _phrase_hits(self, tokens: list[str], taken: set[int]) -> list[Hit]:
        found: list[Hit] = []
        for n in range(MAX_PHRASE_WORDS, 1, -1):
            grams = [(s, g) for s, g in _ngrams(tokens, n) if taken.isdisjoint(range(s, s + n))]
            typos = self._phrase_typos([g for _, g in grams if g not in self._entries], n)
            for start, gram in grams:
                term = gram if gram in self._entries else typos.get(gram)
                if term is not None and taken.isdisjoint(range(start, start + n)):
                    found.append(self._hit(term, "exact" if term == gram else "typo"))
                    taken.update(range(start, start + n))
        return found

    def _phrase_typos(self, grams: list[str], n: int) -> dict[str, str]:
        """gram -> phrase one typo away; short phrases match exactly only."""
        phrases = self._phrases[n]
        grams = [g for g in grams if len(g) >= PHRASE_TYPO_MIN_LENGTH - 1]
        if not grams or not phrases:
            return {}
        distances = process.cdist(grams, phrases, scorer=OSA.distance, score_cutoff=1)
        matches: dict[str, str] = {}
        for row, column in zip(*np.nonzero(distances <= 1), strict=True):
            if phrases[column][0] == grams[row][0]:
                matches.setdefault(grams[row], phrases[column])
        return matches

    def _word_hits(self, tokens: list[str], taken: set[int]) -> list[Hit]:
        free = [t for i, t in enumerate(tokens) if i not in taken]
        found = [self._hit(t, "exact") for t in free if t in self._entries]
        rest = [t for t in free if t not in self._entries]
        typos = self._typo_matches([t for t in rest if len(t) >= TYPO_MIN_LENGTH - 1])
        found += [self._hit(term, "typo") for term in typos.values()]
        for token in rest:
            if token not in typos and len(token) >= COMPOUND_MIN_TOKEN:
                found += [self._hit(part, "compound") for part in self._compound_parts(token)]
        return found

    def _typo_matches(self, tokens: list[str]) -> dict[str, str]:
        """token -> term, for tokens within the allowed typos of a term with the same first
        letter (people rarely mistype the first letter; requiring it rules out most false
        friends, like "morgen" for "sorgen")."""
        if not tokens or not self._typo_terms:
            return {}
        distances = process.cdist(
            tokens, self._typo_terms, scorer=OSA.distance, score_cutoff=2, dtype=np.int32
        )
        allowed = distances <= self._typo_allowed[np.newaxis, :]
        matches: dict[str, str] = {}
        for row, token in enumerate(tokens):
            columns = [
                c
                for c in np.flatnonzero(allowed[row]).tolist()
                if self._typo_terms[c][0] == token[0]
            ]
            if columns:
                best = min(columns, key=lambda c: distances[row, c])
                matches[token] = self._typo_terms[best]
        return matches

    def _compound_parts(self, token: str) -> list[str]:
        """The longest known word at the start and at the end of a compound word."""
        parts: list[str] = []
        cuts = range(len(token) - COMPOUND_MIN_REST, COMPOUND_MIN_PART - 1, -1)
        head = next((token[:k] for k in cuts if token[:k] in self._parts), None)
        tail = next((token[-k:] for k in cuts if token[-k:] in self._parts), None)
        parts += [p for p in (head, tail) if p is not None]
        return parts


def _entries(
    needs: Mapping[str, Iterable[str]], context_terms: Iterable[str]
) -> dict[str, _Entry]:
    by_term: dict[str, set[str]] = {}
    for need, terms in needs.items():
        for term in terms:
            by_term.setdefault(normalize(term), set()).add(need)
    entries = {t: _Entry(frozenset(n), context=False) for t, n in by_term.items() if t}
    for term in map(normalize, context_terms):
        if term and term not in entries:
            entries[term] = _Entry(frozenset(), context=True)
    return entries


def _ngrams(tokens: list[str], n: int) -> Iterable[tuple[int, str]]:
    return ((i, " ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1))


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The shipped lexicon, loaded once per process."""
    return Lexicon.load()


def needs_from_text(text: str, *, lexicon: Lexicon | None = None) -> frozenset[str]:
    return (lexicon or default_lexicon()).needs(text)
