"""Trains the crisis model from the labelled corpus: `python -m bot.crisis_build`.

Reproducible: the same corpus gives the same bot/crisis_model.npz (fixed split, fixed folds,
deterministic solver). A fifth of the corpus is held out by a hash of each row's text; training
never sees it, and bench/crisis.py and the tests measure on it. The threshold is chosen on the
training part alone, by cross-validation: the lowest probability at which, out of fold, no more
than TARGET_FALSE_ALARMS of the safe messages would raise the alarm.

Needs scikit-learn (installed with the test extras); the service itself does not.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.crisis_model import LANGUAGES, LEVELS, MODEL_FILE, NONE, features
from core.schemas import CRISIS_CATEGORIES

CORPUS_DIR = Path(__file__).with_name("crisis_corpus")
LABELS = (NONE, *CRISIS_CATEGORIES)
HELD_OUT_SHARE = 5  # one row in five
MIN_DF = 2
C = 8.0
FOLDS = 5
IMMINENT_WEIGHT = 2.0
TARGET_FALSE_ALARMS = 0.025
# The model's probabilities tried as the confirmation a lexicon hit needs (0: none needed).
LEXICON_CONFIRM_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True, slots=True)
class Row:
    group: str  # the file: de, de_learner, en, tr, ...
    lang: str
    label: str
    level: str | None
    text: str

    @property
    def crisis(self) -> bool:
        return self.label != NONE


def held_out(text: str) -> bool:
    """Decided by the text alone, so a row stays on its side when files are reordered."""
    return hashlib.sha256(text.casefold().encode()).digest()[0] % HELD_OUT_SHARE == 0


def read_corpus(directory: Path = CORPUS_DIR) -> list[Row]:
    rows: list[Row] = []
    for path in sorted(directory.glob("*.tsv")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines[0] != "lang\tlabel\tseverity\ttext":
            raise ValueError(f"{path.name}: unexpected header")
        for number, line in enumerate(lines[1:], 2):
            if not line:
                continue
            lang, label, level, text = line.split("\t")
            if label not in LABELS or lang not in LANGUAGES:
                raise ValueError(f"{path.name}:{number}: unknown label or language")
            if (level == "-") != (label == NONE) or (level != "-" and level not in LEVELS):
                raise ValueError(f"{path.name}:{number}: severity does not fit the label")
            rows.append(Row(path.stem, lang, label, None if level == "-" else level, text))
    return rows


def split(rows: Iterable[Row]) -> tuple[list[Row], list[Row]]:
    train, test = [], []
    for row in rows:
        (test if held_out(row.text) else train).append(row)
    return train, test


def corpus_digest(directory: Path = CORPUS_DIR) -> str:
    """What the model was built from; a test compares it with the corpus on disk."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.tsv")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class Vectorizer:
    """tf-idf over `features`: sublinear tf, smooth idf, l2 norm, as the run time computes."""

    def __init__(self, texts: Sequence[str]) -> None:
        df: Counter[str] = Counter()
        for text in texts:
            df.update(features(text).keys())
        self.vocabulary = sorted(f for f, n in df.items() if n >= MIN_DF)
        self.index = {f: i for i, f in enumerate(self.vocabulary)}
        n = len(texts)
        self.idf = np.array(
            [math.log((1 + n) / (1 + df[f])) + 1 for f in self.vocabulary], dtype=np.float64
        )

    def transform(self, texts: Sequence[str]):  # -> scipy.sparse.csr_matrix
        from scipy.sparse import csr_matrix

        data, indices, indptr = [], [], [0]
        for text in texts:
            row = {
                self.index[f]: 1.0 + math.log(c)
                for f, c in features(text).items()
                if f in self.index
            }
            cols = sorted(row)
            values = np.array([row[c] * self.idf[c] for c in cols])
            norm = np.linalg.norm(values)
            data.extend(values / norm if norm else values)
            indices.extend(cols)
            indptr.append(len(indices))
        return csr_matrix((data, indices, indptr), shape=(len(texts), len(self.vocabulary)))


def _fit(matrix, targets: Sequence[str], *, balanced: bool, weights=None):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=C, max_iter=3000, class_weight="balanced" if balanced else None, tol=1e-5
    )
    model.fit(matrix, list(targets), sample_weight=weights)
    return model


def _weights(rows: Sequence[Row]) -> np.ndarray:
    """Imminent danger counts more in training: missing it is the worst mistake."""
    return np.array([IMMINENT_WEIGHT if r.level == "imminent" else 1.0 for r in rows])


