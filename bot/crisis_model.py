"""The statistical layer of crisis detection: a linear model over character n-grams and words.

The lexicon (bot/crisis.py) knows the words an editor wrote down; this model has learned from the
labelled corpus in bot/crisis_corpus/ how children and teens write about a crisis, so it also
catches wording nobody listed ("ohne mich wärs für alle leichter"), other languages and
transliteration. It answers three questions about a message at once: which category (or none),
how urgent, and which language. `python -m bot.crisis_build` trains it and writes
bot/crisis_model.npz; this module only loads that file and computes, with numpy, what
scikit-learn's logistic regression would: no scikit-learn at run time, and loading takes a few
milliseconds.

Like the lexicon, the model answers with labels and probabilities only: the words never leave.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.crisis import normalize
from core.schemas import CRISIS_LEVELS

MODEL_FILE = Path(__file__).with_name("crisis_model.npz")
NONE = "none"
LEVELS = CRISIS_LEVELS
LANGUAGES = ("de", "en", "tr", "ru", "uk", "ar")
# Character n-grams of these lengths within each word (padded with a space at both ends), plus
# the words and word pairs. Short n-grams carry misspellings and inflections; words and pairs
# carry meaning ("nicht mehr", "ohne mich").
NGRAMS = (2, 3, 4, 5)
SKELETON_NGRAMS = (3, 4)
# A pasted wall of text is read up to here; a chat message is far shorter.
MAX_WORDS = 200


# Cyrillic in Latin letters, and Latin transliteration made uniform ("khochu", "hochu",
# "xochu" and "хочу" all read "hochu"): what a Russian or Ukrainian word looks like in both
# scripts, so rows in one script teach the other.
_CYRILLIC = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "h", "ґ": "g", "д": "d", "е": "e", "є": "je",
        "ж": "zh", "з": "z", "и": "i", "і": "i", "ї": "ji", "й": "i", "к": "k", "л": "l",
        "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
        "ф": "f", "х": "h", "ц": "c", "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "", "ы": "i",
        "ь": "", "э": "e", "ю": "ju", "я": "ja",
    }
)  # fmt: skip
_UNIFORM = (
    ("shch", "sh"), ("sch", "sh"), ("tsch", "ch"), ("kh", "h"), ("ya", "ja"), ("yu", "ju"),
    ("yo", "o"), ("jo", "o"), ("ts", "c"), ("tz", "c"), ("w", "v"), ("x", "h"), ("g", "h"),
    ("y", "i"), ("j", "i"),
)  # fmt: skip


def skeleton(word: str) -> str:
    out = word.translate(_CYRILLIC)
    for a, b in _UNIFORM:
        out = out.replace(a, b)
    return out


def features(text: str) -> Counter[str]:
    """The features of a text, as the model and its training both see them."""
    words = normalize(text)[:MAX_WORDS]
    found: Counter[str] = Counter()
    for word in words:
        padded = f" {word} "
        for n in NGRAMS:
            for i in range(len(padded) - n + 1):
                found[padded[i : i + n]] += 1
        found["w " + word] += 1
        if word.isascii() and not any(c.isalpha() for c in word):
            continue
        bone = f" {skeleton(word)} "
        for n in SKELETON_NGRAMS:
            for i in range(len(bone) - n + 1):
                found["t" + bone[i : i + n]] += 1
    for first, second in zip(words, words[1:], strict=False):
        found[f"b {first} {second}"] += 1
    return found


@dataclass(frozen=True, slots=True)
class ModelReading:
    """What the model says about one text: probabilities, never words."""

    crisis: float  # 1 - P(none)
    category: str  # the most likely crisis category (even when `crisis` is low)
    level: str  # the most likely urgency, if it were a crisis
    imminent: float  # P(imminent | crisis)
    language: str
    language_confidence: float

    def __repr__(self) -> str:
        return f"ModelReading(crisis={self.crisis:.2f}, category={self.category!r})"


class CrisisModel:
    """The trained weights: one vocabulary, three heads (category, level, language)."""

    def __init__(
        self,
        *,
        vocabulary: Sequence[str],
        idf: np.ndarray,
        heads: dict[str, tuple[Sequence[str], np.ndarray, np.ndarray]],
        threshold: float,
        corpus_digest: str,
        threshold_with_lexicon: float = 0.0,
    ) -> None:
        self._index = {feature: i for i, feature in enumerate(vocabulary)}
        self._idf = idf.astype(np.float32)
        self._heads = {
            name: (tuple(labels), weights.astype(np.float32), bias.astype(np.float32))
            for name, (labels, weights, bias) in heads.items()
        }
        self.threshold = threshold
        self.threshold_with_lexicon = threshold_with_lexicon
        self.corpus_digest = corpus_digest

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> CrisisModel:
        with np.load(path, allow_pickle=False) as data:
            heads = {}
            for name in ("category", "level", "language"):
                labels = str(data[f"{name}_labels"]).split("\n")
                heads[name] = (labels, data[f"{name}_weights"], data[f"{name}_bias"])
            return cls(
                vocabulary=str(data["vocabulary"]).split("\n"),
                idf=data["idf"],
                heads=heads,
                threshold=float(data["threshold"]),
                corpus_digest=str(data["corpus_digest"]),
                threshold_with_lexicon=float(data["threshold_with_lexicon"]),
            )

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Indices and tf-idf values (sublinear tf, l2-normed), as scikit-learn computes them."""
        pairs = [(self._index[f], c) for f, c in features(text).items() if f in self._index]
        if not pairs:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        indices = np.fromiter((i for i, _ in pairs), dtype=np.intp, count=len(pairs))
        tf = np.fromiter((1.0 + math.log(c) for _, c in pairs), dtype=np.float32, count=len(pairs))
        values = tf * self._idf[indices]
        norm = float(np.linalg.norm(values))
        return indices, values / norm if norm else values

    def read(self, text: str) -> ModelReading:
        indices, values = self.vector(text)
        results = {}
        for name, (labels, weights, bias) in self._heads.items():
            logits = values @ weights[indices] + bias if len(indices) else bias.copy()
            exp = np.exp(logits - logits.max())
            results[name] = (labels, exp / exp.sum())
        labels, probs = results["category"]
        none_at = labels.index(NONE)
        crisis_order = [i for i in np.argsort(-probs) if i != none_at]
        level_labels, level_probs = results["level"]
        lang_labels, lang_probs = results["language"]
        lang_at = int(np.argmax(lang_probs))
        return ModelReading(
            crisis=float(1.0 - probs[none_at]),
            category=labels[int(crisis_order[0])],
            level=level_labels[int(np.argmax(level_probs))],
            imminent=float(level_probs[level_labels.index("imminent")]),
            language=lang_labels[lang_at],
            language_confidence=float(lang_probs[lang_at]),
        )


@lru_cache(maxsize=1)
def default_model() -> CrisisModel:
    """The shipped model, loaded once per process."""
    return CrisisModel.load()
