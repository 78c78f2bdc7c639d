"""Crisis triage: the lexicon and the model together, with an urgency and the language.

Layers (docs/crisis.md measures each on its own and together):
1. the lexicon (bot/crisis.py): exact, editable, with guards for jokes;
2. the model (bot/crisis_model.py): learned from the labelled corpus, catches wording nobody
   listed, other languages and transliteration, and says how urgent and which language;
3. the context: a message that is harmless alone is read again together with the same chat's
   last few messages, so a crisis split over two messages counts ("ich will mich" ... "umbringen").

Either layer raising the alarm is enough: missing a crisis costs far more than a false alarm.
The result carries labels only, never words, like both layers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from bot.crisis import CATEGORIES, CrisisDetector, default_detector, normalize
from bot.crisis_model import LEVELS, CrisisModel, ModelReading, default_model
from core.clock import Clock

# The least urgency a category has; the model (or the lexicon's imminent terms) may raise it.
BASE_LEVEL = {
    "acute_danger": "imminent",
    "suicide": "high",
    "self_harm": "high",
    "threat": "high",
    "abuse": "high",
    "violence": "high",
    "eating_disorder": "concern",
    "runaway": "concern",
}
# P(imminent | crisis) from which the model's word counts: a plan, a method, a time, "now".
IMMINENT_FROM = 0.5
# Below this the language guess is no guess; and short Latin text is named no language.
LANGUAGE_FROM = 0.6
MIN_LATIN_WORDS = 3
# How many earlier messages of a chat are read together with a new one, and for how long.
CONTEXT_MESSAGES = 2
CONTEXT_FOR = timedelta(minutes=10)


def more_urgent(a: str, b: str) -> str:
    return a if CATEGORIES.index(a) <= CATEGORIES.index(b) else b


def higher_level(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


@dataclass(frozen=True, slots=True)
class Assessment:
    """A crisis found: category, urgency and how it was found; deliberately no words."""

    category: str
    level: str
    by: str  # "lexicon", "model", "both"; with "+context" when earlier messages were needed

    def __repr__(self) -> str:
        return f"Assessment(category={self.category!r}, level={self.level!r}, by={self.by!r})"


@dataclass(frozen=True, slots=True)
class Reading:
    """The whole answer for one message: a crisis (or None) and the language it is written in
    (None when unsure)."""

    crisis: Assessment | None
    language: str | None


class CrisisTriage:
    def __init__(
        self,
        *,
        lexicon: CrisisDetector | None = None,
        model: CrisisModel | None = None,
        threshold: float | None = None,
    ) -> None:
        self.lexicon = lexicon or default_detector()
        self.model = model or default_model()
        self.threshold = self.model.threshold if threshold is None else threshold

    def read(self, text: str, *, earlier: Sequence[str] = ()) -> Reading:
        reading = self.model.read(text)
        language = reading.language if _long_enough(text) else None
        if reading.language_confidence < LANGUAGE_FROM:
            language = None
        crisis = self._assess(text, reading)
        if crisis is None and earlier:
            joined = " \n".join([*earlier[-CONTEXT_MESSAGES:], text])
            found = self._assess(joined, self.model.read(joined))
            if found is not None:
                crisis = Assessment(found.category, found.level, found.by + "+context")
        return Reading(crisis=crisis, language=language)

    def assess(self, text: str, *, earlier: Sequence[str] = ()) -> Assessment | None:
        return self.read(text, earlier=earlier).crisis

    def _assess(self, text: str, reading: ModelReading) -> Assessment | None:
        hit = self.lexicon.detect(text)
        if hit is not None and reading.crisis < self.model.threshold_with_lexicon:
            # The model, sure it is harmless, overrules a lexicon hit: the same words in a
            # harmless sense are the lexicon's false alarms (the threshold is chosen by
            # bot/crisis_build.py so that this costs the least recall).
            hit = None
        by_model = reading.crisis >= self.threshold
        if hit is None and not by_model:
            return None
        if hit is not None and by_model:
            category, by = more_urgent(hit.category, reading.category), "both"
        elif hit is not None:
            category, by = hit.category, "lexicon"
        else:
            category, by = reading.category, "model"
        level = BASE_LEVEL[category]
        if reading.imminent >= IMMINENT_FROM and (
            by_model or reading.crisis >= 0.5 * self.threshold
        ):
            level = "imminent"
        elif by_model:
            level = higher_level(level, reading.level)
        return Assessment(category=category, level=level, by=by)


def _long_enough(text: str) -> bool:
    """A language is named only for real text: any non-Latin letters, or three Latin words;
    "ja", "ok" and postcodes are every language's."""
    words = [w for w in normalize(text) if any(c.isalpha() for c in w)]
    if any(c.isalpha() and not c.isascii() for w in words for c in w):
        return True
    return len(words) >= MIN_LATIN_WORDS


class RecentTexts:
    """The last few messages per chat, in this process's memory only and for minutes only.

    Never written anywhere (not to the flow state, not to Redis, not to the database), bounded
    in size, and gone on restart: the price is that a crisis split over two messages is only
    put together when both reach the same process within CONTEXT_FOR."""

    def __init__(self, *, clock: Clock, chats: int = 10_000) -> None:
        self._clock = clock
        self._chats = chats
        self._texts: OrderedDict[str, deque[tuple[datetime, str]]] = OrderedDict()

    def earlier(self, key: str) -> list[str]:
        entries = self._texts.get(key)
        if not entries:
            return []
        since = self._clock.now() - CONTEXT_FOR
        return [text for at, text in entries if at >= since]

    def add(self, key: str, text: str) -> None:
        entries = self._texts.pop(key, None) or deque(maxlen=CONTEXT_MESSAGES)
        entries.append((self._clock.now(), text))
        self._texts[key] = entries
        while len(self._texts) > self._chats:
            self._texts.popitem(last=False)

    def forget(self, key: str) -> None:
        self._texts.pop(key, None)


@lru_cache(maxsize=1)
def default_triage() -> CrisisTriage:
    return CrisisTriage()