def choose_threshold(train: Sequence[Row]) -> tuple[tuple[float, float], dict[str, float]]:
    """Two thresholds, chosen together on out-of-fold scores: the model's probability from
    which it raises the alarm alone, and the (lower) one from which it confirms a lexicon hit.
    The pair with the highest recall whose false alarms stay at the target wins; the lexicon
    is the shipped one, so a lexicon change calls for a new build too."""
    order = sorted(
        range(len(train)), key=lambda i: hashlib.sha256(train[i].text.encode()).digest()
    )
    scores = np.zeros(len(train))
    for fold in range(FOLDS):
        test_at = [i for k, i in enumerate(order) if k % FOLDS == fold]
        train_at = [i for k, i in enumerate(order) if k % FOLDS != fold]
        vectorizer = Vectorizer([train[i].text for i in train_at])
        model = _fit(
            vectorizer.transform([train[i].text for i in train_at]),
            [train[i].label for i in train_at],
            balanced=True,
            weights=_weights([train[i] for i in train_at]),
        )
        none_at = list(model.classes_).index(NONE)
        probs = model.predict_proba(vectorizer.transform([train[i].text for i in test_at]))
        scores[test_at] = 1.0 - probs[:, none_at]
    from bot.crisis import CrisisDetector

    lexicon = CrisisDetector.load()
    hit = np.array([lexicon.detect(r.text) is not None for r in train])
    is_crisis = np.array([r.crisis for r in train])
    allowed = int(TARGET_FALSE_ALARMS * (~is_crisis).sum())
    best: tuple[float, float, float] | None = None  # recall, alone, with lexicon
    for with_lexicon in LEXICON_CONFIRM_GRID:
        by_lexicon = hit & (scores >= with_lexicon)
        # The lowest model threshold alone that keeps the false alarms within the target.
        rest = np.sort(scores[~is_crisis & ~by_lexicon])[::-1]
        budget = allowed - int((by_lexicon & ~is_crisis).sum())
        if budget < 0:
            continue
        alone = float(rest[budget]) + 1e-6 if budget < len(rest) else 0.0
        recall = float((is_crisis & (by_lexicon | (scores >= alone))).sum() / is_crisis.sum())
        if best is None or recall > best[0]:
            best = (recall, alone, with_lexicon)
    assert best is not None
    recall, alone, with_lexicon = best
    flagged = (hit & (scores >= with_lexicon)) | (scores >= alone)
    report = {
        "threshold": alone,
        "threshold_with_lexicon": with_lexicon,
        "oof_recall": recall,
        "oof_false_alarms": float(flagged[~is_crisis].mean()),
    }
    return (alone, with_lexicon), report


def build(*, out: Path = MODEL_FILE, directory: Path = CORPUS_DIR) -> dict[str, float]:
    rows = read_corpus(directory)
    train, _ = split(rows)
    started = time.perf_counter()
    (threshold, with_lexicon), report = choose_threshold(train)
    vectorizer = Vectorizer([r.text for r in train])
    matrix = vectorizer.transform([r.text for r in train])
    heads = {
        "category": _fit(matrix, [r.label for r in train], balanced=True, weights=_weights(train)),
    }
    heads["language"] = _fit(matrix, [r.lang for r in train], balanced=True)
    crisis_at = [i for i, r in enumerate(train) if r.crisis]
    heads["level"] = _fit(
        matrix[crisis_at], [train[i].level or "" for i in crisis_at], balanced=True
    )
    arrays: dict[str, np.ndarray] = {
        "vocabulary": np.array("\n".join(vectorizer.vocabulary)),
        "idf": vectorizer.idf.astype(np.float32),
        "threshold": np.array(threshold),
        "threshold_with_lexicon": np.array(with_lexicon),
        "corpus_digest": np.array(corpus_digest(directory)),
    }
    for name, model in heads.items():
        labels = [str(c) for c in model.classes_]
        weights = model.coef_.T
        bias = model.intercept_
        if len(labels) == 2:  # scikit-learn keeps one column for two classes
            weights = np.hstack([-weights / 2, weights / 2])
            bias = np.array([-bias[0] / 2, bias[0] / 2])
        arrays[f"{name}_labels"] = np.array("\n".join(labels))
        arrays[f"{name}_weights"] = weights.astype(np.float16)
        arrays[f"{name}_bias"] = bias.astype(np.float32)
    np.savez_compressed(out, **arrays)
    report.update(
        rows=len(rows),
        train=len(train),
        features=len(vectorizer.vocabulary),
        seconds=round(time.perf_counter() - started, 1),
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args(argv)
    report = build(out=args.out)
    for key, value in report.items():
        sys.stdout.write(f"{key}: {value}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
