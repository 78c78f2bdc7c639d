"""Crisis detection: every free-text message against the editable lexicon in crisis_lexicon.json.

The lexicon's terms are short word patterns (German and English, slang, dialect, misspellings);
a user's words match them exactly, through listed spellings, or with a typo, and guard phrases
("ich lach mich tot") silence jokes and false friends. The detector answers with a category only:
the matched words never leave this module, so nothing of a message can end up in a log line.
The rules for editors are in the lexicon file itself; docs/crisis.md explains the limits.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from core.schemas import CRISIS_CATEGORIES

LEXICON_FILE = Path(__file__).with_name("crisis_lexicon.json")
# In order of urgency: a message that hits several categories reports the first.
CATEGORIES = CRISIS_CATEGORIES
GAP = "..."
MAX_GAP = 3
MAX_TERM_WORDS = 6
# A chat message is at most 4096 characters; the cap bounds the cost of a pasted wall of text
# while still covering any message a person types.
MAX_TOKENS = 800
# Typo budgets. Short words are where one typo turns a word into another real one ("haut" and
# "hast", "hat"): up to five letters only a swap of two neighbours counts ("mcih"), the rest goes
# through the lexicon's spellings. Checked against German and English word lists (docs/crisis.md).
PHRASE_TYPO_MIN = 6
PHRASE_TWO_TYPOS_MIN = 11
WORD_TYPO_MIN = 6
WORD_TWO_TYPOS_MIN = 13
PREFIX_TYPO_MIN = 6
MERGE_MIN = 6

_APOSTROPHES = re.compile(r"['’`´ʼ]")
_CENSORED = re.compile(r"(?<=[^\W\d_])[*!](?=[^\W\d_])")
_CHUNK = re.compile(r"\S+")
_LEET = str.maketrans("0134573$@", "oieastesa")
_LEET_CHARS = frozenset("0134573$@")
_WORD = re.compile(r"[^\W_]+")
_RUNS = re.compile(r"([^\W\d_])\1{2,}")
_TRANSLIT = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        # Arabic as typed: no tatweel, one form of final ya and ta marbuta, Persian letters
        # read as their Arabic twins (hamza and madda on alif go with the accents below).
        "\u0640": "",
        "ى": "ي",
        "ة": "ه",
        "ی": "ي",
        "ک": "ك",
    }
)


class LexiconError(ValueError):
    """The lexicon file is not usable (an unknown category, a term that cannot match)."""


@dataclass(frozen=True, slots=True)
class CrisisHit:
    """What was found: categories only. Deliberately no matched words, no positions."""

    category: str
    categories: frozenset[str]

    def __repr__(self) -> str:
        return f"CrisisHit(category={self.category!r})"


def normalize(text: str, *, invisible: str = "") -> list[str]:
    """The words of a text as the lexicon spells them: lower case, ä = ae, ß = ss, no accents,
    "don't" = dont, leetspeak and censoring undone (su1z1d, s*icide, su!c!de), letters repeated
    three times or more kept twice. Invisible format characters (zero-width space and joiner,
    soft hyphen, direction marks) go first: pasted text is full of them, and one inside a word
    must not hide it; `invisible=" "` reads them as spaces instead (one between two words)."""
    if not text.isascii():
        text = "".join(invisible if unicodedata.category(c) == "Cf" else c for c in text)
    text = _APOSTROPHES.sub("", text.casefold())
    text = _CENSORED.sub(lambda m: "i" if m.group() == "!" else "x", text)
    # Every message goes through here: the steps that change nothing are skipped (no leet
    # character, nothing to decompose in plain ASCII), with the same result.
    if not _LEET_CHARS.isdisjoint(text):
        text = _CHUNK.sub(_unleet, text)
    text = text.translate(_TRANSLIT)
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    # A run of one letter never crosses a word boundary, so it is shortened in one pass.
    return _WORD.findall(_RUNS.sub(r"\1\1", text))


def _unleet(match: re.Match[str]) -> str:
    chunk = match.group()
    if any(c.isalpha() for c in chunk) and not _LEET_CHARS.isdisjoint(chunk):
        return chunk.translate(_LEET)
    return chunk


@dataclass(frozen=True, slots=True)
class _Slot:
    """One word of a term: `word` matches by the typo rules, `prefix` by its start; an `exact`
    one (written =word in the lexicon) takes no typo."""

    text: str
    prefix: bool
    exact: bool
    index: int  # into the detector's vocabulary


@dataclass(frozen=True, slots=True)
class _Pattern:
    category: str | None  # None for a guard
    slots: tuple[_Slot | None, ...]  # None stands for a gap
    letters: int
    strong: bool = False  # no guard silences it


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int  # exclusive


class CrisisDetector:
    """The lexicon, prepared for matching; build once, share between messages."""

    def __init__(
        self,
        *,
        categories: Mapping[str, Iterable[str]],
        guards: Iterable[str] = (),
        spellings: Mapping[str, Iterable[str]] | None = None,
        negations: Iterable[str] = (),
        unguarded: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        unknown = (set(categories) | set(unguarded or {})) - set(CATEGORIES)
        if unknown:
            raise LexiconError(f"unknown crisis categories: {sorted(unknown)}")
        self._vocab_index: dict[tuple[str, bool], int] = {}
        self._patterns = [
            self._compile(term, category)
            for category, terms in categories.items()
            for term in terms
        ]
        # Terms no guard silences: a threat by a person ("er bringt mich um, wenn ...") shares
        # its words with the joke guard "bringt mich um" and must still raise the alarm.
        self._strong = [
            self._compile(term, category, strong=True)
            for category, terms in (unguarded or {}).items()
            for term in terms
        ]
        self._patterns += self._strong
        self._guards = [self._compile(term, None) for term in guards]
        self._negations = frozenset(w for term in negations for w in normalize(term))
        self._spelled: dict[str, set[int]] = {}
        for word, variants in (spellings or {}).items():
            # The key as the terms are compiled: normalised (an editor may write "mögen").
            key = (normalize(word) or [word])[0]
            targets = [i for (text, prefix), i in self._vocab_index.items() if text in (word, key)]
            if not targets:
                raise LexiconError(f"spellings for a word that no term or guard uses: {word!r}")
            for variant in variants:
                for token in normalize(variant):
                    self._spelled.setdefault(token, set()).update(targets)
        self._exact = {w: i for (w, prefix), i in self._vocab_index.items() if not prefix}
        self._prefixes = [(w, i) for (w, prefix), i in self._vocab_index.items() if prefix]
        self._typo_words = [(w, i) for (w, prefix), i in self._vocab_index.items() if not prefix]
        # A prefix or a typo match needs the same first letter (see `_prefix_typo` and
        # `_token_matches`), so each token is compared only with the words of its initial.
        self._prefixes_by_initial: dict[str, list[tuple[str, int]]] = {}
        for stem, index in self._prefixes:
            self._prefixes_by_initial.setdefault(stem[0], []).append((stem, index))
        self._typo_by_initial: dict[str, tuple[list[str], list[int]]] = {}
        for word, index in self._typo_words:
            words, indices = self._typo_by_initial.setdefault(word[0], ([], []))
            words.append(word)
            indices.append(index)
        self._first: dict[int, list[_Pattern]] = {}
        for pattern in self._patterns + self._guards:
            first = pattern.slots[0]
            assert first is not None  # _compile refuses a leading gap
            self._first.setdefault(first.index, []).append(pattern)
        self._mergeable = frozenset(w for w, _ in self._vocab_index if len(w) >= MERGE_MIN)

    @classmethod
    def load(cls, *paths: Path) -> CrisisDetector:
        """The lexicon files together: the German and English one and one per further language
        (crisis_lexicon_tr.json, ...), each in the same format."""
        files = paths or lexicon_files()
        return cls.from_mappings([json.loads(p.read_text(encoding="utf-8")) for p in files])

    @classmethod
    def from_mappings(cls, parts: Sequence[Mapping[str, Any]]) -> CrisisDetector:
        categories: dict[str, list[str]] = {}
        unguarded: dict[str, list[str]] = {}
        spellings: dict[str, list[str]] = {}
        guards: list[str] = []
        negations: list[str] = []
        for data in parts:
            for target, source in ((categories, "categories"), (unguarded, "unguarded")):
                for category, terms in data.get(source, {}).items():
                    target.setdefault(category, []).extend(terms)
            for word, variants in data.get("spellings", {}).items():
                spellings.setdefault(word, []).extend(variants)
            guards.extend(data.get("guards", ()))
            negations.extend(data.get("negations", ()))
        return cls(
            categories=categories,
            guards=guards,
            spellings=spellings,
            negations=negations,
            unguarded=unguarded,
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CrisisDetector:
        return cls(
            categories=data.get("categories", {}),
            guards=data.get("guards", ()),
            spellings=data.get("spellings", {}),
            negations=data.get("negations", ()),
            unguarded=data.get("unguarded", {}),
        )

    @property
    def size(self) -> int:
        """How many terms the lexicon has (guards not counted)."""
        return len(self._patterns)

    def detect(self, text: str) -> CrisisHit | None:
        hit = self._detect(normalize(text)[:MAX_TOKENS])
        if (
            hit is None
            and not text.isascii()
            and any(unicodedata.category(c) == "Cf" for c in text)
        ):
            # An invisible character can hide a word, or stand where a space was.
            hit = self._detect(normalize(text, invisible=" ")[:MAX_TOKENS])
        return hit

    def _detect(self, tokens: list[str]) -> CrisisHit | None:
        hits: list[tuple[_Pattern, _Span]] = []
        guards: list[_Span] = []
        for words, origin in _readings(tokens, self._mergeable):
            for pattern, span in self._spans(words):
                # Back to the words as typed, so a guard in one reading covers the other.
                mapped = _Span(origin[span.start].start, origin[span.end - 1].end)
                if pattern.category is None:
                    guards.append(mapped)
                else:
                    hits.append((pattern, mapped))
        # A guard wins over every hit that shares a word with it: predictable for editors.
        found = {
            pattern.category
            for pattern, span in hits
            if pattern.category is not None
            and (
                pattern.strong
                or not any(g.start < span.end and span.start < g.end for g in guards)
            )
        }
        if not found:
            return None
        primary = next(c for c in CATEGORIES if c in found)
        return CrisisHit(category=primary, categories=frozenset(found))

    # -- compiling the lexicon ------------------------------------------------------------------

    def _compile(self, term: str, category: str | None, *, strong: bool = False) -> _Pattern:
        slots: list[_Slot | None] = []
        for raw in term.split():
            if raw == GAP:
                slots.append(None)
                continue
            exact, prefix = raw.startswith("="), raw.endswith("*")
            words = normalize(raw)
            if len(words) != 1:
                raise LexiconError(f"a word of a term must be one word: {raw!r} in {term!r}")
            slots.append(self._slot(words[0], prefix=prefix, exact=exact))
        words_only = [s for s in slots if s is not None]
        if not words_only or slots[0] is None or slots[-1] is None:
            raise LexiconError(f"a term must start and end with a word: {term!r}")
        if len(words_only) > MAX_TERM_WORDS:
            raise LexiconError(f"a term has at most {MAX_TERM_WORDS} words: {term!r}")
        if any(a is None and b is None for a, b in zip(slots, slots[1:], strict=False)):
            raise LexiconError(f"two gaps in a row: {term!r}")
        letters = sum(len(s.text) for s in words_only)
        return _Pattern(category, tuple(slots), letters, strong)

    def _slot(self, text: str, *, prefix: bool, exact: bool) -> _Slot:
        key = (text, prefix)
        if key not in self._vocab_index:
            self._vocab_index[key] = len(self._vocab_index)
        return _Slot(text, prefix, exact, self._vocab_index[key])

    # -- matching -------------------------------------------------------------------------------

    def _spans(self, tokens: list[str]) -> list[tuple[_Pattern, _Span]]:
        """Every term and guard found (a guard's category is None) and its words."""
        matches = self._token_matches(tokens)
        found: list[tuple[_Pattern, _Span]] = []
        for start, candidates in enumerate(matches):
            for index in candidates:
                for pattern in self._first.get(index, ()):
                    span = self._match(pattern, tokens, matches, start)
                    if span is not None:
                        found.append((pattern, span))
        return found

    def _token_matches(self, tokens: Sequence[str]) -> list[dict[int, int]]:
        """Per token: vocabulary index -> typos needed (0 for exact, a spelling, a prefix)."""
        distinct = sorted(set(tokens))
        by_token: dict[str, dict[int, int]] = {t: {} for t in distinct}
        for token, found in by_token.items():
            if token in self._exact:
                found[self._exact[token]] = 0
            for index in self._spelled.get(token, ()):
                found[index] = 0
            for stem, index in self._prefixes_by_initial.get(token[0], ()):
                if token.startswith(stem) or _prefix_typo(token, stem):
                    found.setdefault(index, 0 if token.startswith(stem) else 1)
            if len(token) < 3 or token[0] not in self._typo_by_initial:
                continue
            words, indices = self._typo_by_initial[token[0]]
            for word, distance, column in process.extract(
                token, words, scorer=OSA.distance, score_cutoff=2, limit=None
            ):
                if distance and _typo_ok(token, word, distance):
                    found.setdefault(indices[column], distance)
        return [by_token[t] for t in tokens]

    def _match(
        self,
        pattern: _Pattern,
        tokens: Sequence[str],
        matches: Sequence[dict[int, int]],
        start: int,
    ) -> _Span | None:
        single = len(pattern.slots) == 1
        budget = 1 + pattern.letters // 8

        def cost_at(slot: _Slot, position: int) -> int | None:
            cost = matches[position].get(slot.index)
            # Guards match exactly: a guard must never silence a crisis one typo away from it.
            if cost is None or (cost and (slot.exact or pattern.category is None)):
                return None
            if cost and single and not slot.prefix and not _word_typo_ok(slot.text, cost):
                return None
            return cost

        def walk(slot_no: int, position: int, spent: int) -> int | None:
            """The end position of a match of slots[slot_no:] from `position`, or None."""
            if slot_no == len(pattern.slots):
                return position
            slot = pattern.slots[slot_no]
            if slot is None:
                for skip in range(MAX_GAP + 1):
                    if skip and tokens[position + skip - 1] in self._negations:
                        return None
                    if position + skip >= len(tokens):
                        return None
                    end = walk(slot_no + 1, position + skip, spent)
                    if end is not None:
                        return end
                return None
            if position >= len(tokens):
                return None
            cost = cost_at(slot, position)
            if cost is None or spent + cost > budget:
                return None
            return walk(slot_no + 1, position + 1, spent + cost)

        end = walk(0, start, 0)
        return None if end is None else _Span(start, end)


def _typo_ok(token: str, word: str, distance: int) -> bool:
    """Typo rules for a word inside a term (a lone word is checked again, more strictly)."""
    if len(word) < PHRASE_TYPO_MIN:
        # Short words: only two neighbouring letters swapped ("mcih" for "mich").
        return distance == 1 and len(token) == len(word) and sorted(token) == sorted(word)
    return distance <= (2 if len(word) >= PHRASE_TWO_TYPOS_MIN else 1)


def _word_typo_ok(word: str, distance: int) -> bool:
    if len(word) < WORD_TYPO_MIN:
        return False
    return distance <= (2 if len(word) >= WORD_TWO_TYPOS_MIN else 1)


def _prefix_typo(token: str, stem: str) -> bool:
    """A word that starts with the stem apart from one typo (selbsmordgedanken, suizied)."""
    if len(stem) < PREFIX_TYPO_MIN or token[0] != stem[0] or len(token) < len(stem) - 1:
        return False
    return any(
        OSA.distance(token[:k], stem, score_cutoff=1) <= 1
        for k in (len(stem) - 1, len(stem), len(stem) + 1)
    )


def _readings(tokens: list[str], mergeable: frozenset[str]) -> list[tuple[list[str], list[_Span]]]:
    """The words as typed, and, where two neighbours form a lexicon word, joined ("selbst mord",
    "zu hause"); both are read, so a term of two separate words still matches. Each reading
    comes with the typed words each of its words stands for."""
    typed = [_Span(i, i + 1) for i in range(len(tokens))]
    merged: list[str] = []
    origin: list[_Span] = []
    i = 0
    while i < len(tokens):
        # Joined, a run of one letter can appear ("ess" + "stoerung"): shortened as normalize does.
        joined = _RUNS.sub(r"\1\1", tokens[i] + tokens[i + 1]) if i + 1 < len(tokens) else ""
        if joined in mergeable:
            merged.append(joined)
            origin.append(_Span(i, i + 2))
            i += 2
        else:
            merged.append(tokens[i])
            origin.append(typed[i])
            i += 1
    readings = [(tokens, typed)]
    if merged != tokens:
        readings.append((merged, origin))
    return readings


def lexicon_files() -> list[Path]:
    """The shipped lexicon: German and English first, then the other languages."""
    return [LEXICON_FILE, *sorted(LEXICON_FILE.parent.glob("crisis_lexicon_*.json"))]


@lru_cache(maxsize=1)
def default_detector() -> CrisisDetector:
    """The shipped lexicon, loaded once per process."""
    return CrisisDetector.load()
